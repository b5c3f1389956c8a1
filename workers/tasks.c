#include "tasks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "child.h"
#include "jobspec.h"
#include "json.h"
#include "log.h"
#include "plan.h"
#include "policy.h"
#include "problem.h"
#include "run.h"
#include "util.h"

/* A running job's row is read this often for cancellation (a read, not a
 * write: the lease is renewed every worker_heartbeat_ms). A cancel takes
 * effect within this plus one turn of the loop (200 ms). */
#define CANCEL_POLL_MS 250
/* Child events recorded per attempt. */
#define MAX_EVENTS 20
/* A probe reads headers and hashes the file: minutes at most. */
#define PROBE_TIMEOUT_S 600
/* The child stops itself at its deadline; the parent kills it this much
 * later, so a clean timeout gets the chance to close its files. */
#define KILL_MARGIN_MS 5000
/* Descriptors a child may hold besides one per input file. */
#define NOFILE_BASE 32
/* What a child reading and writing the store needs on top: its connection,
 * the resolver's files and sockets, the CA bundle, the file being stored. */
#define NOFILE_STORE 16

/* --- SQL ----------------------------------------------------------------- */

static const char SQL_JOB_LOAD[] =
    "SELECT status, worker, lease_expires_at IS NULL OR lease_expires_at < now(), "
    "deleted_at IS NOT NULL, run_at IS NOT NULL AND run_at > now(), cancel_requested, "
    "attempts, max_attempts, lease_gen FROM jobs WHERE id = $1";

/* The inputs as the job's owner sees them: media of another user count as
 * gone (the API checks ownership at submission; this keeps it true). */
static const char SQL_JOB_INPUTS[] =
    "SELECT m.id, m.status, m.deleted_at IS NOT NULL OR m.user_id <> j.user_id, m.storage_key, "
    "m.error_message FROM job_inputs ji JOIN jobs j ON j.id = ji.job_id "
    "JOIN media m ON m.id = ji.media_id WHERE ji.job_id = $1 ORDER BY m.id";

/* Takes a pending job, or one whose lease generation $4 was seen expired
 * (or held by this worker's previous run); exactly one claimer can match.
 * The expiry is checked again here, not only when the row was read: the
 * holder may have renewed the lease in between. The user's limit:
 * users.max_processing, else the plan's ($5 free and any other plan, $6
 * premium). */
static const char SQL_JOB_CLAIM[] =
    "UPDATE jobs SET status = 'processing', attempts = attempts + 1, started_at = now(), "
    "worker = $2, lease_gen = lease_gen + 1, "
    "lease_expires_at = now() + $3::bigint * interval '1 millisecond', stage = 'starting', "
    "progress = 0, error_code = NULL, error_message = NULL, finished_at = NULL, "
    "updated_at = now() "
    "WHERE id = $1 AND deleted_at IS NULL AND NOT cancel_requested "
    "AND (run_at IS NULL OR run_at <= now()) "
    "AND (status = 'pending' OR (status = 'processing' AND lease_gen = $4::bigint "
    "     AND (lease_expires_at IS NULL OR lease_expires_at < now() OR worker = $2))) "
    "AND (SELECT count(*) FROM jobs p WHERE p.user_id = jobs.user_id "
    "     AND p.status = 'processing' AND p.id <> jobs.id) < "
    "    (SELECT COALESCE(u.max_processing, "
    "                     CASE WHEN u.plan = 'premium' THEN $6::int ELSE $5::int END) "
    "       FROM users u WHERE u.id = jobs.user_id) "
    "RETURNING attempts, lease_gen, spec::text, user_id, priority, max_attempts";

/* Claims of one user's jobs queue behind this lock (held to the end of the
 * claim's transaction), so that two workers cannot both see the user one
 * job short of the limit and both claim. NO KEY UPDATE, not UPDATE: the
 * foreign-key checks of the user's own inserts meanwhile (uploads, jobs,
 * API keys) take KEY SHARE on this row and must not wait for a claim. */
static const char SQL_USER_LOCK[] =
    "SELECT 1 FROM users u JOIN jobs j ON j.user_id = u.id WHERE j.id = $1 "
    "FOR NO KEY UPDATE OF u";

/* After a claim that matched nothing: is the job still waiting (then its
 * user is at the limit)? Its enqueued_at is cleared so that the scheduler
 * pushes it again as soon as one of the user's jobs ends. */
static const char SQL_JOB_AT_LIMIT[] =
    "UPDATE jobs SET enqueued_at = NULL, pushed_priority = NULL "
    "WHERE id = $1 AND status = 'pending' AND deleted_at IS NULL AND NOT cancel_requested "
    "AND (run_at IS NULL OR run_at <= now())";

/* A job out of attempts, recorded with its final failure. */
static const char SQL_DEAD_LETTER[] =
    "INSERT INTO dead_letters (job_id, user_id, attempts, error_code, error_message) "
    "SELECT id, user_id, attempts, $2, $3 FROM jobs WHERE id = $1 "
    "ON CONFLICT (job_id) DO UPDATE SET attempts = excluded.attempts, "
    "error_code = excluded.error_code, error_message = excluded.error_message, "
    "created_at = now()";

/* A final status, from pending ($5 NULL) or from the lease generation $5,
 * which must be this worker's ($6) or expired: a takeover that read the
 * lease expired must not finish a job whose holder renewed it since. */
static const char SQL_JOB_FINAL[] =
    "UPDATE jobs SET status = $2, error_code = $3, error_message = $4, stage = NULL, "
    "finished_at = now(), lease_expires_at = NULL, updated_at = now() "
    "WHERE id = $1 AND ((status = 'pending' AND $5::bigint IS NULL) "
    "OR (status = 'processing' AND lease_gen = $5::bigint "
    "    AND (lease_expires_at IS NULL OR lease_expires_at < now() OR worker = $6)))";

/* Locks the job's row for the rest of the transaction while lease generation
 * $2 holds it, and tells whether a cancel was asked for (or the job
 * deleted) meanwhile: every outcome of an attempt is written under this
 * lock, so a cancel either lands before it (and the attempt ends
 * cancelled, whatever it came to) or waits for it and finds the job
 * finished. The outputs are registered under it too, before the status
 * changes, so whatever reacts to the job becoming completed (a trigger, a
 * webhook) sees them. */
static const char SQL_JOB_HOLD[] =
    "SELECT cancel_requested OR deleted_at IS NOT NULL FROM jobs "
    "WHERE id = $1 AND lease_gen = $2::bigint AND status = 'processing' FOR NO KEY UPDATE";

static const char SQL_JOB_DONE[] =
    "UPDATE jobs SET status = 'completed', progress = 100, stage = NULL, finished_at = now(), "
    "lease_expires_at = NULL, error_code = NULL, error_message = NULL, updated_at = now() "
    "WHERE id = $1 AND lease_gen = $2::bigint AND status = 'processing' AND deleted_at IS NULL";

/* The store did not answer: back to pending until run_at, the attempt
 * given back (the job did not fail; an outage longer than the retries
 * must not use up its attempts). */
static const char SQL_JOB_UNAVAILABLE[] =
    "UPDATE jobs SET status = 'pending', stage = NULL, progress = 0, worker = NULL, "
    "lease_expires_at = NULL, attempts = greatest(attempts - 1, 0), "
    "run_at = now() + $3::bigint * interval '1 millisecond', enqueued_at = NULL, "
    "pushed_priority = NULL, updated_at = now() "
    "WHERE id = $1 AND lease_gen = $2::bigint AND status = 'processing'";

/* Back to pending for another worker; the interrupted attempt is not
 * counted, since it did not fail. */
static const char SQL_JOB_REQUEUE[] =
    "UPDATE jobs SET status = 'pending', stage = NULL, progress = 0, worker = NULL, "
    "lease_expires_at = NULL, attempts = greatest(attempts - 1, 0), updated_at = now() "
    "WHERE id = $1 AND lease_gen = $2::bigint AND status = 'processing'";

/* The scheduler pushes it once run_at has come (enqueued_at NULL). */
static const char SQL_JOB_RETRY[] =
    "UPDATE jobs SET status = 'pending', stage = NULL, progress = 0, worker = NULL, "
    "lease_expires_at = NULL, error_code = $3, error_message = $4, "
    "run_at = now() + $5::bigint * interval '1 millisecond', enqueued_at = NULL, "
    "pushed_priority = NULL, updated_at = now() "
    "WHERE id = $1 AND lease_gen = $2::bigint AND status = 'processing'";

/* Renews the lease; $2 is the progress to publish, or 0 to leave it. */
static const char SQL_JOB_HEARTBEAT[] =
    "UPDATE jobs SET progress = greatest(progress, $2::int), stage = $5, "
    "lease_expires_at = now() + $4::bigint * interval '1 millisecond', updated_at = now() "
    "WHERE id = $1 AND lease_gen = $3::bigint AND status = 'processing' "
    "RETURNING cancel_requested OR deleted_at IS NOT NULL";

