/* metrics.c: GET /metrics, the Prometheus text format (version 0.0.4).
 *
 * Only nginx's /metrics location reaches this handler (router.c: the route
 * needs the KADR_METRICS marker that location sets), and nginx lets only
 * trusted addresses in; so there is no credential to check here.
 *
 * Gauges are read at scrape time from PostgreSQL (jobs and media by status,
 * workers) and Redis (the priority streams); a dependency that does not
 * answer leaves its series out and says so in kadr_up. The request counters
 * come from the file every API process of this host maps (stats.h); without
 * api_metrics_file they are left out. */
#include <inttypes.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "router.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* A worker that announced itself this recently is online (workers announce
 * every 2 s; admin.c uses the same). */
#define ONLINE_S "10"
/* The whole text stays far below this. */
#define BODY_MAX (256 * 1024)

static const char *const job_statuses[] = {"pending", "processing", "completed", "failed",
                                           "cancelled"};
static const char *const media_statuses[] = {"uploading", "processing", "ready", "rejected",
                                             "expired"};

static enum kd_err
head(struct kd_buf *b, const char *name, const char *type, const char *help)
{
    return kd_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One series per status, zeros included, so that every series exists from
 * the first scrape on (rate() and alerts need them). res: (status, count). */
static enum kd_err
by_status(struct kd_buf *b, const char *name, const char *help, const char *const *statuses,
          size_t n, const struct kd_dbres *res)
{
    enum kd_err rc;

    if ((rc = head(b, name, "gauge", help)) != KD_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        int64_t v = 0;

        for (int r = 0; r < kd_dbres_rows(res); r++)
            if (strcmp(kd_dbres_get(res, r, 0), statuses[i]) == 0)
                v = kd_dbres_i64(res, r, 1, 0);
        if ((rc = kd_buf_printf(b, "%s{status=\"%s\"} %" PRId64 "\n", name, statuses[i], v)) !=
            KD_OK)
            return rc;
    }
    return KD_OK;
}

/* The PostgreSQL gauges into b; any failure leaves b to be dropped. */
static enum kd_err
database_part(struct kd_app *app, struct kd_buf *b)
{
    static const char sql_jobs[] =
        "SELECT status, count(*) FROM jobs WHERE deleted_at IS NULL GROUP BY status";
    static const char sql_media[] =
        "SELECT status, count(*) FROM media WHERE deleted_at IS NULL GROUP BY status";
    static const char sql_misc[] =
        "SELECT (SELECT count(*) FROM jobs WHERE status = 'pending' AND run_at > now() "
        "           AND deleted_at IS NULL), "
        "       (SELECT count(*) FROM dead_letters d JOIN jobs j ON j.id = d.job_id "
        "         WHERE j.status = 'failed' AND j.deleted_at IS NULL), "
        "       count(*) FILTER (WHERE seen_at > now() - $1::int * interval '1 second'), "
        "       count(*), "
        "       coalesce(sum(slots) FILTER (WHERE seen_at > now() - $1::int * interval '1 "
        "second'), "
        "                0)::bigint, "
        "       coalesce(sum(busy) FILTER (WHERE seen_at > now() - $1::int * interval '1 second'), "
        "                0)::bigint "
        "  FROM workers";
    const char *p[] = {ONLINE_S};
    struct kd_dbres *jobs = NULL, *media = NULL, *misc = NULL;
    struct kd_db *db;
    enum kd_err rc;

    if ((rc = kd_app_db(app, &db)) != KD_OK ||
        (rc = kd_db_query(db, sql_jobs, 0, NULL, &jobs)) != KD_OK ||
        (rc = kd_db_query(db, sql_media, 0, NULL, &media)) != KD_OK ||
        (rc = kd_db_query(db, sql_misc, 1, p, &misc)) != KD_OK)
        goto out;
    if ((rc = by_status(b, "kadr_jobs", "Jobs by status (deleted jobs left out).", job_statuses,
                        KD_ARRAY_LEN(job_statuses), jobs)) != KD_OK ||
        (rc = head(b, "kadr_jobs_scheduled", "gauge", "Pending jobs waiting for their run_at.")) !=
            KD_OK ||
        (rc = kd_buf_printf(b, "kadr_jobs_scheduled %" PRId64 "\n", kd_dbres_i64(misc, 0, 0, 0))) !=
            KD_OK ||
        (rc = head(b, "kadr_dead_letters", "gauge",
                   "Jobs that failed out of attempts and wait for an operator.")) != KD_OK ||
        (rc = kd_buf_printf(b, "kadr_dead_letters %" PRId64 "\n", kd_dbres_i64(misc, 0, 1, 0))) !=
            KD_OK ||
        (rc = by_status(b, "kadr_media", "Media by status (deleted media left out).",
                        media_statuses, KD_ARRAY_LEN(media_statuses), media)) != KD_OK ||
        (rc = head(b, "kadr_workers_online", "gauge",
                   "Workers seen in the last " ONLINE_S " seconds.")) != KD_OK ||
        (rc = kd_buf_printf(b, "kadr_workers_online %" PRId64 "\n", kd_dbres_i64(misc, 0, 2, 0))) !=
            KD_OK ||
        (rc = head(b, "kadr_workers_seen", "gauge",
                   "Workers seen within the last hour (older ones are forgotten).")) != KD_OK ||
        (rc = kd_buf_printf(b, "kadr_workers_seen %" PRId64 "\n", kd_dbres_i64(misc, 0, 3, 0))) !=
            KD_OK ||
        (rc = head(b, "kadr_worker_slots", "gauge",
                   "Job slots of the online workers, and how many are busy.")) != KD_OK ||
        (rc = kd_buf_printf(b, "kadr_worker_slots{state=\"total\"} %" PRId64 "\n",
                            kd_dbres_i64(misc, 0, 4, 0))) != KD_OK)
        goto out;
    rc = kd_buf_printf(b, "kadr_worker_slots{state=\"busy\"} %" PRId64 "\n",
                       kd_dbres_i64(misc, 0, 5, 0));
out:
    kd_dbres_free(jobs);
    kd_dbres_free(media);
    kd_dbres_free(misc);
    return rc;
}

/* The Redis gauges into b; any failure leaves b to be dropped. */
static enum kd_err
queue_part(struct kd_app *app, struct kd_buf *b)
{
    struct kd_queue_stats qs;
    struct kd_queue *q;
    enum kd_err rc;
    int i;

    if ((rc = kd_app_queue(app, &q)) != KD_OK || (rc = kd_queue_stats(q, &qs)) != KD_OK)
        return rc;
    if ((rc = head(b, "kadr_queue_depth", "gauge",
                   "Entries in each priority stream (1 most urgent): waiting, or delivered "
                   "and not yet acknowledged.")) != KD_OK)
        return rc;
    for (i = 0; i < KD_QUEUE_PRIORITIES; i++)
        if ((rc = kd_buf_printf(b, "kadr_queue_depth{priority=\"%d\"} %" PRId64 "\n", i + 1,
                                qs.length[i])) != KD_OK)
            return rc;
    if ((rc = head(b, "kadr_queue_delivered", "gauge",
                   "Entries of each priority stream delivered to a worker, not yet "
                   "acknowledged.")) != KD_OK)
        return rc;
    for (i = 0; i < KD_QUEUE_PRIORITIES; i++)
        if ((rc = kd_buf_printf(b, "kadr_queue_delivered{priority=\"%d\"} %" PRId64 "\n", i + 1,
                                qs.pending[i])) != KD_OK)
            return rc;
    if ((rc = head(b, "kadr_queue_consumers", "gauge", "Consumers of the workers' group.")) !=
        KD_OK)
        return rc;
    return kd_buf_printf(b, "kadr_queue_consumers %" PRId64 "\n", qs.consumers);
}

static enum kd_err
counters_part(const struct kd_stats *st, struct kd_buf *b)
{
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    enum kd_err rc;

    if (st == NULL)
        return KD_OK;
    if ((rc = head(b, "kadr_api_requests_total", "counter",
                   "Responses of the API processes of this host, by status class.")) != KD_OK)
        return rc;
    for (int i = 0; i < 5; i++)
        if ((rc = kd_buf_printf(b, "kadr_api_requests_total{class=\"%s\"} %" PRIu64 "\n",
                                classes[i], kd_stats_get(st, KD_STAT_REQ_1XX + i))) != KD_OK)
            return rc;
    if ((rc = head(b, "kadr_api_errors_total", "counter",
                   "Responses 500 (the server failed) and 503 (a dependency is down).")) != KD_OK ||
        (rc = kd_buf_printf(b, "kadr_api_errors_total %" PRIu64 "\n",
                            kd_stats_get(st, KD_STAT_ERRORS))) != KD_OK ||
        (rc = head(b, "kadr_api_unauthorized_total", "counter",
                   "Responses 401: a missing, bad, revoked or expired credential.")) != KD_OK ||
        (rc = kd_buf_printf(b, "kadr_api_unauthorized_total %" PRIu64 "\n",
                            kd_stats_get(st, KD_STAT_UNAUTHORIZED))) != KD_OK ||
        (rc = head(b, "kadr_api_limited_total", "counter",
                   "Responses 429 from the API: a plan limit or a login lockout (nginx's own "
                   "rate limits are in its log).")) != KD_OK)
        return rc;
    return kd_buf_printf(b, "kadr_api_limited_total %" PRIu64 "\n",
                         kd_stats_get(st, KD_STAT_LIMITED));
}

enum kd_err
kd_metrics_get(struct kd_req *rq, struct kd_resp *rs)
{
    struct kd_buf b, part;
    bool db_up, redis_up;
    enum kd_err rc;

    kd_buf_init(&b, BODY_MAX);
    kd_buf_init(&part, BODY_MAX);
    if ((rc = head(&b, "kadr_build_info", "gauge", "The version of kadr that answers.")) != KD_OK ||
        (rc = kd_buf_printf(&b, "kadr_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION)) != KD_OK)
        goto out;
    rc = database_part(rq->app, &part);
    if (rc == KD_ENOMEM)
        goto out;
    db_up = rc == KD_OK;
    if (db_up && (rc = kd_buf_append(&b, part.data, part.len)) != KD_OK)
        goto out;
    kd_buf_reset(&part);
    rc = queue_part(rq->app, &part);
    if (rc == KD_ENOMEM)
        goto out;
    redis_up = rc == KD_OK;
    if (redis_up && (rc = kd_buf_append(&b, part.data, part.len)) != KD_OK)
        goto out;
    if (!db_up || !redis_up)
        kd_log(KD_LOG_WARN, "metrics: database %s, redis %s", db_up ? "up" : "down",
               redis_up ? "up" : "down");
    if ((rc = head(&b, "kadr_up", "gauge",
                   "Whether a dependency answered this scrape; its series are left out when "
                   "not.")) != KD_OK ||
        (rc = kd_buf_printf(&b, "kadr_up{dependency=\"database\"} %d\n", db_up)) != KD_OK ||
        (rc = kd_buf_printf(&b, "kadr_up{dependency=\"redis\"} %d\n", redis_up)) != KD_OK ||
        (rc = counters_part(rq->app->stats, &b)) != KD_OK)
        goto out;
    rc = kd_resp_text(rs, 200, CONTENT_TYPE, b.data, b.len);
out:
    kd_buf_clear(&b);
    kd_buf_clear(&part);
    return rc;
}
