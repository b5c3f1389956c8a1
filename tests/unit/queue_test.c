/* Unit tests of src/queue.c against a real redis-server started on a private
 * unix socket (skipped, and counted as passed, when redis-server is absent). */
#include <check.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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
        execlp("redis-server", "redis-server", "--port", port_arg, "--unixsocket", sock, "--save",
               "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning", "--logfile",
               "/dev/null", (char *)NULL);
        _exit(127);
    }
    /* Wait until the server accepts connections: the socket file appears
     * at bind(), a moment before listen(), so its existence is not enough
     * on a loaded machine. A condition with a bound of 10 s. */
    for (int i = 0; i < 1000; i++) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        bool up;

        memcpy(sa.sun_path, sock, strnlen(sock, sizeof(sa.sun_path) - 1));
        up = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (fd >= 0)
            close(fd);
        if (up)
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

/* Runs redis-cli on our socket with up to 9 arguments; returns its status. */
static int
cli(const char *const *args, size_t n)
{
    const char *argv[13] = {"redis-cli", "-s", sock};
    pid_t pid;
    int st;

    ck_assert_uint_le(n, 9);
    memcpy(argv + 3, args, n * sizeof(*args));
    argv[3 + n] = NULL;
    if ((pid = fork()) == 0) {
        int devnull = open("/dev/null", O_WRONLY);

        dup2(devnull, STDOUT_FILENO);
        execvp("redis-cli", (char *const *)argv);
        _exit(127);
    }
    ck_assert_int_gt(pid, 0);
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs redis-cli after delay_ms in a child; returns its pid. */
static pid_t
cli_later(int delay_ms, const char *const *args, size_t n)
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        usleep((useconds_t)delay_ms * 1000);
        _exit(cli(args, n));
    }
    return pid;
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

START_TEST(redis_losing_its_data_is_not_an_error)
{
    static const char *const flush[] = {"FLUSHALL"};
    struct kd_queue *q = NULL;
    struct kd_queue_msg m;
    struct kd_queue_stats st;
    pid_t child;
    int64_t t0;

    ck_assert_int_eq(kd_queue_open(cfg, &q), KD_OK);
    ck_assert_int_eq(kd_queue_next(q, "c1", 10, &m), KD_EAGAIN); /* creates the groups */
    /* Blocked in XREADGROUP when the streams vanish: Redis 7 answers
     * UNBLOCKED; that is nothing to deliver, not an internal error. */
    child = cli_later(200, flush, 1);
    t0 = kd_mono_ms();
    ck_assert_int_eq(kd_queue_next(q, "c1", 3000, &m), KD_EAGAIN);
    ck_assert_int_lt(kd_mono_ms() - t0, 2500);
    waitpid(child, NULL, 0);
    ck_assert_int_eq(kd_queue_push(q, "edit", "after-flush", 2), KD_OK);
    ck_assert_int_eq(kd_queue_next(q, "c1", 100, &m), KD_OK);
    ck_assert_str_eq(m.ref, "after-flush");
    ck_assert_int_eq(kd_queue_ack(q, &m), KD_OK);
    /* Not blocked: the group is missing (NOGROUP) until the next call. */
    ck_assert_int_eq(cli(flush, 1), 0);
    ck_assert_int_eq(kd_queue_push(q, "edit", "after-second-flush", 2), KD_OK);
    ck_assert_int_eq(kd_queue_next(q, "c1", 100, &m), KD_EAGAIN);
    ck_assert_int_eq(kd_queue_next(q, "c1", 100, &m), KD_OK);
    ck_assert_str_eq(m.ref, "after-second-flush");
    /* Acknowledging what the lost group had delivered is harmless. */
    ck_assert_int_eq(cli(flush, 1), 0);
    ck_assert_int_eq(kd_queue_ack(q, &m), KD_OK);
    /* And the statistics of an empty Redis are zeros, not an error. */
    ck_assert_int_eq(cli(flush, 1), 0);
    ck_assert_int_eq(kd_queue_stats(q, &st), KD_OK);
    ck_assert_int_eq(st.length[1], 0);
    ck_assert_int_eq(st.pending[1], 0);
    kd_queue_close(q);
}
END_TEST

