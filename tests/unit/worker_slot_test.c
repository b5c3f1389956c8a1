/* Unit tests of workers/slot.c: reading a child's pipe and naming how a
 * task ended. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "slot.h"
#include "util.h"

static const struct kd_child_limits lim = {
    .mem_mb = 1024,
    .cpu_s = 60,
    .file_mb = 16,
    .nofile = 20,
};
static char events[256];

static void
on_event(void *ud, struct kd_slot *s, const struct kd_proto_msg *m)
{
    (void)ud;
    (void)s;
    snprintf(events + strlen(events), sizeof(events) - strlen(events), "%s:%s;", m->event,
             m->detail);
}

/* Runs fn in slot s until its child is done, as the worker's loop does. */
static void
drive(struct kd_slot *s, kd_child_fn *fn, int64_t timeout_ms)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};
    int64_t give_up = kd_mono_ms() + 20000;

    kd_slot_init(s);
    s->kind = KD_TASK_EDIT;
    snprintf(s->work_dir, sizeof(s->work_dir), "/tmp/kd-slot-test-%d", (int)getpid());
    ck_assert_int_eq(kd_workdir_make(s->work_dir), KD_OK);
    events[0] = '\0';
    ck_assert_int_eq(kd_slot_start(s, &lim, timeout_ms, fn, NULL), KD_OK);
    ck_assert_int_eq(s->state, KD_SLOT_RUNNING);
    while (!kd_slot_child_done(s)) {
        ck_assert(kd_mono_ms() < give_up);
        kd_slot_pump(s, on_event, NULL);
        kd_slot_check(s, kd_mono_ms());
        nanosleep(&ts, NULL);
    }
    kd_slot_conclude(s, 42);
    ck_assert_int_eq(s->state, KD_SLOT_FINISHING);
}

static int
well_behaved(void *ud, int fd)
{
    (void)ud;
    if (kd_proto_send_progress(fd, 0.3) != KD_OK || kd_proto_send_progress(fd, 0.2) != KD_OK ||
        kd_proto_send_event(fd, "warning", "odd frame") != KD_OK)
        return 1;
    return kd_proto_send(fd, json_pack("{s:b,s:f}", "ok", 1, "duration", 2.5)) == KD_OK ? 0 : 1;
}

START_TEST(a_good_child_succeeds)
{
    struct kd_slot s;

    drive(&s, well_behaved, 10000);
    ck_assert_int_eq(s.outcome, KD_OUTCOME_SUCCESS);
    ck_assert(s.progress > 0.29 && s.progress < 0.31); /* never decreases */
    ck_assert_str_eq(events, "warning:odd frame;");
    ck_assert(json_number_value(json_object_get(s.result.payload, "duration")) == 2.5);
    kd_slot_release(&s);
    ck_assert_int_eq(s.state, KD_SLOT_FREE);
    ck_assert_int_ne(access(s.work_dir, F_OK), 0);
}
END_TEST

static int
reports_failure(void *ud, int fd)
{
    (void)ud;
    return kd_proto_send_error(fd, "invalid_media", "no video stream") == KD_OK ? 0 : 1;
}

START_TEST(a_reported_failure_keeps_its_code)
{
    struct kd_slot s;

    drive(&s, reports_failure, 10000);
    ck_assert_int_eq(s.outcome, KD_OUTCOME_FAILURE);
    ck_assert_str_eq(s.code, "invalid_media");
    ck_assert_str_eq(s.message, "no video stream");
    kd_slot_release(&s);
}
END_TEST

static int
crashes(void *ud, int fd)
{
    (void)ud;
    if (kd_proto_send_progress(fd, 0.5) != KD_OK)
        return 1;
    raise(SIGABRT); /* not SIGSEGV: ASan would report it as a bug */
    return 0;
}

START_TEST(a_crash_is_internal_and_named)
{
    struct kd_slot s;

    drive(&s, crashes, 10000);
    ck_assert_int_eq(s.outcome, KD_OUTCOME_FAILURE);
    ck_assert_str_eq(s.code, "internal");
    ck_assert_msg(strstr(s.message, "SIGABRT") != NULL, "%s", s.message);
    kd_slot_release(&s);
}
END_TEST

static int
silent_exit(void *ud, int fd)
{
    (void)ud;
    (void)fd;
    return 3;
}

START_TEST(no_result_is_internal)
{
    struct kd_slot s;

    drive(&s, silent_exit, 10000);
    ck_assert_int_eq(s.outcome, KD_OUTCOME_FAILURE);
    ck_assert_str_eq(s.code, "internal");
    ck_assert_msg(strstr(s.message, "status 3") != NULL, "%s", s.message);
    kd_slot_release(&s);
}
END_TEST

static int
garbage(void *ud, int fd)
{
    (void)ud;
    if (write(fd, "hello\n", 6) != 6)
        return 1;
    sleep(30); /* killed long before */
    return 0;
}

START_TEST(protocol_breakers_are_killed)
{
    struct kd_slot s;

    drive(&s, garbage, 10000);
    ck_assert_int_eq(s.killed, KD_KILL_PROTOCOL);
    ck_assert_int_eq(s.outcome, KD_OUTCOME_FAILURE);
    ck_assert_str_eq(s.code, "internal");
    ck_assert_msg(strstr(s.message, "misbehaved") != NULL, "%s", s.message);
    kd_slot_release(&s);
}
END_TEST

static int
sleeper(void *ud, int fd)
{
    (void)ud;
    (void)fd;
    sleep(30);
    return 0;
}

