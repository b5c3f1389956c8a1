/* kadr-scheduler: keeps the queue in Redis in step with PostgreSQL.
 *
 * PostgreSQL holds the truth and a stream entry is only a hint that work
 * waits, so something must make the hints: this daemon pushes jobs whose
 * run_at has come (scheduled jobs, retries), jobs whose user has a free
 * processing slot again, jobs whose worker died (lease expired), probes and
 * jobs whose push was lost (Redis down at the time, or Redis lost its data),
 * and pending jobs that waited long at a more urgent priority
 * (anti-starvation). It cancels pending jobs whose cancel was asked for
 * (nothing else would ever finish them), applies retention and cleans the
 * account tables (src/cleanup.c, hourly). Several may run; one leads at a
 * time (a lock with expiry in Redis) and only the leader acts.
 * See doc/lifecycle.md. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "queue.h"
#include "storage.h"
#include "util.h"

/* One step of work this often while leading; how often a follower tries
 * to take the lead. */
#define TICK_MS 500
/* The lock outlives a leader that stopped renewing it by this much. It is
 * renewed before each phase of a step and during retention at least every
 * RENEW_MS, so that a slow step does not let a second leader in. */
#define LOCK_TTL_MS 5000
#define RENEW_MS    1000
/* Retention stops for this step after this long (the rest waits for the
 * next round), so that slow storage cannot hold up due jobs. */
#define RETENTION_BUDGET_MS 2000
/* Retention's statements touch one row each: a lock wait (a row some
 * transaction holds) must not stall the step past its lead. */
#define RETENTION_STMT_TIMEOUT "2000"
#define LOCK_NAME              "scheduler:leader"
/* Set once per Redis data set: missing means Redis lost its data. */
#define MARKER_NAME "scheduler:epoch"
/* A row pushed this recently is not pushed again (its push may still be
 * on its way to a worker). */
#define STALE_S 30
/* A job whose lease ran out is pushed again at most this often. */
#define LEASE_REPUSH_S 5
/* Retention runs this often; rows per statement. */
#define RETENTION_EVERY_MS 5000
/* Housekeeping of the account tables (src/cleanup.c) this often, and when
 * the lead is taken. */
#define ACCOUNTS_CLEANUP_EVERY_MS (3600 * 1000)
#define BATCH                     500
#define RETENTION_BATCH           100

static volatile sig_atomic_t stop_signal;

static void
on_stop(int sig)
{
    (void)sig;
    stop_signal = 1;
}

struct sched {
    const struct kd_config *cfg;
    struct kd_db *db;
    struct kd_queue *queue;
    struct kd_storage *storage;
    char token[KD_UUID_STRLEN + 1 + 64]; /* who holds the lock: host, pid, uuid */
    bool leading;
    int64_t renewed_at; /* kd_mono_ms() of the last successful lock renewal */
    int64_t next_retention;
    int64_t next_accounts_cleanup;
    int failures;
};

/* --- SQL ----------------------------------------------------------------- */

/* Media waiting for a probe whose push is missing or old. Probes are cheap
 * and jobs wait for them: they go at priority 1. */
static const char SQL_DUE_PROBES[] =
    "UPDATE media SET enqueued_at = now() "
    " WHERE id IN (SELECT id FROM media "
    "               WHERE status = 'processing' AND deleted_at IS NULL "
    "                 AND (enqueued_at IS NULL "
    "                      OR enqueued_at < now() - $1::bigint * interval '1 second') "
    "               LIMIT 500) "
    "RETURNING id::text";

/* Pending jobs that are due, within their user's free processing slots
 * (users.max_processing, else the plan's: $3 free and any other plan, $4
 * premium; the user's most urgent first), whose push is missing or old, or whose
 * effective priority rose above the one they were pushed at. The effective
 * priority: priority - floor(waited / queue_aging_s), at least 1, where
 * waited counts from creation or from run_at, whichever is later. */
