/* jobs.c: POST|GET /api/v1/jobs, GET|DELETE /api/v1/jobs/{id},
 * GET /api/v1/jobs/{id}/events, POST /api/v1/jobs/{id}/cancel|retry.
 *
 * PostgreSQL holds the truth about a job; the queue only carries hints. So a
 * job is written and committed first and enqueued after, and every state
 * change here is a conditional UPDATE (WHERE status = ...): when a worker
 * moves the same row at the same moment, exactly one of the two wins and the
 * other sees zero rows and re-reads. */
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "jobspec.h"
#include "log.h"
#include "router.h"

#define IDEMPOTENCY_KEY_MAX 255

/* The array literal of the media a job names (inputs, layers, audio: a few
 * hundred UUIDs at the configured maxima) is capped well above that. */
#define REFS_LITERAL_MAX (64 * 1024)

static const char *const job_statuses[] = {"pending", "processing", "completed", "failed",
                                           "cancelled"};

/* 1..255 printable ASCII characters (a client's UUID, a hash, a name). */
static bool
idempotency_key_valid(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++)
        if (i >= IDEMPOTENCY_KEY_MAX || (unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return i > 0;
}

/* Answers with the user's live job rendered by kadr_job_json, and when
 * location is true a Location header naming it. KD_ENOTFOUND when none. */
static enum kd_err
respond_job(struct kd_req *rq, struct kd_resp *rs, struct kd_db *db, const char *job_id, int status,
            bool location)
{
    static const char sel[] = "SELECT kadr_job_json(j)::text FROM jobs j "
                              " WHERE j.id = $1 AND j.user_id = $2 AND j.deleted_at IS NULL";
    const char *params[2] = {job_id, rq->principal.user_id};
    struct kd_dbres *res = NULL;
    char loc[96];
    enum kd_err rc;

    if ((rc = kd_db_query(db, sel, 2, params, &res)) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) != 1 || kd_dbres_get(res, 0, 0) == NULL) {
        rc = KD_ENOTFOUND;
        goto out;
    }
    if ((rc = kd_resp_json_text(rs, status, kd_dbres_get(res, 0, 0))) != KD_OK)
        goto out;
    if (location) {
        if ((rc = kd_snprintf(loc, sizeof(loc), "/api/v1/jobs/%s", job_id)) != KD_OK)
            goto out;
        rc = kd_resp_header(rs, "Location", loc);
    }
out:
    kd_dbres_free(res);
    return rc;
}

static enum kd_err
not_found(struct kd_resp *rs)
{
    return kd_resp_problem(rs, 404, "not-found", "there is no such job");
}

/* --- POST /jobs ----------------------------------------------------------- */

enum idem_state {
    IDEM_NONE,     /* no live job holds the key */
    IDEM_SAME,     /* a live job holds it for the same body: answer it */
    IDEM_CONFLICT, /* a live job holds it for another body */
};

/* Looks the key up; a job older than 24 hours or deleted gives its key up
 * (the contract promises the same answer within 24 hours only), which
 * lock_stale does inside the caller's transaction. */
static enum kd_err
idem_lookup(struct kd_db *db, const char *user_id, const char *key, const char *hash,
            bool lock_stale, enum idem_state *state, char job_id[KD_UUID_STRLEN + 1])
{
    static const char sel[] =
        "SELECT id::text, request_hash, "
        "       deleted_at IS NULL AND created_at > now() - interval '24 hours' "
        "  FROM jobs WHERE user_id = $1 AND idempotency_key = $2 FOR UPDATE";
    static const char release[] =
        "UPDATE jobs SET idempotency_key = NULL, updated_at = now() WHERE id = $1";
    const char *params[2] = {user_id, key};
    struct kd_dbres *res = NULL;
    const char *stored;
    enum kd_err rc;

    *state = IDEM_NONE;
    if ((rc = kd_db_query(db, sel, 2, params, &res)) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) != 1)
        goto out;
    if ((rc = kd_snprintf(job_id, KD_UUID_STRLEN + 1, "%s", kd_dbres_get(res, 0, 0))) != KD_OK)
        goto out;
    if (!kd_dbres_bool(res, 0, 2)) {
        const char *p[1] = {job_id};

        if (lock_stale)
            rc = kd_db_query(db, release, 1, p, NULL);
        goto out;
    }
    stored = kd_dbres_get(res, 0, 1);
    *state = stored != NULL && strcmp(stored, hash) == 0 ? IDEM_SAME : IDEM_CONFLICT;
