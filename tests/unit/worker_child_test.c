/* Unit tests of workers/child.c: the sandbox a task's child runs in. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "proto.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static char base[64];

static void
setup(void)
{
    snprintf(base, sizeof(base), "/tmp/kd-child-test-%d", (int)getpid());
    ck_assert_int_eq(kd_workdir_make(base), KD_OK);
}

static void
teardown(void)
{
    kd_workdir_remove(base);
}

/* Runs fn in a sandboxed child; returns its wait status and, in out, the
 * last line it wrote. */
static int
run(const struct kd_child_limits *lim, kd_child_fn *fn, char *out, size_t out_len)
{
    struct kd_linereader lr;
    char buf[4096], *line;
    size_t len;
    pid_t pid;
    int fd, st;

    out[0] = '\0';
    ck_assert_int_eq(kd_child_spawn(lim, base, fn, NULL, &pid, &fd), KD_OK);
    kd_linereader_init(&lr, KD_PROTO_LINE_MAX);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;

        ck_assert_int_ge(poll(&p, 1, 20000), 1);
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            break;
        ck_assert_int_eq(kd_linereader_push(&lr, buf, (size_t)n), KD_OK);
        while (kd_linereader_next(&lr, &line, &len) == KD_OK)
            snprintf(out, out_len, "%s", line);
    }
    close(fd);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    kd_linereader_clear(&lr);
    return st;
}

static const struct kd_child_limits roomy = {
    .mem_mb = 1024,
    .cpu_s = 60,
    .file_mb = 16,
    .nofile = 20,
};

static int
report_sandbox(void *ud, int out_fd)
{
    char cwd[256], msg[512];
    struct rlimit nofile, core;
    struct sigaction term;
    int open_fds = 0, high_fd = -1;

    (void)ud;
    for (int fd = 0; fd < 1024; fd++) {
        if (fcntl(fd, F_GETFD) >= 0) {
            open_fds++;
            high_fd = fd;
        }
    }
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        cwd[0] = '\0';
    getrlimit(RLIMIT_NOFILE, &nofile);
    getrlimit(RLIMIT_CORE, &core);
    sigaction(SIGTERM, NULL, &term);
    snprintf(msg, sizeof(msg),
             "fds=%d high=%d nofile=%llu core=%llu nnp=%d pgrp=%d term_ign=%d cwd=%s", open_fds,
             high_fd, (unsigned long long)nofile.rlim_cur, (unsigned long long)core.rlim_cur,
             prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), getpgrp() == getpid(),
             term.sa_handler == SIG_IGN, cwd);
    return kd_proto_send_event(out_fd, "report", msg) == KD_OK ? 0 : 1;
}

START_TEST(the_child_is_sandboxed)
{
    char out[1024], want[512];
    int leak = open("/dev/null", O_RDONLY); /* must not reach the child */
    int st;

    ck_assert_int_ge(leak, 3);
    st = run(&roomy, report_sandbox, out, sizeof(out));
    close(leak);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(want, sizeof(want), "fds=4 high=3 nofile=20 core=0 nnp=1 pgrp=1 term_ign=1 cwd=%s",
             base);
    ck_assert_msg(strstr(out, want) != NULL, "got %s", out);
}
END_TEST

static int
burn_cpu(void *ud, int out_fd)
{
    volatile unsigned long x = 0;

    (void)ud;
    (void)out_fd;
    for (;;)
        x++;
    return 0;
}

START_TEST(cpu_time_is_limited)
{
    struct kd_child_limits lim = roomy;
    char out[256];
    int st;

    lim.cpu_s = 1;
    st = run(&lim, burn_cpu, out, sizeof(out));
    ck_assert(WIFSIGNALED(st));
    ck_assert(WTERMSIG(st) == SIGXCPU || WTERMSIG(st) == SIGKILL);
}
END_TEST

static int
write_big_file(void *ud, int out_fd)
{
    static char block[65536];
    int fd = open("big", O_WRONLY | O_CREAT | O_TRUNC, 0600);

    (void)ud;
    for (int i = 0; fd >= 0 && i < 64; i++)
        if (write(fd, block, sizeof(block)) < 0)
            break;
    return kd_proto_send_error(out_fd, "internal", "wrote it all") == KD_OK ? 0 : 1;
}

