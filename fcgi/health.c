/* health.c: GET /api/v1/health (readiness: every dependency answers) and
 * GET /api/v1/health/live (liveness: this process answers). */
#include <stdbool.h>

#include "log.h"
#include "router.h"

static const char *
check_database(struct kd_app *app)
{
    struct kd_db *db;
    struct kd_dbres *res = NULL;
    const char *verdict = "error";

    if (kd_app_db(app, &db) != KD_OK)
        goto out;
    if (kd_db_query(db, "SELECT 1", 0, NULL, &res) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) == 1)
        verdict = "ok";
out:
    kd_dbres_free(res);
    return verdict;
}

static const char *
check_redis(struct kd_app *app)
{
    struct kd_queue *q;

    if (kd_app_queue(app, &q) != KD_OK || kd_queue_ping(q) != KD_OK)
        return "error";
    return "ok";
}

static const char *
check_storage(struct kd_app *app)
{
    struct kd_storage *s;

    if (kd_app_storage(app, &s) != KD_OK || kd_storage_check(s) != KD_OK)
        return "error";
    return "ok";
}

enum kd_err
kd_health_get(struct kd_req *rq, struct kd_resp *rs)
{
    const char *database = check_database(rq->app);
    const char *redis = check_redis(rq->app);
    const char *storage = check_storage(rq->app);
    bool ok = database[0] == 'o' && redis[0] == 'o' && storage[0] == 'o';
    json_t *body = NULL;
    enum kd_err rc;

    body = json_pack("{s:s, s:{s:s, s:s, s:s}}", "status", ok ? "ok" : "error", "checks",
                     "database", database, "redis", redis, "storage", storage);
    if (body == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if (!ok) {
        kd_log(KD_LOG_WARN, "health: database=%s redis=%s storage=%s", database, redis, storage);
        if ((rc = kd_resp_header(rs, "Retry-After", "5")) != KD_OK)
            goto out;
    }
    rc = kd_resp_json(rs, ok ? 200 : 503, body);
out:
    json_decref(body);
    return rc;
}

enum kd_err
kd_health_live(struct kd_req *rq, struct kd_resp *rs)
{
    (void)rq;
    return kd_resp_json_text(rs, 200, "{\"status\":\"ok\"}");
}
