/* child.h: running one task in a sandboxed child process.
 *
 * The worker's parent process never touches media bytes: each task runs in a
 * child forked for it, limited by rlimits, with no new privileges, no
 * inherited descriptors but its result pipe and stderr, its private work
 * directory as current directory, and a system-call filter (sandbox.h).
 * The child dies with the parent (PR_SET_PDEATHSIG), sits in its own
 * process group and ignores SIGTERM and SIGINT: only the parent decides
 * when a task stops, by SIGKILL, or for a cancelled job first by
 * KD_CHILD_STOP_SIGNAL, which asks it to stop cleanly (a child that does
 * not handle it dies of it). */
#ifndef KD_WORKER_CHILD_H
#define KD_WORKER_CHILD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

struct kd_child_limits {
    int64_t mem_mb;  /* RLIMIT_AS; 0: none (sanitizer builds cannot have one) */
    int64_t cpu_s;   /* RLIMIT_CPU soft limit (SIGXCPU); SIGKILL 5 s later */
    int64_t file_mb; /* RLIMIT_FSIZE */
    int64_t nofile;  /* RLIMIT_NOFILE */
    bool inet;       /* Internet sockets allowed (S3 storage; sandbox.h) */
};

/* The body of a child: runs with out_fd open for the result lines and
 * returns its exit status. It must never use the parent's database or
 * Redis connections (their sockets are closed in the child). */
typedef int kd_child_fn(void *ud, int out_fd);

/* Forks a child that sets itself up as described above, changes into
 * work_dir and runs fn(ud, out_fd), then leaves with _exit. On KD_OK *pid is
 * the child and *fd the read end of its pipe (non-blocking, close-on-exec),
 * the caller's to close. KD_EIO when pipe or fork fail. */
KD_MUST_CHECK enum kd_err kd_child_spawn(const struct kd_child_limits *lim, const char *work_dir,
                                         kd_child_fn *fn, void *ud, pid_t *pid, int *fd);

/* Sent to a child to ask for a clean stop (its files closed, a result
 * line written, exit); the parent SIGKILLs it after a grace period. */
#define KD_CHILD_STOP_SIGNAL SIGUSR1

/* SIGKILLs the child and its process group. */
void kd_child_kill(pid_t pid);

/* Creates work_dir (mode 0700), first removing a leftover of the same name
 * (a crashed worker's). The parent of work_dir must exist. */
KD_MUST_CHECK enum kd_err kd_workdir_make(const char *work_dir);
/* Removes work_dir and everything below it without following symbolic
 * links; logs what it could not remove. */
void kd_workdir_remove(const char *work_dir);

/* A worker process keeps its tasks' work directories in a run directory
 * of its own, base/run-<pid>, holding a lock (flock on run-<pid>/.lock) for
 * as long as it lives. A worker that dies (kill -9, a crash, the machine
 * lost power) leaves its run directory behind with the lock free, so any
 * worker on the host can tell it from a live one and remove it: no work
 * directory outlives its worker for longer than the next sweep.
 *
 * kd_workdir_claim makes this process's run directory (under a temporary
 * name until the lock is held, so that no sweep can take it meanwhile) and
 * writes its path to out. *lock_fd is the lock's descriptor (close-on-exec;
 * closing it, or the process ending, frees the lock). */
KD_MUST_CHECK enum kd_err kd_workdir_claim(const char *base, char *out, size_t out_len,
                                           int *lock_fd);
/* Removes the run directories under base whose worker is gone, and
 * half-made ones older than a minute; returns how many it removed. */
int kd_workdir_sweep(const char *base);

#endif