/* Between heartbeats: cancelled, or the lease lost (no row)? */
static const char SQL_JOB_POLL[] =
    "SELECT cancel_requested OR deleted_at IS NOT NULL FROM jobs "
    "WHERE id = $1 AND lease_gen = $2::bigint AND status = 'processing'";

static const char SQL_JOB_SETTLED[] =
    "SELECT deleted_at IS NOT NULL OR status IN ('completed', 'failed', 'cancelled') "
    "FROM jobs WHERE id = $1";

static const char SQL_EVENT[] =
    "INSERT INTO job_events (job_id, event, detail) VALUES ($1, $2, $3::jsonb)";

/* An event of a running attempt outside a transaction that already checked
 * the lease: recorded only while lease generation $4 holds the job. */
static const char SQL_EVENT_FENCED[] =
    "INSERT INTO job_events (job_id, event, detail) SELECT $1, $2, $3::jsonb "
    "WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND lease_gen = $4::bigint "
    "AND status = 'processing')";

static const char SQL_MEDIA_INSERT[] =
    "INSERT INTO media (id, user_id, filename, size, content_type, kind, status, probe, sha256, "
    "storage_key, source_job_id, expires_at) VALUES ($1, $2, $3, $4::bigint, $5, $6, 'ready', "
    "$7::jsonb, $8, $9, $10, now() + $11::int * interval '1 day')";

static const char SQL_OUTPUT_INSERT[] =
    "INSERT INTO job_outputs (job_id, name, media_id, attempt) VALUES ($1, $2, $3, $4::int) "
    "ON CONFLICT DO NOTHING";

/* The per-user lock the API holds while it checks and takes a unit of a
 * plan limit (fcgi/quota.c), here for the rest of the transaction: the
 * storage a job's outputs add is checked and taken under it too. */
static const char SQL_QUOTA_LOCK[] = "SELECT pg_advisory_xact_lock(hashtext('kadr-quota:' || $1))";

/* The user's plan and the bytes their live media take (as the API counts
 * them: declared sizes of unfinished uploads included). */
static const char SQL_QUOTA_USAGE[] =
    "SELECT u.plan, u.is_admin, (SELECT coalesce(sum(m.size), 0)::bigint FROM media m "
    "  WHERE m.user_id = u.id AND m.deleted_at IS NULL "
    "    AND m.status NOT IN ('rejected', 'expired')) "
    "FROM users u WHERE u.id = $1";

static const char SQL_MEDIA_LOAD[] =
    "SELECT storage_key, status, deleted_at IS NOT NULL, user_id FROM media WHERE id = $1";

static const char SQL_MEDIA_READY[] =
    "UPDATE media SET status = 'ready', kind = $2, probe = $3::jsonb, sha256 = $4, "
    "error_code = NULL, error_message = NULL "
    "WHERE id = $1 AND status = 'processing' AND deleted_at IS NULL";

static const char SQL_MEDIA_REJECT[] =
    "UPDATE media SET status = 'rejected', error_code = $2, error_message = $3 "
    "WHERE id = $1 AND status = 'processing' AND deleted_at IS NULL";

static const char SQL_WAITING_JOBS[] =
    "SELECT j.id, j.priority FROM job_inputs ji JOIN jobs j ON j.id = ji.job_id "
    "WHERE ji.media_id = $1 AND j.status = 'pending' AND j.deleted_at IS NULL";

/* --- small helpers ------------------------------------------------------ */

/* Cuts a trailing partial UTF-8 sequence that a bounded snprintf may have
 * left: PostgreSQL refuses text that is not UTF-8. */
static void
fix_utf8(char *s)
{
    size_t len = strlen(s);

    for (int i = 0; i < 4 && len > 0 && !kd_utf8_valid(s, len); i++)
        s[--len] = '\0';
    if (!kd_utf8_valid(s, len))
        s[0] = '\0';
}

static enum kd_err
ack(struct kd_worker *w, const struct kd_queue_msg *msg)
{
    enum kd_err rc = kd_queue_ack(w->queue, msg);

    if (rc != KD_OK)
        kd_log(KD_LOG_WARN, "queue: could not acknowledge %s (%s); it will be delivered again",
               msg->id, kd_err_name(rc));
    return rc;
}

/* Inserts a job event; steals detail (NULL means it could not be made).
 * With gen, only while that lease generation holds the job. */