START_TEST(file_size_is_limited)
{
    struct kd_child_limits lim = roomy;
    char out[256];
    int st;

    lim.file_mb = 1;
    st = run(&lim, write_big_file, out, sizeof(out));
    ck_assert(WIFSIGNALED(st));
    ck_assert_int_eq(WTERMSIG(st), SIGXFSZ);
}
END_TEST

#ifndef UNDER_ASAN
static int
allocate_a_lot(void *ud, int out_fd)
{
    size_t n = (size_t)512 * 1024 * 1024;
    char *p = malloc(n);

    (void)ud;
    if (p != NULL)
        memset(p, 1, n);
    return kd_proto_send_event(out_fd, "report", p == NULL ? "refused" : "allowed") == KD_OK ? 0
                                                                                             : 1;
}
#endif

START_TEST(memory_is_limited)
{
#ifdef UNDER_ASAN
    /* ASan's shadow memory rules out RLIMIT_AS; child.c skips it there. */
    return;
#else
    struct kd_child_limits lim = roomy;
    char out[256];
    int st;

    lim.mem_mb = 128;
    st = run(&lim, allocate_a_lot, out, sizeof(out));
    ck_assert(WIFEXITED(st));
    ck_assert_msg(strstr(out, "refused") != NULL, "got %s", out);
#endif
}
END_TEST

