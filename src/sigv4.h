/* sigv4.h: AWS Signature Version 4, for S3 requests (header auth) and
 * presigned URLs (query auth).
 *
 * The signer works on a decoded request: the path and the query names and
 * values are raw bytes, and the signer does the one URI encoding SigV4
 * prescribes (RFC 3986 unreserved characters kept, everything else %XX in
 * upper case; '/' kept in the path). S3 does not normalise paths (a key
 * "a//b" is signed as is); other services remove dot segments and empty
 * segments first: normalize_path chooses. Proven against the official AWS
 * test suite (tests/unit/sigv4_test.c). */
#ifndef KD_SIGV4_H
#define KD_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"
#include "util.h"

#define KD_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* SHA-256 of no bytes: the payload hash of a request without a body. */
#define KD_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* A name and a value, both borrowed NUL-terminated strings. */
struct kd_sigv4_kv {
    const char *name;
    const char *value;
};

struct kd_sigv4_request {
    const char *method;              /* "GET", "PUT", ... */
    const char *path;                /* decoded, starting with '/' */
    const struct kd_sigv4_kv *query; /* decoded names and values */
    size_t query_n;
    const struct kd_sigv4_kv *headers; /* the headers to sign (host included) */
    size_t headers_n;
    const char *payload_hash; /* 64 lowercase hex or UNSIGNED-PAYLOAD */
    bool normalize_path;      /* false for S3 */
};

struct kd_sigv4_key {
    const char *access_key;
    const char *secret_key;
    const char *region;        /* "us-east-1" */
    const char *service;       /* "s3" */
    const char *session_token; /* STS; NULL when none */
};

/* The steps of a signature, kept for tests and debugging. */
struct kd_sigv4_result {
    char *canonical_request;
    char *string_to_sign;
    char *authorization; /* header auth: the Authorization value */
    char *query;         /* query auth: the whole signed query */
    char signature[65];
};

/* "20150830T123600Z" for t (UTC) into out[17]. */
void kd_sigv4_amz_date(time_t t, char out[17]);

/* Appends the SigV4 URI encoding of len bytes at s; '/' is kept when
 * keep_slash. */
KD_MUST_CHECK enum kd_err kd_sigv4_uri_encode(struct kd_buf *b, const char *s, size_t len,
                                              bool keep_slash);

/* Task 1 alone: the canonical request (caller frees *out). KD_EINVAL for a
 * request that cannot be signed (no method, a path not starting with '/',
 * a header name that is empty or has characters outside RFC 7230 tokens). */
KD_MUST_CHECK enum kd_err kd_sigv4_canonical_request(const struct kd_sigv4_request *rq, char **out);

/* Header auth: signs rq at amz_date ("YYYYMMDDTHHMMSSZ"), which the caller
 * also sends as X-Amz-Date and must have listed among rq->headers. Fills
 * everything of *out but query. Clear *out with kd_sigv4_result_clear. */
KD_MUST_CHECK enum kd_err kd_sigv4_sign(const struct kd_sigv4_key *k, const char *amz_date,
                                        const struct kd_sigv4_request *rq,
                                        struct kd_sigv4_result *out);

/* Query auth (presigned URL): adds X-Amz-Algorithm, -Credential, -Date,
 * -Expires, -SignedHeaders (and -Security-Token) to rq's query, signs with
 * payload hash UNSIGNED-PAYLOAD unless rq gives one, and fills out->query
 * with the complete encoded query string, X-Amz-Signature last. expires_s
 * is 1..604800 (S3's limit of seven days). rq->query must not already
 * carry X-Amz-* parameters of its own. */
KD_MUST_CHECK enum kd_err kd_sigv4_presign(const struct kd_sigv4_key *k, const char *amz_date,
                                           int64_t expires_s, const struct kd_sigv4_request *rq,
                                           struct kd_sigv4_result *out);

void kd_sigv4_result_clear(struct kd_sigv4_result *r); /* frees; NULL is a no-op */

#endif
