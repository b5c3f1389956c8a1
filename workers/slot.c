#include "slot.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "policy.h"
#include "util.h"

/* A child that closed its pipe gets this long to exit, and an exited
 * child's pipe (held open by something it left behind) this long to close. */
#define LINGER_MS 5000
/* Reads per pump, so that one chatty child cannot starve the others. */
#define READS_PER_PUMP 16

void
kd_slot_init(struct kd_slot *s)
{
    memset(s, 0, sizeof(*s));
    s->state = KD_SLOT_FREE;
    s->fd = -1;
    s->pid = -1;
    kd_linereader_init(&s->lines, KD_PROTO_LINE_MAX);
}

bool
kd_slot_is_free(const struct kd_slot *s)
{
    return s->state == KD_SLOT_FREE;
}

enum kd_err
kd_slot_start(struct kd_slot *s, const struct kd_child_limits *lim, int64_t timeout_ms,
              kd_child_fn *fn, void *ud)
{
    enum kd_err rc;
    pid_t pid;
    int fd;

    if ((rc = kd_child_spawn(lim, s->work_dir, fn, ud, &pid, &fd)) != KD_OK)
        return rc;
    s->state = KD_SLOT_RUNNING;
    s->pid = pid;
    s->fd = fd;
    s->reaped = false;
    s->started_ms = kd_mono_ms();
    s->deadline_ms = s->started_ms + timeout_ms;
    s->last_write_ms = s->started_ms;
    kd_log(KD_LOG_DEBUG, "worker: %s %s runs in process %d",
           s->kind == KD_TASK_EDIT ? "job" : "probe", s->ref, (int)pid);
    return KD_OK;
}

static void
violation(struct kd_slot *s, const char *why)
{
    if (s->protocol_err[0] == '\0')
        snprintf(s->protocol_err, sizeof(s->protocol_err), "%s", why);
    kd_log(KD_LOG_WARN, "worker: process %d broke the protocol: %s", (int)s->pid, why);
    kd_slot_kill(s, KD_KILL_PROTOCOL);
}

static void
close_pipe(struct kd_slot *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->eof_ms = kd_mono_ms();
}

static void
handle_line(struct kd_slot *s, char *line, size_t len, kd_slot_event_fn *ev, void *ud)
{
    struct kd_proto_msg m = {0};
    char why[160];

    if (kd_proto_decode(line, len, &m, why, sizeof(why)) != KD_OK) {
        violation(s, why);
        return;
    }
    if (s->has_result) {
        kd_log(KD_LOG_WARN, "worker: process %d wrote after its result; ignored", (int)s->pid);
        kd_proto_msg_clear(&m);
        return;
    }
    switch (m.type) {
    case KD_PROTO_PROGRESS:
        if (m.progress > s->progress)
            s->progress = m.progress;
        break;
    case KD_PROTO_EVENT:
        ev(ud, s, &m);
        break;
    case KD_PROTO_STORE:
        /* Only an edit has keys; an index beyond them is a broken child. */
        if ((size_t)m.store_index >= s->n_keys) {
            kd_proto_msg_clear(&m);
            violation(s, "stored an output it has no key for");
            return;
        }
        s->is_storing = true;
        if ((size_t)m.store_index + 1 > s->n_store_started)
            s->n_store_started = (size_t)m.store_index + 1;
        if (m.upload_id != NULL) {
            free(s->upload_ids[m.store_index]);
            s->upload_ids[m.store_index] = m.upload_id;
            m.upload_id = NULL;
        }
        break;
    case KD_PROTO_RESULT:
        s->result = m;
        s->has_result = true;
        memset(&m, 0, sizeof(m));
        break;
    }
    kd_proto_msg_clear(&m);
}

void
kd_slot_pump(struct kd_slot *s, kd_slot_event_fn *ev, void *ud)
{
    char buf[65536];

    for (int i = 0; i < READS_PER_PUMP && s->fd >= 0; i++) {
        ssize_t n = read(s->fd, buf, sizeof(buf));
        char *line;
        size_t len;
        enum kd_err rc;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            kd_log_errno(KD_LOG_WARN, errno, "worker: read from process %d", (int)s->pid);
            close_pipe(s);
            return;
        }
        if (n == 0) {
            if (kd_linereader_pending(&s->lines) > 0 && !s->has_result)
                violation(s, "the last line was cut");
            close_pipe(s);
            return;
        }
        if (kd_linereader_push(&s->lines, buf, (size_t)n) != KD_OK) {
            violation(s, "a line longer than the protocol allows");
            close_pipe(s);
            return;
        }
        while ((rc = kd_linereader_next(&s->lines, &line, &len)) != KD_EAGAIN) {
            if (rc != KD_OK) {
                violation(s, "a line longer than the protocol allows");
                close_pipe(s);
                return;
            }
            handle_line(s, line, len, ev, ud);
        }
    }
}

static void
reap(struct kd_slot *s)
{
    int st;
    pid_t r;

    if (s->reaped || s->pid <= 0)
        return;
    while ((r = waitpid(s->pid, &st, WNOHANG)) < 0 && errno == EINTR) {
    }
    if (r == s->pid || (r < 0 && errno == ECHILD)) {
        s->reaped = true;
        s->wstatus = r == s->pid ? st : W_EXITCODE(255, 0);
        s->exited_ms = kd_mono_ms();
    }
}