START_TEST(work_dirs_are_removed_without_following_links)
{
    char dir[128], path[256], outside[128];
    int fd;

    snprintf(outside, sizeof(outside), "%s-outside", base);
    fd = open(outside, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    snprintf(dir, sizeof(dir), "%s/job", base);
    ck_assert_int_eq(kd_workdir_make(dir), KD_OK);
    snprintf(path, sizeof(path), "%s/a", dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/a/b", dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/a/b/link", dir);
    ck_assert_int_eq(symlink(outside, path), 0);
    snprintf(path, sizeof(path), "%s/a/b/file", dir);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    /* Making it again starts from an empty directory. */
    ck_assert_int_eq(kd_workdir_make(dir), KD_OK);
    snprintf(path, sizeof(path), "%s/a", dir);
    ck_assert_int_ne(access(path, F_OK), 0);
    kd_workdir_remove(dir);
    ck_assert_int_ne(access(dir, F_OK), 0);
    ck_assert_int_eq(access(outside, F_OK), 0);
    unlink(outside);
}
END_TEST

/* errno of a call that returns -1 on failure; 0 when it succeeded. */
static int
err_of(long rc)
{
    return rc < 0 ? errno : 0;
}

static int
socket_err(int domain)
{
    int fd = socket(domain, SOCK_STREAM, 0);
    int e = fd < 0 ? errno : 0;

    if (fd >= 0)
        close(fd);
    return e;
}

static void *
thread_body(void *arg)
{
    return arg;
}

/* What the filter lets through and what it refuses, as one line. */
static int
probe_filter(void *ud, int out_fd)
{
    char msg[512];
    pthread_t t;
    void *back = NULL;
    int e_exec = -1, e_thread;

    (void)ud;
    e_thread = pthread_create(&t, NULL, thread_body, msg);
    if (e_thread == 0)
        pthread_join(t, &back);
#ifndef UNDER_ASAN
    /* On success this would become /bin/true and report nothing. */
    e_exec = err_of(execl("/bin/true", "true", (char *)NULL));
#endif
    snprintf(msg, sizeof(msg),
             "inet=%d inet6=%d unix=%d packet=%d unshare=%d clone3=%d uring=%d exec=%d "
             "thread=%d",
             socket_err(AF_INET), socket_err(AF_INET6), socket_err(AF_UNIX), socket_err(AF_PACKET),
             err_of(unshare(CLONE_NEWUSER)), err_of(syscall(SYS_clone3, NULL, (size_t)0)),
             err_of(syscall(SYS_io_uring_setup, 1, NULL)), e_exec,
             e_thread == 0 && back == msg ? 0 : e_thread);
    return kd_proto_send_event(out_fd, "report", msg) == KD_OK ? 0 : 1;
}

static void
expect_filter(bool inet)
{
    struct kd_child_limits lim = roomy;
    char out[1024], want[512];
    int st;

    lim.inet = inet;
    st = run(&lim, probe_filter, out, sizeof(out));
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(want, sizeof(want),
             "inet=%d inet6=%d unix=%d packet=%d unshare=%d clone3=%d uring=%d exec=%d thread=0",
             inet ? 0 : EACCES, inet ? 0 : EACCES, EACCES, EACCES, EPERM, ENOSYS, EPERM,
#ifdef UNDER_ASAN
             -1
#else
             EPERM
#endif
    );
    ck_assert_msg(strstr(out, want) != NULL, "got %s, want %s", out, want);
}

/* Local storage: no socket of any kind; no programs, namespaces or
 * io_uring; threads still start (glibc falls back from clone3). */
START_TEST(the_filter_refuses_sockets_and_exec)
{
    expect_filter(false);
}
END_TEST

/* S3 storage: Internet sockets for the child's own S3 requests, nothing
 * else changes. */
START_TEST(the_filter_allows_inet_for_s3)
{
    expect_filter(true);
}
END_TEST

/* Run directories: a dead worker's is swept, a live one's (this
 * process's) is not, nor a half-made one that may still be under way. */
START_TEST(run_dirs_of_dead_workers_are_swept)
{
    char mine[512], dead[512], half_old[512], half_new[512], file[600];
    struct timeval old[2] = {{.tv_sec = time(NULL) - 120}, {.tv_sec = time(NULL) - 120}};
    int lock = -1, st, fd;
    pid_t pid;

    /* A worker that claims its directory, leaves a file in it and dies
     * without cleaning up (as kill -9 would leave it). */
    if ((pid = fork()) == 0) {
        char d[512];
        int l;

        if (kd_workdir_claim(base, d, sizeof(d), &l) != KD_OK)
            _exit(1);
        snprintf(file, sizeof(file), "%s/job-1", d);
        _exit(mkdir(file, 0700) == 0 ? 0 : 2);
    }
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(dead, sizeof(dead), "%s/run-%d", base, (int)pid);
    ck_assert_int_eq(access(dead, F_OK), 0);

    ck_assert_int_eq(kd_workdir_claim(base, mine, sizeof(mine), &lock), KD_OK);
    snprintf(file, sizeof(file), "%s/run-%d", base, (int)getpid());
    ck_assert_str_eq(mine, file);
    snprintf(half_old, sizeof(half_old), "%s/tmp-run-999999999", base);
    snprintf(half_new, sizeof(half_new), "%s/tmp-run-999999998", base);
    ck_assert_int_eq(mkdir(half_old, 0700), 0);
    ck_assert_int_eq(mkdir(half_new, 0700), 0);
    ck_assert_int_eq(utimes(half_old, old), 0);
    /* Something else in the base is none of the sweep's business. */
    snprintf(file, sizeof(file), "%s/other", base);
    ck_assert_int_ge(fd = open(file, O_CREAT | O_WRONLY, 0600), 0);
    close(fd);

    ck_assert_int_eq(kd_workdir_sweep(base), 2);
    ck_assert_int_ne(access(dead, F_OK), 0);
    ck_assert_int_ne(access(half_old, F_OK), 0);
    ck_assert_int_eq(access(half_new, F_OK), 0);
    ck_assert_int_eq(access(mine, F_OK), 0);
    ck_assert_int_eq(access(file, F_OK), 0);
    /* Once this worker is gone too, its directory goes with the next sweep. */
    close(lock);
    ck_assert_int_eq(kd_workdir_sweep(base), 1);
    ck_assert_int_ne(access(mine, F_OK), 0);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("worker_child");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, the_child_is_sandboxed);
    tcase_add_test(tc, cpu_time_is_limited);
    tcase_add_test(tc, file_size_is_limited);
    tcase_add_test(tc, memory_is_limited);
    tcase_add_test(tc, work_dirs_are_removed_without_following_links);
    tcase_add_test(tc, the_filter_refuses_sockets_and_exec);
    tcase_add_test(tc, the_filter_allows_inet_for_s3);
    tcase_add_test(tc, run_dirs_of_dead_workers_are_swept);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
