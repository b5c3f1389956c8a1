#include "run.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "child.h"
#include "jobspec.h"
#include "json.h"
#include "log.h"
#include "media.h"
#include "problem.h"
#include "proto.h"
#include "storage.h"
#include "util.h"

/* Warnings forwarded per task: enough to explain a result, too few to
 * flood the job's events. */
#define MAX_EVENTS 20
/* Least interval between progress lines: the engine reports every frame. */
#define PROGRESS_EVERY_MS 100

/* How long the engine may take to wind down once asked to stop: freeing an
 * x264 encoder joins its lookahead thread, which can be seconds into a
 * slow preset's analysis. Past this the child reports and exits at once. */
#define STOP_EXIT_MS 300

/* Set by KD_CHILD_STOP_SIGNAL: the parent asks this job to stop. */
static volatile sig_atomic_t stop_asked;
/* The result pipe, for the stop timer; -1 before the edit starts. */
static volatile sig_atomic_t stop_fd = -1;
/* The edit has returned: its own result line is on the way. */
static volatile sig_atomic_t is_finishing;

/* The engine has not returned STOP_EXIT_MS after the stop request: write
 * the result line (one write, shorter than PIPE_BUF: it cannot interleave
 * with another line) and leave; the kernel closes the files. */
static void
on_stop_timer(int sig)
{
    static const char line[] = "{\"ok\":false,\"error\":\"cancelled\",\"message\":\"cancelled\"}\n";

    (void)sig;
    if (is_finishing)
        return;
    if (stop_fd >= 0 && write(stop_fd, line, sizeof(line) - 1) < 0)
        _exit(1);
    _exit(0);
}

static void
on_stop_signal(int sig)
{
    struct itimerval t = {.it_value = {.tv_sec = 0, .tv_usec = STOP_EXIT_MS * 1000}};

    (void)sig;
    if (stop_asked)
        return;
    stop_asked = 1;
    /* setitimer is a plain system call on Linux, safe in a handler. */
    (void)setitimer(ITIMER_REAL, &t, NULL);
}

struct ctx {
    int fd;
    int64_t deadline_ms;
    bool timed_out;
    bool pipe_broken;
    int last_permille;
    int64_t last_sent_ms;
    int n_events;
};

static void
on_progress(void *ud, double fraction)
{
    struct ctx *c = ud;
    int permille = (int)(fraction * 1000);
    int64_t now = kd_mono_ms();

    if (c->pipe_broken || permille <= c->last_permille)
        return;
    if (permille < 1000 && now - c->last_sent_ms < PROGRESS_EVERY_MS)
        return;
    if (kd_proto_send_progress(c->fd, fraction) != KD_OK)
        c->pipe_broken = true;
    c->last_permille = permille;
    c->last_sent_ms = now;
}

/* A cancel request arrives as KD_CHILD_STOP_SIGNAL; the child also stops
 * by itself at its deadline, so that both end cleanly, with its files
 * closed, before the parent's harder kill. */
static bool
on_cancelled(void *ud)
{
    struct ctx *c = ud;

    if (c->pipe_broken || stop_asked)
        return true;
    if (kd_mono_ms() >= c->deadline_ms)
        c->timed_out = true;
    return c->timed_out;
}

static void
on_event(void *ud, const char *event, const char *detail)
{
    struct ctx *c = ud;

    if (c->pipe_broken || c->n_events >= MAX_EVENTS)
        return;
    c->n_events++;
    if (kd_proto_send_event(c->fd, event, detail) != KD_OK)
        c->pipe_broken = true;
}

/* Sends the failure and returns the child's exit status: 0 when the result
 * line went out (the parent then has the whole story). */
static int
fail(int fd, const char *code, const char *message)
{
    return kd_proto_send_error(fd, code, message) == KD_OK ? 0 : 1;
}

/* A failure that is the store's (it did not answer) is handed back by the
 * parent rather than counted against the job. */
static int
fail_rc(int fd, enum kd_err rc, const char *message)
{
    if (rc == KD_EUNAVAIL)
        return kd_proto_send_unavailable(fd, message) == KD_OK ? 0 : 1;
    return fail(fd, kd_err_job_code(rc), message);
}

/* Describes the file at path (a key of store when store is not NULL) as
 * {"kind","sha256","probe"}. */
