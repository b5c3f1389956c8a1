/* jwt.c: HS256 access tokens. See jwt.h for the rules followed. */
#include "jwt.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "json.h"
#include "log.h"

#define MAC_LEN 32 /* SHA-256 */
/* Decoded header and payload are small JSON objects; more is not ours. */
#define PART_MAX 2048

static const char b64url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

enum kd_err
kd_b64url_encode(const unsigned char *p, size_t len, char *out, size_t out_len)
{
    size_t i, o = 0, need;

    if (len > (SIZE_MAX - 3) / 4 * 3 - 3)
        return KD_ELIMIT;
    need = len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1) + 1; /* no padding */
    if (out_len < need)
        return KD_ELIMIT;
    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

        out[o++] = b64url_chars[(v >> 18) & 63];
        out[o++] = b64url_chars[(v >> 12) & 63];
        out[o++] = b64url_chars[(v >> 6) & 63];
        out[o++] = b64url_chars[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;

        out[o++] = b64url_chars[(v >> 18) & 63];
        out[o++] = b64url_chars[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

        out[o++] = b64url_chars[(v >> 18) & 63];
        out[o++] = b64url_chars[(v >> 12) & 63];
        out[o++] = b64url_chars[(v >> 6) & 63];
    }
    out[o] = '\0';
    return KD_OK;
}

static int
b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