static const char SQL_DUE_JOBS[] =
    "WITH cand AS ("
    "  SELECT j.id, j.user_id, j.created_at, j.enqueued_at, "
    "         COALESCE(j.pushed_priority, j.priority) AS pushed, "
    "         greatest(1, j.priority - floor(extract(epoch FROM now() - "
    "             greatest(j.created_at, COALESCE(j.run_at, j.created_at))) / $2::int)::int) "
    "             AS eff "
    "    FROM jobs j "
    "   WHERE j.status = 'pending' AND j.deleted_at IS NULL AND NOT j.cancel_requested "
    "     AND (j.run_at IS NULL OR j.run_at <= now())), "
    "ranked AS ("
    "  SELECT c.*, row_number() OVER (PARTITION BY c.user_id ORDER BY c.eff, c.created_at) AS rn "
    "    FROM cand c), "
    "free AS ("
    "  SELECT u.id AS user_id, "
    "         COALESCE(u.max_processing, CASE WHEN u.plan = 'premium' THEN $4::int "
    "                                         ELSE $3::int END) - "
    "         (SELECT count(*) FROM jobs p WHERE p.user_id = u.id AND p.status = 'processing') "
    "         AS slots "
    "    FROM users u WHERE u.id IN (SELECT DISTINCT user_id FROM cand)), "
    "pick AS ("
    "  SELECT r.id, r.eff FROM ranked r JOIN free f ON f.user_id = r.user_id "
    "   WHERE r.rn <= f.slots "
    "     AND (r.enqueued_at IS NULL OR r.enqueued_at < now() - $1::bigint * interval '1 second' "
    "          OR r.eff < r.pushed) "
    "   ORDER BY r.eff, r.created_at LIMIT 500) "
    "UPDATE jobs SET enqueued_at = now(), pushed_priority = pick.eff "
    "  FROM pick WHERE jobs.id = pick.id "
    "RETURNING jobs.id::text, pick.eff";

/* Jobs whose worker stopped renewing the lease: a push makes some worker
 * take them over (or fail them when out of attempts) without waiting for
 * the stale stream entry to be reclaimed. */
static const char SQL_EXPIRED_LEASES[] =
    "UPDATE jobs SET enqueued_at = now() "
    " WHERE id IN (SELECT id FROM jobs "
    "               WHERE status = 'processing' AND deleted_at IS NULL "
    "                 AND lease_expires_at < now() "
    "                 AND (enqueued_at IS NULL "
    "                      OR enqueued_at < now() - $1::bigint * interval '1 second') "
    "               LIMIT 500) "
    "RETURNING id::text, priority";

/* Pending jobs whose cancel was asked for: no worker takes them (the claim
 * and SQL_DUE_JOBS skip them), so they are finished here, with the event
 * every cancel writes (the webhook follows from the trigger). The workers
 * cancel such jobs themselves when an attempt ends; this is the net for any
 * path that put one back to pending all the same. */
static const char SQL_CANCEL_ASKED[] =
    "WITH c AS ("
    "  UPDATE jobs SET status = 'cancelled', error_code = 'cancelled', "
    "         error_message = 'the job was cancelled', stage = NULL, worker = NULL, "
    "         lease_expires_at = NULL, finished_at = now(), updated_at = now() "
    "   WHERE id IN (SELECT id FROM jobs WHERE status = 'pending' AND cancel_requested "
    "                 LIMIT 500 FOR UPDATE SKIP LOCKED) "
    "     AND status = 'pending' AND cancel_requested "
    "  RETURNING id, attempts) "
    "INSERT INTO job_events (job_id, event, detail) "
    "SELECT id, 'cancelled', jsonb_build_object('attempt', attempts, 'code', 'cancelled', "
    "       'message', 'the job was cancelled', 'dead_letter', false, "
    "       'by', 'kadr-scheduler') FROM c "
    "RETURNING job_id::text";

/* Redis lost its data: every waiting row needs a push again. */
static const char SQL_FORGET_JOB_PUSHES[] =
    "UPDATE jobs SET enqueued_at = NULL, pushed_priority = NULL "
    " WHERE status IN ('pending', 'processing') AND deleted_at IS NULL";
static const char SQL_FORGET_PROBE_PUSHES[] =
    "UPDATE media SET enqueued_at = NULL WHERE status = 'processing' AND deleted_at IS NULL";

