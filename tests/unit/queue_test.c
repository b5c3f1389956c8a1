/* Unit tests of src/queue.c against a real redis-server started on a private
 * unix socket (skipped, and counted as passed, when redis-server is absent). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "queue.h"
#include "util.h"

static char dir[64], sock[128];
static pid_t redis_pid = -1;
static struct kd_config *cfg;

static void
start_redis(void)
{
    char port_arg[] = "0";

    redis_pid = fork();
    ck_assert_int_ge(redis_pid, 0);
    if (redis_pid == 0) {
        execlp("redis-server", "redis-server", "--port", port_arg, "--unixsocket", sock,
               "--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning", "--logfile", "/dev/null",
               (char *)NULL);
        _exit(127);
    }
    /* Wait for the socket to appear (a condition, with a bound). */
    for (int i = 0; i < 500; i++) {
        struct stat st;

        if (stat(sock, &st) == 0)
            return;
        usleep(10000);
    }
    ck_abort_msg("redis-server did not start");
}

static void
stop_redis(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
        redis_pid = -1;
    }
}

static void
setup(void)
{
    char err[256];

    snprintf(dir, sizeof(dir), "/tmp/kadr-queue-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
    start_redis();
    setenv("KADR_REDIS_SOCKET", sock, 1);
    ck_assert_int_eq(kd_config_load(NULL, &cfg, err, sizeof(err)), KD_OK);
}

static void
teardown(void)
{
    stop_redis();
    kd_config_free(cfg);
    unlink(sock);
    rmdir(dir);
}

START_TEST(most_urgent_first_then_fifo)
{
    struct kd_queue *q = NULL;
    struct kd_queue_msg m;

    ck_assert_int_eq(kd_queue_open(cfg, &q), KD_OK);
    ck_assert_int_eq(kd_queue_ping(q), KD_OK);
    ck_assert_int_eq(kd_queue_push(q, "edit", "low-1", 9), KD_OK);
    ck_assert_int_eq(kd_queue_push(q, "edit", "mid-1", 5), KD_OK);
    ck_assert_int_eq(kd_queue_push(q, "edit", "mid-2", 5), KD_OK);
    ck_assert_int_eq(kd_queue_push(q, "probe", "urgent", 1), KD_OK);
    ck_assert_int_eq(kd_queue_push(q, "edit", "clamped", 99), KD_OK);
    const char *want[] = {"urgent", "mid-1", "mid-2", "low-1", "clamped"};
    for (size_t i = 0; i < KD_ARRAY_LEN(want); i++) {
        ck_assert_int_eq(kd_queue_next(q, "c1", 100, &m), KD_OK);
        ck_assert_str_eq(m.ref, want[i]);
        ck_assert_int_eq(kd_queue_ack(q, &m), KD_OK);
    }
    ck_assert_str_eq(m.kind, "edit");
    ck_assert_int_eq(m.priority, 10);
    ck_assert_int_eq(kd_queue_next(q, "c1", 50, &m), KD_EAGAIN);
    kd_queue_close(q);
}
END_TEST

START_TEST(blocking_read_wakes_on_push)
{
    struct kd_queue *q = NULL, *p = NULL;
    struct kd_queue_msg m;
    pid_t child;
    int64_t t0;

    ck_assert_int_eq(kd_queue_open(cfg, &q), KD_OK);
    ck_assert_int_eq(kd_queue_next(q, "c1", 10, &m), KD_EAGAIN); /* creates the group */
    child = fork();
    if (child == 0) {
        usleep(200000);
        if (kd_queue_open(cfg, &p) != KD_OK || kd_queue_push(p, "edit", "late", 3) != KD_OK)
            _exit(1);
        kd_queue_close(p);
        _exit(0);
    }
    t0 = kd_mono_ms();
    ck_assert_int_eq(kd_queue_next(q, "c1", 5000, &m), KD_OK);
    ck_assert_str_eq(m.ref, "late");
    ck_assert_int_lt(kd_mono_ms() - t0, 3000);
    waitpid(child, NULL, 0);
    kd_queue_close(q);
}
END_TEST

START_TEST(unacknowledged_entries_are_claimed)
{
    struct kd_queue *q = NULL;
    struct kd_queue_msg m, c;
    struct kd_queue_stats s;

    ck_assert_int_eq(kd_queue_open(cfg, &q), KD_OK);
    ck_assert_int_eq(kd_queue_push(q, "edit", "job-a", 4), KD_OK);
    ck_assert_int_eq(kd_queue_next(q, "dead-worker", 100, &m), KD_OK);
    /* Not idle long enough yet: nothing to claim. */
    ck_assert_int_eq(kd_queue_claim_stale(q, "c2", 60000, &c), KD_EAGAIN);
    usleep(150000);
    ck_assert_int_eq(kd_queue_claim_stale(q, "c2", 100, &c), KD_OK);
    ck_assert_str_eq(c.ref, "job-a");
    ck_assert_str_eq(c.id, m.id);
    ck_assert_int_eq(kd_queue_stats(q, &s), KD_OK);
    ck_assert_int_eq(s.pending[3], 1);
    ck_assert_int_eq(kd_queue_ack(q, &c), KD_OK);
    ck_assert_int_eq(kd_queue_stats(q, &s), KD_OK);
    ck_assert_int_eq(s.pending[3], 0);
    ck_assert_int_eq(s.length[3], 0);
    kd_queue_close(q);
}
END_TEST

START_TEST(redis_down_is_unavailable_then_recovers)
{
    struct kd_queue *q = NULL;
    struct kd_queue_msg m;

    ck_assert_int_eq(kd_queue_open(cfg, &q), KD_OK);
    ck_assert_int_eq(kd_queue_ping(q), KD_OK);
    stop_redis();
    unlink(sock);
    ck_assert_int_eq(kd_queue_ping(q), KD_EUNAVAIL);
    ck_assert_int_eq(kd_queue_push(q, "edit", "x", 5), KD_EUNAVAIL);
    ck_assert_int_eq(kd_queue_next(q, "c1", 10, &m), KD_EUNAVAIL);
    start_redis();
    ck_assert_int_eq(kd_queue_push(q, "edit", "after", 5), KD_OK);
    ck_assert_int_eq(kd_queue_next(q, "c1", 100, &m), KD_OK);
    ck_assert_str_eq(m.ref, "after");
    kd_queue_close(q);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("queue");
    TCase *tc = tcase_create("redis");
    SRunner *sr;
    int failed;

    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        printf("queue_test: redis-server not installed, skipped\n");
        return 77; /* automake's "skipped" */
    }
    /* As in every kadr program: a peer that went away is an error return,
     * not a signal. */
    signal(SIGPIPE, SIG_IGN);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, most_urgent_first_then_fifo);
    tcase_add_test(tc, blocking_read_wakes_on_push);
    tcase_add_test(tc, unacknowledged_entries_are_claimed);
    tcase_add_test(tc, redis_down_is_unavailable_then_recovers);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