out:
    kd_dbres_free(res);
    return rc;
}

static enum kd_err
answer_idem(struct kd_req *rq, struct kd_resp *rs, struct kd_db *db, enum idem_state state,
            const char *job_id)
{
    if (state == IDEM_CONFLICT)
        return kd_resp_problem(rs, 409, "idempotency-key-reused",
                               "this Idempotency-Key was used with a different body");
    return respond_job(rq, rs, db, job_id, 202, true);
}

/* Checks that every media the spec names is the user's, live, and usable;
 * each failure names the field. Locks the rows (FOR SHARE) so a concurrent
 * DELETE /media waits for this transaction. Fills *literal with the array
 * literal of the distinct ids for job_inputs. */
static enum kd_err
check_media(struct kd_db *db, const char *user_id, const struct kd_media_ref *refs, size_t n,
            struct kd_problem *pb, struct kd_buf *literal)
{
    static const char sel[] = "SELECT id::text, status FROM media "
                              " WHERE user_id = $1 AND deleted_at IS NULL AND id = ANY($2::uuid[]) "
                              " FOR SHARE";
    struct kd_dbres *res = NULL;
    size_t i;
    int row, rows;
    enum kd_err rc;

    if ((rc = kd_buf_puts(literal, "{")) != KD_OK)
        goto out;
    for (i = 0; i < n; i++) {
        /* The parser checked the form; a UUID has nothing to quote. */
        if (!kd_uuid_valid(refs[i].media_id))
            continue;
        if ((rc = kd_buf_printf(literal, "%s%s", literal->len > 1 ? "," : "", refs[i].media_id)) !=
            KD_OK)
            goto out;
    }
    if ((rc = kd_buf_puts(literal, "}")) != KD_OK)
        goto out;
    {
        const char *params[2] = {user_id, literal->data};

        if ((rc = kd_db_query(db, sel, 2, params, &res)) != KD_OK)
            goto out;
    }
    rows = kd_dbres_rows(res);
    for (i = 0; i < n; i++) {
        const char *status = NULL;

        for (row = 0; row < rows; row++) {
            if (strcasecmp(kd_dbres_get(res, row, 0), refs[i].media_id) == 0) {
                status = kd_dbres_get(res, row, 1);
                break;
            }
        }
        if (status == NULL || strcmp(status, "expired") == 0)
            rc = kd_problem_add(pb, refs[i].field, "names no media of yours");
        else if (strcmp(status, "rejected") == 0)
            rc = kd_problem_add(pb, refs[i].field, "names media that was rejected");
        else if (strcmp(status, "uploading") == 0)
            rc = kd_problem_add(pb, refs[i].field, "names media whose upload is not completed yet");
        if (rc != KD_OK)
            goto out;
    }
out:
    kd_dbres_free(res);
    return rc;
}