/* Media and outputs past their time: expires_at for outputs, creation plus
 * retention_days for uploads. Not while a waiting or running job reads it. */
static const char SQL_RETENTION_DUE[] =
    "SELECT m.id::text, m.storage_key FROM media m "
    " WHERE m.deleted_at IS NULL AND m.status IN ('ready', 'rejected') "
    "   AND COALESCE(m.expires_at, m.created_at + $1::int * interval '1 day') <= now() "
    "   AND NOT EXISTS (SELECT 1 FROM job_inputs ji JOIN jobs j ON j.id = ji.job_id "
    "                    WHERE ji.media_id = m.id AND j.deleted_at IS NULL "
    "                      AND j.status IN ('pending', 'processing')) "
    " ORDER BY m.created_at LIMIT 100";
static const char SQL_EXPIRE[] =
    "UPDATE media SET status = 'expired', expires_at = COALESCE(expires_at, now()) "
    " WHERE id = $1 AND deleted_at IS NULL AND status IN ('ready', 'rejected')";

/* Multipart uploads (S3) left unfinished past their expiry: aborted in the
 * store so that no orphaned parts stay billed (sql/005_s3.sql). */
static const char SQL_MULTIPART_DUE[] =
    "SELECT id::text, storage_key, multipart_id FROM uploads "
    " WHERE multipart_id IS NOT NULL AND completed_at IS NULL AND aborted_at IS NULL "
    "   AND expires_at <= now() ORDER BY expires_at LIMIT 100";
static const char SQL_MULTIPART_ABORTED[] = "UPDATE uploads SET aborted_at = now() WHERE id = $1";

/* Rows of workers gone for long (a clean stop deletes its own). */
static const char SQL_FORGET_WORKERS[] =
    "DELETE FROM workers WHERE seen_at < now() - interval '1 hour'";

/* --- steps ----------------------------------------------------------------- */

static enum kd_err
push_rows(struct sched *sc, const char *sql, int nparams, const char *const *params,
          const char *kind, int prio_col, const char *what)
{
    struct kd_dbres *res = NULL;
    enum kd_err rc;
    int n;

    if ((rc = kd_db_query(sc->db, sql, nparams, params, &res)) != KD_OK)
        goto out;
    n = kd_dbres_rows(res);
    for (int i = 0; i < n; i++) {
        int prio = prio_col < 0 ? 1 : (int)kd_dbres_i64(res, i, prio_col, 5);

        /* A failure half way leaves rows marked but not pushed: they are
         * taken again once STALE_S has passed (or at once after a Redis
         * data loss). */
        if ((rc = kd_queue_push(sc->queue, kind, kd_dbres_get(res, i, 0), prio)) != KD_OK)
            goto out;
    }
    if (n > 0)
        kd_log(KD_LOG_INFO, "scheduler: pushed %d %s", n, what);
out:
    kd_dbres_free(res);
    return rc;
}

/* Finishes the pending jobs whose cancel was asked for (SQL_CANCEL_ASKED). */
static enum kd_err
cancel_asked(struct sched *sc)
{
    struct kd_dbres *res = NULL;
    enum kd_err rc;

    if ((rc = kd_db_query(sc->db, SQL_CANCEL_ASKED, 0, NULL, &res)) != KD_OK)
        goto out;
    for (int i = 0; i < kd_dbres_rows(res); i++)
        kd_log(KD_LOG_WARN, "scheduler: job %s was pending with a cancel asked for; cancelled",
               kd_dbres_get(res, i, 0));
out:
    kd_dbres_free(res);
    return rc;
}

/* Whether Redis lost its data since the last step: then every pending or
 * running row is marked as not pushed, and this step pushes them. */