START_TEST(deadlines_kill)
{
    struct kd_slot s;

    drive(&s, sleeper, 300);
    ck_assert_int_eq(s.outcome, KD_OUTCOME_FAILURE);
    ck_assert_str_eq(s.code, "timeout");
    ck_assert_msg(strstr(s.message, "42 s") != NULL, "%s", s.message);
    kd_slot_release(&s);
}
END_TEST

static volatile sig_atomic_t stop_seen;

static void
on_stop(int sig)
{
    (void)sig;
    stop_seen = 1;
}

/* Like the job child: handles the stop signal, says it is ready (a
 * progress line), works until asked to stop, then reports and exits. */
static int
stops_when_asked(void *ud, int fd)
{
    struct sigaction sa = {.sa_handler = on_stop};
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};

    (void)ud;
    sigemptyset(&sa.sa_mask);
    if (sigaction(KD_CHILD_STOP_SIGNAL, &sa, NULL) != 0 || kd_proto_send_progress(fd, 0.1) != KD_OK)
        return 1;
    while (!stop_seen)
        nanosleep(&ts, NULL);
    return kd_proto_send_error(fd, "cancelled", "cancelled") == KD_OK ? 0 : 1;
}

/* A child that does not stop when asked. */
static int
deaf_to_stop(void *ud, int fd)
{
    struct sigaction sa = {.sa_handler = SIG_IGN};

    (void)ud;
    sigemptyset(&sa.sa_mask);
    if (sigaction(KD_CHILD_STOP_SIGNAL, &sa, NULL) != 0 || kd_proto_send_progress(fd, 0.1) != KD_OK)
        return 1;
    for (;;)
        pause();
}

/* Starts fn, waits for its first progress line, cancels it, and drives
 * it to the end; *stop_ms is the time from cancel to reaped. */
static void
cancel_child(struct kd_slot *s, kd_child_fn *fn, int64_t *stop_ms)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 2 * 1000 * 1000};
    int64_t give_up = kd_mono_ms() + 20000, t0;

    kd_slot_init(s);
    s->kind = KD_TASK_EDIT;
    snprintf(s->work_dir, sizeof(s->work_dir), "/tmp/kd-slot-test-%d", (int)getpid());
    ck_assert_int_eq(kd_workdir_make(s->work_dir), KD_OK);
    ck_assert_int_eq(kd_slot_start(s, &lim, 60000, fn, NULL), KD_OK);
    while (s->progress <= 0) {
        ck_assert(kd_mono_ms() < give_up);
        kd_slot_pump(s, on_event, NULL);
        nanosleep(&ts, NULL);
    }
    t0 = kd_mono_ms();
    kd_slot_kill(s, KD_KILL_CANCEL);
    while (!kd_slot_child_done(s)) {
        ck_assert(kd_mono_ms() < give_up);
        kd_slot_pump(s, on_event, NULL);
        kd_slot_check(s, kd_mono_ms());
        nanosleep(&ts, NULL);
    }
    *stop_ms = s->exited_ms - t0;
    kd_slot_conclude(s, 42);
}

START_TEST(a_cancelled_child_stops_cleanly)
{
    struct kd_slot s;
    int64_t ms;

    /* Asked, it closes up and exits by itself, well before the grace. */
    cancel_child(&s, stops_when_asked, &ms);
    ck_assert_msg(WIFEXITED(s.wstatus) && WEXITSTATUS(s.wstatus) == 0, "status %d", s.wstatus);
    ck_assert(s.has_result);
    ck_assert(!s.is_stop_forced);
    ck_assert_int_lt(ms, KD_SLOT_STOP_GRACE_MS);
    ck_assert_int_eq(s.outcome, KD_OUTCOME_CANCELLED);
    kd_slot_release(&s);
    /* One that does not stop is killed once the grace has passed. */
    cancel_child(&s, deaf_to_stop, &ms);
    ck_assert(WIFSIGNALED(s.wstatus) && WTERMSIG(s.wstatus) == SIGKILL);
    ck_assert(s.is_stop_forced);
    ck_assert_int_ge(ms, KD_SLOT_STOP_GRACE_MS);
    ck_assert_int_eq(s.outcome, KD_OUTCOME_CANCELLED);
    kd_slot_release(&s);
}
END_TEST

/* A kill decided by the parent wins over what the child reported. */
START_TEST(kill_reasons_decide)
{
    static const struct {
        enum kd_kill_reason reason;
        enum kd_outcome outcome;
    } cases[] = {
        {KD_KILL_CANCEL, KD_OUTCOME_CANCELLED},
        {KD_KILL_LEASE, KD_OUTCOME_LOST},
        {KD_KILL_SHUTDOWN, KD_OUTCOME_REQUEUE},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kd_slot s;

        kd_slot_init(&s);
        s.state = KD_SLOT_RUNNING;
        s.reaped = true;
        s.wstatus = W_EXITCODE(0, SIGKILL);
        s.killed = cases[i].reason;
        kd_slot_conclude(&s, 1);
        ck_assert_int_eq(s.outcome, cases[i].outcome);
    }
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("worker_slot");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, a_good_child_succeeds);
    tcase_add_test(tc, a_reported_failure_keeps_its_code);
    tcase_add_test(tc, a_crash_is_internal_and_named);
    tcase_add_test(tc, no_result_is_internal);
    tcase_add_test(tc, protocol_breakers_are_killed);
    tcase_add_test(tc, deadlines_kill);
    tcase_add_test(tc, kill_reasons_decide);
    tcase_add_test(tc, a_cancelled_child_stops_cleanly);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