enum kd_err
kd_b64url_decode(const char *s, size_t len, unsigned char *out, size_t out_len, size_t *out_n)
{
    size_t i, o = 0, rem = len % 4, need = len / 4 * 3 + (rem == 0 ? 0 : rem - 1);
    uint32_t acc = 0;
    int bits = 0;

    /* One leftover character carries 6 bits: not a whole byte. */
    if (rem == 1)
        return KD_EINVAL;
    if (need > out_len)
        return KD_ELIMIT;
    for (i = 0; i < len; i++) {
        int v = b64url_value(s[i]);

        if (v < 0)
            return KD_EINVAL;
        acc = (acc << 6 | (uint32_t)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* The bits left over must be zero: otherwise two texts would decode
     * to the same bytes, and a signature could be "changed" unnoticed. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return KD_EINVAL;
    *out_n = o;
    return KD_OK;
}

static bool
kid_valid(const char *kid)
{
    size_t i;

    for (i = 0; kid[i] != '\0'; i++) {
        char c = kid[i];

        if (i >= KD_JWT_KID_MAX || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                     (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return i > 0;
}

/* The secret of key id kid: the current key or one of the previous ones
 * ("kid:secret,kid:secret"). Points into cfg; false when unknown. */
static bool
find_key(const struct kd_config *cfg, const char *kid, const char **key, size_t *key_len)
{
    const char *p = cfg->jwt_previous_keys;
    size_t kid_len = strlen(kid);

    if (cfg->jwt_secret[0] != '\0' && strcmp(kid, cfg->jwt_kid) == 0) {
        *key = cfg->jwt_secret;
        *key_len = strlen(cfg->jwt_secret);
        return true;
    }
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ','), *colon;
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);

        colon = memchr(p, ':', n);
        if (colon != NULL && (size_t)(colon - p) == kid_len && memcmp(p, kid, kid_len) == 0 &&
            n - kid_len - 1 >= 32) {
            *key = colon + 1;
            *key_len = n - kid_len - 1;
            return true;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return false;
}

static enum kd_err
mac(const char *key, size_t key_len, const char *msg, size_t msg_len, unsigned char out[MAC_LEN])
{
    unsigned int n = 0;

    if (HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, msg_len, out, &n) ==
            NULL ||
        n != MAC_LEN)
        return KD_EINTERNAL;
    return KD_OK;
}

/* Appends the base64url form of json's compact serialisation to buf. */
static enum kd_err
append_part(struct kd_buf *buf, const json_t *json)
{
    char *text = NULL, enc[PART_MAX * 4 / 3 + 8];
    enum kd_err rc;

    if ((text = kd_json_dump(json)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if ((rc = kd_b64url_encode((const unsigned char *)text, strlen(text), enc, sizeof(enc))) !=
        KD_OK)
        goto out;
    rc = kd_buf_puts(buf, enc);
out:
    free(text);
    return rc;
}

enum kd_err
kd_jwt_issue(const struct kd_config *cfg, const char *user_id, const char *sid, int64_t now_s,
             char **out)
{
    json_t *hdr = NULL, *pl = NULL;
    struct kd_buf buf;
    unsigned char sig[MAC_LEN];
    char sig_b64[64], jti[KD_UUID_STRLEN + 1];
    enum kd_err rc;

    kd_buf_init(&buf, KD_JWT_MAX_LEN);
    if (cfg->jwt_secret[0] == '\0' || !kid_valid(cfg->jwt_kid)) {
        kd_log(KD_LOG_ERROR, "jwt: no signing key (set jwt_secret and jwt_kid)");
        rc = KD_EUNAVAIL;
        goto out;
    }
    if ((rc = kd_uuid_new(jti)) != KD_OK)
        goto out;
    hdr = json_pack("{s:s,s:s,s:s}", "alg", "HS256", "typ", "at+jwt", "kid", cfg->jwt_kid);
    pl = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "iss", cfg->jwt_issuer, "aud",
                   cfg->jwt_audience, "sub", user_id, "sid", sid, "jti", jti, "iat",
                   (json_int_t)now_s, "nbf", (json_int_t)now_s, "exp",
                   (json_int_t)(now_s + cfg->jwt_ttl_s));
    if (hdr == NULL || pl == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if ((rc = append_part(&buf, hdr)) != KD_OK || (rc = kd_buf_puts(&buf, ".")) != KD_OK ||
        (rc = append_part(&buf, pl)) != KD_OK)
        goto out;
    if ((rc = mac(cfg->jwt_secret, strlen(cfg->jwt_secret), buf.data, buf.len, sig)) != KD_OK)
        goto out;
    if ((rc = kd_b64url_encode(sig, sizeof(sig), sig_b64, sizeof(sig_b64))) != KD_OK ||
        (rc = kd_buf_puts(&buf, ".")) != KD_OK || (rc = kd_buf_puts(&buf, sig_b64)) != KD_OK)
        goto out;
    *out = kd_buf_take(&buf);
    rc = *out != NULL ? KD_OK : KD_ENOMEM;
out:
    json_decref(hdr);
    json_decref(pl);
    kd_buf_clear(&buf);
    return rc;
}

/* Decodes one base64url part and parses it as a JSON object. */
static enum kd_err
decode_part(const char *s, size_t len, json_t **out)
{
    unsigned char raw[PART_MAX];
    size_t n = 0;
    json_t *v = NULL;
    enum kd_err rc;

    if (len == 0 || len > PART_MAX * 4 / 3) {
        rc = KD_EINVAL;
        goto out;
    }
    if ((rc = kd_b64url_decode(s, len, raw, sizeof(raw), &n)) != KD_OK) {
        rc = KD_EINVAL;
        goto out;
    }
    /* kd_json_parse: UTF-8 only, no duplicate member (a second "alg" or
     * "exp" must not hide behind the first), bounded depth. */
    if ((rc = kd_json_parse((const char *)raw, n, &v, NULL, 0)) != KD_OK)
        goto out;
    if (!json_is_object(v)) {
        rc = KD_EINVAL;
        goto out;
    }
    *out = v;
    v = NULL;
out:
    json_decref(v);
    return rc;
}

/* An integer claim (NumericDate, RFC 7519 section 2). Reals are refused:
 * the server only issues integers. */
static bool
int_claim(const json_t *pl, const char *name, int64_t *out)
{
    const json_t *v = json_object_get(pl, name);

    if (!json_is_integer(v))
        return false;
    *out = json_integer_value(v);
    return *out >= 0;
}

/* aud: a string, or an array holding the expected one (RFC 7519 4.1.3). */
static bool
aud_matches(const json_t *aud, const char *want)
{
    size_t i;
    const json_t *v;

    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    if (!json_is_array(aud))
        return false;
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return true;
    }
    return false;
}

static bool
uuid_claim(const json_t *pl, const char *name, char out[KD_UUID_STRLEN + 1], bool required)
{
    const char *s = kd_json_str(pl, name);

    if (s == NULL)
        return !required && json_object_get(pl, name) == NULL;
    if (!kd_uuid_valid(s))
        return false;
    memcpy(out, s, KD_UUID_STRLEN + 1);
    return true;
}

enum kd_err
kd_jwt_verify(const struct kd_config *cfg, const char *token, int64_t now_s,
              struct kd_jwt_claims *out)
{
    json_t *hdr = NULL, *pl = NULL;
    const char *dot1, *dot2, *alg, *typ, *kid, *iss, *key = NULL;
    size_t len, key_len = 0, sig_n = 0;
    unsigned char sig[MAC_LEN + 4], want[MAC_LEN];
    struct kd_jwt_claims c;
    enum kd_err rc = KD_EINVAL;

    memset(&c, 0, sizeof(c));
    len = strnlen(token, KD_JWT_MAX_LEN + 1);
    if (len > KD_JWT_MAX_LEN)
        goto out;
    /* Compact serialisation: exactly three parts (a JWE has five). */
    if ((dot1 = memchr(token, '.', len)) == NULL ||
        (dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token))) == NULL ||
        memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        goto out;
    if (decode_part(token, (size_t)(dot1 - token), &hdr) != KD_OK)
        goto out;
    /* The header first, and only our one algorithm: RFC 8725 section 3.1. */
    alg = kd_json_str(hdr, "alg");
    typ = kd_json_str(hdr, "typ");
    kid = kd_json_str(hdr, "kid");
    if (alg == NULL || strcmp(alg, "HS256") != 0 || typ == NULL || strcmp(typ, "at+jwt") != 0 ||
        kid == NULL || !kid_valid(kid))
        goto out;
    /* RFC 7515 section 4.1.11: a critical extension we do not know (we know
     * none) makes the token invalid. Key material in the header (jwk, jku,
     * x5u, x5c) is never used: the key comes from kid only. */
    if (json_object_get(hdr, "crit") != NULL)
        goto out;
    if (!find_key(cfg, kid, &key, &key_len))
        goto out;
    /* The signature before anything of the payload is believed. */
    if (kd_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), sig, sizeof(sig), &sig_n) !=
            KD_OK ||
        sig_n != MAC_LEN)
        goto out;
    if ((rc = mac(key, key_len, token, (size_t)(dot2 - token), want)) != KD_OK)
        goto out;
    rc = KD_EINVAL;
    if (CRYPTO_memcmp(sig, want, MAC_LEN) != 0)
        goto out;
    if (decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), &pl) != KD_OK)
        goto out;
    iss = kd_json_str(pl, "iss");
    if (iss == NULL || strcmp(iss, cfg->jwt_issuer) != 0 ||
        !aud_matches(json_object_get(pl, "aud"), cfg->jwt_audience))
        goto out;
    if (!uuid_claim(pl, "sub", c.sub, true) || !uuid_claim(pl, "sid", c.sid, true) ||
        !uuid_claim(pl, "jti", c.jti, false))
        goto out;
    if (!int_claim(pl, "exp", &c.exp) || !int_claim(pl, "nbf", &c.nbf) ||
        !int_claim(pl, "iat", &c.iat))
        goto out;
    /* exp is a hard end; nbf and iat may be a little ahead of our clock
     * (another host's). A token living longer than the server would issue
     * one was not made by this configuration. */
    if (now_s >= c.exp || c.nbf > now_s + KD_JWT_LEEWAY_S || c.iat > now_s + KD_JWT_LEEWAY_S ||
        c.exp - c.iat > cfg->jwt_ttl_s || c.exp < c.iat)
        goto out;
    *out = c;
    rc = KD_OK;
out:
    explicit_bzero(want, sizeof(want));
    json_decref(hdr);
    json_decref(pl);
    return rc;
}