static enum kd_err
reconcile(struct sched *sc)
{
    bool created = false;
    enum kd_err rc;

    if ((rc = kd_queue_marker(sc->queue, MARKER_NAME, &created)) != KD_OK || !created)
        goto out;
    kd_log(KD_LOG_WARN, "scheduler: the queue is new or Redis lost its data; re-enqueueing "
                        "every waiting job and probe");
    if ((rc = kd_db_query(sc->db, SQL_FORGET_JOB_PUSHES, 0, NULL, NULL)) != KD_OK ||
        (rc = kd_db_query(sc->db, SQL_FORGET_PROBE_PUSHES, 0, NULL, NULL)) != KD_OK) {
        /* Try again next step: the marker must not say "done" yet. Its
         * value is "1", so the unlock of token "1" removes it. */
        if (kd_queue_unlock(sc->queue, MARKER_NAME, "1") != KD_OK)
            kd_log(KD_LOG_WARN, "scheduler: could not reset the queue marker");
        goto out;
    }
out:
    return rc;
}

static void
abort_multipart(struct sched *sc)
{
    struct kd_dbres *res = NULL;
    int n, aborted = 0;

    if (kd_db_query(sc->db, SQL_MULTIPART_DUE, 0, NULL, &res) != KD_OK)
        goto out;
    n = kd_dbres_rows(res);
    for (int i = 0; i < n && !stop_signal; i++) {
        const char *id = kd_dbres_get(res, i, 0);
        const char *ap[] = {id};
        enum kd_err rc;

        /* the store first: a row marked aborted is never looked at again */
        if ((rc = kd_storage_multipart_abort(sc->storage, kd_dbres_get(res, i, 1),
                                             kd_dbres_get(res, i, 2))) != KD_OK) {
            kd_log(KD_LOG_WARN, "scheduler: cannot abort the multipart upload %s (%s)", id,
                   kd_err_name(rc));
            continue;
        }
        if (kd_db_query(sc->db, SQL_MULTIPART_ABORTED, 1, ap, NULL) == KD_OK)
            aborted++;
    }
    if (aborted > 0)
        kd_log(KD_LOG_INFO, "scheduler: aborted %d expired multipart upload(s)", aborted);
out:
    kd_dbres_free(res);
}

/* Renews the lead when it is older than min_age_ms. False when it is lost
 * (or cannot be proven): the step stops acting at once. */
static bool
still_leading(struct sched *sc, int64_t min_age_ms)
{
    int64_t now = kd_mono_ms();
    bool held = false;

    if (now - sc->renewed_at < min_age_ms)
        return true;
    if (kd_queue_lock(sc->queue, LOCK_NAME, sc->token, LOCK_TTL_MS, &held) != KD_OK || !held) {
        kd_log(KD_LOG_WARN, "scheduler: lost the lead during a step");
        sc->leading = false;
        return false;
    }
    sc->renewed_at = now;
    return true;
}

static void
retention(struct sched *sc)
{
    struct kd_dbres *res = NULL;
    char days[24];
    const char *p[] = {days};
    const char *tp[] = {RETENTION_STMT_TIMEOUT};
    int64_t t0 = kd_mono_ms();
    int n, expired = 0;

    snprintf(days, sizeof(days), "%lld", (long long)sc->cfg->retention_days);
    if (kd_db_query(sc->db, "SELECT set_config('statement_timeout', $1, false)", 1, tp, NULL) !=
        KD_OK)
        goto out;
    if (kd_db_query(sc->db, SQL_RETENTION_DUE, 1, p, &res) != KD_OK)
        goto out;
    n = kd_dbres_rows(res);
    for (int i = 0; i < n && !stop_signal; i++) {
        const char *id = kd_dbres_get(res, i, 0), *key = kd_dbres_get(res, i, 1);
        const char *ep[] = {id};
        enum kd_err rc;

        if (kd_mono_ms() - t0 > RETENTION_BUDGET_MS || !still_leading(sc, RENEW_MS))
            break;
        /* Bytes first: a row marked expired whose object survived would
         * never be looked at again. */
        if ((rc = kd_storage_delete(sc->storage, key)) != KD_OK) {
            kd_log(KD_LOG_WARN, "scheduler: retention: cannot delete the object of media %s (%s)",
                   id, kd_err_name(rc));
            continue;
        }
        if ((rc = kd_db_query(sc->db, SQL_EXPIRE, 1, ep, NULL)) == KD_OK)
            expired++;
        else
            kd_log(KD_LOG_WARN,
                   "scheduler: retention: cannot mark media %s expired (%s); "
                   "next round",
                   id, kd_err_name(rc));
    }
    if (expired > 0)
        kd_log(KD_LOG_INFO, "scheduler: retention: %d media expired", expired);
    if (sc->leading && still_leading(sc, RENEW_MS))
        abort_multipart(sc);
    if (sc->leading && kd_db_query(sc->db, SQL_FORGET_WORKERS, 0, NULL, NULL) != KD_OK)
        kd_log(KD_LOG_DEBUG, "scheduler: could not forget old workers");
out:
    /* The other phases may scan many rows: no timeout there. A failure
     * here leaves a connection that is gone, and a new one has none. */
    if (kd_db_query(sc->db, "SELECT set_config('statement_timeout', '0', false)", 0, NULL, NULL) !=
        KD_OK)
        kd_log(KD_LOG_DEBUG, "scheduler: could not reset the statement timeout");
    kd_dbres_free(res);
}

