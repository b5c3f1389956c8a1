/* me.c: GET /api/v1/me: the caller's User, the webhook secret that signs
 * their webhooks, and their usage against their plan's limits (the same
 * counts the limit step uses, quota.c; jobs processing at once is the
 * workers' limit: users.max_processing, else the plan's). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "json.h"
#include "router.h"

/* A limit as JSON: a number, or null for none (admins). */
static json_t *
limit_json(int64_t v)
{
    return v < 0 ? json_null() : json_integer((json_int_t)v);
}

enum kd_err
kd_me_get(struct kd_req *rq, struct kd_resp *rs)
{
    static const char sel[] =
        "SELECT kadr_user_json(u)::text, u.webhook_secret, "
        /* Runs, as the limit counts them (quota.c): retries too. */
        "  (SELECT count(*) FROM job_runs WHERE user_id = u.id "
        "     AND at > now() - interval '1 hour'), "
        "  (SELECT count(*) FROM uploads WHERE user_id = u.id "
        "     AND completed_at IS NULL AND expires_at > now()), "
        "  (SELECT coalesce(sum(size), 0)::bigint FROM media WHERE user_id = u.id "
        "     AND deleted_at IS NULL AND status NOT IN ('rejected', 'expired')), "
        "  (SELECT count(*) FROM jobs WHERE user_id = u.id AND status = 'processing' "
        "     AND deleted_at IS NULL), "
        /* The workers enforce this one, resolved as they do (doc/lifecycle.md);
         * admins have it too: it shares the workers rather than metering. */
        "  coalesce(u.max_processing, "
        "           CASE WHEN u.plan = 'premium' THEN $3::integer ELSE $2::integer END) "
        "  FROM users u WHERE u.id = $1";
    char max_free[24], max_premium[24];
    const char *params[] = {rq->principal.user_id, max_free, max_premium};
    struct kd_plan_limits lim;
    struct kd_dbres *res = NULL;
    struct kd_db *db;
    json_t *user = NULL, *usage = NULL, *limits = NULL;
    enum kd_err rc;

    if ((rc = kd_snprintf(max_free, sizeof(max_free), "%" PRId64,
                          rq->cfg->plan_free_max_processing)) != KD_OK ||
        (rc = kd_snprintf(max_premium, sizeof(max_premium), "%" PRId64,
                          rq->cfg->plan_premium_max_processing)) != KD_OK)
        goto out;
    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    if ((rc = kd_db_query(db, sel, 3, params, &res)) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) != 1) {
        rc = KD_ENOTFOUND;
        goto out;
    }
    const char *text = kd_dbres_get(res, 0, 0);
    if ((rc = kd_json_parse(text, strlen(text), &user, NULL, 0)) != KD_OK) {
        rc = rc == KD_ENOMEM ? rc : KD_EINTERNAL;
        goto out;
    }
    kd_plan_limits_get(rq->cfg, rq->principal.plan, rq->principal.is_admin, &lim);
    usage = json_pack("{s:I,s:I,s:I,s:I}", "jobs_last_hour", (json_int_t)kd_dbres_i64(res, 0, 2, 0),
                      "uploads_in_progress", (json_int_t)kd_dbres_i64(res, 0, 3, 0),
                      "storage_bytes", (json_int_t)kd_dbres_i64(res, 0, 4, 0), "jobs_processing",
                      (json_int_t)kd_dbres_i64(res, 0, 5, 0));
    limits = json_pack("{s:o,s:o,s:o,s:I}", "jobs_per_hour", limit_json(lim.jobs_per_hour),
                       "concurrent_uploads", limit_json(lim.uploads), "storage_bytes",
                       limit_json(lim.storage_bytes), "concurrent_processing",
                       (json_int_t)kd_dbres_i64(res, 0, 6, rq->cfg->plan_free_max_processing));
    if (usage == NULL || limits == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if ((rc = kd_json_set_str(user, "webhook_secret", kd_dbres_get(res, 0, 1))) != KD_OK)
        goto out;
    rc = kd_json_set_new(user, "usage", usage);
    usage = NULL;
    if (rc != KD_OK)
        goto out;
    rc = kd_json_set_new(user, "limits", limits);
    limits = NULL;
    if (rc != KD_OK)
        goto out;
    rc = kd_resp_json(rs, 200, user);
out:
    json_decref(user);
    json_decref(usage);
    json_decref(limits);
    kd_dbres_free(res);
    return rc;
}