enum kd_err
kd_jobs_create(struct kd_req *rq, struct kd_resp *rs)
{
    /* The spec is stored as the body's own text (PostgreSQL normalises it to
     * jsonb): numbers keep their decimal form ("0.3" stays 0.3), which a
     * round trip through doubles would not guarantee. */
    static const char ins_job[] =
        "INSERT INTO jobs (user_id, type, priority, max_attempts, spec, metadata, webhook_url, "
        "                  idempotency_key, request_hash, run_at, enqueued_at) "
        "VALUES ($1, $2, $3::integer, $4::integer, $5::jsonb, "
        "        CASE WHEN jsonb_typeof($5::jsonb -> 'metadata') = 'object' "
        "             THEN $5::jsonb -> 'metadata' ELSE '{}'::jsonb END, "
        "        $6, $7, $8, "
        "        timestamptz 'epoch' + $9::bigint * interval '1 millisecond', "
        /* A job due now is pushed right after commit; one with a later
         * run_at has no message until kadr-scheduler finds it due. */
        "        CASE WHEN $9::bigint IS NULL "
        "               OR timestamptz 'epoch' + $9::bigint * interval '1 millisecond' <= now() "
        "             THEN now() END) "
        "RETURNING id::text, enqueued_at IS NOT NULL";
    static const char ins_inputs[] =
        "INSERT INTO job_inputs (job_id, media_id) "
        "SELECT DISTINCT $1::uuid, m FROM unnest($2::uuid[]) AS m ON CONFLICT DO NOTHING";
    static const char ins_event[] =
        "INSERT INTO job_events (job_id, event, detail) "
        "VALUES ($1, 'created', jsonb_build_object('request_id', $2::text))";
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct kd_jobspec *spec = NULL;
    struct kd_media_ref *refs = NULL;
    struct kd_dbres *res = NULL;
    struct kd_buf literal;
    struct kd_queue *q;
    struct kd_db *db;
    const char *idem = kd_req_param(rq, "HTTP_IDEMPOTENCY_KEY");
    char hash[65], job_id[KD_UUID_STRLEN + 1] = "", prio[8], attempts[24], run_at[24];
    enum idem_state state = IDEM_NONE;
    size_t n_refs = 0;
    bool due_now = false;
    enum kd_err rc;

    kd_buf_init(&literal, REFS_LITERAL_MAX);
    if (idem != NULL && !idempotency_key_valid(idem)) {
        rc = kd_resp_problem(rs, 400, "bad-request",
                             "Idempotency-Key must be 1 to %d printable ASCII characters",
                             IDEMPOTENCY_KEY_MAX);
        goto out;
    }
    rc = kd_jobspec_parse(rq->json, &rq->cfg->limits, &spec, &pb);
    if (rc == KD_EINVAL) {
        rc = kd_resp_problem_fields(rs, 422, "validation", "the job is invalid", &pb);
        goto out;
    }
    if (rc != KD_OK)
        goto out;
    if ((rc = kd_jobspec_media_refs(spec, &refs, &n_refs)) != KD_OK)
        goto out;
    kd_sha256_hex(rq->body, rq->body_len, hash);
    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;

    if ((rc = kd_db_begin(db)) != KD_OK)
        goto out;
    if (idem != NULL) {
        if ((rc = idem_lookup(db, rq->principal.user_id, idem, hash, true, &state, job_id)) !=
            KD_OK)
            goto out;
        if (state != IDEM_NONE) {
            if ((rc = kd_db_commit(db)) != KD_OK)
                goto out;
            rc = answer_idem(rq, rs, db, state, job_id);
            goto out;
        }
    }
    if ((rc = check_media(db, rq->principal.user_id, refs, n_refs, &pb, &literal)) != KD_OK)
        goto out;
    if (pb.n > 0 || pb.dropped > 0) {
        rc =
            kd_resp_problem_fields(rs, 422, "validation", "the job names media it cannot use", &pb);
        goto out;
    }
    if ((rc = kd_snprintf(prio, sizeof(prio), "%d", spec->priority)) != KD_OK ||
        (rc = kd_snprintf(attempts, sizeof(attempts), "%" PRId64,
                          spec->max_attempts > 0 ? (int64_t)spec->max_attempts
                                                 : rq->cfg->job_max_attempts)) != KD_OK ||
        (rc = kd_snprintf(run_at, sizeof(run_at), "%" PRId64, spec->run_at_ms)) != KD_OK)
        goto out;
    {
        const char *params[9] = {rq->principal.user_id,
                                 spec->type[0] != '\0' ? spec->type : "edit",
                                 prio,
                                 attempts,
                                 rq->body,
                                 spec->webhook_url,
                                 idem,
                                 idem != NULL ? hash : NULL,
                                 spec->has_run_at ? run_at : NULL};

        rc = kd_db_query(db, ins_job, 9, params, &res);
    }
    if (rc == KD_ECONFLICT && idem != NULL) {
        /* Another request with the same key committed first: answer as it
         * would have been answered had it come second. */
        kd_db_rollback(db);
        if ((rc = kd_db_begin(db)) != KD_OK)
            goto out;
        if ((rc = idem_lookup(db, rq->principal.user_id, idem, hash, false, &state, job_id)) !=
            KD_OK)
            goto out;
        if ((rc = kd_db_commit(db)) != KD_OK)
            goto out;
        if (state == IDEM_NONE) {
            rc = KD_ECONFLICT;
            goto out;
        }
        rc = answer_idem(rq, rs, db, state, job_id);
        goto out;
    }
    if (rc != KD_OK)
        goto out;
    if ((rc = kd_snprintf(job_id, sizeof(job_id), "%s", kd_dbres_get(res, 0, 0))) != KD_OK)
        goto out;
    due_now = strcmp(kd_dbres_get(res, 0, 1), "t") == 0;
    {
        const char *pi[2] = {job_id, literal.data};
        const char *pe[2] = {job_id, rq->request_id};

        if ((rc = kd_db_query(db, ins_inputs, 2, pi, NULL)) != KD_OK ||
            (rc = kd_db_query(db, ins_event, 2, pe, NULL)) != KD_OK)
            goto out;
    }
    if ((rc = respond_job(rq, rs, db, job_id, 202, true)) != KD_OK)
        goto out;
    if ((rc = kd_db_commit(db)) != KD_OK) {
        kd_resp_reset(rs);
        goto out;
    }
    kd_log(KD_LOG_INFO, "job %s created, priority %d%s", job_id, spec->priority,
           due_now ? "" : ", scheduled");
    if (due_now && (kd_app_queue(rq->app, &q) != KD_OK ||
                    kd_queue_push(q, "edit", job_id, spec->priority) != KD_OK))
        kd_log(KD_LOG_WARN,
               "job %s: enqueueing failed; the job stays pending in PostgreSQL and runs "
               "once it is enqueued again",
               job_id);
out:
    kd_dbres_free(res);
    kd_buf_clear(&literal);
    free(refs);
    kd_jobspec_free(spec);
    kd_problem_clear(&pb);
    return rc;
}