static void
accounts_cleanup(struct sched *sc)
{
    struct kd_cleanup_counts n;

    if (kd_cleanup_accounts(sc->db, sc->cfg, &n) != KD_OK) {
        kd_log(KD_LOG_WARN, "scheduler: the account cleanup failed; trying again next hour");
        return;
    }
    kd_log(KD_LOG_INFO,
           "scheduler: account cleanup: %lld refresh token(s), %lld session(s), %lld audit "
           "event(s), %lld job run(s) deleted",
           (long long)n.refresh_tokens, (long long)n.sessions, (long long)n.audit_events,
           (long long)n.job_runs);
}

/* One step of the leader. Before each phase the lead is renewed if the
 * last renewal is older than RENEW_MS; a phase that finds it lost is not
 * started. */
static enum kd_err
step(struct sched *sc)
{
    char stale[24], lease_stale[24], aging[24], max_free[24], max_premium[24];
    const char *p1[] = {stale};
    const char *pl[] = {lease_stale};
    const char *pj[] = {stale, aging, max_free, max_premium};
    int64_t now;
    enum kd_err rc;

    snprintf(stale, sizeof(stale), "%d", STALE_S);
    snprintf(lease_stale, sizeof(lease_stale), "%d", LEASE_REPUSH_S);
    snprintf(aging, sizeof(aging), "%lld", (long long)sc->cfg->queue_aging_s);
    snprintf(max_free, sizeof(max_free), "%lld", (long long)sc->cfg->plan_free_max_processing);
    snprintf(max_premium, sizeof(max_premium), "%lld",
             (long long)sc->cfg->plan_premium_max_processing);
    if ((rc = reconcile(sc)) != KD_OK || !still_leading(sc, RENEW_MS) ||
        (rc = cancel_asked(sc)) != KD_OK || !still_leading(sc, RENEW_MS) ||
        (rc = push_rows(sc, SQL_DUE_PROBES, 1, p1, "probe", -1, "probe(s)")) != KD_OK ||
        !still_leading(sc, RENEW_MS) ||
        (rc = push_rows(sc, SQL_DUE_JOBS, 4, pj, "edit", 1, "due job(s)")) != KD_OK ||
        !still_leading(sc, RENEW_MS) ||
        (rc = push_rows(sc, SQL_EXPIRED_LEASES, 1, pl, "edit", 1, "job(s) whose lease expired")) !=
            KD_OK)
        goto out;
    now = kd_mono_ms();
    if (now >= sc->next_retention && still_leading(sc, RENEW_MS)) {
        retention(sc);
        sc->next_retention = kd_mono_ms() + RETENTION_EVERY_MS;
    }
    if (now >= sc->next_accounts_cleanup && still_leading(sc, RENEW_MS)) {
        accounts_cleanup(sc);
        sc->next_accounts_cleanup = now + ACCOUNTS_CLEANUP_EVERY_MS;
    }
out:
    return rc;
}

static void
sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL); /* a signal ends it early */
}