static enum kd_err
add_event_gen(struct kd_worker *w, const char *job_id, const char *gen, const char *event,
              json_t *detail)
{
    char *text = NULL;
    enum kd_err rc;

    if (detail == NULL || (text = kd_json_dump(detail)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    const char *p[] = {job_id, event, text, gen};

    rc = kd_db_query(w->db, gen != NULL ? SQL_EVENT_FENCED : SQL_EVENT, gen != NULL ? 4 : 3, p,
                     NULL);
out:
    free(text);
    json_decref(detail);
    return rc;
}

/* Inside a transaction whose conditional UPDATE holds the job's row. */
static enum kd_err
add_event(struct kd_worker *w, const char *job_id, const char *event, json_t *detail)
{
    return add_event_gen(w, job_id, NULL, event, detail);
}

/* A JSON string for text that may not be UTF-8 (jansson refuses that). */
static json_t *
jstr(const char *s)
{
    json_t *v = json_string(s != NULL ? s : "");

    return v != NULL ? v : json_string("");
}

/* The attempt of worker lost_by was lost: its lease ran out (or its worker
 * restarted under the same name) and another attempt takes the job over. */
static enum kd_err
add_lease_expired(struct kd_worker *w, const char *job_id, int attempt, const char *lost_by)
{
    return add_event(w, job_id, "lease_expired",
                     json_pack("{s:i,s:o}", "attempt", attempt, "worker", jstr(lost_by)));
}

/* Inside a transaction: moves a job to a final status (failed, cancelled)
 * from pending (gen NULL) or from lease generation gen, with its event, and
 * a lease_expired event first when lost_by names the worker whose attempt
 * a takeover ends. *matched is false when the job was no longer in that
 * state (the caller rolls back). */
static enum kd_err
final_in_tx(struct kd_worker *w, const char *job_id, const char *gen, int attempt,
            const char *status, const char *code, const char *message, bool dead_letter,
            const char *lost_by, bool *matched)
{
    struct kd_dbres *res = NULL;
    char msg[KD_PROTO_TEXT_MAX + 1];
    enum kd_err rc;

    *matched = false;
    snprintf(msg, sizeof(msg), "%s", message);
    fix_utf8(msg);
    const char *p[] = {job_id, status, code, msg, gen, w->consumer};

    if ((rc = kd_db_query(w->db, SQL_JOB_FINAL, 6, p, &res)) != KD_OK)
        goto out;
    if (kd_dbres_affected(res) == 0)
        goto out;
    if (lost_by != NULL && (rc = add_lease_expired(w, job_id, attempt, lost_by)) != KD_OK)
        goto out;
    if (dead_letter) {
        const char *dp[] = {job_id, code, msg};

        if ((rc = kd_db_query(w->db, SQL_DEAD_LETTER, 3, dp, NULL)) != KD_OK)
            goto out;
    }
    rc = add_event(w, job_id, status,
                   json_pack("{s:i,s:s,s:o,s:b}", "attempt", attempt, "code", code, "message",
                             jstr(msg), "dead_letter", dead_letter));
    if (rc != KD_OK)
        goto out;
    *matched = true;
out:
    kd_dbres_free(res);
    return rc;
}

static void
log_final(const char *job_id, const char *status, const char *code, const char *message,
          bool dead_letter)
{
    kd_log(KD_LOG_INFO, "job %s %s: %s: %s%s", job_id, status, code, message,
           dead_letter ? " (out of attempts: dead letter)" : "");
}

/* final_in_tx in a transaction of its own. */
static enum kd_err
finalize_dl(struct kd_worker *w, const char *job_id, const char *gen, int attempt,
            const char *status, const char *code, const char *message, bool dead_letter,
            const char *lost_by, bool *matched)
{
    bool done = false;
    enum kd_err rc;

    *matched = false;
    if ((rc = kd_db_begin(w->db)) != KD_OK)
        goto out;
    rc = final_in_tx(w, job_id, gen, attempt, status, code, message, dead_letter, lost_by, &done);
    if (rc != KD_OK || !done) /* rolled back below; nothing was changed anyway */
        goto out;
    if ((rc = kd_db_commit(w->db)) != KD_OK)
        goto out;
    *matched = true;
    log_final(job_id, status, code, message, dead_letter);
out:
    kd_db_rollback(w->db);
    return rc;
}

static enum kd_err
finalize(struct kd_worker *w, const char *job_id, const char *gen, int attempt, const char *status,
         const char *code, const char *message, const char *lost_by, bool *matched)
{
    return finalize_dl(w, job_id, gen, attempt, status, code, message, false, lost_by, matched);
}

/* Opens the transaction that writes an attempt's outcome: locks the job's
 * row while the slot's lease holds it (*held false: it does not any more)
 * and reads whether a cancel was asked for meanwhile (*cancel). */
static enum kd_err
hold_job(struct kd_worker *w, const struct kd_slot *s, bool *held, bool *cancel)
{
    struct kd_dbres *res = NULL;
    const char *p[] = {s->ref, s->lease_gen};
    enum kd_err rc;

    *held = *cancel = false;
    if ((rc = kd_db_begin(w->db)) != KD_OK ||
        (rc = kd_db_query(w->db, SQL_JOB_HOLD, 2, p, &res)) != KD_OK)
        goto out;
    *held = kd_dbres_rows(res) > 0;
    *cancel = *held && kd_dbres_bool(res, 0, 0);
out:
    kd_dbres_free(res);
    return rc;
}

/* Under hold_job's lock, with a cancel asked for: whatever the attempt came
 * to (success, failure, a hand-back at shutdown), the job ends cancelled,
 * as the API promised when it answered. Commits; the slot's outcome then
 * becomes cancelled (its caller deletes any stored outputs). */
static enum kd_err
cancel_held(struct kd_worker *w, struct kd_slot *s, bool *matched)
{
    static const char why[] = "the job was cancelled";
    bool done = false;
    enum kd_err rc;

    *matched = false;
    rc = final_in_tx(w, s->ref, s->lease_gen, s->attempt, "cancelled", "cancelled", why, false,
                     NULL, &done);
    if (rc != KD_OK || !done || (rc = kd_db_commit(w->db)) != KD_OK)
        return rc;
    *matched = true;
    s->outcome = KD_OUTCOME_CANCELLED;
    log_final(s->ref, "cancelled", "cancelled", why, false);
    return KD_OK;
}

/* True when the job is finished or deleted, so that acknowledging its
 * delivery can lose nothing. False also when that cannot be known now. */
static bool
job_settled(struct kd_worker *w, const char *job_id)
{
    struct kd_dbres *res = NULL;
    const char *p[] = {job_id};
    bool settled = false;

    if (kd_db_query(w->db, SQL_JOB_SETTLED, 1, p, &res) == KD_OK)
        settled = kd_dbres_rows(res) == 0 || kd_dbres_bool(res, 0, 0);
    kd_dbres_free(res);
    return settled;
}

/* Pushes an edit delivery for every pending job that reads media_id, so
 * that jobs waiting for its probe look again. */
static enum kd_err
wake_jobs(struct kd_worker *w, const char *media_id)
{
    struct kd_dbres *res = NULL;
    const char *p[] = {media_id};
    enum kd_err rc;
    int n;

    if ((rc = kd_db_query(w->db, SQL_WAITING_JOBS, 1, p, &res)) != KD_OK)
        goto out;
    n = kd_dbres_rows(res);
    for (int i = 0; i < n; i++) {
        rc = kd_queue_push(w->queue, "edit", kd_dbres_get(res, i, 0),
                           (int)kd_dbres_i64(res, i, 1, 5));
        if (rc != KD_OK)
            goto out;
    }
    if (n > 0)
        kd_log(KD_LOG_INFO, "media %s: woke %d waiting job(s)", media_id, n);
out:
    kd_dbres_free(res);
    return rc;
}

/* Fails a slot's task before (or instead of) running its child. */
static void
fail_slot(struct kd_slot *s, const char *code, const char *message)
{
    s->state = KD_SLOT_FINISHING;
    s->outcome = KD_OUTCOME_FAILURE;
    s->finish_started_ms = kd_mono_ms();
    snprintf(s->code, sizeof(s->code), "%s", code);
    snprintf(s->message, sizeof(s->message), "%s", message);
    fix_utf8(s->message);
}

static bool
in_slots(const struct kd_worker *w, const struct kd_queue_msg *msg, bool *same_delivery)
{
    enum kd_task_kind kind = strcmp(msg->kind, "probe") == 0 ? KD_TASK_PROBE : KD_TASK_EDIT;

    for (size_t i = 0; i < w->n_slots; i++) {
        const struct kd_slot *s = &w->slots[i];

        if (s->state != KD_SLOT_FREE && s->kind == kind && strcasecmp(s->ref, msg->ref) == 0) {
            *same_delivery =
                strcmp(s->msg.id, msg->id) == 0 && strcmp(s->msg.stream, msg->stream) == 0;
            return true;
        }
    }
    return false;
}

/* How the child names an input: the store's own file when it has one
 * (local disk: opened in place), else the object's key, which the child
 * reads by ranged requests (S3). Nothing is fetched here: the parent's
 * loop never waits on the store. */
static enum kd_err
input_name(struct kd_worker *w, const char *key, char **out, bool *is_object)
{
    char *path;
    enum kd_err rc;

    if ((path = malloc(PATH_MAX)) == NULL)
        return KD_ENOMEM;
    rc = kd_storage_local_path(w->storage, key, path, PATH_MAX);
    *is_object = rc == KD_EUNSUPPORTED;
    if (*is_object)
        rc = kd_snprintf(path, PATH_MAX, "%s", key);
    if (rc != KD_OK) {
        free(path);
        return rc;
    }
    *out = path;
    return KD_OK;
}

static struct kd_child_limits
child_limits(const struct kd_config *cfg, int64_t nofile)
{
    struct kd_child_limits lim = {
        .mem_mb = cfg->worker_mem_limit_mb,
        .cpu_s = cfg->worker_cpu_limit_s,
        .file_mb = cfg->worker_file_limit_mb,
        .nofile = nofile,
        /* The child reads and writes S3 itself (sandbox.h). */
        .inet = strcmp(cfg->storage_backend, "s3") == 0,
    };

    return lim;
}

/* --- probes ------------------------------------------------------------- */

static enum kd_err
dispatch_probe(struct kd_worker *w, const struct kd_queue_msg *msg, struct kd_slot *s)
{
    struct kd_dbres *res = NULL;
    const char *p[] = {msg->ref};
    char *path = NULL;
    bool dir_made = false, is_object = false;
    enum kd_err rc;

    if ((rc = kd_db_query(w->db, SQL_MEDIA_LOAD, 1, p, &res)) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) == 0) {
        kd_log(KD_LOG_INFO, "media %s: no such media; dropping the probe", msg->ref);
        rc = ack(w, msg);
        goto out;
    }
    if (kd_dbres_bool(res, 0, 2) || strcmp(kd_dbres_get(res, 0, 1), "processing") != 0) {
        /* Probed already (a duplicate delivery), or gone. Its waiting jobs
         * are woken again: the first wake-up may be what got lost. */
        kd_log(KD_LOG_DEBUG, "media %s: %s; nothing to probe", msg->ref, kd_dbres_get(res, 0, 1));
        if ((rc = wake_jobs(w, msg->ref)) == KD_OK)
            rc = ack(w, msg);
        goto out;
    }
    kd_slot_init(s);
    s->kind = KD_TASK_PROBE;
    s->msg = *msg;
    s->priority = msg->priority;
    snprintf(s->ref, sizeof(s->ref), "%.36s", msg->ref); /* a valid UUID */
    snprintf(s->user_id, sizeof(s->user_id), "%s", kd_dbres_get(res, 0, 3));
    rc = kd_snprintf(s->work_dir, sizeof(s->work_dir), "%s/probe-%s-%llu", w->run_dir, msg->ref,
                     (unsigned long long)++w->seq);
    if (rc != KD_OK || (rc = kd_workdir_make(s->work_dir)) != KD_OK)
        goto out;
    dir_made = true;
    if ((rc = input_name(w, kd_dbres_get(res, 0, 0), &path, &is_object)) != KD_OK) {
        kd_log(KD_LOG_WARN, "media %s: no usable storage key (%s)", msg->ref, kd_err_name(rc));
        goto out;
    }
    struct kd_run_probe args = {
        .store = is_object ? w->storage : NULL, .path = path, .lim = &w->cfg->limits};
    struct kd_child_limits lim = child_limits(w->cfg, NOFILE_BASE + NOFILE_STORE);
    int64_t timeout_s = w->cfg->worker_job_timeout_s < PROBE_TIMEOUT_S
                            ? w->cfg->worker_job_timeout_s
                            : PROBE_TIMEOUT_S;

    if ((rc = kd_slot_start(s, &lim, timeout_s * 1000, kd_run_probe, &args)) != KD_OK)
        goto out;
    dir_made = false; /* the slot's now */
    kd_log(KD_LOG_INFO, "media %s: probing in process %d", s->ref, (int)s->pid);
out:
    if (dir_made) {
        kd_workdir_remove(s->work_dir);
        kd_slot_init(s);
    }
    free(path);
    kd_dbres_free(res);
    return rc;
}

static enum kd_err
finish_probe(struct kd_worker *w, struct kd_slot *s)
{
    struct kd_proto_file f;
    struct kd_dbres *res = NULL;
    char *probe = NULL;
    enum kd_err rc = KD_OK;

    if (s->outcome == KD_OUTCOME_UNAVAILABLE) {
        /* Nothing is written: the media stays processing, and the
         * scheduler pushes its probe again (every 30 s) until the store
         * answers. */
        kd_log(KD_LOG_WARN, "media %s: probe put off: %s", s->ref, s->message);
        s->written = true;
        if (ack(w, &s->msg) != KD_OK) {
            /* Redelivered later: then probed again. */
        }
        goto out;
    }
    if (!s->written) {
        if (s->outcome == KD_OUTCOME_SUCCESS) {
            if (kd_proto_file_get(s->result.payload, NULL, &f) == KD_OK &&
                (probe = kd_json_dump(f.probe)) != NULL) {
                const char *p[] = {s->ref, f.kind, probe, f.sha256};

                if ((rc = kd_db_query(w->db, SQL_MEDIA_READY, 4, p, &res)) != KD_OK)
                    goto out;
                kd_log(KD_LOG_INFO, "media %s: ready (%s)", s->ref, f.kind);
            } else {
                fail_slot(s, "internal", "the probe reported a malformed result");
            }
        }
        if (s->outcome == KD_OUTCOME_FAILURE) {
            const char *p[] = {s->ref, s->code, s->message};

            if ((rc = kd_db_query(w->db, SQL_MEDIA_REJECT, 3, p, &res)) != KD_OK)
                goto out;
            kd_log(KD_LOG_INFO, "media %s: rejected: %s: %s", s->ref, s->code, s->message);
        }
        s->written = true;
    }
    if (s->outcome == KD_OUTCOME_REQUEUE)
        rc = kd_queue_push(w->queue, "probe", s->ref, s->priority);
    else
        rc = wake_jobs(w, s->ref);
    if (rc != KD_OK)
        goto out;
    if (ack(w, &s->msg) != KD_OK) {
        /* Redelivered later, then seen as probed already. */
    }
out:
    free(probe);
    kd_dbres_free(res);
    return rc;
}

/* --- edits: taking one ---------------------------------------------------- */

/* Text of the first validation error of a stored spec that no longer passes
 * (the limits may have been lowered since it was accepted). */
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

static const char *
input_key(const struct kd_dbres *inputs, const char *media_id)
{
    for (int i = 0; i < kd_dbres_rows(inputs); i++)
        if (strcasecmp(kd_dbres_get(inputs, i, 0), media_id) == 0)
            return kd_dbres_get(inputs, i, 3);
    return NULL;
}

/* Resolves the spec's media to local files and starts the child; on any
 * failure the slot ends FINISHING with the job's error. */
static void
start_edit(struct kd_worker *w, struct kd_slot *s, const char *spec_text,
           const struct kd_dbres *inputs)
{
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct kd_jobspec *spec = NULL;
    json_t *body = NULL;
    char **paths = NULL;
    const char **in_paths = NULL, **layer_paths = NULL, *out_keys[KD_SLOT_MAX_FILES];
    char msg[KD_PROTO_TEXT_MAX];
    size_t n_paths = 0;
    bool is_object = false;
    enum kd_err rc;

    if (kd_json_parse(spec_text, strlen(spec_text), &body, msg, sizeof(msg)) != KD_OK) {
        fail_slot(s, "internal", "the job's stored spec is not JSON");
        goto out;
    }
    if ((rc = kd_jobspec_parse(body, &w->cfg->limits, &spec, &pb)) != KD_OK) {
        if (rc == KD_EINVAL)
            problem_text(&pb, msg, sizeof(msg));
        else
            snprintf(msg, sizeof(msg), "the job's spec could not be read");
        fail_slot(s, kd_err_job_code(rc), msg);
        goto out;
    }
    s->container = spec->output.container;
    /* Earlier attempts' directories are in the run directories of the
     * workers that ran them, removed by them or, for one that died, by the
     * next sweep (child.h). */
    if (kd_snprintf(s->work_dir, sizeof(s->work_dir), "%s/%s-%d", w->run_dir, s->ref, s->attempt) !=
            KD_OK ||
        kd_workdir_make(s->work_dir) != KD_OK) {
        s->work_dir[0] = '\0';
        fail_slot(s, "internal", "could not make the job's work directory");
        goto out;
    }
    n_paths = spec->n_inputs + spec->n_layers + 1;
    paths = calloc(n_paths, sizeof(*paths));
    in_paths = calloc(spec->n_inputs, sizeof(*in_paths));
    layer_paths = calloc(spec->n_layers > 0 ? spec->n_layers : 1, sizeof(*layer_paths));
    if (paths == NULL || in_paths == NULL || layer_paths == NULL) {
        fail_slot(s, "internal", "out of memory");
        goto out;
    }
    /* In spec order: inputs, then layers (text layers have no file), then
     * the audio track; slot k of paths is the k-th file fetched. */
    for (size_t k = 0; k < n_paths; k++) {
        const char *media_id = NULL, *key;

        if (k < spec->n_inputs)
            media_id = spec->inputs[k].media_id;
        else if (k < spec->n_inputs + spec->n_layers) {
            const struct kd_layer *l = &spec->layers[k - spec->n_inputs];

            if (l->type != KD_LAYER_TEXT)
                media_id = l->media_id;
        } else if (spec->has_audio)
            media_id = spec->audio.media_id;
        if (media_id == NULL)
            continue;
        if ((key = input_key(inputs, media_id)) == NULL) {
            snprintf(msg, sizeof(msg), "media %s is not registered as an input of the job",
                     media_id);
            fail_slot(s, "internal", msg);
            goto out;
        }
        if ((rc = input_name(w, key, &paths[k], &is_object)) != KD_OK) {
            snprintf(msg, sizeof(msg), "input media %s has no usable storage key", media_id);
            fail_slot(s, "internal", msg);
            goto out;
        }
    }
    /* The outputs' keys, chosen before the child exists: whatever it
     * stored can then be deleted whichever way it ends. */
    s->n_keys = 1 + (size_t)spec->thumbnails.count;
    if (s->n_keys > KD_SLOT_MAX_FILES) {
        fail_slot(s, "internal", "the job asks for more thumbnails than the worker can store");
        goto out;
    }
    for (size_t i = 0; i < s->n_keys; i++) {
        if (kd_uuid_new(s->stored_ids[i]) != KD_OK ||
            kd_snprintf(s->stored_keys[i], sizeof(s->stored_keys[i]), "media/%s",
                        s->stored_ids[i]) != KD_OK) {
            fail_slot(s, "internal", "could not name the job's outputs");
            goto out;
        }
        out_keys[i] = s->stored_keys[i];
    }
    for (size_t i = 0; i < spec->n_inputs; i++)
        in_paths[i] = paths[i];
    for (size_t i = 0; i < spec->n_layers; i++)
        layer_paths[i] = paths[spec->n_inputs + i];

    int64_t timeout_ms = w->cfg->worker_job_timeout_s * 1000;
    struct kd_run_edit args = {
        .spec_text = spec_text,
        .spec_len = strlen(spec_text),
        .in_store = is_object ? w->storage : NULL,
        .store = w->storage,
        .out_keys = out_keys,
        .n_out_keys = s->n_keys,
        .input_paths = in_paths,
        .n_inputs = spec->n_inputs,
        .layer_paths = layer_paths,
        .n_layers = spec->n_layers,
        .audio_path = spec->has_audio ? paths[n_paths - 1] : NULL,
        .work_dir = s->work_dir,
        .lim = &w->cfg->limits,
        .threads = (int)w->cfg->worker_threads,
        .deadline_ms = kd_mono_ms() + timeout_ms,
    };
    struct kd_child_limits lim = child_limits(
        w->cfg, NOFILE_BASE + NOFILE_STORE + (int64_t)n_paths + spec->thumbnails.count);

    if (kd_slot_start(s, &lim, timeout_ms + KILL_MARGIN_MS, kd_run_edit, &args) != KD_OK) {
        fail_slot(s, "internal", "could not start the job process");
        goto out;
    }
    kd_log(KD_LOG_INFO, "job %s: attempt %d runs in process %d", s->ref, s->attempt, (int)s->pid);
out:
    for (size_t k = 0; paths != NULL && k < n_paths; k++)
        free(paths[k]);
    free(paths);
    free(in_paths);
    free(layer_paths);
    json_decref(body);
    kd_jobspec_free(spec);
    kd_problem_clear(&pb);
}

/* Checks the job's inputs: *bad gets a message when one is unusable,
 * *waiting is true while one is still being uploaded or probed. */
static void
check_inputs(const struct kd_dbres *inputs, char *bad, size_t bad_len, bool *waiting)
{
    *waiting = false;
    bad[0] = '\0';
    for (int i = 0; i < kd_dbres_rows(inputs); i++) {
        const char *id = kd_dbres_get(inputs, i, 0), *status = kd_dbres_get(inputs, i, 1);
        const char *why = kd_dbres_get(inputs, i, 4);

        if (kd_dbres_bool(inputs, i, 2)) {
            snprintf(bad, bad_len, "input media %s was deleted", id);
            return;
        }
        if (strcmp(status, "rejected") == 0 || strcmp(status, "expired") == 0) {
            snprintf(bad, bad_len, "input media %s is %s%s%s", id, status, why != NULL ? ": " : "",
                     why != NULL ? why : "");
            fix_utf8(bad);
            return;
        }
        if (strcmp(status, "ready") != 0)
            *waiting = true;
    }
}

static enum kd_err
dispatch_edit(struct kd_worker *w, const struct kd_queue_msg *msg, struct kd_slot *s)
{
    struct kd_dbres *job = NULL, *inputs = NULL, *claim = NULL, *limited = NULL;
    const char *p[] = {msg->ref};
    char gen[24], lease_ms[24], max_free[24], max_premium[24], bad[KD_PROTO_TEXT_MAX];
    const char *seen_gen = NULL, *lost_by = NULL, *status;
    bool matched, waiting;
    int attempts;
    enum kd_err rc;

    if ((rc = kd_db_query(w->db, SQL_JOB_LOAD, 1, p, &job)) != KD_OK)
        goto out;
    if (kd_dbres_rows(job) == 0) {
        kd_log(KD_LOG_INFO, "job %s: no such job; dropping the delivery", msg->ref);
        rc = ack(w, msg);
        goto out;
    }
    status = kd_dbres_get(job, 0, 0);
    attempts = (int)kd_dbres_i64(job, 0, 6, 0);
    if (kd_dbres_bool(job, 0, 3) ||
        (strcmp(status, "pending") != 0 && strcmp(status, "processing") != 0)) {
        kd_log(KD_LOG_DEBUG, "job %s: %s already; duplicate delivery", msg->ref,
               kd_dbres_bool(job, 0, 3) ? "deleted" : status);
        rc = ack(w, msg);
        goto out;
    }
    if (strcmp(status, "processing") == 0) {
        const char *holder = kd_dbres_get(job, 0, 1);
        bool ours = holder != NULL && strcmp(holder, w->consumer) == 0;

        /* A live holder keeps the delivery too: acknowledging it here would
         * leave nothing to recover the job with if the holder then died. */
        if (!kd_dbres_bool(job, 0, 2) && !ours) {
            kd_log(KD_LOG_DEBUG, "job %s: held by %s; leaving the delivery", msg->ref,
                   holder != NULL ? holder : "?");
            rc = KD_OK;
            goto out;
        }
        snprintf(gen, sizeof(gen), "%s", kd_dbres_get(job, 0, 8));
        seen_gen = gen;
        lost_by = holder != NULL ? holder : "?";
        kd_log(KD_LOG_WARN, "job %s: taking over from %s (%s)", msg->ref, lost_by,
               ours ? "a previous run of this worker" : "its lease expired");
        if (!kd_dbres_bool(job, 0, 5) && attempts >= (int)kd_dbres_i64(job, 0, 7, 1)) {
            rc = finalize_dl(w, msg->ref, seen_gen, attempts, "failed", "internal",
                             "the worker running the job stopped responding", true, lost_by,
                             &matched);
            /* Not failed because the holder renewed its lease meanwhile:
             * it keeps the delivery, as a live holder does. */
            if (rc == KD_OK && (matched || job_settled(w, msg->ref)))
                rc = ack(w, msg);
            goto out;
        }
    } else if (kd_dbres_bool(job, 0, 4) && !kd_dbres_bool(job, 0, 5)) {
        kd_log(KD_LOG_DEBUG, "job %s: waits for its run_at", msg->ref);
        rc = ack(w, msg);
        goto out;
    }
    if (kd_dbres_bool(job, 0, 5)) {
        rc = finalize(w, msg->ref, seen_gen, attempts, "cancelled", "cancelled",
                      "the job was cancelled", lost_by, &matched);
        if (rc == KD_OK)
            rc = ack(w, msg);
        goto out;
    }
    if ((rc = kd_db_query(w->db, SQL_JOB_INPUTS, 1, p, &inputs)) != KD_OK)
        goto out;
    check_inputs(inputs, bad, sizeof(bad), &waiting);
    if (bad[0] != '\0') {
        rc = finalize(w, msg->ref, seen_gen, attempts, "failed", "invalid_media", bad, lost_by,
                      &matched);
        if (rc == KD_OK)
            rc = ack(w, msg);
        goto out;
    }
    if (waiting) {
        /* The probe that finishes the last input pushes the job again. */
        kd_log(KD_LOG_DEBUG, "job %s: waits for its inputs", msg->ref);
        rc = ack(w, msg);
        goto out;
    }

    snprintf(lease_ms, sizeof(lease_ms), "%lld", (long long)w->lease_ms);
    snprintf(max_free, sizeof(max_free), "%lld", (long long)w->cfg->plan_free_max_processing);
    snprintf(max_premium, sizeof(max_premium), "%lld",
             (long long)w->cfg->plan_premium_max_processing);
    const char *cp[] = {msg->ref, w->consumer, lease_ms, seen_gen, max_free, max_premium};

    if ((rc = kd_db_begin(w->db)) != KD_OK)
        goto out;
    if ((rc = kd_db_query(w->db, SQL_USER_LOCK, 1, p, NULL)) != KD_OK)
        goto out;
    if ((rc = kd_db_query(w->db, SQL_JOB_CLAIM, 6, cp, &claim)) != KD_OK)
        goto out;
    if (kd_dbres_rows(claim) == 0) {
        kd_db_rollback(w->db);
        /* Still waiting: its user has as many jobs processing as allowed.
         * The delivery goes (the worker must not hold it and block others'
         * jobs); the scheduler pushes the job again when a slot frees. */
        if ((rc = kd_db_query(w->db, SQL_JOB_AT_LIMIT, 1, p, &limited)) != KD_OK)
            goto out;
        if (kd_dbres_affected(limited) > 0) {
            kd_log(KD_LOG_DEBUG, "job %s: its user is at the processing limit", msg->ref);
        } else if (seen_gen != NULL && !job_settled(w, msg->ref)) {
            /* A takeover that lost: the holder renewed its lease after
             * all, or another worker took over first. A live holder keeps
             * the delivery, as above. */
            kd_log(KD_LOG_INFO, "job %s: its lease was renewed meanwhile; leaving the delivery",
                   msg->ref);
            goto out;
        } else {
            kd_log(KD_LOG_DEBUG, "job %s: taken by someone else", msg->ref);
        }
        rc = ack(w, msg);
        goto out;
    }
    kd_slot_init(s);
    s->kind = KD_TASK_EDIT;
    s->msg = *msg;
    snprintf(s->ref, sizeof(s->ref), "%.36s", msg->ref); /* a valid UUID */
    s->attempt = (int)kd_dbres_i64(claim, 0, 0, 1);
    snprintf(s->lease_gen, sizeof(s->lease_gen), "%s", kd_dbres_get(claim, 0, 1));
    snprintf(s->user_id, sizeof(s->user_id), "%s", kd_dbres_get(claim, 0, 3));
    s->priority = (int)kd_dbres_i64(claim, 0, 4, 5);
    s->max_attempts = (int)kd_dbres_i64(claim, 0, 5, 1);
    if (lost_by != NULL)
        rc = add_lease_expired(w, s->ref, s->attempt - 1, lost_by);
    if (rc == KD_OK)
        rc = add_event(w, s->ref, "started",
                       json_pack("{s:i,s:s}", "attempt", s->attempt, "worker", w->consumer));
    if (rc != KD_OK || (rc = kd_db_commit(w->db)) != KD_OK) {
        kd_slot_init(s);
        goto out;
    }
    kd_log_set_job(s->ref, s->attempt);
    kd_log(KD_LOG_INFO, "job %s: started attempt %d of %d", s->ref, s->attempt, s->max_attempts);
    start_edit(w, s, kd_dbres_get(claim, 0, 2), inputs);
    if (s->state == KD_SLOT_FINISHING && kd_task_finish(w, s) == KD_OK)
        kd_slot_release(s);
    rc = KD_OK;
out:
    kd_db_rollback(w->db);
    kd_log_set_job(NULL, 0);
    kd_dbres_free(job);
    kd_dbres_free(inputs);
    kd_dbres_free(claim);
    kd_dbres_free(limited);
    return rc;
}

enum kd_err
kd_task_dispatch(struct kd_worker *w, const struct kd_queue_msg *msg, struct kd_slot *s)
{
    bool same;

    if (!kd_uuid_valid(msg->ref)) {
        kd_log(KD_LOG_WARN, "queue: delivery %s names no valid id; dropping it", msg->id);
        return ack(w, msg);
    }
    if (strcmp(msg->kind, "probe") != 0 && strcmp(msg->kind, "edit") != 0) {
        kd_log(KD_LOG_WARN, "queue: delivery %s has the unknown kind \"%s\"; dropping it", msg->id,
               msg->kind);
        return ack(w, msg);
    }
    if (in_slots(w, msg, &same)) {
        /* Our own delivery, reclaimed after a long run: it stays ours and
         * is acknowledged when the task ends. Another delivery of the same
         * task is redundant. */
        if (same)
            return KD_OK;
        return ack(w, msg);
    }
    if (strcmp(msg->kind, "probe") == 0)
        return dispatch_probe(w, msg, s);
    return dispatch_edit(w, msg, s);
}

/* --- edits: while running ------------------------------------------------ */

void
kd_task_heartbeat(struct kd_worker *w, struct kd_slot *s, int64_t now_ms)
{
    struct kd_dbres *res = NULL;
    char pct_text[16], lease_ms[24];
    bool publish, renew;
    int pct;
    enum kd_err rc;

    /* A finishing attempt keeps its lease until its outcome is written. */
    if (s->kind != KD_TASK_EDIT || s->state == KD_SLOT_FREE || s->killed != KD_KILL_NONE ||
        s->written || now_ms < w->db_retry_ms)
        return;
    /* 100 is written with the outputs, never before. */
    pct = (int)(s->progress * 100);
    if (pct > 99)
        pct = 99;
    /* Three paces: progress is published when it grew and at most every
     * worker_progress_ms; the lease is renewed every worker_heartbeat_ms
     * (with the progress when that is due, else leaving it); in between
     * the row is only read, every CANCEL_POLL_MS, so that a cancel lands
     * soon without a write per poll. */
    publish = s->state == KD_SLOT_RUNNING && pct > s->pct_written &&
              now_ms - s->last_progress_ms >= w->cfg->worker_progress_ms;
    renew = now_ms - s->last_write_ms >= w->cfg->worker_heartbeat_ms;
    if (!publish && !renew && now_ms - s->last_poll_ms < CANCEL_POLL_MS)
        return;
    s->last_poll_ms = now_ms;
    kd_log_set_job(s->ref, s->attempt);
    if (publish || renew) {
        s->last_write_ms = now_ms;
        if (publish)
            s->last_progress_ms = now_ms;
        snprintf(pct_text, sizeof(pct_text), "%d", publish ? pct : 0);
        snprintf(lease_ms, sizeof(lease_ms), "%lld", (long long)w->lease_ms);
        const char *p[] = {s->ref, pct_text, s->lease_gen, lease_ms,
                           s->state == KD_SLOT_RUNNING && !s->is_storing ? "processing"
                                                                         : "storing"};

        rc = kd_db_query(w->db, SQL_JOB_HEARTBEAT, 5, p, &res);
    } else {
        const char *p[] = {s->ref, s->lease_gen};

        rc = kd_db_query(w->db, SQL_JOB_POLL, 2, p, &res);
    }
    if (rc != KD_OK) {
        w->db_failures++;
        w->db_retry_ms = now_ms + kd_policy_backoff_ms(w->db_failures, 250, 5000);
        if (!s->heartbeat_warned)
            kd_log(KD_LOG_WARN, "job %s: heartbeat failed (%s); the child keeps running", s->ref,
                   kd_err_name(rc));
        s->heartbeat_warned = true;
        goto out;
    }
    w->db_failures = 0;
    s->heartbeat_warned = false;
    if (kd_dbres_rows(res) == 0) {
        kd_log(KD_LOG_WARN, "job %s: lease %s lost; stopping", s->ref, s->lease_gen);
        if (s->state == KD_SLOT_RUNNING)
            kd_slot_kill(s, KD_KILL_LEASE);
        goto out;
    }
    if (kd_dbres_bool(res, 0, 0)) {
        if (s->state == KD_SLOT_RUNNING) {
            kd_log(KD_LOG_INFO, "job %s: cancelled; stopping process %d", s->ref, (int)s->pid);
            kd_slot_kill(s, KD_KILL_CANCEL);
        }
        goto out;
    }
    if (publish)
        s->pct_written = pct;
out:
    kd_log_set_job(NULL, 0);
    kd_dbres_free(res);
}

void
kd_task_event(void *ud, struct kd_slot *s, const struct kd_proto_msg *m)
{
    struct kd_worker *w = ud;
    enum kd_err rc;

    if (s->kind != KD_TASK_EDIT) {
        kd_log(KD_LOG_INFO, "media %s: %s: %s", s->ref, m->event, m->detail);
        return;
    }
    kd_log_set_job(s->ref, s->attempt);
    /* The child handles untrusted input: only known event names reach the
     * job's history, and only so many. */
    if (strcmp(m->event, "warning") != 0) {
        kd_log(KD_LOG_WARN, "job %s: unknown event \"%s\" from the job process ignored", s->ref,
               m->event);
    } else if (s->n_events < MAX_EVENTS) {
        s->n_events++;
        rc =
            add_event_gen(w, s->ref, s->lease_gen, "warning",
                          json_pack("{s:i,s:o}", "attempt", s->attempt, "detail", jstr(m->detail)));
        if (rc != KD_OK)
            kd_log(KD_LOG_WARN, "job %s: could not record a warning (%s)", s->ref, kd_err_name(rc));
    }
    kd_log_set_job(NULL, 0);
}

/* --- edits: outcomes -------------------------------------------------------- */

/* Removes whatever the child began to store: its multipart uploads
 * aborted (no parts stay billed), its objects deleted. For an attempt
 * whose outputs will not be published: failed, cancelled, killed, lost. */
static void
discard_outputs(struct kd_worker *w, struct kd_slot *s)
{
    for (size_t i = 0; i < s->n_store_started; i++) {
        if (s->upload_ids[i] != NULL) {
            if (kd_storage_multipart_abort(w->storage, s->stored_keys[i], s->upload_ids[i]) !=
                KD_OK)
                kd_log(KD_LOG_WARN,
                       "job %s: could not abort the upload of %s; the store's lifecycle rule "
                       "must",
                       s->ref, s->stored_keys[i]);
            free(s->upload_ids[i]);
            s->upload_ids[i] = NULL;
        }
        if (kd_storage_delete(w->storage, s->stored_keys[i]) != KD_OK)
            kd_log(KD_LOG_WARN, "job %s: could not delete the orphan object %s", s->ref,
                   s->stored_keys[i]);
    }
    s->n_store_started = 0;
    s->n_stored = 0;
}

/* The description of file i of a successful result (0: the main output,
 * then the thumbnails). */
static enum kd_err
result_file(const struct kd_slot *s, size_t i, struct kd_proto_file *f)
{
    const json_t *payload = s->result.payload;

    if (i == 0)
        return kd_proto_file_get(payload, "output", f);
    return kd_proto_file_get(json_array_get(json_object_get(payload, "thumbs"), i - 1), NULL, f);
}

static size_t
result_files(const struct kd_slot *s)
{
    const json_t *thumbs = json_object_get(s->result.payload, "thumbs");

    return 1 + (json_is_array(thumbs) ? json_array_size(thumbs) : 0);
}

static enum kd_err
file_name(const struct kd_slot *s, size_t i, char *out, size_t len)
{
    if (i == 0)
        return kd_proto_output_name(kd_container_name(s->container), out, len);
    return kd_proto_thumb_name(i, out, len);
}

/* Checks output i, which the child stored: the parent opens the file it
 * left in the work directory without following links and requires a plain
 * non-empty file with one name (the child handled untrusted input and may
 * have planted a link), whose size the media row records. */
static enum kd_err
check_file(struct kd_slot *s, size_t i)
{
    char name[32], path[PATH_MAX];
    struct stat st;
    int fd = -1;
    enum kd_err rc;

    if ((rc = file_name(s, i, name, sizeof(name))) != KD_OK ||
        (rc = kd_snprintf(path, sizeof(path), "%s/%s", s->work_dir, name)) != KD_OK)
        goto out;
    if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0) {
        kd_log_errno(KD_LOG_WARN, errno, "job %s: output %s", s->ref, name);
        rc = KD_EINVAL;
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_size <= 0) {
        kd_log(KD_LOG_WARN, "job %s: output %s is not a plain non-empty file", s->ref, name);
        rc = KD_EINVAL;
        goto out;
    }
    s->stored_sizes[i] = (int64_t)st.st_size;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* The child reported success: every output is stored under its key.
 * A result that does not add up turns the outcome into a failure. */
static void
check_outputs(struct kd_slot *s)
{
    size_t n = result_files(s);
    struct kd_proto_file f;

    if (n > s->n_keys || n > s->n_store_started) {
        fail_slot(s, "internal", "the job process reported outputs it did not store");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (result_file(s, i, &f) != KD_OK) {
            fail_slot(s, "internal", "the job process reported a malformed result");
            return;
        }
        if (check_file(s, i) != KD_OK) {
            fail_slot(s, "internal", "the job process left an output that is not a plain file");
            return;
        }
    }
    s->n_stored = n;
}

static enum kd_err
insert_output(struct kd_worker *w, const struct kd_slot *s, size_t i)
{
    struct kd_proto_file f;
    char filename[96], out_name[32], size[24], attempt[16], days[24];
    const char *kind, *ctype;
    char *probe = NULL;
    enum kd_err rc;

    if ((rc = result_file(s, i, &f)) != KD_OK)
        goto out;
    if ((probe = kd_json_dump(f.probe)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if (i == 0) {
        snprintf(filename, sizeof(filename), "%s.%s", s->ref, kd_container_name(s->container));
        snprintf(out_name, sizeof(out_name), "main");
        ctype = kd_container_mime(s->container);
        /* The probe knows best; a video container may hold only sound. */
        if (strcmp(f.kind, "video") == 0 || strcmp(f.kind, "audio") == 0)
            kind = f.kind;
        else
            kind = kd_container_is_audio_only(s->container) ? "audio" : "video";
    } else {
        snprintf(filename, sizeof(filename), "%s-thumbnail-%zu.jpg", s->ref, i);
        snprintf(out_name, sizeof(out_name), "thumbnail-%zu", i);
        ctype = "image/jpeg";
        kind = "image";
    }
    snprintf(size, sizeof(size), "%lld", (long long)s->stored_sizes[i]);
    snprintf(attempt, sizeof(attempt), "%d", s->attempt);
    snprintf(days, sizeof(days), "%lld", (long long)w->cfg->retention_days);
    const char *mp[] = {s->stored_ids[i], s->user_id,        filename, size, ctype, kind, probe,
                        f.sha256,         s->stored_keys[i], s->ref,   days};
    const char *op[] = {s->ref, out_name, s->stored_ids[i], attempt};

    if ((rc = kd_db_query(w->db, SQL_MEDIA_INSERT, 11, mp, NULL)) != KD_OK)
        goto out;
    rc = kd_db_query(w->db, SQL_OUTPUT_INSERT, 4, op, NULL);
out:
    free(probe);
    return rc;
}

/* Inside commit_success's transaction: would the outputs take the user's
 * storage past their plan's quota? The API refuses a run only once the
 * user is at the quota, since it cannot know the outputs' size; this is
 * where that size is known. Taken under the API's per-user quota lock, so
 * that an upload or another job's outputs checked at the same moment see
 * these. *over gets a message for the job's error. */
static enum kd_err
outputs_over_quota(struct kd_worker *w, const struct kd_slot *s, bool *over, char *msg,
                   size_t msg_len)
{
    struct kd_dbres *res = NULL;
    const char *p[] = {s->user_id};
    struct kd_plan_limits lim;
    int64_t used, adds = 0;
    enum kd_err rc;

    *over = false;
    if ((rc = kd_db_query(w->db, SQL_QUOTA_LOCK, 1, p, NULL)) != KD_OK ||
        (rc = kd_db_query(w->db, SQL_QUOTA_USAGE, 1, p, &res)) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) != 1) /* the user is gone: nothing to meter */
        goto out;
    kd_plan_limits_get(w->cfg, kd_dbres_get(res, 0, 0), kd_dbres_bool(res, 0, 1), &lim);
    if (lim.storage_bytes < 0)
        goto out;
    used = kd_dbres_i64(res, 0, 2, 0);
    for (size_t i = 0; i < s->n_stored; i++)
        if (__builtin_add_overflow(adds, s->stored_sizes[i], &adds))
            adds = INT64_MAX;
    if (used > lim.storage_bytes || adds > lim.storage_bytes - used) {
        *over = true;
        snprintf(msg, msg_len,
                 "storage_bytes: the outputs (%lld bytes) would take your storage (%lld bytes in "
                 "use) past your plan's %lld bytes; delete media and retry the job",
                 (long long)adds, (long long)used, (long long)lim.storage_bytes);
    }
out:
    kd_dbres_free(res);
    return rc;
}

/* Publishes the stored outputs and completes the job in one transaction,
 * provided the lease is still ours; a cancel asked for meanwhile makes it
 * cancelled instead (s->outcome says so; the outputs are not published). */
static enum kd_err
commit_success(struct kd_worker *w, struct kd_slot *s, bool *matched, bool *over_quota)
{
    struct kd_dbres *res = NULL;
    const char *p[] = {s->ref, s->lease_gen};
    double duration = json_number_value(json_object_get(s->result.payload, "duration"));
    char why[KD_PROTO_TEXT_MAX + 1];
    bool held, cancel;
    enum kd_err rc;

    *matched = *over_quota = false;
    if ((rc = hold_job(w, s, &held, &cancel)) != KD_OK || !held)
        goto out;
    if (cancel) {
        rc = cancel_held(w, s, matched);
        goto out;
    }
    if ((rc = outputs_over_quota(w, s, over_quota, why, sizeof(why))) != KD_OK)
        goto out;
    if (*over_quota) {
        /* The attempt fails for good (retrying makes the same outputs);
         * the caller removes them and records the failure. */
        fail_slot(s, "limit_exceeded", why);
        goto out;
    }
    for (size_t i = 0; i < s->n_stored; i++)
        if ((rc = insert_output(w, s, i)) != KD_OK)
            goto out;
    if ((rc = kd_db_query(w->db, SQL_JOB_DONE, 2, p, &res)) != KD_OK)
        goto out;
    if (kd_dbres_affected(res) == 0)
        goto out;
    rc = add_event(w, s->ref, "completed",
                   json_pack("{s:i,s:i,s:f}", "attempt", s->attempt, "outputs", (int)s->n_stored,
                             "duration", duration));
    if (rc != KD_OK || (rc = kd_db_commit(w->db)) != KD_OK)
        goto out;
    *matched = true;
    kd_log(KD_LOG_INFO, "job %s: completed with %zu output(s) in %.1f s", s->ref, s->n_stored,
           (double)(kd_mono_ms() - s->started_ms) / 1000.0);
out:
    kd_db_rollback(w->db);
    kd_dbres_free(res);
    return rc;
}

/* A failed attempt: final (and a dead letter when it was the last one of a
 * retryable failure), or back to pending with a run_at in the future; or
 * cancelled when a cancel was asked for meanwhile: a pending job with
 * cancel_requested would never be taken again. */
static enum kd_err
record_failure(struct kd_worker *w, struct kd_slot *s, bool *matched)
{
    uint64_t rnd = 0;
    struct kd_dbres *res = NULL;
    char delay[24];
    bool held, cancel, done;
    enum kd_err rc;

    *matched = false;
    if (kd_random_bytes(&rnd, sizeof(rnd)) != KD_OK)
        rnd = (uint64_t)kd_mono_ms(); /* jitter only; any value will do */
    struct kd_decision d = kd_policy_decide(s->code, s->attempt, s->max_attempts, rnd);

    snprintf(delay, sizeof(delay), "%lld", (long long)d.delay_ms);
    const char *p[] = {s->ref, s->lease_gen, s->code, s->message, delay};

    if ((rc = hold_job(w, s, &held, &cancel)) != KD_OK || !held)
        goto out;
    if (cancel) {
        rc = cancel_held(w, s, matched);
        goto out;
    }
    if (d.fate == KD_FATE_FAIL) {
        rc = final_in_tx(w, s->ref, s->lease_gen, s->attempt, "failed", s->code, s->message,
                         d.dead_letter, NULL, &done);
        if (rc != KD_OK || !done || (rc = kd_db_commit(w->db)) != KD_OK)
            goto out;
        *matched = true;
        log_final(s->ref, "failed", s->code, s->message, d.dead_letter);
        goto out;
    }
    if ((rc = kd_db_query(w->db, SQL_JOB_RETRY, 5, p, &res)) != KD_OK)
        goto out;
    if (kd_dbres_affected(res) == 0)
        goto out;
    rc = add_event(w, s->ref, "retrying",
                   json_pack("{s:i,s:s,s:o,s:I}", "attempt", s->attempt, "code", s->code, "message",
                             jstr(s->message), "delay_ms", (json_int_t)d.delay_ms));
    if (rc != KD_OK || (rc = kd_db_commit(w->db)) != KD_OK)
        goto out;
    *matched = true;
    kd_log(KD_LOG_INFO, "job %s: attempt %d failed (%s); retrying in %lld ms", s->ref, s->attempt,
           s->code, (long long)d.delay_ms);
out:
    kd_db_rollback(w->db);
    kd_dbres_free(res);
    return rc;
}

/* Hands the job back at shutdown; a job whose cancel was asked for
 * meanwhile ends cancelled instead of waiting, pending, forever. */
static enum kd_err
requeue(struct kd_worker *w, struct kd_slot *s, bool *matched)
{
    struct kd_dbres *res = NULL;
    const char *p[] = {s->ref, s->lease_gen};
    bool held, cancel;
    enum kd_err rc;

    *matched = false;
    if ((rc = hold_job(w, s, &held, &cancel)) != KD_OK || !held)
        goto out;
    if (cancel) {
        rc = cancel_held(w, s, matched);
        goto out;
    }
    if ((rc = kd_db_query(w->db, SQL_JOB_REQUEUE, 2, p, &res)) != KD_OK)
        goto out;
    if (kd_dbres_affected(res) == 0)
        goto out;
    rc = add_event(w, s->ref, "requeued",
                   json_pack("{s:i,s:s}", "attempt", s->attempt, "reason", "the worker stopped"));
    if (rc != KD_OK || (rc = kd_db_commit(w->db)) != KD_OK)
        goto out;
    *matched = true;
    kd_log(KD_LOG_INFO, "job %s: put back to pending for another worker", s->ref);
out:
    kd_db_rollback(w->db);
    kd_dbres_free(res);
    return rc;
}

/* The store did not answer while the attempt read its inputs or stored
 * its outputs: pending again after a short delay, the attempt given back,
 * a requeued event saying why. Like a shutdown's hand-back, no attempt is
 * spent on it, so an outage of any length loses no job to dead letters;
 * and like it, a job whose cancel was asked for meanwhile ends cancelled. */
static enum kd_err
hand_back_unavailable(struct kd_worker *w, struct kd_slot *s, bool *matched)
{
    struct kd_dbres *res = NULL;
    uint64_t rnd = 0;
    char delay[24], reason[KD_PROTO_TEXT_MAX + 64];
    int64_t delay_ms;
    bool held, cancel;
    enum kd_err rc;

    *matched = false;
    if (kd_random_bytes(&rnd, sizeof(rnd)) != KD_OK)
        rnd = (uint64_t)kd_mono_ms(); /* jitter only */
    delay_ms = kd_policy_unavailable_delay_ms(rnd);
    snprintf(delay, sizeof(delay), "%lld", (long long)delay_ms);
    snprintf(reason, sizeof(reason), "storage unavailable: %s", s->message);
    fix_utf8(reason);
    const char *p[] = {s->ref, s->lease_gen, delay};

    if ((rc = hold_job(w, s, &held, &cancel)) != KD_OK || !held)
        goto out;
    if (cancel) {
        rc = cancel_held(w, s, matched);
        goto out;
    }
    if ((rc = kd_db_query(w->db, SQL_JOB_UNAVAILABLE, 3, p, &res)) != KD_OK)
        goto out;
    if (kd_dbres_affected(res) == 0)
        goto out;
    rc = add_event(w, s->ref, "requeued",
                   json_pack("{s:i,s:o,s:I}", "attempt", s->attempt, "reason", jstr(reason),
                             "delay_ms", (json_int_t)delay_ms));
    if (rc != KD_OK || (rc = kd_db_commit(w->db)) != KD_OK)
        goto out;
    *matched = true;
    kd_log(KD_LOG_WARN, "job %s: %s; back to pending for %lld ms, attempt given back", s->ref,
           reason, (long long)delay_ms);
out:
    kd_db_rollback(w->db);
    kd_dbres_free(res);
    return rc;
}

static enum kd_err
write_edit_outcome(struct kd_worker *w, struct kd_slot *s, bool *matched)
{
    bool over_quota = false;
    enum kd_err rc;

    *matched = false;
    if (s->outcome == KD_OUTCOME_SUCCESS && s->n_stored == 0)
        check_outputs(s);
    /* Outputs are published only on success; anything else removes what
     * the child stored (once: the steps below may be retried). */
    if (s->outcome != KD_OUTCOME_SUCCESS)
        discard_outputs(w, s);
    switch (s->outcome) {
    case KD_OUTCOME_SUCCESS:
        rc = commit_success(w, s, matched, &over_quota);
        if (rc == KD_OK && over_quota) {
            discard_outputs(w, s);
            return record_failure(w, s, matched);
        }
        /* Lost, or cancelled at the last moment: nothing refers to them. */
        if (rc == KD_OK && (!*matched || s->outcome == KD_OUTCOME_CANCELLED))
            discard_outputs(w, s);
        /* A lock wait past the statement timeout is as passing as an
         * outage: the same outputs are committed on the next try. */
        if (rc == KD_OK || rc == KD_EUNAVAIL || rc == KD_ETIMEOUT)
            return rc;
        /* Refused for good (not for want of a connection): the outputs
         * cannot be published, so the attempt failed. */
        discard_outputs(w, s);
        fail_slot(s, "internal", "could not record the job's outputs");
        return record_failure(w, s, matched);
    case KD_OUTCOME_FAILURE:
        return record_failure(w, s, matched);
    case KD_OUTCOME_CANCELLED:
        return finalize(w, s->ref, s->lease_gen, s->attempt, "cancelled", "cancelled",
                        "the job was cancelled", NULL, matched);
    case KD_OUTCOME_REQUEUE:
        return requeue(w, s, matched);
    case KD_OUTCOME_UNAVAILABLE:
        return hand_back_unavailable(w, s, matched);
    case KD_OUTCOME_LOST:
        return KD_OK;
    }
    return KD_EINTERNAL;
}

static enum kd_err
finish_edit(struct kd_worker *w, struct kd_slot *s)
{
    enum kd_err rc;
    bool matched;

    if (!s->written) {
        if ((rc = write_edit_outcome(w, s, &matched)) != KD_OK)
            return rc;
        if (!matched && s->outcome != KD_OUTCOME_LOST) {
            kd_log(KD_LOG_WARN,
                   "job %s: no longer held by this attempt (lease %s); its outcome "
                   "is dropped",
                   s->ref, s->lease_gen);
            s->outcome = KD_OUTCOME_LOST;
        }
        s->written = true;
    }
    if (s->outcome == KD_OUTCOME_REQUEUE &&
        (rc = kd_queue_push(w->queue, "edit", s->ref, s->priority)) != KD_OK)
        return rc;
    /* A job taken over by another worker keeps its delivery: that worker
     * may hold this very entry now. */
    if (s->outcome == KD_OUTCOME_LOST && !job_settled(w, s->ref))
        return KD_OK;
    if (ack(w, &s->msg) != KD_OK) {
        /* Redelivered later, then recognised as finished. */
    }
    return KD_OK;
}

enum kd_err
kd_task_finish(struct kd_worker *w, struct kd_slot *s)
{
    enum kd_err rc;

    if (s->kind == KD_TASK_EDIT)
        kd_log_set_job(s->ref, s->attempt);
    rc = s->kind == KD_TASK_EDIT ? finish_edit(w, s) : finish_probe(w, s);
    if (rc != KD_OK) {
        s->finish_failures++;
        s->retry_at_ms = kd_mono_ms() + kd_policy_backoff_ms(s->finish_failures, 250, 5000);
        if (s->finish_failures == 1 || s->finish_failures % 20 == 0)
            kd_log(KD_LOG_WARN, "%s %s: could not record the outcome (%s); will retry",
                   s->kind == KD_TASK_EDIT ? "job" : "media", s->ref, kd_err_name(rc));
    }
    kd_log_set_job(NULL, 0);
    return rc;
}

void
kd_task_abandon(struct kd_worker *w, struct kd_slot *s)
{
    if (s->kind == KD_TASK_EDIT)
        kd_log_set_job(s->ref, s->attempt);
    if (!s->written)
        discard_outputs(w, s);
    kd_log(KD_LOG_ERROR,
           "%s %s: giving up on recording the outcome; delivery %s stays "
           "unacknowledged and will come again",
           s->kind == KD_TASK_EDIT ? "job" : "media", s->ref, s->msg.id);
    kd_log_set_job(NULL, 0);
}

void
kd_task_announce(struct kd_worker *w, size_t busy, bool leaving)
{
    static const char upsert[] =
        "INSERT INTO workers (name, slots, busy) VALUES ($1, $2::int, $3::int) "
        "ON CONFLICT (name) DO UPDATE SET seen_at = now(), slots = excluded.slots, "
        "busy = excluded.busy";
    static const char leave[] = "DELETE FROM workers WHERE name = $1";
    char slots[24], n_busy[24];
    const char *p[] = {w->consumer, slots, n_busy};

    snprintf(slots, sizeof(slots), "%zu", w->n_slots);
    snprintf(n_busy, sizeof(n_busy), "%zu", busy);
    /* Only for the admin view: a failure (PostgreSQL down) is not worth a
     * line of its own; the queue read reports the outage. */
    if (kd_db_query(w->db, leaving ? leave : upsert, leaving ? 1 : 3, p, NULL) != KD_OK)
        kd_log(KD_LOG_DEBUG, "worker: could not announce itself");
}
