/* admin.c: GET /api/v1/admin/queue (admins only): the queue in Redis per
 * priority, jobs waiting and running, dead letters and the workers online,
 * read from PostgreSQL. See doc/lifecycle.md. */
#include <stdbool.h>

#include "log.h"
#include "router.h"

/* A worker that announced itself this recently is online (workers announce
 * every 2 s). */
#define ONLINE_S "10"

static const char SQL_COUNTS[] =
    "SELECT count(*) FILTER (WHERE status = 'pending' AND (run_at IS NULL OR run_at <= now())), "
    "       count(*) FILTER (WHERE status = 'pending' AND run_at > now()), "
    "       count(*) FILTER (WHERE status = 'processing'), "
    "       (SELECT count(*) FROM dead_letters d JOIN jobs j ON j.id = d.job_id "
    "         WHERE j.status = 'failed' AND j.deleted_at IS NULL), "
    "       (SELECT count(*) FROM workers WHERE seen_at > now() - $1::int * interval '1 second') "
    "  FROM jobs WHERE deleted_at IS NULL AND status IN ('pending', 'processing')";

static const char SQL_WORKERS[] =
    "SELECT name, slots, busy, kadr_ts(started_at), kadr_ts(seen_at) FROM workers "
    " WHERE seen_at > now() - $1::int * interval '1 second' ORDER BY name LIMIT 100";

/* The streams, or null when Redis does not answer (the rest still helps
 * whoever looks during an outage). */
static json_t *
queues_json(struct kd_app *app)
{
    struct kd_queue_stats qs;
    struct kd_queue *q;
    json_t *arr;

    if (kd_app_queue(app, &q) != KD_OK || kd_queue_stats(q, &qs) != KD_OK)
        return json_null();
    if ((arr = json_array()) == NULL)
        return NULL;
    for (int i = 0; i < KD_QUEUE_PRIORITIES; i++) {
        if (json_array_append_new(arr, json_pack("{s:i,s:I,s:I,s:I}", "priority", i + 1, "length",
                                                 (json_int_t)qs.length[i], "delivered",
                                                 (json_int_t)qs.pending[i], "undelivered",
                                                 (json_int_t)qs.lag[i])) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

enum kd_err
kd_admin_queue(struct kd_req *rq, struct kd_resp *rs)
{
    struct kd_dbres *counts = NULL, *workers = NULL;
    const char *p[] = {ONLINE_S};
    json_t *body = NULL, *queues = NULL, *list = NULL;
    struct kd_db *db;
    enum kd_err rc;

    if ((rc = kd_app_db(rq->app, &db)) != KD_OK ||
        (rc = kd_db_query(db, SQL_COUNTS, 1, p, &counts)) != KD_OK ||
        (rc = kd_db_query(db, SQL_WORKERS, 1, p, &workers)) != KD_OK)
        goto out;
    if ((queues = queues_json(rq->app)) == NULL || (list = json_array()) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    for (int i = 0; i < kd_dbres_rows(workers); i++) {
        if (json_array_append_new(
                list, json_pack("{s:s,s:I,s:I,s:s,s:s}", "name", kd_dbres_get(workers, i, 0),
                                "slots", (json_int_t)kd_dbres_i64(workers, i, 1, 0), "busy",
                                (json_int_t)kd_dbres_i64(workers, i, 2, 0), "started_at",
                                kd_dbres_get(workers, i, 3), "seen_at",
                                kd_dbres_get(workers, i, 4))) != 0) {
            rc = KD_ENOMEM;
            goto out;
        }
    }
    body = json_pack("{s:O,s:{s:I,s:I,s:I},s:I,s:I,s:O}", "queues", queues, "jobs", "pending",
                     (json_int_t)kd_dbres_i64(counts, 0, 0, 0), "scheduled",
                     (json_int_t)kd_dbres_i64(counts, 0, 1, 0), "processing",
                     (json_int_t)kd_dbres_i64(counts, 0, 2, 0), "dead_letters",
                     (json_int_t)kd_dbres_i64(counts, 0, 3, 0), "workers_online",
                     (json_int_t)kd_dbres_i64(counts, 0, 4, 0), "workers", list);
    if (body == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    rc = kd_resp_json(rs, 200, body);
out:
    json_decref(body);
    json_decref(queues);
    json_decref(list);
    kd_dbres_free(counts);
    kd_dbres_free(workers);
    return rc;
}
