/* Unit tests of src/stats.c: counters shared through a mapped file, as the
 * API processes share them: what one process counts, another sees. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stats.h"

static char dir[64], path[128];

static void
setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/kadr-stats-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/counters", dir);
}

static void
teardown(void)
{
    char p[160];

    unlink(path);
    snprintf(p, sizeof(p), "%s/link", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/other", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/sub", dir);
    rmdir(p);
    rmdir(dir);
}

START_TEST(counts_survive_reopening)
{
    struct kd_stats *a = NULL, *b = NULL;
    struct stat st;

    ck_assert_int_eq(kd_stats_open(path, &a), KD_OK);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_uint_eq(kd_stats_get(a, KD_STAT_REQ_2XX), 0);
    kd_stats_add(a, KD_STAT_REQ_2XX, 3);
    /* A second mapping, as another process would have, sees the same. */
    ck_assert_int_eq(kd_stats_open(path, &b), KD_OK);
    ck_assert_uint_eq(kd_stats_get(b, KD_STAT_REQ_2XX), 3);
    kd_stats_add(b, KD_STAT_REQ_2XX, 1);
    ck_assert_uint_eq(kd_stats_get(a, KD_STAT_REQ_2XX), 4);
    kd_stats_close(a);
    kd_stats_close(b);
    ck_assert_int_eq(kd_stats_open(path, &a), KD_OK);
    ck_assert_uint_eq(kd_stats_get(a, KD_STAT_REQ_2XX), 4);
    kd_stats_close(a);
}
END_TEST

START_TEST(processes_share_the_counts)
{
    enum { CHILDREN = 4, EACH = 20000 };
    struct kd_stats *s = NULL;
    pid_t pids[CHILDREN];
    int i, status;

    /* Each child maps the file itself, as spawn-fcgi's processes do, and
     * all count at the same time: no increment may be lost. */
    for (i = 0; i < CHILDREN; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            struct kd_stats *c = NULL;

            if (kd_stats_open(path, &c) != KD_OK)
                _exit(1);
            for (int k = 0; k < EACH; k++)
                kd_stats_count_status(c, 200);
            kd_stats_count_status(c, 503);
            kd_stats_close(c);
            _exit(0);
        }
    }
    for (i = 0; i < CHILDREN; i++) {
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    ck_assert_int_eq(kd_stats_open(path, &s), KD_OK);
    ck_assert_uint_eq(kd_stats_get(s, KD_STAT_REQ_2XX), (uint64_t)CHILDREN * EACH);
    ck_assert_uint_eq(kd_stats_get(s, KD_STAT_REQ_5XX), CHILDREN);
    ck_assert_uint_eq(kd_stats_get(s, KD_STAT_ERRORS), CHILDREN);
    kd_stats_close(s);
}
END_TEST

START_TEST(statuses_by_class)
{
    struct kd_stats *s = NULL;
    static const int statuses[] = {101, 200, 204, 302, 400, 401, 404, 429, 500, 502, 503, 99, 600};

    ck_assert_int_eq(kd_stats_open(path, &s), KD_OK);
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        kd_stats_count_status(s, statuses[i]);
    ck_assert_uint_eq(kd_stats_get(s, KD_STAT_REQ_1XX), 1);
    ck_assert_uint_eq(kd_stats_get(s, KD_STAT_REQ_2XX), 2);
    ck_assert_uint_eq(kd_stats_get(s, KD_STAT_REQ_3XX), 1);
    ck_assert_uint_eq(kd_stats_get(s, KD_STAT_REQ_4XX), 4);
    ck_assert_uint_eq(kd_stats_get(s, KD_STAT_REQ_5XX), 3);
    ck_assert_uint_eq(kd_stats_get(s, KD_STAT_UNAUTHORIZED), 1);
    ck_assert_uint_eq(kd_stats_get(s, KD_STAT_LIMITED), 1);
    ck_assert_uint_eq(kd_stats_get(s, KD_STAT_ERRORS), 2); /* 502 is nginx's */
    kd_stats_close(s);
    /* Without a file nothing is counted and nothing breaks. */
    kd_stats_count_status(NULL, 200);
    ck_assert_uint_eq(kd_stats_get(NULL, KD_STAT_REQ_2XX), 0);
    kd_stats_close(NULL);
}
END_TEST

START_TEST(foreign_files_are_left_alone)
{
    struct kd_stats *s = NULL;
    char other[160], link[160], sub[160], buf[32] = "";
    struct stat st;
    FILE *f;

    snprintf(other, sizeof(other), "%s/other", dir);
    f = fopen(other, "w");
    ck_assert_ptr_nonnull(f);
    fputs("precious data\n", f);
    fclose(f);
    ck_assert_int_eq(kd_stats_open(other, &s), KD_EINVAL);
    f = fopen(other, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
    fclose(f);
    ck_assert_str_eq(buf, "precious data\n");
    ck_assert_int_eq(stat(other, &st), 0);
    ck_assert_int_eq(st.st_size, 14);
    /* Not through a symbolic link, and not a directory. */
    snprintf(link, sizeof(link), "%s/link", dir);
    ck_assert_int_eq(symlink(path, link), 0);
    ck_assert_int_ne(kd_stats_open(link, &s), KD_OK);
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    ck_assert_int_ne(kd_stats_open(sub, &s), KD_OK);
    ck_assert_ptr_null(s);
}
END_TEST

int
main(void)
{
    Suite *su = suite_create("stats");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, counts_survive_reopening);
    tcase_add_test(tc, processes_share_the_counts);
    tcase_add_test(tc, statuses_by_class);
    tcase_add_test(tc, foreign_files_are_left_alone);
    suite_add_tcase(su, tc);
    sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