START_TEST(a_restart_between_calls_loses_nothing)
{
    struct kd_queue *q = NULL;
    struct kd_queue_msg m;

    ck_assert_int_eq(kd_queue_open(cfg, &q), KD_OK);
    ck_assert_int_eq(kd_queue_ping(q), KD_OK);
    stop_redis();
    unlink(sock);
    start_redis();
    /* The connection is stale; the push goes through on a new one. */
    ck_assert_int_eq(kd_queue_push(q, "edit", "after-restart", 5), KD_OK);
    stop_redis();
    unlink(sock);
    start_redis();
    ck_assert_int_eq(kd_queue_ping(q), KD_OK);
    kd_queue_close(q);
    ck_assert_int_eq(kd_queue_open(cfg, &q), KD_OK);
    ck_assert_int_eq(kd_queue_push(q, "edit", "x", 5), KD_OK);
    ck_assert_int_eq(kd_queue_next(q, "c1", 100, &m), KD_OK);
    kd_queue_close(q);
}
END_TEST

START_TEST(oversized_or_malformed_entries_are_dropped)
{
    char long_ref[80];
    struct kd_queue *q = NULL;
    struct kd_queue_msg m;
    struct kd_queue_stats st;

    memset(long_ref, 'a', sizeof(long_ref) - 1);
    long_ref[sizeof(long_ref) - 1] = '\0';
    const char *const xadd_long[] = {"XADD", "kadr:q:3", "*", "kind", "edit", "ref", long_ref};
    const char *const xadd_nokind[] = {"XADD", "kadr:q:4", "*", "ref", "r1"};
    const char *const read_dead[] = {"XREADGROUP", "GROUP",   "workers",  "dead", "COUNT",
                                     "1",          "STREAMS", "kadr:q:4", ">"};

    ck_assert_int_eq(kd_queue_open(cfg, &q), KD_OK);
    ck_assert_int_eq(kd_queue_push(q, "edit", long_ref, 3), KD_EINVAL);
    ck_assert_int_eq(kd_queue_push(q, "a-kind-far-too-long", "r", 3), KD_EINVAL);
    ck_assert_int_eq(kd_queue_next(q, "c1", 10, &m), KD_EAGAIN); /* creates the groups */
    /* Written by someone else: a ref cut to 47 bytes is not delivered. */
    ck_assert_int_eq(cli(xadd_long, 7), 0);
    ck_assert_int_eq(kd_queue_next(q, "c1", 10, &m), KD_EAGAIN);
    /* An entry without a kind, delivered to a consumer that died: the
     * claimer drops it instead of taking it over again and again. */
    ck_assert_int_eq(cli(xadd_nokind, 5), 0);
    ck_assert_int_eq(cli(read_dead, 9), 0);
    usleep(150000);
    ck_assert_int_eq(kd_queue_claim_stale(q, "c2", 100, &m), KD_EAGAIN);
    ck_assert_int_eq(kd_queue_stats(q, &st), KD_OK);
    ck_assert_int_eq(st.pending[2], 0);
    ck_assert_int_eq(st.pending[3], 0);
    ck_assert_int_eq(st.length[2], 0);
    ck_assert_int_eq(st.length[3], 0);
    kd_queue_close(q);
}
END_TEST

