/* storage.h: where media bytes live, behind one interface.
 *
 * Backends: "local" (a directory; nginx receives uploads and serves
 * downloads from it) and "s3" (S3 or MinIO; browsers upload and download
 * through S3's own presigned URLs, signed with SigV4). Keys are made by the service only
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
    int64_t expires_at; /* unix seconds */
    int64_t size;       /* PUT: exact size; -1 for GET */
    char filename[256]; /* GET: the file name, "" when none */
};

KD_MUST_CHECK enum kd_err kd_storage_open(const struct kd_config *cfg, struct kd_storage **out);
void kd_storage_close(struct kd_storage *s); /* NULL is a no-op */

bool kd_storage_key_valid(const char *key);

/* Copies the local file at path into the store under key, atomically (a
 * reader sees the old object or the whole new one). */
KD_MUST_CHECK enum kd_err kd_storage_put_file(struct kd_storage *s, const char *key,
                                              const char *path);
/* Called once an upload in parts has begun, with its id, so that whoever
 * must clean up after a killed uploader can abort it
 * (kd_storage_multipart_abort) and leave no parts billed. */
typedef void kd_storage_upload_fn(void *arg, const char *upload_id);
/* kd_storage_put_file that tells fn the id of a multipart upload (S3,
 * above s3_multipart_threshold) before its first part goes out. */
KD_MUST_CHECK enum kd_err kd_storage_put_file_watched(struct kd_storage *s, const char *key,
                                                      const char *path, kd_storage_upload_fn *fn,
                                                      void *arg);
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

/* --- added with the S3 backend (issue #6) ------------------------------ */

/* "local" or "s3". */
const char *kd_storage_backend_name(const struct kd_storage *s);

/* What the store said about the last request of this handle that failed,
 * for messages: "503 SlowDown: Please reduce your request rate",
 * "Couldn't connect to server"; "" when nothing failed or the backend
 * keeps no text. Never holds a key, a signature or a secret. Valid until
 * the next call on s. */
const char *kd_storage_last_error(const struct kd_storage *s);

/* Reads up to len bytes of the object from offset into buf; *got is 0 at
 * or past the end. KD_ENOTFOUND if missing. */
KD_MUST_CHECK enum kd_err kd_storage_read_range(struct kd_storage *s, const char *key,
                                                int64_t offset, void *buf, size_t len, size_t *got);

/* Called for each object under prefix, in key order; a non-KD_OK return
 * stops the listing and is returned by kd_storage_list. */
typedef enum kd_err (*kd_storage_list_fn)(const char *key, int64_t size, void *arg);
KD_MUST_CHECK enum kd_err kd_storage_list(struct kd_storage *s, const char *prefix,
                                          kd_storage_list_fn fn, void *arg);

/* A sequential reader with seeks, for the media engine's custom I/O (an
 * AVIOContext's read_packet and seek callbacks map onto read, seek and
 * size). On S3 it reads through ranged GETs with a read-ahead window, so
 * an input is never copied whole to disk first; locally it reads the
 * file. Not thread-safe; one per input. */
struct kd_storage_reader;
KD_MUST_CHECK enum kd_err kd_storage_reader_open(struct kd_storage *s, const char *key,
                                                 struct kd_storage_reader **out);
/* *got = 0 at the end of the object. */
KD_MUST_CHECK enum kd_err kd_storage_reader_read(struct kd_storage_reader *r, void *buf, size_t len,
                                                 size_t *got);
/* offset in [0, size]; KD_EINVAL otherwise. */
KD_MUST_CHECK enum kd_err kd_storage_reader_seek(struct kd_storage_reader *r, int64_t offset);
int64_t kd_storage_reader_size(const struct kd_storage_reader *r);
/* The position the next read starts at. */
int64_t kd_storage_reader_tell(const struct kd_storage_reader *r);
void kd_storage_reader_close(struct kd_storage_reader *r); /* NULL is a no-op */

/* Multipart uploads (S3 only: KD_EUNSUPPORTED on local disk, where one
 * PUT through nginx has no size limit). Parts are numbered 1..10000; all
 * but the last are at least 5 MiB. */
struct kd_storage_part {
    int part_number;
    char etag[128]; /* as the store returned it, quotes included */
    int64_t size;   /* list_parts: its bytes */
};
#define KD_STORAGE_MAX_PARTS 10000

/* Starts a multipart upload of key; *upload_id is the caller's to free. */
KD_MUST_CHECK enum kd_err kd_storage_multipart_begin(struct kd_storage *s, const char *key,
                                                     const char *content_type, char **upload_id);
/* A presigned PUT URL for one part (a browser uploads it directly). The
 * part's size is signed as its Content-Length: the store refuses a body of
 * any other size, so a client cannot put more than it declared. */
KD_MUST_CHECK enum kd_err kd_storage_multipart_presign_part(struct kd_storage *s, const char *key,
                                                            const char *upload_id, int part_number,
                                                            int64_t size, int64_t ttl_s, char **url,
                                                            int64_t *expires_at);
/* Uploads len bytes of fd from offset as one part (the worker's outputs);
 * fills out with the part's ETag. */
KD_MUST_CHECK enum kd_err kd_storage_multipart_upload_part(struct kd_storage *s, const char *key,
                                                           const char *upload_id, int part_number,
                                                           int fd, int64_t offset, int64_t len,
                                                           struct kd_storage_part *out);
/* Joins the parts (ascending part numbers) into the object. KD_EINVAL when
 * the store refuses the list (a wrong ETag, a part too small),
 * KD_ENOTFOUND when the upload no longer exists. */
KD_MUST_CHECK enum kd_err kd_storage_multipart_complete(struct kd_storage *s, const char *key,
                                                        const char *upload_id,
                                                        const struct kd_storage_part *parts,
                                                        size_t n);
/* Discards the upload and its parts; a missing upload is not an error. */
KD_MUST_CHECK enum kd_err kd_storage_multipart_abort(struct kd_storage *s, const char *key,
                                                     const char *upload_id);
/* The parts uploaded so far (*parts is the caller's to free). */
KD_MUST_CHECK enum kd_err kd_storage_multipart_list_parts(struct kd_storage *s, const char *key,
                                                          const char *upload_id,
                                                          struct kd_storage_part **parts,
                                                          size_t *n);

#endif
