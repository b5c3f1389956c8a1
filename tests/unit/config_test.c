/* Unit tests of src/config.c: defaults < file < environment, secrets, errors. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char dir[64];

static void
write_file(const char *name, const char *text, char *path, size_t len)
{
    FILE *f;

    snprintf(path, len, "%s/%s", dir, name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void
setup(void)
{
    /* A fresh directory per test, also when tests run without fork. */
    snprintf(dir, sizeof(dir), "/tmp/kadr-config-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    unsetenv("KADR_CONFIG");
    unsetenv("KADR_WORKER_SLOTS");
    unsetenv("KADR_URL_SIGNING_SECRET_FILE");
}

START_TEST(defaults_alone_load)
{
    struct kd_config *cfg = NULL;
    char err[256];

    ck_assert_int_eq(kd_config_load(NULL, &cfg, err, sizeof(err)), KD_OK);
    ck_assert_str_eq(cfg->storage_backend, "local");
    ck_assert_int_eq(cfg->worker_slots, 2);
    ck_assert_int_eq(cfg->limits.body_max_bytes, 1048576);
    ck_assert_int_eq(cfg->limits.max_inputs, 50);
    kd_config_free(cfg);
}
END_TEST

START_TEST(file_then_environment)
{
    struct kd_config *cfg = NULL;
    char path[512], err[256];

    write_file("kadr.conf",
               "# a comment\n"
               "worker_slots = 3\n"
               "redis_prefix = \"test:\"\n"
               "body_max_bytes = 2m\n",
               path, sizeof(path));
    ck_assert_int_eq(kd_config_load(path, &cfg, err, sizeof(err)), KD_OK);
    ck_assert_int_eq(cfg->worker_slots, 3);
    ck_assert_str_eq(cfg->redis_prefix, "test:");
    ck_assert_int_eq(cfg->limits.body_max_bytes, 2 * 1048576);
    kd_config_free(cfg);
    setenv("KADR_WORKER_SLOTS", "5", 1);
    ck_assert_int_eq(kd_config_load(path, &cfg, err, sizeof(err)), KD_OK);
    ck_assert_int_eq(cfg->worker_slots, 5);
    kd_config_free(cfg);
    unsetenv("KADR_WORKER_SLOTS");
}
END_TEST

START_TEST(secret_from_file)
{
    struct kd_config *cfg = NULL;
    char secret[512], conf[512], text[700], err[256];

    write_file("secret", "0123456789abcdef0123456789abcdef\n", secret, sizeof(secret));
    snprintf(text, sizeof(text), "url_signing_secret_file = %s\n", secret);
    write_file("kadr.conf", text, conf, sizeof(conf));
    ck_assert_int_eq(kd_config_load(conf, &cfg, err, sizeof(err)), KD_OK);
    ck_assert_str_eq(cfg->url_signing_secret, "0123456789abcdef0123456789abcdef");
    /* The dump never shows it. */
    char *dump = NULL;
    size_t dump_len = 0;
    FILE *f = open_memstream(&dump, &dump_len);
    kd_config_dump(cfg, f);
    fclose(f);
    ck_assert_ptr_null(strstr(dump, "0123456789abcdef"));
    ck_assert_ptr_nonnull(strstr(dump, "url_signing_secret = (set)"));
    free(dump);
    kd_config_free(cfg);
}
END_TEST

START_TEST(errors_name_key_and_range)
{
    struct kd_config *cfg = NULL;
    char path[512], err[256];

    write_file("bad1.conf", "worker_slots = 0\n", path, sizeof(path));
    ck_assert_int_eq(kd_config_load(path, &cfg, err, sizeof(err)), KD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "worker_slots"));
    ck_assert_ptr_nonnull(strstr(err, "1..64"));
    ck_assert_ptr_nonnull(strstr(err, "line 1"));
    write_file("bad2.conf", "no_such_key = 1\n", path, sizeof(path));
    ck_assert_int_eq(kd_config_load(path, &cfg, err, sizeof(err)), KD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "no_such_key"));
    write_file("bad3.conf", "just words\n", path, sizeof(path));
    ck_assert_int_eq(kd_config_load(path, &cfg, err, sizeof(err)), KD_EINVAL);
    write_file("bad4.conf", "url_signing_secret = short\n", path, sizeof(path));
    ck_assert_int_eq(kd_config_load(path, &cfg, err, sizeof(err)), KD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "32"));
    setenv("KADR_WORKER_SLOTS", "many", 1);
    ck_assert_int_eq(kd_config_load(NULL, &cfg, err, sizeof(err)), KD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "KADR_WORKER_SLOTS"));
    unsetenv("KADR_WORKER_SLOTS");
    ck_assert_int_eq(kd_config_load("/nonexistent/kadr.conf", &cfg, err, sizeof(err)), KD_EINVAL);
    ck_assert_ptr_null(cfg);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, defaults_alone_load);
    tcase_add_test(tc, file_then_environment);
    tcase_add_test(tc, secret_from_file);
    tcase_add_test(tc, errors_name_key_and_range);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
