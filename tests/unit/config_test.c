/* Unit tests of src/config.c: defaults < file < environment, secrets, errors. */
#include <check.h>
#include <dirent.h>
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
    unsetenv("KADR_URL_SIGNING_SECRET");
    unsetenv("KADR_DATABASE_URL");
    unsetenv("KADR_DATABASE_URL_FILE");
    unsetenv("KADR_REDIS_PREFIX");
}

static void
teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];

    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

/* Writes len bytes (NULs included). */
static void
write_bytes(const char *name, const char *bytes, size_t len, char *path, size_t path_len)
{
    FILE *f;

    snprintf(path, path_len, "%s/%s", dir, name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(bytes, 1, len, f), len);
    fclose(f);
}

static char *
dump_of(const struct kd_config *cfg)
{
    char *dump = NULL;
    size_t dump_len = 0;
    FILE *f = open_memstream(&dump, &dump_len);

    ck_assert_ptr_nonnull(f);
    kd_config_dump(cfg, f);
    fclose(f);
    return dump;
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

/* The connection string carries the database password: it may come from a
 * file (config key or environment), and the dump still masks the password. */
START_TEST(database_url_from_file)
{
    struct kd_config *cfg = NULL;
    char url[512], conf[512], text[700], err[256], *dump = NULL;
    size_t dump_len = 0;
    FILE *f;

    write_file("dburl", "host=/run/pg dbname=kadr password=s3cr3t-pw\n", url, sizeof(url));
    snprintf(text, sizeof(text), "database_url_file = %s\n", url);
    write_file("kadr.conf", text, conf, sizeof(conf));
    ck_assert_int_eq(kd_config_load(conf, &cfg, err, sizeof(err)), KD_OK);
    ck_assert_str_eq(cfg->database_url, "host=/run/pg dbname=kadr password=s3cr3t-pw");
    f = open_memstream(&dump, &dump_len);
    kd_config_dump(cfg, f);
    fclose(f);
    ck_assert_ptr_null(strstr(dump, "s3cr3t-pw"));
    ck_assert_ptr_nonnull(strstr(dump, "dbname=kadr"));
    free(dump);
    kd_config_free(cfg);
    cfg = NULL;

    /* The same from the environment. */
    write_file("kadr.conf", "", conf, sizeof(conf));
    ck_assert_int_eq(setenv("KADR_DATABASE_URL_FILE", url, 1), 0);
    ck_assert_int_eq(kd_config_load(conf, &cfg, err, sizeof(err)), KD_OK);
    ck_assert_str_eq(cfg->database_url, "host=/run/pg dbname=kadr password=s3cr3t-pw");
    kd_config_free(cfg);
    unsetenv("KADR_DATABASE_URL_FILE");
    cfg = NULL;

    /* Settings that are neither secret nor connection strings have no _file. */
    write_file("kadr.conf", "redis_host_file = /etc/hostname\n", conf, sizeof(conf));
    ck_assert_int_eq(kd_config_load(conf, &cfg, err, sizeof(err)), KD_EINVAL);
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

START_TEST(crlf_quotes_and_line_numbers)
{
    struct kd_config *cfg = NULL;
    char path[512], err[256];

    write_file("crlf.conf",
               "# written on Windows\r\n"
               "\r\n"
               "redis_prefix = \" a b \"\r\n"
               "worker_slots=4\r\n"
               "database_url = host=db dbname=kadr options='-c a=b'\r\n",
               path, sizeof(path));
    ck_assert_int_eq(kd_config_load(path, &cfg, err, sizeof(err)), KD_OK);
    ck_assert_str_eq(cfg->redis_prefix, " a b ");
    ck_assert_int_eq(cfg->worker_slots, 4);
    ck_assert_str_eq(cfg->database_url, "host=db dbname=kadr options='-c a=b'");
    kd_config_free(cfg);
    cfg = NULL;
    /* Blank lines count: the error names the line an editor shows. */
    write_file("blank.conf", "\n\n# three\n\nworker_slots = 0\n", path, sizeof(path));
    ck_assert_int_eq(kd_config_load(path, &cfg, err, sizeof(err)), KD_EINVAL);
    ck_assert_msg(strstr(err, "line 5:") != NULL, "%s", err);
    ck_assert_ptr_null(cfg);
}
END_TEST

START_TEST(nul_bytes_are_refused)
{
    struct kd_config *cfg = NULL;
    char conf[512], secret[512], text[700], err[256];

    /* Everything after the NUL would be ignored without a word. */
    write_bytes("nul.conf", "worker_slots = 3\n\0worker_slots = 0\n", 35, conf, sizeof(conf));
    ck_assert_int_eq(kd_config_load(conf, &cfg, err, sizeof(err)), KD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "NUL"));
    /* A secret made of random bytes would be cut at its first NUL. */
    write_bytes("secret.bin", "0123456789abcdef0123456789abcdef\0tail", 37, secret, sizeof(secret));
    snprintf(text, sizeof(text), "url_signing_secret_file = %s\n", secret);
    write_file("kadr.conf", text, conf, sizeof(conf));
    ck_assert_int_eq(kd_config_load(conf, &cfg, err, sizeof(err)), KD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "NUL"));
    ck_assert_ptr_null(cfg);
}
END_TEST

