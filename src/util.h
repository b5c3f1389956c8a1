/* util.h: small shared tools: bounded buffers, number parsing, ids, time, randomness. */
#ifndef KD_UTIL_H
#define KD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"

#define KD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define KD_UUID_STRLEN 36

/* A view into bytes owned by someone else. */
struct kd_str {
    const char *p;
    size_t len;
};

/* A growable byte buffer with a hard cap. The contents are always
 * NUL-terminated (the NUL is not counted in len). On any failure the buffer
 * keeps what it had; append never grows past cap. */
struct kd_buf {
    char *data;
    size_t len;
    size_t alloc;
    size_t cap;
};

void kd_buf_init(struct kd_buf *b, size_t cap);
void kd_buf_clear(struct kd_buf *b);          /* frees the data */
void kd_buf_reset(struct kd_buf *b);          /* len = 0, keeps memory */
/* KD_ELIMIT when the result would exceed cap; KD_ENOMEM. */
KD_MUST_CHECK enum kd_err kd_buf_append(struct kd_buf *b, const void *p, size_t len);
KD_MUST_CHECK enum kd_err kd_buf_puts(struct kd_buf *b, const char *s);
KD_MUST_CHECK enum kd_err kd_buf_printf(struct kd_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hands the data to the caller (who frees it) and leaves the buffer empty. */
char *kd_buf_take(struct kd_buf *b);

/* Parses all of text (no trailing junk, no blanks) as a decimal integer in
 * [min, max]. KD_EINVAL otherwise; *out set only on success. */
KD_MUST_CHECK enum kd_err kd_parse_i64(const char *text, int64_t min, int64_t max, int64_t *out);
/* Same for a finite double in [min, max]. */
KD_MUST_CHECK enum kd_err kd_parse_double(const char *text, double min, double max, double *out);
/* Size with optional k/M/G suffix (powers of 1024) or bitrate ("128k" -> 128000
 * when si is true). */
KD_MUST_CHECK enum kd_err kd_parse_size(const char *text, bool si, int64_t max, int64_t *out);

/* Overflow-checked size arithmetic: false on overflow. */
bool kd_add_size(size_t a, size_t b, size_t *out);
bool kd_mul_size(size_t a, size_t b, size_t *out);

/* snprintf that reports truncation as KD_ELIMIT. */
KD_MUST_CHECK enum kd_err kd_snprintf(char *dst, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Cryptographically strong random bytes (OpenSSL RAND_bytes). */
KD_MUST_CHECK enum kd_err kd_random_bytes(void *p, size_t len);
/* A random (version 4) UUID as 36 characters plus NUL. */
KD_MUST_CHECK enum kd_err kd_uuid_new(char out[KD_UUID_STRLEN + 1]);
/* True if s is a canonical lowercase or uppercase UUID of 36 characters. */
bool kd_uuid_valid(const char *s);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void kd_hex_encode(const unsigned char *p, size_t len, char *out);
/* SHA-256 of data, as 64 hex characters plus NUL. */
void kd_sha256_hex(const void *data, size_t len, char out[65]);
/* HMAC-SHA256 of msg with key, as 64 hex characters plus NUL. */
KD_MUST_CHECK enum kd_err kd_hmac_sha256_hex(const void *key, size_t key_len, const void *msg,
                                             size_t msg_len, char out[65]);
/* Constant-time equality of two byte strings of the same length. */
bool kd_secure_equal(const void *a, const void *b, size_t len);

/* Times. Monotonic milliseconds for deadlines; wall-clock for records. */
int64_t kd_now_ms(void);
int64_t kd_mono_ms(void);
/* RFC 3339 UTC with milliseconds ("2026-11-25T06:11:16.123Z") into out[32]. */
void kd_time_rfc3339(int64_t unix_ms, char out[32]);

/* True if the bytes are well-formed UTF-8 (no overlongs, no surrogates). */
bool kd_utf8_valid(const char *p, size_t len);

/* Reads a whole file of at most max bytes (NUL-terminated). */
KD_MUST_CHECK enum kd_err kd_read_file(const char *path, size_t max, char **out, size_t *out_len);

/* Creates a directory and its parents with the given mode (existing is fine). */
KD_MUST_CHECK enum kd_err kd_mkdir_p(const char *path, unsigned mode);

#endif