void
kd_slot_kill(struct kd_slot *s, enum kd_kill_reason reason)
{
    /* A cancelled edit stops cleanly (files closed, a result line): the
     * engine polls for it at least twice a second of work. */
    if (reason == KD_KILL_CANCEL && s->kind == KD_TASK_EDIT && s->killed == KD_KILL_NONE &&
        !s->reaped && s->pid > 0) {
        s->killed = reason;
        s->stop_asked_ms = kd_mono_ms();
        if (kill(s->pid, KD_CHILD_STOP_SIGNAL) == 0)
            return;
    }
    if (s->killed == KD_KILL_NONE)
        s->killed = reason;
    /* After reaping, the group may be killed only while its pipe is still
     * open: then a member exists, and the kernel does not reuse the id. */
    if (!s->reaped || s->fd >= 0)
        kd_child_kill(s->pid);
}

void
kd_slot_check(struct kd_slot *s, int64_t now_ms)
{
    if (s->state != KD_SLOT_RUNNING)
        return;
    reap(s);
    if (!s->reaped && s->stop_asked_ms > 0 && !s->is_stop_forced &&
        now_ms - s->stop_asked_ms >= KD_SLOT_STOP_GRACE_MS) {
        kd_log(KD_LOG_WARN, "worker: process %d did not stop within %d ms; killing it", (int)s->pid,
               KD_SLOT_STOP_GRACE_MS);
        s->is_stop_forced = true;
        kd_child_kill(s->pid);
    }
    if (!s->reaped && now_ms >= s->deadline_ms && s->killed == KD_KILL_NONE) {
        kd_log(KD_LOG_WARN, "worker: process %d passed its deadline; killing it", (int)s->pid);
        kd_slot_kill(s, KD_KILL_TIMEOUT);
    }
    if (!s->reaped && s->fd < 0 && now_ms - s->eof_ms > LINGER_MS) {
        if (s->protocol_err[0] == '\0')
            snprintf(s->protocol_err, sizeof(s->protocol_err),
                     "the job process closed its pipe but did not exit");
        kd_slot_kill(s, KD_KILL_PROTOCOL);
    }
    if (s->reaped && s->fd >= 0 && now_ms - s->exited_ms > LINGER_MS) {
        kd_log(KD_LOG_WARN, "worker: the pipe of process %d outlived it", (int)s->pid);
        kd_slot_kill(s, KD_KILL_NONE);
        close_pipe(s);
    }
}

bool
kd_slot_child_done(const struct kd_slot *s)
{
    return s->state == KD_SLOT_RUNNING && s->reaped && s->fd < 0;
}

void
kd_slot_wait(struct kd_slot *s, int64_t wait_ms)
{
    int64_t until = kd_mono_ms() + wait_ms;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};

    for (reap(s); !s->reaped && kd_mono_ms() < until; reap(s))
        nanosleep(&ts, NULL);
}

static void
set_failure(struct kd_slot *s, const char *code, const char *message)
{
    s->outcome = KD_OUTCOME_FAILURE;
    snprintf(s->code, sizeof(s->code), "%s", code);
    snprintf(s->message, sizeof(s->message), "%s", message);
}

void
kd_slot_conclude(struct kd_slot *s, int64_t timeout_s)
{
    char msg[256];

    s->state = KD_SLOT_FINISHING;
    s->finish_failures = 0;
    s->retry_at_ms = 0;
    s->finish_started_ms = kd_mono_ms();
    switch (s->killed) {
    case KD_KILL_LEASE:
        s->outcome = KD_OUTCOME_LOST;
        return;
    case KD_KILL_CANCEL:
        s->outcome = KD_OUTCOME_CANCELLED;
        return;
    case KD_KILL_SHUTDOWN:
        s->outcome = KD_OUTCOME_REQUEUE;
        return;
    case KD_KILL_TIMEOUT:
        snprintf(msg, sizeof(msg), "the job ran longer than its limit of %lld s",
                 (long long)timeout_s);
        set_failure(s, "timeout", msg);
        return;
    case KD_KILL_PROTOCOL:
        snprintf(msg, sizeof(msg), "the job process misbehaved: %s", s->protocol_err);
        set_failure(s, "internal", msg);
        return;
    case KD_KILL_NONE:
        break;
    }
    /* A failure the child reported names its cause better than its exit. */
    if (s->has_result && !s->result.ok) {
        set_failure(s, s->result.error, s->result.message);
        if (s->result.unavailable)
            s->outcome = KD_OUTCOME_UNAVAILABLE;
        return;
    }
    if (s->has_result && WIFEXITED(s->wstatus) && WEXITSTATUS(s->wstatus) == 0) {
        s->outcome = KD_OUTCOME_SUCCESS;
        return;
    }
    kd_policy_describe_exit(s->wstatus, msg, sizeof(msg));
    if (s->protocol_err[0] != '\0' && WIFEXITED(s->wstatus))
        snprintf(msg, sizeof(msg), "the job process misbehaved: %s", s->protocol_err);
    set_failure(s, "internal", msg);
}

void
kd_slot_release(struct kd_slot *s)
{
    size_t cap = s->lines.cap;

    if (s->state == KD_SLOT_RUNNING && !s->reaped) {
        kd_slot_kill(s, KD_KILL_NONE);
        kd_slot_wait(s, 2000);
        if (!s->reaped)
            kd_log(KD_LOG_ERROR, "worker: process %d does not die", (int)s->pid);
    }
    if (s->fd >= 0)
        close(s->fd);
    if (s->work_dir[0] != '\0')
        kd_workdir_remove(s->work_dir);
    kd_linereader_clear(&s->lines);
    kd_proto_msg_clear(&s->result);
    for (size_t i = 0; i < KD_SLOT_MAX_FILES; i++)
        free(s->upload_ids[i]);
    kd_slot_init(s);
    s->lines.cap = cap;
}
