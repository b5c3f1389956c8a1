#include "child.h"

#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "sandbox.h"
#include "util.h"

/* The result pipe's number in the child. */
#define CHILD_OUT_FD 3

/* AddressSanitizer reserves terabytes of address space for its shadow
 * memory, so a sanitizer build cannot run under RLIMIT_AS. */
#if defined(__SANITIZE_ADDRESS__)
#define KD_HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KD_HAVE_ASAN 1
#endif
#endif

/* Reports a setup failure as the child's result, so the job's error says
 * what went wrong instead of "exited without a result". */
static _Noreturn void
setup_failed(int out_fd, const char *what, int err)
{
    char msg[256];

    snprintf(msg, sizeof(msg), "job sandbox: %s: %s", what, strerror(err));
    kd_log(KD_LOG_ERROR, "%s", msg);
    if (out_fd >= 0 && kd_proto_send_error(out_fd, "internal", msg) != KD_OK) {
        /* the parent learns from the exit status instead */
    }
    _exit(1);
}

static bool
set_limit(int resource, rlim_t soft, rlim_t hard)
{
    struct rlimit rl = {.rlim_cur = soft, .rlim_max = hard};

    return setrlimit(resource, &rl) == 0;
}

static rlim_t
mb(int64_t v)
{
    return (rlim_t)v * 1024 * 1024;
}

static _Noreturn void
child_main(const struct kd_child_limits *lim, const char *work_dir, kd_child_fn *fn, void *ud,
           int wfd, pid_t parent)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL}, ign = {.sa_handler = SIG_IGN};
    sigset_t none;
    int out, devnull, err;

    /* Signals: the parent alone decides when a task stops (it kills with
     * SIGKILL), so a SIGTERM sent to the whole service (systemd's default
     * KillMode, a terminal's group) does not cut the grace period short.
     * SIGPIPE is ignored so that a vanished parent shows up as EPIPE. */
    sigaction(SIGTERM, &ign, NULL);
    sigaction(SIGINT, &ign, NULL);
    sigaction(SIGHUP, &ign, NULL);
    sigaction(SIGCHLD, &dfl, NULL);
    /* The limits must end the child even if whoever started the worker
     * ignored these (Python does SIGXFSZ). */
    sigaction(SIGXCPU, &dfl, NULL);
    sigaction(SIGXFSZ, &dfl, NULL);
    sigaction(SIGPIPE, &ign, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* "ps -o comm" tells jobs from their parent. */
    prctl(PR_SET_NAME, "kadr-job", 0, 0, 0);
    if (setpgid(0, 0) != 0 && errno != EPERM)
        setup_failed(wfd, "setpgid", errno);
    /* The parent may have died between fork and prctl: check after. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        setup_failed(wfd, "PR_SET_PDEATHSIG", errno);
    if (getppid() != parent)
        _exit(1);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        setup_failed(wfd, "PR_SET_NO_NEW_PRIVS", errno);

    /* Descriptors: /dev/null on 0 and 1, the pipe on 3, stderr kept for
     * logs, everything else (database and Redis sockets, other jobs' pipes)
     * closed. The parent's connections stay open on its side. */
    if ((out = fcntl(wfd, F_DUPFD, CHILD_OUT_FD)) < 0)
        setup_failed(wfd, "dup", errno);
    if ((devnull = open("/dev/null", O_RDWR)) < 0)
        setup_failed(wfd, "open /dev/null", errno);
    if (dup2(devnull, STDIN_FILENO) < 0 || dup2(devnull, STDOUT_FILENO) < 0)
        setup_failed(wfd, "dup2", errno);
    if (out != CHILD_OUT_FD) {
        if (dup2(out, CHILD_OUT_FD) < 0)
            setup_failed(wfd, "dup2", errno);
        out = CHILD_OUT_FD;
    }
    if (close_range(CHILD_OUT_FD + 1, ~0U, 0) != 0) {
        struct rlimit rl;
        int max =
            getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;

        for (int fd = CHILD_OUT_FD + 1; fd < max; fd++)
            close(fd);
    }

    if (chdir(work_dir) != 0)
        setup_failed(out, "chdir to the work directory", errno);
    umask(077);

    /* Limits last: the work above needs descriptors the limit may forbid. */
    if (!set_limit(RLIMIT_CORE, 0, 0))
        setup_failed(out, "RLIMIT_CORE", errno);
    if (!set_limit(RLIMIT_NOFILE, (rlim_t)lim->nofile, (rlim_t)lim->nofile)) {
        struct rlimit cur;

        /* Valgrind refuses any change of the hard limit; the soft one is
         * still what a job runs into. */
        if (errno != EPERM || getrlimit(RLIMIT_NOFILE, &cur) != 0 ||
            !set_limit(RLIMIT_NOFILE, (rlim_t)lim->nofile, cur.rlim_max))
            setup_failed(out, "RLIMIT_NOFILE", errno);
    }
    if (!set_limit(RLIMIT_FSIZE, mb(lim->file_mb), mb(lim->file_mb)))
        setup_failed(out, "RLIMIT_FSIZE", errno);
    if (!set_limit(RLIMIT_CPU, (rlim_t)lim->cpu_s, (rlim_t)lim->cpu_s + 5))
        setup_failed(out, "RLIMIT_CPU", errno);
#ifndef KD_HAVE_ASAN
    if (lim->mem_mb > 0 && !set_limit(RLIMIT_AS, mb(lim->mem_mb), mb(lim->mem_mb)))
        setup_failed(out, "RLIMIT_AS", errno);
#endif
    /* The filter last of all: what it refuses, nothing above needs. */
    if ((err = kd_sandbox_apply(lim->inet)) != 0)
        setup_failed(out, "seccomp filter", err);
    _exit(fn(ud, out));
}

