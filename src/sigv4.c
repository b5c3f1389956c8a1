#include "sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A canonical request is a few headers and a path of at most a few KiB;
 * the cap only stops a runaway caller. */
#define CREQ_CAP      (1024 * 1024)
#define ALGORITHM     "AWS4-HMAC-SHA256"
#define MAX_EXPIRES_S 604800 /* S3 refuses presigned URLs valid longer */

void
kd_sigv4_amz_date(time_t t, char out[17])
{
    struct tm tm;

    gmtime_r(&t, &tm);
    if (strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
        out[0] = '\0';
}

static bool
unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

enum kd_err
kd_sigv4_uri_encode(struct kd_buf *b, const char *s, size_t len, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    enum kd_err rc = KD_OK;

    for (size_t i = 0; i < len && rc == KD_OK; i++) {
        unsigned char c = (unsigned char)s[i];

        if (unreserved(c) || (keep_slash && c == '/')) {
            rc = kd_buf_append(b, &s[i], 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};

            rc = kd_buf_append(b, e, 3);
        }
    }
    return rc;
}

/* RFC 3986 section 5.2.4 dot-segment removal plus the collapse of empty
 * segments, as the generic SigV4 rule wants. Never used for S3, where
 * "a//b" and "a/./b" are distinct keys. */
static enum kd_err
normalize(const char *path, struct kd_buf *out)
{
    size_t len = strlen(path), n = 0, *starts = NULL, *lens = NULL;
    bool trailing = false;
    enum kd_err rc = KD_OK;

    /* At most len/1 + 1 segments; the arrays are freed below. */
    if ((starts = calloc(len + 1, sizeof(*starts))) == NULL ||
        (lens = calloc(len + 1, sizeof(*lens))) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i <= len;) {
        size_t j = i;

        while (j < len && path[j] != '/')
            j++;
        size_t sl = j - i;

        if (sl == 2 && path[i] == '.' && path[i + 1] == '.') {
            if (n > 0)
                n--;
        } else if (sl > 0 && !(sl == 1 && path[i] == '.')) {
            starts[n] = i;
            lens[n] = sl;
            n++;
        }
        /* a path ending in "/", "/." or "/.." names a directory */
        trailing = (j == len) && (sl == 0 || (sl == 1 && path[i] == '.') ||
                                  (sl == 2 && path[i] == '.' && path[i + 1] == '.'));
        i = j + 1;
    }
    if ((rc = kd_buf_append(out, "/", 1)) != KD_OK)
        goto out;
    for (size_t k = 0; k < n && rc == KD_OK; k++) {
        rc = kd_buf_append(out, path + starts[k], lens[k]);
        if (rc == KD_OK && (k + 1 < n || trailing))
            rc = kd_buf_append(out, "/", 1);
    }
out:
    free(starts);
    free(lens);
    return rc;
}

/* RFC 7230 token characters: what a header name may hold. */
static bool
tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

struct hdr {
    char *name;        /* lower case */
    const char *value; /* borrowed */
    size_t order;      /* position in the request: duplicates keep it */
};

static int
hdr_cmp(const void *a, const void *b)
{
    const struct hdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    if (c != 0)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* The canonical value: leading and trailing blanks removed, runs of blanks
 * made one space, and an obsolete line folding (a line break followed by
 * blanks) made a ',' as the test suite's multi-line case wants. */
static enum kd_err
append_value(struct kd_buf *b, const char *v)
{
    const char *end = v + strlen(v);
    enum kd_err rc = KD_OK;
    bool space = false;

    while (v < end && (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
        end--;
    for (; v < end && rc == KD_OK; v++) {
        if (*v == '\r' || *v == '\n') {
            while (v + 1 < end && (v[1] == ' ' || v[1] == '\t' || v[1] == '\r' || v[1] == '\n'))
                v++;
            rc = kd_buf_append(b, ",", 1);
            space = false;
        } else if (*v == ' ' || *v == '\t') {
            space = true;
        } else {
            if (space)
                rc = kd_buf_append(b, " ", 1);
            space = false;
            if (rc == KD_OK)
                rc = kd_buf_append(b, v, 1);
        }
    }
    return rc;
}

static enum kd_err
sorted_headers(const struct kd_sigv4_request *rq, struct hdr **out)
{
    struct hdr *h = NULL;
    enum kd_err rc = KD_OK;
    size_t i = 0;

    if (rq->headers_n == 0) {
        rc = KD_EINVAL; /* at least host must be signed */
        goto out;
    }
    if ((h = calloc(rq->headers_n, sizeof(*h))) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    for (i = 0; i < rq->headers_n; i++) {
        const char *n = rq->headers[i].name;
        size_t nl = n != NULL ? strlen(n) : 0;

        if (nl == 0 || rq->headers[i].value == NULL) {
            rc = KD_EINVAL;
            goto out;
        }
        if ((h[i].name = malloc(nl + 1)) == NULL) {
            rc = KD_ENOMEM;
            goto out;
        }
        for (size_t k = 0; k <= nl; k++) {
            unsigned char c = (unsigned char)n[k];

            if (k < nl && !tchar(c)) {
                free(h[i].name);
                h[i].name = NULL;
                rc = KD_EINVAL;
                goto out;
            }
            h[i].name[k] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        }
        h[i].value = rq->headers[i].value;
        h[i].order = i;
    }
    qsort(h, rq->headers_n, sizeof(*h), hdr_cmp);
    *out = h;
    h = NULL;
out:
    if (h != NULL) {
        for (size_t k = 0; k < rq->headers_n; k++)
            free(h[k].name);
        free(h);
    }
    return rc;
}

static void
free_headers(struct hdr *h, size_t n)
{
    if (h == NULL)
        return;
    for (size_t k = 0; k < n; k++)
        free(h[k].name);
    free(h);
}

/* Appends the canonical headers block (each "name:value\n") and, into
 * signed, the signed header list ("a;b;c"). */
static enum kd_err
canonical_headers(const struct kd_sigv4_request *rq, struct kd_buf *b, struct kd_buf *signed_h)
{
    struct hdr *h = NULL;
    enum kd_err rc;

    if ((rc = sorted_headers(rq, &h)) != KD_OK)
        goto out;
    for (size_t i = 0; i < rq->headers_n && rc == KD_OK; i++) {
        bool first = (i == 0 || strcmp(h[i - 1].name, h[i].name) != 0);
        bool last = (i + 1 == rq->headers_n || strcmp(h[i + 1].name, h[i].name) != 0);

        if (first) {
            if (i > 0)
                rc = kd_buf_append(signed_h, ";", 1);
            if (rc == KD_OK)
                rc = kd_buf_puts(signed_h, h[i].name);
            if (rc == KD_OK)
                rc = kd_buf_printf(b, "%s:", h[i].name);
        } else {
            rc = kd_buf_append(b, ",", 1);
        }
        if (rc == KD_OK)
            rc = append_value(b, h[i].value);
        if (rc == KD_OK && last)
            rc = kd_buf_append(b, "\n", 1);
    }
out:
    free_headers(h, rq->headers_n);
    return rc;
}

struct qp {
    char *enc; /* "name=value", both encoded */
    size_t name_len;
};

static int
qp_cmp(const void *a, const void *b)
{
    const struct qp *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->enc, y->enc, n);

    /* names first (a shorter name that is a prefix sorts first), values next */
    if (c != 0)
        return c;
    if (x->name_len != y->name_len)
        return x->name_len < y->name_len ? -1 : 1;
    return strcmp(x->enc + x->name_len, y->enc + y->name_len);
}

/* The canonical query string: every name and value encoded, sorted by
 * encoded name then encoded value, joined with '&'. */
static enum kd_err
canonical_query(const struct kd_sigv4_kv *q, size_t n, struct kd_buf *b)
{
    struct qp *p = NULL;
    struct kd_buf t;
    enum kd_err rc = KD_OK;

    kd_buf_init(&t, CREQ_CAP);
    if (n == 0)
        goto out;
    if ((p = calloc(n, sizeof(*p))) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (q[i].name == NULL || q[i].value == NULL) {
            rc = KD_EINVAL;
            goto out;
        }
        kd_buf_reset(&t);
        if ((rc = kd_sigv4_uri_encode(&t, q[i].name, strlen(q[i].name), false)) != KD_OK)
            goto out;
        p[i].name_len = t.len;
        if ((rc = kd_buf_append(&t, "=", 1)) != KD_OK ||
            (rc = kd_sigv4_uri_encode(&t, q[i].value, strlen(q[i].value), false)) != KD_OK)
            goto out;
        if ((p[i].enc = strdup(t.data)) == NULL) {
            rc = KD_ENOMEM;
            goto out;
        }
    }
    qsort(p, n, sizeof(*p), qp_cmp);
    for (size_t i = 0; i < n && rc == KD_OK; i++) {
        if (i > 0)
            rc = kd_buf_append(b, "&", 1);
        if (rc == KD_OK)
            rc = kd_buf_puts(b, p[i].enc);
    }
out:
    if (p != NULL) {
        for (size_t i = 0; i < n; i++)
            free(p[i].enc);
        free(p);
    }
    kd_buf_clear(&t);
    return rc;
}

static enum kd_err
build_creq(const struct kd_sigv4_request *rq, struct kd_buf *creq, struct kd_buf *signed_h)
{
    struct kd_buf path;
    enum kd_err rc;

    kd_buf_init(&path, CREQ_CAP);
    if (rq->method == NULL || rq->method[0] == '\0' || rq->path == NULL || rq->path[0] != '/' ||
        rq->payload_hash == NULL || rq->payload_hash[0] == '\0') {
        rc = KD_EINVAL;
        goto out;
    }
    for (const char *m = rq->method; *m != '\0'; m++) {
        if (!tchar((unsigned char)*m)) {
            rc = KD_EINVAL;
            goto out;
        }
    }
    if ((rc = kd_buf_printf(creq, "%s\n", rq->method)) != KD_OK)
        goto out;
    if (rq->normalize_path) {
        if ((rc = normalize(rq->path, &path)) != KD_OK)
            goto out;
    } else if ((rc = kd_buf_puts(&path, rq->path)) != KD_OK) {
        goto out;
    }
    if ((rc = kd_sigv4_uri_encode(creq, path.data, path.len, true)) != KD_OK ||
        (rc = kd_buf_append(creq, "\n", 1)) != KD_OK ||
        (rc = canonical_query(rq->query, rq->query_n, creq)) != KD_OK ||
        (rc = kd_buf_append(creq, "\n", 1)) != KD_OK ||
        (rc = canonical_headers(rq, creq, signed_h)) != KD_OK ||
        (rc = kd_buf_printf(creq, "\n%s\n%s", signed_h->data, rq->payload_hash)) != KD_OK)
        goto out;
out:
    kd_buf_clear(&path);
    return rc;
}

enum kd_err
kd_sigv4_canonical_request(const struct kd_sigv4_request *rq, char **out)
{
    struct kd_buf creq, signed_h;
    enum kd_err rc;

    kd_buf_init(&creq, CREQ_CAP);
    kd_buf_init(&signed_h, CREQ_CAP);
    if ((rc = build_creq(rq, &creq, &signed_h)) != KD_OK)
        goto out;
    if ((*out = kd_buf_take(&creq)) == NULL)
        rc = KD_ENOMEM;
out:
    kd_buf_clear(&creq);
    kd_buf_clear(&signed_h);
    return rc;
}

static enum kd_err
hmac(const void *key, size_t key_len, const char *msg, unsigned char out[32])
{
    unsigned int len = 32;

    if (HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, strlen(msg), out, &len) ==
            NULL ||
        len != 32)
        return KD_EINTERNAL;
    return KD_OK;
}

static bool
valid_date(const char *d)
{
    if (d == NULL || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
        return false;
    for (int i = 0; i < 15; i++)
        if (i != 8 && (d[i] < '0' || d[i] > '9'))
            return false;
    return true;
}

static bool
valid_key(const struct kd_sigv4_key *k)
{
    return k->access_key != NULL && k->access_key[0] != '\0' && k->secret_key != NULL &&
           k->region != NULL && k->region[0] != '\0' && strchr(k->region, '/') == NULL &&
           k->service != NULL && k->service[0] != '\0' && strchr(k->service, '/') == NULL;
}

/* Tasks 2 to 4 once the canonical request is known. */
static enum kd_err
finish(const struct kd_sigv4_key *k, const char *amz_date, struct kd_buf *creq,
       struct kd_sigv4_result *r)
{
    unsigned char kd[32], kr[32], ks[32], kg[32], sig[32];
    char date[9], hash[65];
    struct kd_buf sts, secret;
    enum kd_err rc;

    kd_buf_init(&sts, CREQ_CAP);
    kd_buf_init(&secret, 4096);
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    kd_sha256_hex(creq->data, creq->len, hash);
    if ((rc = kd_buf_printf(&sts, ALGORITHM "\n%s\n%s/%s/%s/aws4_request\n%s", amz_date, date,
                            k->region, k->service, hash)) != KD_OK)
        goto out;
    if ((rc = kd_buf_printf(&secret, "AWS4%s", k->secret_key)) != KD_OK ||
        (rc = hmac(secret.data, secret.len, date, kd)) != KD_OK ||
        (rc = hmac(kd, 32, k->region, kr)) != KD_OK ||
        (rc = hmac(kr, 32, k->service, ks)) != KD_OK ||
        (rc = hmac(ks, 32, "aws4_request", kg)) != KD_OK ||
        (rc = hmac(kg, 32, sts.data, sig)) != KD_OK)
        goto out;
    kd_hex_encode(sig, 32, r->signature);
    if ((r->canonical_request = kd_buf_take(creq)) == NULL ||
        (r->string_to_sign = kd_buf_take(&sts)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
out:
    /* the derived keys are as good as the secret for a day */
    OPENSSL_cleanse(kd, sizeof(kd));
    OPENSSL_cleanse(kr, sizeof(kr));
    OPENSSL_cleanse(ks, sizeof(ks));
    OPENSSL_cleanse(kg, sizeof(kg));
    if (secret.data != NULL)
        OPENSSL_cleanse(secret.data, secret.len);
    kd_buf_clear(&secret);
    kd_buf_clear(&sts);
    return rc;
}

enum kd_err
kd_sigv4_sign(const struct kd_sigv4_key *k, const char *amz_date, const struct kd_sigv4_request *rq,
              struct kd_sigv4_result *out)
{
    struct kd_sigv4_result r = {0};
    struct kd_buf creq, signed_h, authz;
    enum kd_err rc;

    kd_buf_init(&creq, CREQ_CAP);
    kd_buf_init(&signed_h, CREQ_CAP);
    kd_buf_init(&authz, CREQ_CAP);
    if (!valid_key(k) || !valid_date(amz_date)) {
        rc = KD_EINVAL;
        goto out;
    }
    if ((rc = build_creq(rq, &creq, &signed_h)) != KD_OK ||
        (rc = finish(k, amz_date, &creq, &r)) != KD_OK)
        goto out;
    if ((rc = kd_buf_printf(&authz,
                            ALGORITHM " Credential=%s/%.8s/%s/%s/aws4_request, SignedHeaders=%s, "
                                      "Signature=%s",
                            k->access_key, amz_date, k->region, k->service, signed_h.data,
                            r.signature)) != KD_OK)
        goto out;
    if ((r.authorization = kd_buf_take(&authz)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    *out = r;
    memset(&r, 0, sizeof(r));
out:
    kd_sigv4_result_clear(&r);
    kd_buf_clear(&creq);
    kd_buf_clear(&signed_h);
    kd_buf_clear(&authz);
    return rc;
}

enum kd_err
kd_sigv4_presign(const struct kd_sigv4_key *k, const char *amz_date, int64_t expires_s,
                 const struct kd_sigv4_request *rq, struct kd_sigv4_result *out)
{
    struct kd_sigv4_result r = {0};
    struct kd_sigv4_kv *q = NULL;
    struct kd_sigv4_request prq;
    struct kd_buf creq, signed_h, signed2, cred, query;
    char expires[24];
    size_t n = 0;
    enum kd_err rc;

    kd_buf_init(&creq, CREQ_CAP);
    kd_buf_init(&signed_h, CREQ_CAP);
    kd_buf_init(&signed2, CREQ_CAP);
    kd_buf_init(&cred, 4096);
    kd_buf_init(&query, CREQ_CAP);
    if (!valid_key(k) || !valid_date(amz_date) || expires_s < 1 || expires_s > MAX_EXPIRES_S ||
        rq->query_n > 1024) {
        rc = KD_EINVAL;
        goto out;
    }
    for (size_t i = 0; i < rq->query_n; i++) {
        if (rq->query[i].name == NULL || strncasecmp(rq->query[i].name, "X-Amz-", 6) == 0) {
            rc = KD_EINVAL;
            goto out;
        }
    }
    /* The signed header list goes into the query it signs, so it is
     * worked out first from the headers alone. */
    {
        struct kd_buf scratch;

        kd_buf_init(&scratch, CREQ_CAP);
        rc = canonical_headers(rq, &scratch, &signed_h);
        kd_buf_clear(&scratch);
        if (rc != KD_OK)
            goto out;
    }
    if ((rc = kd_snprintf(expires, sizeof(expires), "%lld", (long long)expires_s)) != KD_OK ||
        (rc = kd_buf_printf(&cred, "%s/%.8s/%s/%s/aws4_request", k->access_key, amz_date, k->region,
                            k->service)) != KD_OK)
        goto out;
    if ((q = calloc(rq->query_n + 6, sizeof(*q))) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    for (n = 0; n < rq->query_n; n++)
        q[n] = rq->query[n];
    q[n++] = (struct kd_sigv4_kv){"X-Amz-Algorithm", ALGORITHM};
    q[n++] = (struct kd_sigv4_kv){"X-Amz-Credential", cred.data};
    q[n++] = (struct kd_sigv4_kv){"X-Amz-Date", amz_date};
    q[n++] = (struct kd_sigv4_kv){"X-Amz-Expires", expires};
    if (k->session_token != NULL)
        q[n++] = (struct kd_sigv4_kv){"X-Amz-Security-Token", k->session_token};
    q[n++] = (struct kd_sigv4_kv){"X-Amz-SignedHeaders", signed_h.data};
    prq = *rq;
    prq.query = q;
    prq.query_n = n;
    if (prq.payload_hash == NULL)
        prq.payload_hash = KD_SIGV4_UNSIGNED_PAYLOAD;
    /* signed_h is in q: the second pass writes its list elsewhere */
    if ((rc = build_creq(&prq, &creq, &signed2)) != KD_OK)
        goto out;
    /* the canonical query is also the query to send */
    if ((rc = canonical_query(q, n, &query)) != KD_OK ||
        (rc = finish(k, amz_date, &creq, &r)) != KD_OK ||
        (rc = kd_buf_printf(&query, "&X-Amz-Signature=%s", r.signature)) != KD_OK)
        goto out;
    if ((r.query = kd_buf_take(&query)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    *out = r;
    memset(&r, 0, sizeof(r));
out:
    free(q);
    kd_sigv4_result_clear(&r);
    kd_buf_clear(&creq);
    kd_buf_clear(&signed_h);
    kd_buf_clear(&signed2);
    kd_buf_clear(&cred);
    kd_buf_clear(&query);
    return rc;
}

void
kd_sigv4_result_clear(struct kd_sigv4_result *r)
{
    if (r == NULL)
        return;
    free(r->canonical_request);
    free(r->string_to_sign);
    free(r->authorization);
    free(r->query);
    memset(r, 0, sizeof(*r));
}
