/* jwt.h: access tokens (RFC 7519 JWTs signed HS256, RFC 7515), issued at
 * login and refresh and verified on every request that carries one.
 *
 * Following RFC 8725: the algorithm is the server's choice, never the
 * token's (only "HS256" is accepted: "none", "HS384", "RS256", ... are all
 * refused); the token is explicitly typed ("typ": "at+jwt", RFC 9068), so
 * no other JWT can pass for an access token; iss, aud, exp, nbf and iat are
 * all required and checked; the MAC is OpenSSL's HMAC-SHA256 and compared in
 * constant time (CRYPTO_memcmp).
 *
 * Keys rotate by key id: a token names its key in the header ("kid"). The
 * current key (jwt_kid, jwt_secret) signs; it and the previous keys
 * (jwt_previous_keys, "kid:secret,kid:secret") verify. An unknown kid is
 * refused like a bad signature. Secrets are at least 32 bytes (config.c). */
#ifndef KD_JWT_H
#define KD_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "util.h"

/* Longest token verified; longer ones are refused before any decoding. */
#define KD_JWT_MAX_LEN 4096
/* Clock skew tolerated for nbf and iat (seconds); exp has none. */
#define KD_JWT_LEEWAY_S 30
#define KD_JWT_KID_MAX  64

struct kd_jwt_claims {
    char sub[KD_UUID_STRLEN + 1]; /* the user id */
    char sid[KD_UUID_STRLEN + 1]; /* the refresh-token family (the session) */
    char jti[KD_UUID_STRLEN + 1]; /* this token's id */
    int64_t iat, nbf, exp;        /* Unix seconds */
};

/* Issues an access token for user_id in session sid, valid from now_s for
 * cfg->jwt_ttl_s seconds, signed with the current key. The caller frees
 * *out. KD_EUNAVAIL (logged) when no signing key is configured. */
KD_MUST_CHECK enum kd_err kd_jwt_issue(const struct kd_config *cfg, const char *user_id,
                                       const char *sid, int64_t now_s, char **out);

/* Verifies token at now_s and fills *out. KD_EINVAL for every way a token
 * can be bad (malformed, wrong algorithm or type, unknown key, bad
 * signature, wrong issuer or audience, expired, not yet valid, a lifetime
 * longer than the server issues); nothing tells which, to the caller or
 * the client. */
KD_MUST_CHECK enum kd_err kd_jwt_verify(const struct kd_config *cfg, const char *token,
                                        int64_t now_s, struct kd_jwt_claims *out);

/* base64url without padding (RFC 4648 section 5), as JWTs use it.
 * Encode: out needs ceil(4 * len / 3) + 1 bytes (43 + 1 for 32); KD_ELIMIT
 * when out_len is too small. Decode: strict: the URL alphabet only, no padding, no length
 * of 1 mod 4, and unused trailing bits zero (one text per byte string);
 * KD_EINVAL otherwise, KD_ELIMIT when out_len is too small. */
KD_MUST_CHECK enum kd_err kd_b64url_encode(const unsigned char *p, size_t len, char *out,
                                           size_t out_len);
KD_MUST_CHECK enum kd_err kd_b64url_decode(const char *s, size_t len, unsigned char *out,
                                           size_t out_len, size_t *out_n);

#endif