enum kd_err
kd_child_spawn(const struct kd_child_limits *lim, const char *work_dir, kd_child_fn *fn, void *ud,
               pid_t *pid, int *fd)
{
    int p[2] = {-1, -1};
    pid_t parent = getpid(), child;
    enum kd_err rc;

    if (pipe2(p, O_CLOEXEC) != 0) {
        kd_log_errno(KD_LOG_ERROR, errno, "worker: pipe");
        rc = KD_EIO;
        goto out;
    }
    if (fcntl(p[0], F_SETFL, O_NONBLOCK) != 0) {
        kd_log_errno(KD_LOG_ERROR, errno, "worker: pipe O_NONBLOCK");
        rc = KD_EIO;
        goto out;
    }
    if ((child = fork()) < 0) {
        kd_log_errno(KD_LOG_ERROR, errno, "worker: fork");
        rc = KD_EIO;
        goto out;
    }
    if (child == 0) {
        close(p[0]);
        child_main(lim, work_dir, fn, ud, p[1], parent);
    }
    /* Also from this side, so that a kill of the group right after fork
     * cannot miss it; EACCES/ESRCH mean the child did it or is gone. */
    if (setpgid(child, child) != 0 && errno != EACCES && errno != ESRCH)
        kd_log_errno(KD_LOG_WARN, errno, "worker: setpgid %d", (int)child);
    *pid = child;
    *fd = p[0];
    p[0] = -1;
    rc = KD_OK;
out:
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    return rc;
}

void
kd_child_kill(pid_t pid)
{
    if (pid <= 0)
        return;
    if (kill(-pid, SIGKILL) != 0)
        kill(pid, SIGKILL);
}

static int remove_failures;

static int
remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT) {
        if (remove_failures++ < 3)
            kd_log_errno(KD_LOG_WARN, errno, "worker: cannot remove %s", path);
    }
    return 0;
}

void
kd_workdir_remove(const char *work_dir)
{
    struct stat st;

    if (lstat(work_dir, &st) != 0)
        return;
    remove_failures = 0;
    /* FTW_PHYS: a symbolic link planted by a task is removed, not followed;
     * FTW_MOUNT: never wander into another file system. */
    if (nftw(work_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0)
        kd_log_errno(KD_LOG_WARN, errno, "worker: cannot walk %s", work_dir);
}

enum kd_err
kd_workdir_make(const char *work_dir)
{
    kd_workdir_remove(work_dir);
    if (mkdir(work_dir, 0700) != 0) {
        kd_log_errno(KD_LOG_ERROR, errno, "worker: mkdir %s", work_dir);
        return KD_EIO;
    }
    return KD_OK;
}

/* The lock of a run directory; O_NOFOLLOW: a task may not redirect it. */
static int
open_lock(const char *dir, int flags)
{
    char path[PATH_MAX];

    if (kd_snprintf(path, sizeof(path), "%s/.lock", dir) != KD_OK)
        return -1;
    return open(path, flags | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600);
}

enum kd_err
kd_workdir_claim(const char *base, char *out, size_t out_len, int *lock_fd)
{
    char tmp[PATH_MAX];
    enum kd_err rc;
    int fd = -1;

    *lock_fd = -1;
    if ((rc = kd_snprintf(tmp, sizeof(tmp), "%s/tmp-run-%d", base, (int)getpid())) != KD_OK ||
        (rc = kd_snprintf(out, out_len, "%s/run-%d", base, (int)getpid())) != KD_OK)
        return rc;
    /* A directory of either name is a dead process's that had this pid. */
    kd_workdir_remove(out);
    if ((rc = kd_workdir_make(tmp)) != KD_OK)
        return rc;
    if ((fd = open_lock(tmp, O_CREAT | O_EXCL)) < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
        kd_log_errno(KD_LOG_ERROR, errno, "worker: cannot lock %s/.lock", tmp);
        rc = KD_EIO;
        goto out;
    }
    if (rename(tmp, out) != 0) {
        kd_log_errno(KD_LOG_ERROR, errno, "worker: rename %s", tmp);
        rc = KD_EIO;
        goto out;
    }
    *lock_fd = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    if (rc != KD_OK)
        kd_workdir_remove(tmp);
    return rc;
}

int
kd_workdir_sweep(const char *base)
{
    char path[PATH_MAX];
    struct dirent *de;
    struct stat st;
    int removed = 0;
    DIR *d = opendir(base);

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        bool half = strncmp(de->d_name, "tmp-run-", 8) == 0;
        int fd;

        if (strncmp(de->d_name, "run-", 4) != 0 && !half)
            continue;
        if (kd_snprintf(path, sizeof(path), "%s/%s", base, de->d_name) != KD_OK ||
            lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if ((fd = open_lock(path, 0)) < 0) {
            /* No lock file: a claim that died before making it, or one
             * under way (a minute is plenty for that). */
            if (errno != ENOENT || !half || time(NULL) - st.st_mtime < 60)
                continue;
        } else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd); /* its worker lives */
            continue;
        }
        /* Removed while holding the dead worker's lock: another sweep
         * waits for it, then finds nothing. */
        kd_workdir_remove(path);
        if (fd >= 0)
            close(fd);
        removed++;
    }
    closedir(d);
    return removed;
}