/* --- GET /jobs, GET /jobs/{id}, GET /jobs/{id}/events --------------------- */

enum kd_err
kd_jobs_list(struct kd_req *rq, struct kd_resp *rs)
{
    static const char sel[] =
        "SELECT kadr_job_json(j)::text, "
        "       (extract(epoch FROM j.created_at) * 1000000)::bigint || ':' || j.id "
        "  FROM jobs j "
        " WHERE j.user_id = $1 AND j.deleted_at IS NULL "
        "   AND ($2::text IS NULL OR j.status = $2::text) "
        "   AND ($3::bigint IS NULL OR (j.created_at, j.id) < "
        "        (timestamptz 'epoch' + $3::bigint / 1000000 * interval '1 second' "
        "         + $3::bigint % 1000000 * interval '1 microsecond', $4::uuid)) "
        " ORDER BY j.created_at DESC, j.id DESC "
        " LIMIT $5::integer + 1";
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct kd_page pg;
    struct kd_dbres *res = NULL;
    struct kd_db *db;
    const char *status = kd_req_query(rq, "status");
    char micros[24] = "", after_id[KD_UUID_STRLEN + 1] = "", limit[16];
    size_t i;
    enum kd_err rc;

    rc = kd_page_parse(rq, &pg, &pb);
    if (rc == KD_OK && pg.has_cursor && kd_cursor_split(pg.cursor, micros, after_id) != KD_OK)
        rc = kd_problem_add(&pb, "cursor", "is not a cursor of this list");
    if (rc == KD_ENOMEM)
        goto out;
    if (status != NULL) {
        for (i = 0; i < KD_ARRAY_LEN(job_statuses); i++)
            if (strcmp(status, job_statuses[i]) == 0)
                break;
        if (i == KD_ARRAY_LEN(job_statuses) &&
            (rc = kd_problem_add(&pb, "status",
                                 "must be pending, processing, completed, failed or "
                                 "cancelled")) != KD_OK)
            goto out;
    }
    if (pb.n > 0) {
        rc = kd_resp_problem_fields(rs, 422, "validation", "the query is invalid", &pb);
        goto out;
    }
    if ((rc = kd_snprintf(limit, sizeof(limit), "%d", pg.limit)) != KD_OK)
        goto out;
    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    {
        const char *params[5] = {rq->principal.user_id, status, pg.has_cursor ? micros : NULL,
                                 pg.has_cursor ? after_id : NULL, limit};

        if ((rc = kd_db_query(db, sel, 5, params, &res)) != KD_OK)
            goto out;
    }
    rc = kd_resp_list_rows(rs, res, pg.limit);
out:
    kd_dbres_free(res);
    kd_problem_clear(&pb);
    return rc;
}