static enum kd_err
describe(struct kd_storage *store, const char *path, const struct kd_limits *lim, json_t **out,
         char err[KD_MEDIA_ERRLEN])
{
    json_t *probe = NULL, *o = NULL;
    char kind[16], sha[65];
    enum kd_err rc;

    if (store != NULL)
        rc = kd_media_probe_object(store, path, lim, &probe, kind, sha, err);
    else
        rc = kd_media_probe(path, lim, &probe, kind, sha, err);
    if (rc != KD_OK)
        goto out;
    if ((o = json_pack("{s:s,s:s,s:O}", "kind", kind, "sha256", sha, "probe", probe)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    *out = o;
    o = NULL;
out:
    json_decref(probe);
    json_decref(o);
    return rc;
}

int
kd_run_probe(void *ud, int out_fd)
{
    const struct kd_run_probe *a = ud;
    char err[KD_MEDIA_ERRLEN] = "";
    json_t *desc = NULL;
    enum kd_err rc;
    int status;

    if ((rc = describe(a->store, a->path, a->lim, &desc, err)) != KD_OK) {
        status = fail_rc(out_fd, rc, err[0] != '\0' ? err : "the file could not be read as media");
        goto out;
    }
    if (json_object_set_new(desc, "ok", json_true()) != 0) {
        status = fail(out_fd, "internal", "out of memory");
        goto out;
    }
    status = kd_proto_send(out_fd, desc) == KD_OK ? 0 : 1;
out:
    json_decref(desc);
    return status;
}

/* The first validation error of a stored spec that no longer passes (the
 * limits may have changed since it was accepted). */
static void
problem_text(const struct kd_problem *pb, char *out, size_t len)
{
    if (pb->n == 0) {
        snprintf(out, len, "the job's spec is no longer valid");
        return;
    }
    snprintf(out, len, "%s%s%s%s", pb->errors[0].field, pb->errors[0].field[0] != '\0' ? ": " : "",
             pb->errors[0].message, pb->n + pb->dropped > 1 ? " (and more)" : "");
}

/* Moves the engine's thumbnails to the names the parent expects and
 * describes each. */
static enum kd_err
collect_thumbs(const struct kd_run_edit *a, const struct kd_edit *e, json_t *thumbs,
               char err[KD_MEDIA_ERRLEN])
{
    for (size_t i = 0; i < e->n_thumbs; i++) {
        char name[32], path[PATH_MAX];
        json_t *desc = NULL;
        enum kd_err rc;

        if (kd_proto_thumb_name(i + 1, name, sizeof(name)) != KD_OK ||
            kd_snprintf(path, sizeof(path), "%s/%s", a->work_dir, name) != KD_OK)
            return KD_EINTERNAL;
        if (strcmp(e->thumb_paths[i], path) != 0 && rename(e->thumb_paths[i], path) != 0) {
            snprintf(err, KD_MEDIA_ERRLEN, "thumbnail %zu: %s", i + 1, strerror(errno));
            return KD_EINTERNAL;
        }
        if ((rc = describe(NULL, path, a->lim, &desc, err)) != KD_OK)
            return rc;
        if (json_array_append_new(thumbs, desc) != 0)
            return KD_ENOMEM;
    }
    return KD_OK;
}

struct store_ctx {
    int fd;
    int index;
    bool pipe_broken;
};

/* The parent must know a multipart upload before its first part goes
 * out: should this child be killed, the parent aborts it. */
static void
on_upload(void *arg, const char *upload_id)
{
    struct store_ctx *c = arg;

    if (kd_proto_send_store(c->fd, c->index, upload_id) != KD_OK)
        c->pipe_broken = true;
}

/* Stores the main output (path out_path) and the n_thumbs thumbnails under
 * the parent's keys, each announced on the pipe before anything can exist
 * under its key. msg says what failed. */
static enum kd_err
store_outputs(const struct kd_run_edit *a, const char *out_path, size_t n_thumbs, int out_fd,
              char *msg, size_t msg_len)
{
    struct store_ctx c = {.fd = out_fd};
    char path[PATH_MAX], name[32];
    mode_t old_mask;
    enum kd_err rc = KD_OK;

    if (1 + n_thumbs > a->n_out_keys) {
        snprintf(msg, msg_len, "more outputs than the worker has keys for");
        return KD_EINTERNAL;
    }
    /* Objects on local disk are served by nginx, which reads them as a
     * member of the group; the sandbox's 077 would hide them. */
    old_mask = umask(027);
    for (size_t i = 0; i <= n_thumbs && rc == KD_OK; i++) {
        if (i == 0)
            rc = kd_snprintf(path, sizeof(path), "%s", out_path);
        else if ((rc = kd_proto_thumb_name(i, name, sizeof(name))) == KD_OK)
            rc = kd_snprintf(path, sizeof(path), "%s/%s", a->work_dir, name);
        if (rc != KD_OK) {
            snprintf(msg, msg_len, "the work directory's path is too long");
            break;
        }
        c.index = (int)i;
        if (kd_proto_send_store(out_fd, (int)i, NULL) != KD_OK) {
            snprintf(msg, msg_len, "the worker is gone");
            rc = KD_EIO;
            break;
        }
        rc = kd_storage_put_file_watched(a->store, a->out_keys[i], path, on_upload, &c);
        if (rc == KD_OK && c.pipe_broken)
            rc = KD_EIO;
        if (rc != KD_OK) {
            const char *why = kd_storage_last_error(a->store);

            snprintf(msg, msg_len, "storing %s failed: %s%s%s",
                     i == 0 ? "the output" : "a thumbnail",
                     rc == KD_EUNAVAIL || rc == KD_ETIMEOUT ? "the storage is unavailable"
                                                            : kd_err_name(rc),
                     why[0] != '\0' ? ": " : "", why);
        }
    }
    umask(old_mask);
    /* a store that does not answer is not the job's failure */
    return rc == KD_ETIMEOUT ? KD_EUNAVAIL : rc;
}

int
kd_run_edit(void *ud, int out_fd)
{
    const struct kd_run_edit *a = ud;
    struct ctx c = {.fd = out_fd, .deadline_ms = a->deadline_ms, .last_permille = -1};
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct kd_jobspec *spec = NULL;
    struct kd_edit e = {0};
    json_t *body = NULL, *res = NULL, *out_desc = NULL, *thumbs = NULL;
    char name[32], out_path[PATH_MAX], msg[KD_PROTO_TEXT_MAX];
    bool edited = false;
    enum kd_err rc;
    int status;

    if (kd_json_parse(a->spec_text, a->spec_len, &body, msg, sizeof(msg)) != KD_OK) {
        status = fail(out_fd, "internal", "the job's stored spec is not JSON");
        goto out;
    }
    if ((rc = kd_jobspec_parse(body, a->lim, &spec, &pb)) != KD_OK) {
        if (rc == KD_EINVAL)
            problem_text(&pb, msg, sizeof(msg));
        else
            snprintf(msg, sizeof(msg), "the job's spec could not be read");
        status = fail(out_fd, kd_err_job_code(rc), msg);
        goto out;
    }
    if (spec->n_inputs != a->n_inputs || spec->n_layers != a->n_layers ||
        spec->has_audio != (a->audio_path != NULL)) {
        status = fail(out_fd, "internal", "the job's inputs do not match its spec");
        goto out;
    }
    if (kd_proto_output_name(kd_container_name(spec->output.container), name, sizeof(name)) !=
            KD_OK ||
        kd_snprintf(out_path, sizeof(out_path), "%s/%s", a->work_dir, name) != KD_OK) {
        status = fail(out_fd, "internal", "the work directory's path is too long");
        goto out;
    }
    e.spec = spec;
    e.store = a->in_store;
    e.input_paths = a->input_paths;
    e.layer_paths = a->layer_paths;
    e.audio_path = a->audio_path;
    e.out_path = out_path;
    e.work_dir = a->work_dir;
    e.lim = a->lim;
    e.threads = a->threads;
    e.progress = on_progress;
    e.cancelled = on_cancelled;
    e.event = on_event;
    e.ud = &c;
    {
        struct sigaction sa = {.sa_handler = on_stop_signal, .sa_flags = SA_RESTART};
        struct sigaction st = {.sa_handler = on_stop_timer, .sa_flags = SA_RESTART};

        sigemptyset(&sa.sa_mask);
        sigemptyset(&st.sa_mask);
        stop_fd = out_fd;
        if (sigaction(SIGALRM, &st, NULL) != 0 || sigaction(KD_CHILD_STOP_SIGNAL, &sa, NULL) != 0)
            kd_log_errno(KD_LOG_WARN, errno, "worker: no clean stop on cancel");
    }
    rc = kd_media_edit(&e);
    is_finishing = 1;
    edited = true;
    if (rc != KD_OK) {
        if (c.timed_out)
            status = fail(out_fd, "timeout", "the job ran past its time limit");
        else
            status = fail_rc(out_fd, rc, e.err[0] != '\0' ? e.err : "the edit failed");
        goto out;
    }
    /* The outputs are described here, in the sandbox: probing is parsing
     * media, and the parent never does that. */
    if ((rc = describe(NULL, out_path, a->lim, &out_desc, e.err)) != KD_OK) {
        snprintf(msg, sizeof(msg), "the output failed its check: %s", e.err);
        status = fail(out_fd, "internal", msg);
        goto out;
    }
    if ((thumbs = json_array()) == NULL) {
        status = fail(out_fd, "internal", "out of memory");
        goto out;
    }
    if ((rc = collect_thumbs(a, &e, thumbs, e.err)) != KD_OK) {
        snprintf(msg, sizeof(msg), "thumbnails: %s", e.err);
        status = fail(out_fd, "internal", msg);
        goto out;
    }
    if ((rc = store_outputs(a, out_path, e.n_thumbs, out_fd, msg, sizeof(msg))) != KD_OK) {
        status = fail_rc(out_fd, rc, msg);
        goto out;
    }
    /* JSON has no NaN: an engine that could not tell reports 0. */
    res = json_pack("{s:b,s:f,s:O,s:O}", "ok", 1, "duration",
                    isfinite(e.duration_s) ? e.duration_s : 0.0, "output", out_desc, "thumbs",
                    thumbs);
    if (res == NULL) {
        status = fail(out_fd, "internal", "out of memory");
        goto out;
    }
    status = kd_proto_send(out_fd, res) == KD_OK ? 0 : 1;
out:
    if (edited)
        kd_edit_clear(&e);
    json_decref(res);
    json_decref(out_desc);
    json_decref(thumbs);
    json_decref(body);
    kd_jobspec_free(spec);
    kd_problem_clear(&pb);
    return status;
}
