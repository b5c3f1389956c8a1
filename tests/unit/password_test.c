/* Unit tests of src/password.c: scrypt hashes round-trip, carry their
 * parameters, and refuse what is not theirs. Cheap parameters (N = 2^10)
 * keep the tests fast; the stored parameters are what a check uses. */
#include <check.h>
#include <string.h>

#include "config.h"
#include "password.h"

static struct kd_config cfg;

static void
setup(void)
{
    memset(&cfg, 0, sizeof(cfg));
    cfg.password_scrypt_log2n = 10;
    cfg.password_scrypt_r = 8;
    cfg.password_scrypt_p = 1;
}

START_TEST(hash_and_verify)
{
    char h1[KD_PASSWORD_HASH_MAX], h2[KD_PASSWORD_HASH_MAX];

    ck_assert_int_eq(kd_password_hash(&cfg, "correct horse battery", h1), KD_OK);
    ck_assert_int_eq(strncmp(h1, "$scrypt$ln=10,r=8,p=1$", 22), 0);
    ck_assert_uint_eq(strlen(h1), 22 + 32 + 1 + 64);
    ck_assert_int_eq(kd_password_verify(&cfg, "correct horse battery", h1), KD_OK);
    ck_assert_int_eq(kd_password_verify(&cfg, "correct horse batterY", h1), KD_EINVAL);
    ck_assert_int_eq(kd_password_verify(&cfg, "", h1), KD_EINVAL);
    /* A fresh salt each time. */
    ck_assert_int_eq(kd_password_hash(&cfg, "correct horse battery", h2), KD_OK);
    ck_assert_str_ne(h1, h2);
    /* UTF-8 passwords are bytes like any other. */
    ck_assert_int_eq(kd_password_hash(&cfg, "пароль-пароль", h2), KD_OK);
    ck_assert_int_eq(kd_password_verify(&cfg, "пароль-пароль", h2), KD_OK);
}
END_TEST

START_TEST(parameters_travel_with_the_hash)
{
    char h[KD_PASSWORD_HASH_MAX];

    cfg.password_scrypt_log2n = 11;
    cfg.password_scrypt_r = 4;
    ck_assert_int_eq(kd_password_hash(&cfg, "a long password", h), KD_OK);
    ck_assert_int_eq(strncmp(h, "$scrypt$ln=11,r=4,p=1$", 22), 0);
    /* Raising the configured cost keeps old hashes verifiable. */
    cfg.password_scrypt_log2n = 12;
    cfg.password_scrypt_r = 8;
    ck_assert_int_eq(kd_password_verify(&cfg, "a long password", h), KD_OK);
}
END_TEST

START_TEST(foreign_hashes_are_refused)
{
    static const char *bad[] = {
        "",
        "plain",
        "$2b$12$abcdefghijklmnopqrstuu",
        /* parameters out of range: N = 2^30 would take 128 GiB */
        "$scrypt$ln=30,r=8,p=1$00112233445566778899aabbccddeeff$"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        "$scrypt$ln=10,r=99,p=1$00112233445566778899aabbccddeeff$"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        /* short salt, short hash, upper-case hex, trailing junk */
        "$scrypt$ln=10,r=8,p=1$0011$"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        "$scrypt$ln=10,r=8,p=1$00112233445566778899aabbccddeeff$0011",
        "$scrypt$ln=10,r=8,p=1$00112233445566778899AABBCCDDEEFF$"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        "$scrypt$ln=10,r=8,p=1$00112233445566778899aabbccddeeff$"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff$x",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_int_eq(kd_password_verify(&cfg, "whatever-password", bad[i]), KD_EINVAL);
    /* No hash at all: the dummy check, and a refusal. */
    ck_assert_int_eq(kd_password_verify(&cfg, "whatever-password", NULL), KD_EINVAL);
}
END_TEST

START_TEST(rehash_when_the_parameters_change)
{
    char h[KD_PASSWORD_HASH_MAX];

    ck_assert_int_eq(kd_password_hash(&cfg, "a long password", h), KD_OK);
    ck_assert(!kd_password_needs_rehash(&cfg, h));
    cfg.password_scrypt_log2n = 11;
    ck_assert(kd_password_needs_rehash(&cfg, h));
    cfg.password_scrypt_log2n = 10;
    cfg.password_scrypt_r = 4;
    ck_assert(kd_password_needs_rehash(&cfg, h));
    cfg.password_scrypt_r = 8;
    cfg.password_scrypt_p = 2;
    ck_assert(kd_password_needs_rehash(&cfg, h));
    cfg.password_scrypt_p = 1;
    ck_assert(!kd_password_needs_rehash(&cfg, h));
    /* A lower cost is a change too: the configuration is the target. */
    cfg.password_scrypt_log2n = 11;
    ck_assert_int_eq(kd_password_hash(&cfg, "a long password", h), KD_OK);
    cfg.password_scrypt_log2n = 10;
    ck_assert(kd_password_needs_rehash(&cfg, h));
    /* Nothing to upgrade: no hash, or not one of ours. */
    ck_assert(!kd_password_needs_rehash(&cfg, NULL));
    ck_assert(!kd_password_needs_rehash(&cfg, ""));
    ck_assert(!kd_password_needs_rehash(&cfg, "$2b$12$abcdefghijklmnopqrstuu"));
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("password");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, hash_and_verify);
    tcase_add_test(tc, parameters_travel_with_the_hash);
    tcase_add_test(tc, foreign_hashes_are_refused);
    tcase_add_test(tc, rehash_when_the_parameters_change);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