enum kd_err
kd_jobs_get(struct kd_req *rq, struct kd_resp *rs)
{
    struct kd_db *db;
    enum kd_err rc;

    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    rc = respond_job(rq, rs, db, rq->id, 200, false);
    if (rc == KD_ENOTFOUND)
        rc = not_found(rs);
out:
    return rc;
}

enum kd_err
kd_jobs_events(struct kd_req *rq, struct kd_resp *rs)
{
    static const char owner[] = "SELECT 1 FROM jobs "
                                " WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL";
    static const char sel[] = "SELECT jsonb_build_object('at', kadr_ts(e.at), 'event', e.event, "
                              "                          'detail', e.detail)::text, e.id::text "
                              "  FROM job_events e "
                              " WHERE e.job_id = $1 AND ($2::bigint IS NULL OR e.id > $2::bigint) "
                              " ORDER BY e.id LIMIT $3::integer + 1";
    const char *po[2] = {rq->id, rq->principal.user_id};
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct kd_page pg;
    struct kd_dbres *res = NULL;
    struct kd_db *db;
    char limit[16];
    int64_t after = 0;
    enum kd_err rc;

    rc = kd_page_parse(rq, &pg, &pb);
    if (rc == KD_OK && pg.has_cursor && kd_parse_i64(pg.cursor, 0, INT64_MAX, &after) != KD_OK)
        rc = kd_problem_add(&pb, "cursor", "is not a cursor of this list");
    if (rc == KD_ENOMEM)
        goto out;
    if (pb.n > 0) {
        rc = kd_resp_problem_fields(rs, 422, "validation", "the query is invalid", &pb);
        goto out;
    }
    if ((rc = kd_snprintf(limit, sizeof(limit), "%d", pg.limit)) != KD_OK)
        goto out;
    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    if ((rc = kd_db_query(db, owner, 2, po, &res)) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) != 1) {
        rc = not_found(rs);
        goto out;
    }
    kd_dbres_free(res);
    res = NULL;
    {
        const char *params[3] = {rq->id, pg.has_cursor ? pg.cursor : NULL, limit};

        if ((rc = kd_db_query(db, sel, 3, params, &res)) != KD_OK)
            goto out;
    }
    rc = kd_resp_list_rows(rs, res, pg.limit);
out:
    kd_dbres_free(res);
    kd_problem_clear(&pb);
    return rc;
}

/* --- cancel, retry, delete ------------------------------------------------ */

enum cancel_outcome {
    CANCEL_NOT_FOUND,
    CANCEL_DONE,      /* was pending: cancelled now */
    CANCEL_REQUESTED, /* is processing: the worker stops it */
    CANCEL_FINISHED,  /* completed, failed or cancelled already */
};

/* Cancels inside the caller's transaction. The UPDATEs race with workers:
 * a pending job may be taken between our two statements, a processing one
 * may finish or go back to pending for a retry; the loop re-reads a few
 * times and then gives up with KD_ECONFLICT (409, "retry"). */
static enum kd_err
cancel_in_tx(struct kd_db *db, const char *job_id, const char *user_id, const char *request_id,
             enum cancel_outcome *out)
{
    static const char cancel_pending[] =
        "UPDATE jobs SET status = 'cancelled', finished_at = now(), updated_at = now(), "
        "       error_code = 'cancelled', error_message = 'cancelled by the user' "
        " WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL AND status = 'pending'";
    static const char request_cancel[] =
        "UPDATE jobs SET cancel_requested = true, updated_at = now() "
        " WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL AND status = 'processing' "
        "   AND NOT cancel_requested";
    static const char sel[] = "SELECT status FROM jobs "
                              " WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL";
    static const char ins_event[] = "INSERT INTO job_events (job_id, event, detail) "
                                    "VALUES ($1, $2, jsonb_build_object('request_id', $3::text))";
    const char *params[2] = {job_id, user_id};
    struct kd_dbres *res = NULL;
    const char *event = NULL;
    int attempt;
    enum kd_err rc = KD_OK;