static void
run(struct sched *sc)
{
    while (!stop_signal) {
        int64_t t0 = kd_mono_ms();
        bool held = false;
        enum kd_err rc = kd_queue_lock(sc->queue, LOCK_NAME, sc->token, LOCK_TTL_MS, &held);

        if (rc != KD_OK)
            held = false; /* cannot prove the lead: act as a follower */
        if (held)
            sc->renewed_at = t0;
        if (held != sc->leading) {
            kd_log(KD_LOG_INFO, "scheduler: %s", held ? "leading" : "no longer leading");
            sc->leading = held;
            sc->next_retention = 0;
            sc->next_accounts_cleanup = 0;
        }
        if (held) {
            rc = step(sc);
            if (rc == KD_OK) {
                if (sc->failures > 0)
                    kd_log(KD_LOG_INFO, "scheduler: dependencies answer again");
                sc->failures = 0;
            } else if (++sc->failures == 1 || sc->failures % 60 == 0) {
                kd_log(KD_LOG_WARN, "scheduler: step failed (%s); retrying", kd_err_name(rc));
            }
        }
        int64_t spent = kd_mono_ms() - t0;

        if (spent < TICK_MS && !stop_signal)
            sleep_ms(TICK_MS - spent);
    }
    if (sc->leading && kd_queue_unlock(sc->queue, LOCK_NAME, sc->token) != KD_OK)
        kd_log(KD_LOG_WARN, "scheduler: could not release the lead; it expires in %d ms",
               LOCK_TTL_MS);
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: kadr-scheduler [--config PATH] [--check-config]\n"
               "  --config PATH    configuration file (default $KADR_CONFIG)\n"
               "  --check-config   validate the configuration and exit\n"
               "Runs until SIGTERM or SIGINT. Several may run; one leads at a time.\n");
}

static bool
standard_fds_open(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            continue;
        int n = open("/dev/null", O_RDWR);

        if (n < 0)
            return false;
        if (n != fd) {
            dup2(n, fd);
            close(n);
        }
    }
    return true;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct kd_config *cfg = NULL;
    struct sched sc = {0};
    const char *config_path = NULL;
    bool check_only = false;
    char errbuf[512], host[64], uuid[KD_UUID_STRLEN + 1];
    struct sigaction sa = {0};
    int status = 1, c, level;
    enum kd_err rc;

    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'C':
            check_only = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!standard_fds_open())
        return 1;
    if (kd_config_load(config_path, &cfg, errbuf, sizeof(errbuf)) != KD_OK) {
        fprintf(stderr, "kadr-scheduler: %s\n", errbuf);
        return 1;
    }
    if (check_only) {
        printf("configuration ok\n");
        status = 0;
        goto out;
    }
    level = kd_log_level_parse(cfg->log_level);
    kd_log_init("kadr-scheduler", level >= 0 ? (enum kd_log_level)level : KD_LOG_INFO);
    sc.cfg = cfg;
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "scheduler");
    host[sizeof(host) - 1] = '\0';
    if ((rc = kd_uuid_new(uuid)) != KD_OK ||
        (rc = kd_snprintf(sc.token, sizeof(sc.token), "%.40s-%d-%s", host, (int)getpid(), uuid)) !=
            KD_OK) {
        kd_log(KD_LOG_ERROR, "scheduler: cannot make a token (%s)", kd_err_name(rc));
        goto out;
    }
    if ((rc = kd_db_open(cfg->database_url, &sc.db)) != KD_OK ||
        (rc = kd_queue_open(cfg, &sc.queue)) != KD_OK) {
        kd_log(KD_LOG_ERROR, "scheduler: cannot set up connections (%s)", kd_err_name(rc));
        goto out;
    }
    if ((rc = kd_storage_open(cfg, &sc.storage)) != KD_OK) {
        kd_log(KD_LOG_ERROR, "scheduler: storage backend \"%s\" cannot be used (%s)",
               cfg->storage_backend, kd_err_name(rc));
        goto out;
    }
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigset_t mask;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_UNBLOCK, &mask, NULL);

    kd_log(KD_LOG_INFO, "scheduler: %s started", sc.token);
    run(&sc);
    kd_log(KD_LOG_INFO, "scheduler: stopped");
    status = 0;
out:
    kd_storage_close(sc.storage);
    kd_queue_close(sc.queue);
    kd_db_close(sc.db);
    kd_config_free(cfg);
    return status;
}