START_TEST(dump_masks_database_passwords)
{
    static const struct {
        const char *url, *shown;
    } cases[] = {
        {"postgresql://kadr:s3cret@db.example:5432/kadr?sslmode=require",
         "postgresql://kadr:***@db.example:5432/kadr?sslmode=require"},
        {"postgres://kadr@db/kadr", "postgres://kadr@db/kadr"},
        {"postgresql:///kadr?host=/run/pg&password=s3cret&sslmode=disable",
         "postgresql:///kadr?host=/run/pg&password=***&sslmode=disable"},
        {"host=db password = 's3cret \\' x' dbname=kadr", "host=db password = *** dbname=kadr"},
        {"host=db sslpassword=s3cret password=s3cret", "host=db sslpassword=*** password=***"},
        {"dbname=kadr", "dbname=kadr"},
    };
    char err[256], line[512];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kd_config *cfg = NULL;
        char *dump;

        setenv("KADR_DATABASE_URL", cases[i].url, 1);
        ck_assert_int_eq(kd_config_load(NULL, &cfg, err, sizeof(err)), KD_OK);
        dump = dump_of(cfg);
        snprintf(line, sizeof(line), "database_url = %s\n", cases[i].shown);
        ck_assert_msg(strstr(dump, line) != NULL, "case %zu: %s", i, dump);
        ck_assert_ptr_null(strstr(dump, "s3cret"));
        free(dump);
        kd_config_free(cfg);
    }
    unsetenv("KADR_DATABASE_URL");
}
END_TEST

START_TEST(environment_overrides_secrets)
{
    struct kd_config *cfg = NULL;
    char secret[512], conf[512], text[700], err[256];

    write_file("secret", "from-the-env-file-0123456789abcdef\r\n", secret, sizeof(secret));
    write_file("kadr.conf", "url_signing_secret = from-the-config-file-0123456789abcdef\n", conf,
               sizeof(conf));
    ck_assert_int_eq(kd_config_load(conf, &cfg, err, sizeof(err)), KD_OK);
    ck_assert_str_eq(cfg->url_signing_secret, "from-the-config-file-0123456789abcdef");
    kd_config_free(cfg);
    setenv("KADR_URL_SIGNING_SECRET_FILE", secret, 1);
    ck_assert_int_eq(kd_config_load(conf, &cfg, err, sizeof(err)), KD_OK);
    ck_assert_str_eq(cfg->url_signing_secret, "from-the-env-file-0123456789abcdef");
    kd_config_free(cfg);
    setenv("KADR_URL_SIGNING_SECRET", "from-the-environment-0123456789abcdef", 1);
    ck_assert_int_eq(kd_config_load(conf, &cfg, err, sizeof(err)), KD_OK);
    ck_assert_str_eq(cfg->url_signing_secret, "from-the-environment-0123456789abcdef");
    kd_config_free(cfg);
    cfg = NULL;
    /* A missing secret file stops the start, naming the variable only. */
    snprintf(text, sizeof(text), "%s/missing", dir);
    setenv("KADR_URL_SIGNING_SECRET_FILE", text, 1);
    ck_assert_int_eq(kd_config_load(conf, &cfg, err, sizeof(err)), KD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "KADR_URL_SIGNING_SECRET_FILE"));
    ck_assert_ptr_null(strstr(err, "from-the"));
    unsetenv("KADR_URL_SIGNING_SECRET_FILE");
    unsetenv("KADR_URL_SIGNING_SECRET");
}
END_TEST

START_TEST(huge_values)
{
    struct kd_config *cfg = NULL;
    static char big[200000];
    char path[512], err[256];

    write_file("n.conf", "upload_max_bytes = 99999999999999999999999\n", path, sizeof(path));
    ck_assert_int_eq(kd_config_load(path, &cfg, err, sizeof(err)), KD_EINVAL);
    write_file("n.conf", "upload_max_bytes = 9223372036854775807G\n", path, sizeof(path));
    ck_assert_int_eq(kd_config_load(path, &cfg, err, sizeof(err)), KD_EINVAL);
    write_file("n.conf", "worker_slots = -1\n", path, sizeof(path));
    ck_assert_int_eq(kd_config_load(path, &cfg, err, sizeof(err)), KD_EINVAL);
    /* A long value is kept whole; the error line quoting one is capped. */
    memcpy(big, "redis_prefix = ", 15);
    memset(big + 15, 'p', sizeof(big) - 17);
    big[sizeof(big) - 2] = '\n';
    write_file("big.conf", big, path, sizeof(path));
    ck_assert_int_eq(kd_config_load(path, &cfg, err, sizeof(err)), KD_OK);
    ck_assert_uint_eq(strlen(cfg->redis_prefix), sizeof(big) - 17);
    kd_config_free(cfg);
    cfg = NULL;
    big[0] = 'w';
    memcpy(big, "worker_slots = ", 15);
    write_file("big.conf", big, path, sizeof(path));
    ck_assert_int_eq(kd_config_load(path, &cfg, err, sizeof(err)), KD_EINVAL);
    ck_assert_uint_lt(strlen(err), sizeof(err) - 1);
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

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, defaults_alone_load);
    tcase_add_test(tc, file_then_environment);
    tcase_add_test(tc, secret_from_file);
    tcase_add_test(tc, database_url_from_file);
    tcase_add_test(tc, errors_name_key_and_range);
    tcase_add_test(tc, crlf_quotes_and_line_numbers);
    tcase_add_test(tc, nul_bytes_are_refused);
    tcase_add_test(tc, dump_masks_database_passwords);
    tcase_add_test(tc, environment_overrides_secrets);
    tcase_add_test(tc, huge_values);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