    for (attempt = 0; attempt < 3 && event == NULL; attempt++) {
        const char *status;

        if ((rc = kd_db_query(db, cancel_pending, 2, params, &res)) != KD_OK)
            goto out;
        if (kd_dbres_affected(res) == 1) {
            event = "cancelled";
            *out = CANCEL_DONE;
            break;
        }
        kd_dbres_free(res);
        res = NULL;
        if ((rc = kd_db_query(db, request_cancel, 2, params, &res)) != KD_OK)
            goto out;
        if (kd_dbres_affected(res) == 1) {
            event = "cancel_requested";
            *out = CANCEL_REQUESTED;
            break;
        }
        kd_dbres_free(res);
        res = NULL;
        if ((rc = kd_db_query(db, sel, 2, params, &res)) != KD_OK)
            goto out;
        if (kd_dbres_rows(res) != 1) {
            *out = CANCEL_NOT_FOUND;
            goto out;
        }
        status = kd_dbres_get(res, 0, 0);
        if (strcmp(status, "processing") == 0) {
            *out = CANCEL_REQUESTED; /* asked before; nothing new to record */
            goto out;
        }
        if (strcmp(status, "pending") != 0) {
            *out = CANCEL_FINISHED;
            goto out;
        }
        kd_dbres_free(res);
        res = NULL;
    }
    if (event == NULL) {
        rc = KD_ECONFLICT;
        goto out;
    }
    {
        const char *pe[3] = {job_id, event, request_id};

        kd_dbres_free(res);
        res = NULL;
        if ((rc = kd_db_query(db, ins_event, 3, pe, NULL)) != KD_OK)
            goto out;
    }
    kd_log(KD_LOG_INFO, "job %s: %s", job_id, event);
out:
    kd_dbres_free(res);
    return rc;
}

enum kd_err
kd_jobs_cancel(struct kd_req *rq, struct kd_resp *rs)
{
    enum cancel_outcome outcome = CANCEL_NOT_FOUND;
    struct kd_db *db;
    enum kd_err rc;

    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    if ((rc = kd_db_begin(db)) != KD_OK)
        goto out;
    if ((rc = cancel_in_tx(db, rq->id, rq->principal.user_id, rq->request_id, &outcome)) != KD_OK)
        goto out;
    if (outcome == CANCEL_NOT_FOUND) {
        rc = not_found(rs);
        goto out;
    }
    if (outcome == CANCEL_FINISHED) {
        rc = kd_resp_problem(rs, 409, "job-finished", "the job has finished already");
        goto out;
    }
    if ((rc = respond_job(rq, rs, db, rq->id, 200, false)) != KD_OK)
        goto out;
    if ((rc = kd_db_commit(db)) != KD_OK)
        kd_resp_reset(rs);
out:
    return rc;
}

enum kd_err
kd_jobs_retry(struct kd_req *rq, struct kd_resp *rs)
{
    /* A fresh start: the attempts count again from zero, and the lease
     * columns of the last worker are cleared. run_at stays: a job cancelled
     * while waiting for its time keeps waiting for it. */
    static const char retry[] =
        "UPDATE jobs SET status = 'pending', enqueued_at = now(), progress = 0, stage = NULL, "
        "       error_code = NULL, "
        "       error_message = NULL, attempts = 0, cancel_requested = false, "
        "       started_at = NULL, finished_at = NULL, worker = NULL, lease_expires_at = NULL, "
        "       updated_at = now() "
        " WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL "
        "   AND status IN ('failed', 'cancelled') "
        "RETURNING priority";
    static const char exists[] = "SELECT 1 FROM jobs "
                                 " WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL";
    static const char ins_event[] =
        "INSERT INTO job_events (job_id, event, detail) "
        "VALUES ($1, 'retried', jsonb_build_object('request_id', $2::text))";
    const char *params[2] = {rq->id, rq->principal.user_id};
    const char *pe[2] = {rq->id, rq->request_id};
    struct kd_dbres *res = NULL;
    struct kd_queue *q;
    struct kd_db *db;
    int priority;
    enum kd_err rc;

    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    if ((rc = kd_db_begin(db)) != KD_OK)
        goto out;
    if ((rc = kd_db_query(db, retry, 2, params, &res)) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) != 1) {
        kd_dbres_free(res);
        res = NULL;
        if ((rc = kd_db_query(db, exists, 2, params, &res)) != KD_OK)
            goto out;
        if (kd_dbres_rows(res) != 1)
            rc = not_found(rs);
        else
            rc = kd_resp_problem(rs, 409, "job-not-retryable",
                                 "only a failed or cancelled job can be retried");
        goto out;
    }
    priority = (int)kd_dbres_i64(res, 0, 0, 5);
    if ((rc = kd_db_query(db, ins_event, 2, pe, NULL)) != KD_OK)
        goto out;
    if ((rc = respond_job(rq, rs, db, rq->id, 202, true)) != KD_OK)
        goto out;
    if ((rc = kd_db_commit(db)) != KD_OK) {
        kd_resp_reset(rs);
        goto out;
    }
    kd_log(KD_LOG_INFO, "job %s retried", rq->id);
    if (kd_app_queue(rq->app, &q) != KD_OK || kd_queue_push(q, "edit", rq->id, priority) != KD_OK)
        kd_log(KD_LOG_WARN,
               "job %s: enqueueing the retry failed; the job stays pending in PostgreSQL "
               "and runs once it is enqueued again",
               rq->id);
