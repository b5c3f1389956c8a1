/* Unit tests of src/jwt.c: base64url, issuing, and every way a token must
 * be refused (RFC 8725). Tokens are forged here with OpenSSL directly. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "config.h"
#include "jwt.h"

#define KEY_NEW "0123456789abcdef0123456789abcdef-new"
#define KEY_OLD "0123456789abcdef0123456789abcdef-old"
#define USER    "11111111-2222-4333-8444-555555555555"
#define SID     "66666666-7777-4888-9999-aaaaaaaaaaaa"
#define NOW     1800000000

static char s_secret[128], s_kid[32], s_prev[256], s_iss[] = "kadr", s_aud[] = "kadr-api";
static struct kd_config cfg;

static void
setup_cfg(const char *secret, const char *kid, const char *prev)
{
    memset(&cfg, 0, sizeof(cfg));
    snprintf(s_secret, sizeof(s_secret), "%s", secret);
    snprintf(s_kid, sizeof(s_kid), "%s", kid);
    snprintf(s_prev, sizeof(s_prev), "%s", prev);
    cfg.jwt_secret = s_secret;
    cfg.jwt_kid = s_kid;
    cfg.jwt_previous_keys = s_prev;
    cfg.jwt_issuer = s_iss;
    cfg.jwt_audience = s_aud;
    cfg.jwt_ttl_s = 900;
}

static void
setup(void)
{
    setup_cfg(KEY_NEW, "k2", "k1:" KEY_OLD);
}

/* header.payload.signature with the given JSON texts, signed with md (NULL:
 * an empty signature). */
static char *
forge(const char *key, const char *hdr, const char *pl, const EVP_MD *md)
{
    static char out[4096];
    char h[1024], p[1024], sig[256] = "";
    unsigned char mac[64];
    unsigned int n = 0;
    int len;

    ck_assert_int_eq(kd_b64url_encode((const unsigned char *)hdr, strlen(hdr), h, sizeof(h)),
                     KD_OK);
    ck_assert_int_eq(kd_b64url_encode((const unsigned char *)pl, strlen(pl), p, sizeof(p)), KD_OK);
    len = snprintf(out, sizeof(out), "%s.%s", h, p);
    if (md != NULL) {
        ck_assert_ptr_nonnull(
            HMAC(md, key, (int)strlen(key), (unsigned char *)out, (size_t)len, mac, &n));
        ck_assert_int_eq(kd_b64url_encode(mac, n, sig, sizeof(sig)), KD_OK);
    }
    snprintf(out + len, sizeof(out) - (size_t)len, ".%s", sig);
    return out;
}

static char *
payload(long long iat, long long nbf, long long exp, const char *iss, const char *aud)
{
    static char pl[1024];

    snprintf(pl, sizeof(pl),
             "{\"iss\":\"%s\",\"aud\":%s,\"sub\":\"" USER "\",\"sid\":\"" SID
             "\",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld}",
             iss, aud, iat, nbf, exp);
    return pl;
}

#define HDR_OK "{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"k2\"}"
#define PL_OK  payload(NOW, NOW, NOW + 900, "kadr", "\"kadr-api\"")

static enum kd_err
verify(const char *token)
{
    struct kd_jwt_claims c;

    return kd_jwt_verify(&cfg, token, NOW + 1, &c);
}

