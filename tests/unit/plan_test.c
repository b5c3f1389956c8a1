/* Unit tests of src/plan.c: the limits each plan resolves to, from the
 * built-in defaults and from a configuration that overrides them. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "plan.h"

static const char *const env_keys[] = {
    "KADR_CONFIG",
    "KADR_PLAN_FREE_JOBS_PER_HOUR",
    "KADR_PLAN_PREMIUM_JOBS_PER_HOUR",
    "KADR_JOBS_PER_HOUR_CAP",
    "KADR_PLAN_FREE_UPLOADS",
    "KADR_PLAN_PREMIUM_UPLOADS",
    "KADR_PLAN_FREE_STORAGE_BYTES",
    "KADR_PLAN_PREMIUM_STORAGE_BYTES",
};

static void
setup(void)
{
    for (size_t i = 0; i < sizeof(env_keys) / sizeof(env_keys[0]); i++)
        unsetenv(env_keys[i]);
}

static struct kd_config *
load(const char *text)
{
    struct kd_config *cfg = NULL;
    char path[] = "/tmp/kadr-plan-test-XXXXXX", err[256];
    int fd;

    if (text == NULL) {
        ck_assert_int_eq(kd_config_load(NULL, &cfg, err, sizeof(err)), KD_OK);
        return cfg;
    }
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ck_assert_int_eq(kd_config_load(path, &cfg, err, sizeof(err)), KD_OK);
    unlink(path);
    return cfg;
}

START_TEST(defaults)
{
    struct kd_config *cfg = load(NULL);
    struct kd_plan_limits l;

    kd_plan_limits_get(cfg, "free", false, &l);
    ck_assert_int_eq(l.jobs_per_hour, 5);
    ck_assert_int_eq(l.uploads, 10);
    ck_assert_int_eq(l.storage_bytes, 10LL * 1024 * 1024 * 1024);
    kd_plan_limits_get(cfg, "premium", false, &l);
    ck_assert_int_eq(l.jobs_per_hour, 50);
    ck_assert_int_eq(l.uploads, 10);
    ck_assert_int_eq(l.storage_bytes, 100LL * 1024 * 1024 * 1024);
    ck_assert_int_eq(cfg->jobs_per_hour_cap, 100);
    kd_config_free(cfg);
}
END_TEST

START_TEST(unknown_plans_get_the_free_limits)
{
    struct kd_config *cfg = load(NULL);
    struct kd_plan_limits l;
    static const char *const plans[] = {"", "gold", "Premium", "premium ", "free"};

    for (size_t i = 0; i < sizeof(plans) / sizeof(plans[0]); i++) {
        kd_plan_limits_get(cfg, plans[i], false, &l);
        ck_assert_int_eq(l.jobs_per_hour, 5);
        ck_assert_int_eq(l.storage_bytes, 10LL * 1024 * 1024 * 1024);
    }
    kd_plan_limits_get(cfg, NULL, false, &l);
    ck_assert_int_eq(l.jobs_per_hour, 5);
    kd_config_free(cfg);
}
END_TEST

START_TEST(admins_are_exempt)
{
    struct kd_config *cfg = load("jobs_per_hour_cap = 0\nplan_free_jobs_per_hour = 0\n");
    struct kd_plan_limits l;

    kd_plan_limits_get(cfg, "free", true, &l);
    ck_assert_int_eq(l.jobs_per_hour, -1);
    ck_assert_int_eq(l.uploads, -1);
    ck_assert_int_eq(l.storage_bytes, -1);
    kd_plan_limits_get(cfg, "premium", true, &l);
    ck_assert_int_eq(l.jobs_per_hour, -1);
    kd_config_free(cfg);
}
END_TEST

START_TEST(the_cap_binds_every_plan)
{
    struct kd_config *cfg =
        load("plan_premium_jobs_per_hour = 500\nplan_free_jobs_per_hour = 250\n");
    struct kd_plan_limits l;

    /* The default cap (100) is below both plans' values. */
    kd_plan_limits_get(cfg, "premium", false, &l);
    ck_assert_int_eq(l.jobs_per_hour, 100);
    kd_plan_limits_get(cfg, "free", false, &l);
    ck_assert_int_eq(l.jobs_per_hour, 100);
    /* A plan exactly at the cap keeps it. */
    kd_config_free(cfg);
    cfg = load("plan_premium_jobs_per_hour = 100\n");
    kd_plan_limits_get(cfg, "premium", false, &l);
    ck_assert_int_eq(l.jobs_per_hour, 100);
    kd_config_free(cfg);
}
END_TEST

START_TEST(configuration_overrides)
{
    struct kd_config *cfg =
        load("plan_free_jobs_per_hour = 7\nplan_premium_jobs_per_hour = 30\n"
             "jobs_per_hour_cap = 20\nplan_free_uploads = 2\nplan_premium_uploads = 4\n"
             "plan_free_storage_bytes = 1M\nplan_premium_storage_bytes = 3000\n");
    struct kd_plan_limits l;

    kd_plan_limits_get(cfg, "free", false, &l);
    ck_assert_int_eq(l.jobs_per_hour, 7);
    ck_assert_int_eq(l.uploads, 2);
    ck_assert_int_eq(l.storage_bytes, 1024 * 1024);
    kd_plan_limits_get(cfg, "premium", false, &l);
    ck_assert_int_eq(l.jobs_per_hour, 20); /* 30, capped */
    ck_assert_int_eq(l.uploads, 4);
    ck_assert_int_eq(l.storage_bytes, 3000);
    kd_config_free(cfg);
    /* The environment wins over the file. */
    setenv("KADR_PLAN_FREE_JOBS_PER_HOUR", "3", 1);
    cfg = load("plan_free_jobs_per_hour = 7\n");
    kd_plan_limits_get(cfg, "free", false, &l);
    ck_assert_int_eq(l.jobs_per_hour, 3);
    kd_config_free(cfg);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("plan");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, unknown_plans_get_the_free_limits);
    tcase_add_test(tc, admins_are_exempt);
    tcase_add_test(tc, the_cap_binds_every_plan);
    tcase_add_test(tc, configuration_overrides);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
