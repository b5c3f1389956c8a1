/* quota.c: the plan limits and the router's limit step.
 *
 * The counts come from PostgreSQL (job runs of the last hour, unfinished
 * uploads, bytes of live media), so they are shared by every API process
 * and survive restarts with nothing to keep in step. A per-user advisory
 * lock is held from the count until the handler has committed, so two
 * requests of one user at the same moment cannot both take the last unit:
 * the limit answers 429 at exactly the configured count. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "log.h"
#include "router.h"

static enum kd_err
answer_limit(struct kd_resp *rs, int64_t retry_s, const char *fmt_limit, int64_t value,
             const char *what)
{
    char ra[24];
    enum kd_err rc;

    if (retry_s < 1)
        retry_s = 1;
    if ((rc = kd_snprintf(ra, sizeof(ra), "%" PRId64, retry_s)) != KD_OK ||
        (rc = kd_resp_header(rs, "Retry-After", ra)) != KD_OK)
        return rc;
    if ((rc = kd_resp_problem(rs, 429, "limit-exceeded", "%s: your plan allows %" PRId64 " %s",
                              fmt_limit, value, what)) == KD_OK)
        rc = KD_EAGAIN;
    return rc;
}

/* Bytes the user's live media take: declared sizes of unfinished uploads
 * included (their media rows carry the declared size). */
#define SQL_STORAGE_USED                                                                           \
    "(SELECT coalesce(sum(size), 0)::bigint FROM media "                                           \
    "  WHERE user_id = $1 AND deleted_at IS NULL AND status NOT IN ('rejected', 'expired'))"

/* A new run of a job (POST /jobs, or a retry): the runs of the last hour
 * (sql/007; deleted jobs included, so deleting does not refill the
 * allowance; the oldest run says when one unit comes back), and storage:
 * a run writes outputs, so a user already at the quota starts none. */
static enum kd_err
check_run(struct kd_req *rq, struct kd_resp *rs, struct kd_db *db, const struct kd_plan_limits *lim,
          bool replay_exempt)
{
    static const char sel[] =
        "SELECT count(*), "
        "       ceil(extract(epoch FROM min(at) + interval '1 hour' - now()))::bigint, "
        "       " SQL_STORAGE_USED " "
        "  FROM job_runs WHERE user_id = $1 AND at > now() - interval '1 hour'";
    /* A replay of an Idempotency-Key whose job is live makes no new job
     * (jobs.c answers the same one), so it is no new unit either. */
    static const char replay[] =
        "SELECT 1 FROM jobs WHERE user_id = $1 AND idempotency_key = $2 "
        "   AND deleted_at IS NULL AND created_at > now() - interval '24 hours'";
    const char *idem = kd_req_param(rq, "HTTP_IDEMPOTENCY_KEY");
    const char *params[] = {rq->principal.user_id, idem};
    struct kd_dbres *res = NULL;
    enum kd_err rc;

    if (replay_exempt && idem != NULL && idem[0] != '\0') {
        if ((rc = kd_db_query(db, replay, 2, params, &res)) != KD_OK)
            goto out;
        if (kd_dbres_rows(res) > 0)
            goto out;
        kd_dbres_free(res);
        res = NULL;
    }
    if ((rc = kd_db_query(db, sel, 1, params, &res)) != KD_OK)
        goto out;
    if (kd_dbres_i64(res, 0, 0, 0) >= lim->jobs_per_hour) {
        rc = answer_limit(rs, kd_dbres_i64(res, 0, 1, 3600), "jobs_per_hour", lim->jobs_per_hour,
                          "jobs per hour");
        goto out;
    }
    if (kd_dbres_i64(res, 0, 2, 0) >= lim->storage_bytes)
        rc = answer_limit(rs, 3600, "storage_bytes", lim->storage_bytes,
                          "bytes of storage, and job outputs need room");
out:
    kd_dbres_free(res);
    return rc;
}

/* A retry that the handler will refuse (404 for no such job of the user's,
 * 409 for one that is not failed or cancelled) is its answer to give, not
 * a quota matter: another user's job id must answer like a missing one. */