START_TEST(b64url_vectors)
{
    char out[64];
    unsigned char raw[64];
    size_t n = 0;

    ck_assert_int_eq(kd_b64url_encode((const unsigned char *)"f", 1, out, sizeof(out)), KD_OK);
    ck_assert_str_eq(out, "Zg");
    ck_assert_int_eq(kd_b64url_encode((const unsigned char *)"fo", 2, out, sizeof(out)), KD_OK);
    ck_assert_str_eq(out, "Zm8");
    ck_assert_int_eq(kd_b64url_encode((const unsigned char *)"foobar", 6, out, sizeof(out)), KD_OK);
    ck_assert_str_eq(out, "Zm9vYmFy");
    ck_assert_int_eq(kd_b64url_encode((const unsigned char *)"\xfb\xff", 2, out, sizeof(out)),
                     KD_OK);
    ck_assert_str_eq(out, "-_8");
    ck_assert_int_eq(kd_b64url_encode((const unsigned char *)"foo", 3, out, 4), KD_ELIMIT);
    ck_assert_int_eq(kd_b64url_decode("Zm9vYmFy", 8, raw, sizeof(raw), &n), KD_OK);
    ck_assert_uint_eq(n, 6);
    ck_assert_int_eq(memcmp(raw, "foobar", 6), 0);
    ck_assert_int_eq(kd_b64url_decode("-_8", 3, raw, sizeof(raw), &n), KD_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(raw[0], 0xfb);
    /* Strict: padding, the standard alphabet, a lone character, and
     * non-zero unused bits ("Zh" would also decode to "f") are refused. */
    ck_assert_int_eq(kd_b64url_decode("Zg==", 4, raw, sizeof(raw), &n), KD_EINVAL);
    ck_assert_int_eq(kd_b64url_decode("+/8", 3, raw, sizeof(raw), &n), KD_EINVAL);
    ck_assert_int_eq(kd_b64url_decode("Zm9vY", 5, raw, sizeof(raw), &n), KD_EINVAL);
    ck_assert_int_eq(kd_b64url_decode("Zh", 2, raw, sizeof(raw), &n), KD_EINVAL);
    ck_assert_int_eq(kd_b64url_decode("Zm9vYmFy", 8, raw, 5, &n), KD_ELIMIT);
    ck_assert_int_eq(kd_b64url_decode("", 0, raw, sizeof(raw), &n), KD_OK);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(b64url_round_trips)
{
    unsigned char raw[48], back[48];
    char text[80];
    size_t len, n = 0;

    for (len = 0; len <= sizeof(raw); len++) {
        for (size_t i = 0; i < len; i++)
            raw[i] = (unsigned char)(i * 37 + len * 11);
        ck_assert_int_eq(kd_b64url_encode(raw, len, text, sizeof(text)), KD_OK);
        ck_assert_int_eq(kd_b64url_decode(text, strlen(text), back, sizeof(back), &n), KD_OK);
        ck_assert_uint_eq(n, len);
        ck_assert_int_eq(memcmp(raw, back, len), 0);
    }
}
END_TEST

START_TEST(issue_and_verify)
{
    struct kd_jwt_claims c;
    char *t = NULL;

    ck_assert_int_eq(kd_jwt_issue(&cfg, USER, SID, NOW, &t), KD_OK);
    ck_assert_int_eq(kd_jwt_verify(&cfg, t, NOW, &c), KD_OK);
    ck_assert_str_eq(c.sub, USER);
    ck_assert_str_eq(c.sid, SID);
    ck_assert_int_eq(c.iat, NOW);
    ck_assert_int_eq(c.exp, NOW + 900);
    /* exp is a hard end. */
    ck_assert_int_eq(kd_jwt_verify(&cfg, t, NOW + 899, &c), KD_OK);
    ck_assert_int_eq(kd_jwt_verify(&cfg, t, NOW + 900, &c), KD_EINVAL);
    /* Any changed byte breaks it. */
    for (size_t i = 0; t[i] != '\0'; i++) {
        char saved = t[i];

        t[i] = saved == 'A' ? 'B' : 'A';
        ck_assert_int_eq(kd_jwt_verify(&cfg, t, NOW, &c), KD_EINVAL);
        t[i] = saved;
    }
    free(t);
}
END_TEST

START_TEST(no_key_no_token)
{
    char *t = NULL;

    setup_cfg("", "k1", "");
    ck_assert_int_eq(kd_jwt_issue(&cfg, USER, SID, NOW, &t), KD_EUNAVAIL);
    ck_assert_ptr_null(t);
    /* And nothing verifies with an empty key. */
    ck_assert_int_eq(verify(forge("", "{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"k1\"}",
                                  PL_OK, EVP_sha256())),
                     KD_EINVAL);
}
END_TEST

START_TEST(forged_tokens_are_refused)
{
    /* The genuine one first, so that each refusal below is for its reason. */
    ck_assert_int_eq(verify(forge(KEY_NEW, HDR_OK, PL_OK, EVP_sha256())), KD_OK);
    /* Another key. */
    ck_assert_int_eq(
        verify(forge("not-the-key-0123456789abcdef012345", HDR_OK, PL_OK, EVP_sha256())),
        KD_EINVAL);
    /* alg none, with and without a signature. */
    ck_assert_int_eq(
        verify(forge(KEY_NEW, "{\"alg\":\"none\",\"typ\":\"at+jwt\",\"kid\":\"k2\"}", PL_OK, NULL)),
        KD_EINVAL);
    ck_assert_int_eq(verify(forge(KEY_NEW, "{\"alg\":\"none\",\"typ\":\"at+jwt\",\"kid\":\"k2\"}",
                                  PL_OK, EVP_sha256())),
                     KD_EINVAL);
    ck_assert_int_eq(verify(forge(KEY_NEW, HDR_OK, PL_OK, NULL)), KD_EINVAL);
    /* Re-signed with another algorithm, with the right key. */
    ck_assert_int_eq(verify(forge(KEY_NEW, "{\"alg\":\"HS384\",\"typ\":\"at+jwt\",\"kid\":\"k2\"}",
                                  PL_OK, EVP_sha384())),
                     KD_EINVAL);
    ck_assert_int_eq(verify(forge(KEY_NEW, "{\"alg\":\"HS512\",\"typ\":\"at+jwt\",\"kid\":\"k2\"}",
                                  PL_OK, EVP_sha512())),
                     KD_EINVAL);
    ck_assert_int_eq(verify(forge(KEY_NEW, "{\"alg\":\"hs256\",\"typ\":\"at+jwt\",\"kid\":\"k2\"}",
                                  PL_OK, EVP_sha256())),
                     KD_EINVAL);
    /* A second "alg" hiding behind the first. */
    ck_assert_int_eq(
        verify(forge(KEY_NEW,
                     "{\"alg\":\"HS256\",\"alg\":\"none\",\"typ\":\"at+jwt\",\"kid\":\"k2\"}",
                     PL_OK, EVP_sha256())),
        KD_EINVAL);
    /* Not an access token (typ), an unknown critical extension, no kid. */
    ck_assert_int_eq(verify(forge(KEY_NEW, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k2\"}",
                                  PL_OK, EVP_sha256())),
                     KD_EINVAL);
    ck_assert_int_eq(
        verify(forge(KEY_NEW, "{\"alg\":\"HS256\",\"kid\":\"k2\"}", PL_OK, EVP_sha256())),
        KD_EINVAL);
    ck_assert_int_eq(verify(forge(KEY_NEW,
                                  "{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"k2\","
                                  "\"crit\":[\"exp\"]}",
                                  PL_OK, EVP_sha256())),
                     KD_EINVAL);
    ck_assert_int_eq(
        verify(forge(KEY_NEW, "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", PL_OK, EVP_sha256())),
        KD_EINVAL);
    ck_assert_int_eq(verify(forge(KEY_NEW, "{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"k9\"}",
                                  PL_OK, EVP_sha256())),
                     KD_EINVAL);
    /* Not three parts. */
    ck_assert_int_eq(verify("a.b"), KD_EINVAL);
    ck_assert_int_eq(verify("a.b.c.d.e"), KD_EINVAL);
    ck_assert_int_eq(verify(""), KD_EINVAL);
    ck_assert_int_eq(verify(".."), KD_EINVAL);
}
END_TEST

START_TEST(claims_are_checked)
{
    const char *s;

    /* Expired, not yet valid, issued in the future. */
    s = forge(KEY_NEW, HDR_OK, payload(NOW - 1000, NOW - 1000, NOW - 100, "kadr", "\"kadr-api\""),
              EVP_sha256());
    ck_assert_int_eq(verify(s), KD_EINVAL);
    s = forge(KEY_NEW, HDR_OK, payload(NOW, NOW + 600, NOW + 900, "kadr", "\"kadr-api\""),
              EVP_sha256());
    ck_assert_int_eq(verify(s), KD_EINVAL);
    s = forge(KEY_NEW, HDR_OK, payload(NOW + 300, NOW, NOW + 900, "kadr", "\"kadr-api\""),
              EVP_sha256());
    ck_assert_int_eq(verify(s), KD_EINVAL);
    /* Within the leeway of nbf it passes. */
    s = forge(KEY_NEW, HDR_OK, payload(NOW, NOW + 10, NOW + 900, "kadr", "\"kadr-api\""),
              EVP_sha256());
    ck_assert_int_eq(verify(s), KD_OK);
    /* Wrong audience (also inside an array), wrong issuer. */
    s = forge(KEY_NEW, HDR_OK, payload(NOW, NOW, NOW + 900, "kadr", "\"other\""), EVP_sha256());
    ck_assert_int_eq(verify(s), KD_EINVAL);
    s = forge(KEY_NEW, HDR_OK, payload(NOW, NOW, NOW + 900, "kadr", "[\"other\",\"x\"]"),
              EVP_sha256());
    ck_assert_int_eq(verify(s), KD_EINVAL);
    s = forge(KEY_NEW, HDR_OK, payload(NOW, NOW, NOW + 900, "kadr", "[\"other\",\"kadr-api\"]"),
              EVP_sha256());
    ck_assert_int_eq(verify(s), KD_OK);
    s = forge(KEY_NEW, HDR_OK, payload(NOW, NOW, NOW + 900, "evil", "\"kadr-api\""), EVP_sha256());
    ck_assert_int_eq(verify(s), KD_EINVAL);
    /* A lifetime the server never issues. */
    s = forge(KEY_NEW, HDR_OK, payload(NOW, NOW, NOW + 86400, "kadr", "\"kadr-api\""),
              EVP_sha256());
    ck_assert_int_eq(verify(s), KD_EINVAL);
    /* Missing or mistyped claims. */
    s = forge(KEY_NEW, HDR_OK,
              "{\"iss\":\"kadr\",\"aud\":\"kadr-api\",\"sub\":\"" USER "\",\"sid\":\"" SID
              "\",\"iat\":1800000000,\"nbf\":1800000000}",
              EVP_sha256());
    ck_assert_int_eq(verify(s), KD_EINVAL);
    s = forge(KEY_NEW, HDR_OK,
              "{\"iss\":\"kadr\",\"aud\":\"kadr-api\",\"sub\":\"" USER "\",\"sid\":\"" SID
              "\",\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800000900.5}",
              EVP_sha256());
    ck_assert_int_eq(verify(s), KD_EINVAL);
    s = forge(KEY_NEW, HDR_OK,
              "{\"iss\":\"kadr\",\"aud\":\"kadr-api\",\"sub\":\"admin\",\"sid\":\"" SID
              "\",\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800000900}",
              EVP_sha256());
    ck_assert_int_eq(verify(s), KD_EINVAL);
    s = forge(KEY_NEW, HDR_OK,
              "{\"iss\":\"kadr\",\"aud\":\"kadr-api\",\"sub\":\"" USER
              "\",\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800000900}",
              EVP_sha256());
    ck_assert_int_eq(verify(s), KD_EINVAL);
    /* A payload that is not an object. */
    ck_assert_int_eq(verify(forge(KEY_NEW, HDR_OK, "[1,2]", EVP_sha256())), KD_EINVAL);
    ck_assert_int_eq(verify(forge(KEY_NEW, HDR_OK, "{\"exp\":", EVP_sha256())), KD_EINVAL);
}
END_TEST

START_TEST(keys_rotate_by_kid)
{
    struct kd_jwt_claims c;
    char *t = NULL;

    /* Signed while k1 was current. */
    setup_cfg(KEY_OLD, "k1", "");
    ck_assert_int_eq(kd_jwt_issue(&cfg, USER, SID, NOW, &t), KD_OK);
    /* k2 current, k1 retired but kept: still good. */
    setup_cfg(KEY_NEW, "k2", "k0:" KEY_NEW "-zero,k1:" KEY_OLD);
    ck_assert_int_eq(kd_jwt_verify(&cfg, t, NOW, &c), KD_OK);
    /* k1 dropped: refused. */
    setup_cfg(KEY_NEW, "k2", "k0:" KEY_NEW "-zero");
    ck_assert_int_eq(kd_jwt_verify(&cfg, t, NOW, &c), KD_EINVAL);
    /* The same secret under another name does not make "k1" known. */
    setup_cfg(KEY_OLD, "k2", "");
    ck_assert_int_eq(kd_jwt_verify(&cfg, t, NOW, &c), KD_EINVAL);
    /* A retired key shorter than 32 bytes is never used. */
    setup_cfg(KEY_NEW, "k2", "k1:short");
    ck_assert_int_eq(kd_jwt_verify(&cfg, t, NOW, &c), KD_EINVAL);
    free(t);
}
END_TEST

START_TEST(oversized_token)
{
    char *big = malloc(KD_JWT_MAX_LEN + 10);

    ck_assert_ptr_nonnull(big);
    memset(big, 'A', KD_JWT_MAX_LEN + 9);
    big[100] = '.';
    big[200] = '.';
    big[KD_JWT_MAX_LEN + 9] = '\0';
    ck_assert_int_eq(verify(big), KD_EINVAL);
    free(big);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("jwt");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, b64url_vectors);
    tcase_add_test(tc, b64url_round_trips);
    tcase_add_test(tc, issue_and_verify);
    tcase_add_test(tc, no_key_no_token);
    tcase_add_test(tc, forged_tokens_are_refused);
    tcase_add_test(tc, claims_are_checked);
    tcase_add_test(tc, keys_rotate_by_kid);
    tcase_add_test(tc, oversized_token);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