START_TEST(one_lock_holder_at_a_time)
{
    static const char *const flush[] = {"FLUSHALL"};
    struct kd_queue *a = NULL, *b = NULL;
    bool held, created;

    ck_assert_int_eq(kd_queue_open(cfg, &a), KD_OK);
    ck_assert_int_eq(kd_queue_open(cfg, &b), KD_OK);
    ck_assert_int_eq(kd_queue_lock(a, "leader", "tok-a", 5000, &held), KD_OK);
    ck_assert(held);
    ck_assert_int_eq(kd_queue_lock(b, "leader", "tok-b", 5000, &held), KD_OK);
    ck_assert(!held);
    /* Renewal by the holder. */
    ck_assert_int_eq(kd_queue_lock(a, "leader", "tok-a", 5000, &held), KD_OK);
    ck_assert(held);
    /* Someone else's unlock changes nothing. */
    ck_assert_int_eq(kd_queue_unlock(b, "leader", "tok-b"), KD_OK);
    ck_assert_int_eq(kd_queue_lock(b, "leader", "tok-b", 5000, &held), KD_OK);
    ck_assert(!held);
    ck_assert_int_eq(kd_queue_unlock(a, "leader", "tok-a"), KD_OK);
    ck_assert_int_eq(kd_queue_lock(b, "leader", "tok-b", 200, &held), KD_OK);
    ck_assert(held);
    /* Expiry hands it over without an unlock. */
    usleep(400 * 1000);
    ck_assert_int_eq(kd_queue_lock(a, "leader", "tok-a", 5000, &held), KD_OK);
    ck_assert(held);
    ck_assert_int_eq(kd_queue_lock(a, "leader", "", 5000, &held), KD_EINVAL);

    /* The marker: created once, and again after Redis lost its data. */
    ck_assert_int_eq(kd_queue_marker(a, "epoch", &created), KD_OK);
    ck_assert(created);
    ck_assert_int_eq(kd_queue_marker(b, "epoch", &created), KD_OK);
    ck_assert(!created);
    ck_assert_int_eq(cli(flush, 1), 0);
    ck_assert_int_eq(kd_queue_marker(a, "epoch", &created), KD_OK);
    ck_assert(created);
    /* Redis down: unavailable, not an answer. */
    stop_redis();
    ck_assert_int_eq(kd_queue_marker(a, "epoch", &created), KD_EUNAVAIL);
    held = false;
    ck_assert_int_eq(kd_queue_lock(b, "leader", "tok-b", 5000, &held), KD_EUNAVAIL);
    ck_assert(!held);
    kd_queue_close(a);
    kd_queue_close(b);
}
END_TEST

START_TEST(a_very_long_wait_is_fine)
{
    static const char *const push[] = {"XADD", "kadr:q:1", "*", "kind", "edit", "ref", "late"};
    struct kd_queue *q = NULL;
    struct kd_queue_msg m;
    pid_t child;

    ck_assert_int_eq(kd_queue_open(cfg, &q), KD_OK);
    ck_assert_int_eq(kd_queue_next(q, "c1", 10, &m), KD_EAGAIN);
    child = cli_later(200, push, 7);
    ck_assert_int_eq(kd_queue_next(q, "c1", INT_MAX, &m), KD_OK);
    ck_assert_str_eq(m.ref, "late");
    waitpid(child, NULL, 0);
    kd_queue_close(q);
}
END_TEST

int
main(void)
{
    Suite *s;
    TCase *tc;
    SRunner *sr;
    int failed;

    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        printf("queue_test: redis-server not installed, skipped\n");
        return 77; /* automake's "skipped" */
    }
    /* As in every kadr program: a peer that went away is an error return,
     * not a signal. */
    signal(SIGPIPE, SIG_IGN);
    s = suite_create("queue");
    tc = tcase_create("redis");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, most_urgent_first_then_fifo);
    tcase_add_test(tc, blocking_read_wakes_on_push);
    tcase_add_test(tc, unacknowledged_entries_are_claimed);
    tcase_add_test(tc, redis_down_is_unavailable_then_recovers);
    tcase_add_test(tc, redis_losing_its_data_is_not_an_error);
    tcase_add_test(tc, a_restart_between_calls_loses_nothing);
    tcase_add_test(tc, oversized_or_malformed_entries_are_dropped);
    tcase_add_test(tc, a_very_long_wait_is_fine);
    tcase_add_test(tc, one_lock_holder_at_a_time);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
