/* storage.h: where media bytes live, behind one interface.
 *
 * Backends: "local" (a directory; nginx receives uploads and serves
 * downloads from it) now, "s3" later. Keys are made by the service only
 * (kd_storage_key_valid says which): lowercase letters, digits, '-', '.',
 * '_' and '/' separating non-empty segments that do not start with '.'.
 *
 * Presigned URLs carry the method, key, expiry and a constraint (the exact
 * size for PUT, the download file name for GET) under an HMAC-SHA256 made
 * with url_signing_secret. For the local backend nginx asks the API to
 * verify each request (auth_request) before it accepts a byte. */
#ifndef KD_STORAGE_H
#define KD_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

struct kd_storage;

struct kd_storage_stat {
    int64_t size;
    int64_t mtime_ms;
};

struct kd_presign {
    int64_t ttl_s;            /* validity from now */
    int64_t size;             /* PUT: the exact number of bytes allowed */
    const char *content_type; /* PUT: informational; may be NULL */
    const char *filename;     /* GET: offered to the browser; may be NULL */
};

/* What a verified presigned request allows. */
struct kd_presigned_req {
    char method[8];
    char key[256];
    int64_t expires_at;       /* unix seconds */
    int64_t size;             /* PUT: exact size; -1 for GET */
    char filename[256];       /* GET: the file name, "" when none */
};

KD_MUST_CHECK enum kd_err kd_storage_open(const struct kd_config *cfg, struct kd_storage **out);
void kd_storage_close(struct kd_storage *s); /* NULL is a no-op */

bool kd_storage_key_valid(const char *key);

/* Copies the local file at path into the store under key, atomically (a
 * reader sees the old object or the whole new one). */
KD_MUST_CHECK enum kd_err kd_storage_put_file(struct kd_storage *s, const char *key,
                                              const char *path);
/* Copies the object to a new local file at path. KD_ENOTFOUND if missing. */
KD_MUST_CHECK enum kd_err kd_storage_get_file(struct kd_storage *s, const char *key,
                                              const char *path);
/* Removes the object; a missing one is not an error. */
KD_MUST_CHECK enum kd_err kd_storage_delete(struct kd_storage *s, const char *key);
KD_MUST_CHECK enum kd_err kd_storage_stat(struct kd_storage *s, const char *key,
                                          struct kd_storage_stat *out);
/* Writes into out the path of the object on the local file system when the
 * backend has one (local disk); KD_EUNSUPPORTED otherwise. */
KD_MUST_CHECK enum kd_err kd_storage_local_path(struct kd_storage *s, const char *key, char *out,
                                                size_t out_len);
/* KD_OK when the store is usable (the root exists and is writable). */
KD_MUST_CHECK enum kd_err kd_storage_check(struct kd_storage *s);

/* An absolute URL (under public_url) for method "PUT" or "GET" on key.
 * *url is the caller's to free; *expires_at is unix seconds. */
KD_MUST_CHECK enum kd_err kd_storage_presign(struct kd_storage *s, const char *method,
                                             const char *key, const struct kd_presign *opt,
                                             char **url, int64_t *expires_at);
/* Checks a request that arrived at a presigned URL: method and the request
 * URI as the client sent it (path and query). KD_EFORBIDDEN when the
 * signature is wrong or the URL malformed, KD_ETIMEOUT when it expired.
 * Fills *out on success. */
KD_MUST_CHECK enum kd_err kd_storage_verify(struct kd_storage *s, const char *method,
                                            const char *request_uri, int64_t now_s,
                                            struct kd_presigned_req *out);

#endif