static enum kd_err
retry_would_run(struct kd_req *rq, struct kd_db *db, bool *out)
{
    const char *params[] = {rq->id, rq->principal.user_id};
    struct kd_dbres *res = NULL;
    enum kd_err rc;

    if ((rc = kd_db_query(db,
                          "SELECT 1 FROM jobs WHERE id = $1 AND user_id = $2 "
                          "   AND deleted_at IS NULL AND status IN ('failed', 'cancelled')",
                          2, params, &res)) != KD_OK)
        goto out;
    *out = kd_dbres_rows(res) == 1;
out:
    kd_dbres_free(res);
    return rc;
}

static enum kd_err
check_uploads(struct kd_req *rq, struct kd_resp *rs, struct kd_db *db,
              const struct kd_plan_limits *lim)
{
    static const char sel[] =
        "SELECT (SELECT count(*) FROM uploads "
        "         WHERE user_id = $1 AND completed_at IS NULL AND expires_at > now()), "
        "       (SELECT ceil(extract(epoch FROM min(expires_at) - now()))::bigint FROM uploads "
        "         WHERE user_id = $1 AND completed_at IS NULL AND expires_at > now()), "
        "       " SQL_STORAGE_USED;
    const char *params[] = {rq->principal.user_id};
    const json_t *size = json_object_get(rq->json, "size");
    struct kd_dbres *res = NULL;
    int64_t declared = json_is_integer(size) ? json_integer_value(size) : 0, used;
    enum kd_err rc;

    if ((rc = kd_db_query(db, sel, 1, params, &res)) != KD_OK)
        goto out;
    if (kd_dbres_i64(res, 0, 0, 0) >= lim->uploads) {
        rc = answer_limit(rs, kd_dbres_i64(res, 0, 1, 60), "concurrent_uploads", lim->uploads,
                          "unfinished uploads at once");
        goto out;
    }
    /* A bad size (422) or one over the upload cap (413) is the handler's
     * to refuse, not a quota matter. */
    used = kd_dbres_i64(res, 0, 2, 0);
    if (declared > 0 && declared <= rq->cfg->limits.upload_max_bytes &&
        (declared > lim->storage_bytes || used > lim->storage_bytes - declared))
        rc = answer_limit(rs, 3600, "storage_bytes", lim->storage_bytes, "bytes of storage");
out:
    kd_dbres_free(res);
    return rc;
}

enum kd_err
kd_quota_check(struct kd_req *rq, struct kd_resp *rs, enum kd_route_quota q, bool *locked)
{
    struct kd_plan_limits lim;
    struct kd_db *db;
    bool runs = false;
    enum kd_err rc = KD_OK;

    *locked = false;
    if (q == KD_QUOTA_NONE)
        goto out;
    kd_plan_limits_get(rq->cfg, rq->principal.plan, rq->principal.is_admin, &lim);
    if (lim.jobs_per_hour < 0)
        goto out; /* an admin */
    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    const char *params[] = {rq->principal.user_id};
    if ((rc = kd_db_query(db, "SELECT pg_advisory_lock(hashtext('kadr-quota:' || $1))", 1, params,
                          NULL)) != KD_OK)
        goto out;
    *locked = true;
    switch (q) {
    case KD_QUOTA_JOB:
        rc = check_run(rq, rs, db, &lim, true);
        break;
    case KD_QUOTA_RETRY:
        if ((rc = retry_would_run(rq, db, &runs)) == KD_OK && runs)
            rc = check_run(rq, rs, db, &lim, false);
        break;
    default:
        rc = check_uploads(rq, rs, db, &lim);
        break;
    }
out:
    return rc;
}

void
kd_quota_release(struct kd_req *rq, bool locked)
{
    struct kd_db *db;

    if (!locked || kd_app_db(rq->app, &db) != KD_OK)
        return;
    const char *params[] = {rq->principal.user_id};
    /* A lost connection released the lock with the session. */
    if (kd_db_query(db, "SELECT pg_advisory_unlock(hashtext('kadr-quota:' || $1))", 1, params,
                    NULL) != KD_OK)
        kd_log(KD_LOG_WARN, "quota: could not release the user's lock");
}
