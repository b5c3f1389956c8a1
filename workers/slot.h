/* slot.h: one place for a running task in the worker, and its child process.
 *
 * A slot goes FREE -> RUNNING (a child works; the parent reads its pipe,
 * watches its deadline) -> FINISHING (the child is gone; its outcome is being
 * written to PostgreSQL, retried while a dependency is down) -> FREE. The
 * slot knows processes and pipes; what an outcome means for the database is
 * tasks.c's business. */
#ifndef KD_WORKER_SLOT_H
#define KD_WORKER_SLOT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "child.h"
#include "jobspec.h"
#include "proto.h"
#include "queue.h"
#include "util.h"

/* Files a task may produce: the main output and up to 20 thumbnails. */
#define KD_SLOT_MAX_FILES KD_PROTO_MAX_FILES

enum kd_task_kind { KD_TASK_PROBE, KD_TASK_EDIT };
enum kd_slot_state { KD_SLOT_FREE, KD_SLOT_RUNNING, KD_SLOT_FINISHING };

/* Why the parent killed a child; the first reason given wins. */
enum kd_kill_reason {
    KD_KILL_NONE,
    KD_KILL_CANCEL,   /* the job was cancelled or deleted */
    KD_KILL_TIMEOUT,  /* past worker_job_timeout_s */
    KD_KILL_SHUTDOWN, /* the worker stops and the grace period is over */
    KD_KILL_LEASE,    /* another worker holds the job now */
    KD_KILL_PROTOCOL, /* the child wrote something that is not the protocol */
};

/* How a task ended, as far as the worker is concerned. */
enum kd_outcome {
    KD_OUTCOME_SUCCESS,     /* result ok: store its outputs */
    KD_OUTCOME_FAILURE,     /* code + message */
    KD_OUTCOME_CANCELLED,   /* stopped on request */
    KD_OUTCOME_REQUEUE,     /* stopped by shutdown: hand the task to another worker */
    KD_OUTCOME_LOST,        /* the job is someone else's now: write nothing, ack nothing */
    KD_OUTCOME_UNAVAILABLE, /* the store did not answer: hand the task back for later */
};

struct kd_slot {
    enum kd_slot_state state;
    enum kd_task_kind kind;
    struct kd_queue_msg msg;      /* the delivery being worked on */
    char ref[KD_UUID_STRLEN + 1]; /* the job or media id */
    char user_id[KD_UUID_STRLEN + 1];
    int attempt;        /* edit: this attempt's number */
    int max_attempts;   /* edit */
    char lease_gen[24]; /* edit: the lease taken, as text for queries */
    int priority;
    enum kd_container container; /* edit: of the main output */
    char work_dir[PATH_MAX];

    /* the child */
    pid_t pid;
    int fd; /* read end of its pipe; -1 after EOF */
    bool reaped;
    int wstatus;
    int64_t started_ms;  /* kd_mono_ms() */
    int64_t deadline_ms; /* killed (timeout) at this time */
    int64_t eof_ms;      /* when the pipe closed; 0 while open */
    int64_t exited_ms;   /* when the child was reaped; 0 before */
    enum kd_kill_reason killed;
    int64_t stop_asked_ms;       /* KD_CHILD_STOP_SIGNAL sent (cancel); 0: not */
    bool is_stop_forced;         /* SIGKILLed after the stop grace */
    struct kd_linereader lines;

    /* what it reported */
    double progress; /* 0..1, the highest seen */
    bool has_result;
    struct kd_proto_msg result;
    char protocol_err[160];
    int n_events; /* events written for this attempt */

    /* the parent's bookkeeping for this attempt */
    int pct_written;          /* progress last written to jobs.progress */
    int64_t last_write_ms;    /* of the last lease renewal (with or without progress) */
    int64_t last_progress_ms; /* of the last progress write */
    int64_t last_poll_ms;     /* of the last read or write of the job's row */
    bool heartbeat_warned;    /* logged a failed heartbeat already */

    /* finishing */
    enum kd_outcome outcome;
    char code[32];
    char message[KD_PROTO_TEXT_MAX + 1];
    int finish_failures;
    int64_t retry_at_ms;
    int64_t finish_started_ms;
    bool written; /* PostgreSQL holds the outcome */
    /* outputs: the child stores them under keys the parent chose before
     * it forked; what it began storing is deleted (and its multipart
     * upload aborted) unless the outputs are published */
    size_t n_keys;                       /* keys chosen */
    size_t n_store_started;              /* outputs the child began to store (1 + highest index) */
    char *upload_ids[KD_SLOT_MAX_FILES]; /* their multipart uploads; owned, NULL if none */
    bool is_storing;                     /* the child stores now (stage "storing") */
    size_t n_stored;                     /* outputs stored and checked (the result's) */
    char stored_keys[KD_SLOT_MAX_FILES][64];
    char stored_ids[KD_SLOT_MAX_FILES][KD_UUID_STRLEN + 1];
    int64_t stored_sizes[KD_SLOT_MAX_FILES];
};

/* Receives each event line of a running child. */
typedef void kd_slot_event_fn(void *ud, struct kd_slot *s, const struct kd_proto_msg *m);

void kd_slot_init(struct kd_slot *s);
bool kd_slot_is_free(const struct kd_slot *s);

/* Starts fn(ud) in a child with the given limits and deadline, in the
 * slot's work directory (s->work_dir: made by the caller, who also set the
 * identity fields). On failure the slot is unchanged. */
KD_MUST_CHECK enum kd_err kd_slot_start(struct kd_slot *s, const struct kd_child_limits *lim,
                                        int64_t timeout_ms, kd_child_fn *fn, void *ud);

/* Reads what the child wrote (never blocks), keeps progress and the result
 * and hands events to ev. Kills a child that breaks the protocol. */
void kd_slot_pump(struct kd_slot *s, kd_slot_event_fn *ev, void *ud);
/* Collects the child's exit status if it has ended; kills it past its
 * deadline, or when it closed its pipe but lingers. */
void kd_slot_check(struct kd_slot *s, int64_t now_ms);
/* True when the child is gone and its pipe drained: the outcome is known. */
bool kd_slot_child_done(const struct kd_slot *s);
/* A cancelled child gets this long to stop by itself before SIGKILL. */
#define KD_SLOT_STOP_GRACE_MS 1000

/* Kills the child (and its process group) for reason. For KD_KILL_CANCEL
 * of an edit, asks it to stop first (KD_CHILD_STOP_SIGNAL) and leaves the
 * SIGKILL to kd_slot_check after KD_SLOT_STOP_GRACE_MS. */
void kd_slot_kill(struct kd_slot *s, enum kd_kill_reason reason);
/* Waits for a killed child to be reaped, at most wait_ms. */
void kd_slot_wait(struct kd_slot *s, int64_t wait_ms);

/* Moves a done slot to FINISHING with outcome, code and message filled in
 * from what the child reported and how it ended. */
void kd_slot_conclude(struct kd_slot *s, int64_t timeout_s);

/* Closes the pipe, removes the work directory and frees what the slot
 * holds; the slot is FREE afterwards. */
void kd_slot_release(struct kd_slot *s);

#endif