out:
    kd_dbres_free(res);
    return rc;
}

enum kd_err
kd_jobs_delete(struct kd_req *rq, struct kd_resp *rs)
{
    static const char del[] = "UPDATE jobs SET deleted_at = now(), updated_at = now() "
                              " WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL";
    static const char del_outputs[] =
        "UPDATE media SET deleted_at = now() "
        " WHERE user_id = $2 AND deleted_at IS NULL "
        "   AND id IN (SELECT media_id FROM job_outputs WHERE job_id = $1) "
        "RETURNING storage_key";
    static const char ins_event[] =
        "INSERT INTO job_events (job_id, event, detail) "
        "VALUES ($1, 'deleted', jsonb_build_object('request_id', $2::text))";
    const char *params[2] = {rq->id, rq->principal.user_id};
    const char *pe[2] = {rq->id, rq->request_id};
    enum cancel_outcome outcome = CANCEL_NOT_FOUND;
    struct kd_dbres *res = NULL, *keys = NULL;
    struct kd_storage *st;
    struct kd_db *db;
    int i;
    enum kd_err rc;

    if ((rc = kd_app_db(rq->app, &db)) != KD_OK || (rc = kd_app_storage(rq->app, &st)) != KD_OK)
        goto out;
    if ((rc = kd_db_begin(db)) != KD_OK)
        goto out;
    /* A job still running is stopped first, so nothing keeps writing for a
     * job nobody can see any more. */
    if ((rc = cancel_in_tx(db, rq->id, rq->principal.user_id, rq->request_id, &outcome)) != KD_OK)
        goto out;
    if (outcome == CANCEL_NOT_FOUND) {
        rc = not_found(rs);
        goto out;
    }
    if ((rc = kd_db_query(db, del, 2, params, &res)) != KD_OK)
        goto out;
    if (kd_dbres_affected(res) != 1) {
        rc = not_found(rs);
        goto out;
    }
    if ((rc = kd_db_query(db, ins_event, 2, pe, NULL)) != KD_OK)
        goto out;
    if ((rc = kd_db_query(db, del_outputs, 2, params, &keys)) != KD_OK)
        goto out;
    if ((rc = kd_db_commit(db)) != KD_OK)
        goto out;
    /* After the commit: the rows are gone for the API whatever happens to
     * the bytes, and a failed removal is logged for the operator. */
    for (i = 0; i < kd_dbres_rows(keys); i++)
        if (kd_storage_delete(st, kd_dbres_get(keys, i, 0)) != KD_OK)
            kd_log(KD_LOG_WARN, "job %s deleted; removing output object %s failed", rq->id,
                   kd_dbres_get(keys, i, 0));
    kd_log(KD_LOG_INFO, "job %s deleted with %d outputs", rq->id, kd_dbres_rows(keys));
    rc = kd_resp_empty(rs, 204);
out:
    kd_dbres_free(keys);
    kd_dbres_free(res);
    return rc;
}
