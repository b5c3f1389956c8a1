#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void
kd_buf_init(struct kd_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

void
kd_buf_clear(struct kd_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
}

void
kd_buf_reset(struct kd_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

/* Makes room for extra more bytes plus the terminating NUL. */
static enum kd_err
reserve(struct kd_buf *b, size_t extra)
{
    size_t need, want;
    char *p;

    if (!kd_add_size(b->len, extra, &need) || need > b->cap)
        return KD_ELIMIT;
    if (!kd_add_size(need, 1, &need))
        return KD_ELIMIT;
    if (need <= b->alloc)
        return KD_OK;
    want = b->alloc < 64 ? 64 : b->alloc;
    while (want < need) {
        if (want > SIZE_MAX / 2) {
            want = need;
            break;
        }
        want *= 2;
    }
    /* cap + 1 would wrap for an unbounded buffer (cap == SIZE_MAX). */
    if (b->cap < SIZE_MAX && want > b->cap + 1)
        want = b->cap + 1;
    if ((p = realloc(b->data, want)) == NULL)
        return KD_ENOMEM;
    b->data = p;
    b->alloc = want;
    return KD_OK;
}

enum kd_err
kd_buf_append(struct kd_buf *b, const void *p, size_t len)
{
    enum kd_err rc;

    if ((rc = reserve(b, len)) != KD_OK)
        return rc;
    if (len > 0)
        memcpy(b->data + b->len, p, len);
    b->len += len;
    b->data[b->len] = '\0';
    return KD_OK;
}

enum kd_err
kd_buf_puts(struct kd_buf *b, const char *s)
{
    return kd_buf_append(b, s, strlen(s));
}

enum kd_err
kd_buf_printf(struct kd_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    enum kd_err rc;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return KD_EINTERNAL;
    if ((rc = reserve(b, (size_t)n)) != KD_OK)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return KD_OK;
}

char *
kd_buf_take(struct kd_buf *b)
{
    char *p = b->data;

    if (p == NULL)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    return p;
}

enum kd_err
kd_parse_i64(const char *text, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    if (text == NULL || *text == '\0' || !(*text == '-' || (*text >= '0' && *text <= '9')))
        return KD_EINVAL;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return KD_EINVAL;
    *out = (int64_t)v;
    return KD_OK;
}

enum kd_err
kd_parse_double(const char *text, double min, double max, double *out)
{
    char *end;
    double v;

    if (text == NULL || *text == '\0' ||
        !(*text == '-' || *text == '.' || (*text >= '0' && *text <= '9')))
        return KD_EINVAL;
    errno = 0;
    v = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < min || v > max)
        return KD_EINVAL;
    *out = v;
    return KD_OK;
}

enum kd_err
kd_parse_size(const char *text, bool si, int64_t max, int64_t *out)
{
    char num[32];
    size_t len;
    int64_t v, mul = 1;
    char suffix;

    if (text == NULL || (len = strlen(text)) == 0 || len >= sizeof(num))
        return KD_EINVAL;
    memcpy(num, text, len + 1);
    suffix = num[len - 1];
    switch (suffix) {
    case 'k': case 'K': mul = si ? 1000 : 1024; break;
    case 'm': case 'M': mul = si ? 1000000 : 1024 * 1024; break;
    case 'g': case 'G': mul = si ? 1000000000 : 1024LL * 1024 * 1024; break;
    default: break;
    }
    if (mul != 1)
        num[len - 1] = '\0';
    if (num[0] == '-' || kd_parse_i64(num, 0, INT64_MAX / mul, &v) != KD_OK)
        return KD_EINVAL;
    v *= mul;
    if (v > max)
        return KD_EINVAL;
    *out = v;
    return KD_OK;
}

bool
kd_add_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

bool
kd_mul_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

enum kd_err
kd_snprintf(char *dst, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(dst, size, fmt, ap);
    va_end(ap);
    if (n < 0)
        return KD_EINTERNAL;
    if ((size_t)n >= size)
        return KD_ELIMIT;
    return KD_OK;
}

enum kd_err
kd_random_bytes(void *p, size_t len)
{
    if (len > INT_MAX || RAND_bytes(p, (int)len) != 1)
        return KD_EINTERNAL;
    return KD_OK;
}

enum kd_err
kd_uuid_new(char out[KD_UUID_STRLEN + 1])
{
    unsigned char b[16];
    char hex[33];
    enum kd_err rc;

    if ((rc = kd_random_bytes(b, sizeof(b))) != KD_OK)
        return rc;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    kd_hex_encode(b, sizeof(b), hex);
    memcpy(out, hex, 8);
    out[8] = '-';
    memcpy(out + 9, hex + 8, 4);
    out[13] = '-';
    memcpy(out + 14, hex + 12, 4);
    out[18] = '-';
    memcpy(out + 19, hex + 16, 4);
    out[23] = '-';
    memcpy(out + 24, hex + 20, 12);
    out[36] = '\0';
    return KD_OK;
}

bool
kd_uuid_valid(const char *s)
{
    size_t i;

    if (s == NULL)
        return false;
    for (i = 0; i < KD_UUID_STRLEN; i++) {
        char c = s[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return s[KD_UUID_STRLEN] == '\0';
}

void
kd_hex_encode(const unsigned char *p, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

void
kd_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int md_len = 0;

    EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL);
    kd_hex_encode(md, sizeof(md), out);
}

enum kd_err
kd_hmac_sha256_hex(const void *key, size_t key_len, const void *msg, size_t msg_len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (key_len > INT_MAX ||
        HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, md, &md_len) == NULL || md_len != 32)
        return KD_EINTERNAL;
    kd_hex_encode(md, 32, out);
    return KD_OK;
}

bool
kd_secure_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

int64_t
kd_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
kd_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
kd_time_rfc3339(int64_t unix_ms, char out[32])
{
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    int ms = (int)(unix_ms % 1000);

    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    char tmp[96];

    gmtime_r(&secs, &tm);
    /* Formatted wide, then cut: years past 9999 are not ours to display. */
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    snprintf(out, 32, "%.31s", tmp);
}

bool
kd_utf8_valid(const char *p, size_t len)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i];
        size_t n;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF. */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

enum kd_err
kd_read_file(const char *path, size_t max, char **out, size_t *out_len)
{
    struct kd_buf b;
    char chunk[8192];
    int fd = -1;
    ssize_t n;
    enum kd_err rc = KD_OK;

    kd_buf_init(&b, max);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = errno == ENOENT ? KD_ENOTFOUND : KD_EIO;
        goto out;
    }
    for (;;) {
        n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = KD_EIO;
            goto out;
        }
        if (n == 0)
            break;
        if ((rc = kd_buf_append(&b, chunk, (size_t)n)) != KD_OK)
            goto out;
    }
    if (out_len != NULL)
        *out_len = b.len;
    *out = kd_buf_take(&b);
    if (*out == NULL)
        rc = KD_ENOMEM;
out:
    if (fd >= 0)
        close(fd);
    kd_buf_clear(&b);
    return rc;
}

enum kd_err
kd_mkdir_p(const char *path, unsigned mode)
{
    char tmp[4096];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(tmp))
        return KD_EINVAL;
    memcpy(tmp, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        char saved = tmp[i];

        tmp[i] = '\0';
        if (mkdir(tmp, (mode_t)mode) != 0 && errno != EEXIST)
            return KD_EIO;
        tmp[i] = saved;
    }
    return KD_OK;
}
