/* kadr-notify: delivers the webhooks of the outbox (webhook_deliveries).
 *
 * A trigger on jobs writes one delivery per final state (sql/006_webhooks.sql);
 * this daemon claims due deliveries with FOR UPDATE SKIP LOCKED (so several
 * notifiers share the work), POSTs them signed with the user's secret through
 * one libcurl multi handle (many requests in flight in one thread, so a slow
 * receiver holds up nobody else), logs every try in webhook_attempts and
 * schedules the next try with backoff until the retry window is over.
 *
 * A claim moves next_attempt_at past the request's timeout, counts the try
 * and logs it at once (completed with the outcome later): a notifier that
 * dies mid-request leaves a logged try and a delivery that comes due again
 * by itself. Delivery is therefore at least once; receivers
 * deduplicate on the Kadr-Delivery header. See doc/webhooks.md. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "policy.h"
#include "util.h"

/* A claim outlives the longest request by this much, which leaves room to
 * write the outcome before another notifier may take the delivery again. */
#define CLAIM_MARGIN_MS 30000
/* Bytes of a response body kept for the attempt log, and the most read of
 * it: past that the transfer is cut (the status line is all that counts). */
#define RESP_KEEP 200
#define RESP_MAX  (64 * 1024)
/* Longest wait in the loop, so that signals and due work are seen soon. */
#define TICK_MS 200
/* Outcomes that cannot be written are tried again this often. */
#define RECORD_RETRY_MS 1000
/* Settled deliveries older than retention_days are deleted this often, in
 * batches (short transactions), at most PURGE_BATCHES of them at a time. */
#define PURGE_EVERY_MS (60 * 60 * 1000)
#define PURGE_BATCH    1000
#define PURGE_BATCHES  100

static volatile sig_atomic_t stop_signals;

static void
on_stop(int sig)
{
    (void)sig;
    if (stop_signals < 2)
        stop_signals++;
}

struct delivery {
    int64_t id;
    int64_t log_id;     /* this try's webhook_attempts row, made at the claim */
    int attempt;        /* this try's number, counted at the claim */
    int64_t elapsed_ms; /* since the first try, at the claim */
    int64_t claimed_ms; /* kd_mono_ms() of the claim */
    char job_id[KD_UUID_STRLEN + 1];
    char event[32];
    char *payload;
    CURL *easy;
    struct curl_slist *headers;
    bool allow_private;
    bool blocked; /* a resolved address was refused */
    char errbuf[CURL_ERROR_SIZE];
    char resp[RESP_KEEP + 1];
    size_t resp_len;
    size_t received;
    int64_t started_ms;
    /* The outcome, kept until PostgreSQL holds it. */
    bool done;
    bool delivered;
    bool give_up;
    long status; /* 0: no HTTP answer */
    char error[320];
    int64_t duration_ms;
    int64_t delay_ms;
    int64_t record_at_ms;
};

struct notifier {
    const struct kd_config *cfg;
    struct kd_db *db;
    CURLM *multi;
    struct delivery **slots;
    size_t n_slots;
    char name[96];
    char user_agent[64];
    int64_t claim_ms;
};

/* Claims due deliveries and logs their tries, in one statement: no try can
 * leave without its row in webhook_attempts. Until the outcome completes
 * it, the row says that none was recorded (what it will keep saying if
 * this notifier dies in the middle of the request). */
static const char SQL_CLAIM[] =
    "WITH c AS (UPDATE webhook_deliveries d SET attempts = d.attempts + 1, "
    "first_attempt_at = coalesce(d.first_attempt_at, now()), "
    "next_attempt_at = now() + $2::bigint * interval '1 millisecond' "
    "WHERE d.id IN (SELECT id FROM webhook_deliveries "
    "WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now() "
    "ORDER BY next_attempt_at, id LIMIT $1::int FOR UPDATE SKIP LOCKED) "
    "RETURNING d.id, d.attempts, d.job_id, d.event, d.url, d.payload, d.user_id, "
    "d.first_attempt_at), "
    "a AS (INSERT INTO webhook_attempts (delivery_id, attempt, error, notifier) "
    "SELECT id, attempts, 'no outcome recorded: the notifier did not finish this try', $3 "
    "FROM c RETURNING id, delivery_id) "
    "SELECT c.id, c.attempts, c.job_id, c.event, c.url, c.payload, "
    "(SELECT u.webhook_secret FROM users u WHERE u.id = c.user_id), "
    "(extract(epoch FROM now() - c.first_attempt_at) * 1000)::bigint, a.id "
    "FROM c JOIN a ON a.delivery_id = c.id";

/* The try's log row is completed whatever happens; the delivery changes
 * only if this notifier's claim still stands (attempts unchanged, not
 * settled). */
static const char SQL_RECORD[] =
    "WITH a AS (UPDATE webhook_attempts SET status_code = $3::int, error = $4, "
    "duration_ms = $5::int, finished_at = now(), notifier = $6 WHERE id = $10::bigint) "
    "UPDATE webhook_deliveries SET last_status = $3::int, last_error = $4, "
    "delivered_at = CASE WHEN $7::boolean THEN now() END, "
    "failed_at = CASE WHEN $8::boolean THEN now() END, "
    "next_attempt_at = CASE WHEN $7::boolean OR $8::boolean THEN next_attempt_at "
    "ELSE now() + $9::bigint * interval '1 millisecond' END "
    "WHERE id = $1::bigint AND attempts = $2::int "
    "AND delivered_at IS NULL AND failed_at IS NULL";

/* The payload names outputs that retention removes after retention_days;
 * the delivery and its attempt log (ON DELETE CASCADE) go after as long. */
static const char SQL_PURGE[] =
    "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries "
    "WHERE coalesce(delivered_at, failed_at) < now() - $1::int * interval '1 day' "
    "LIMIT $2::int FOR UPDATE SKIP LOCKED)";

static void
usage(FILE *f)
{
    fprintf(f, "usage: kadr-notify [--config PATH] [--check-config]\n"
               "  --config PATH    configuration file (default $KADR_CONFIG)\n"
               "  --check-config   validate the configuration and exit\n"
               "Delivers webhooks until SIGTERM or SIGINT; requests in flight finish\n"
               "first, a second signal stops at once (those are sent again later).\n");
}

/* As in the worker: a daemon started with 0, 1 or 2 closed would hand those
 * numbers to its sockets. */
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

static void
delivery_free(struct delivery *d)
{
    if (d == NULL)
        return;
    if (d->easy != NULL)
        curl_easy_cleanup(d->easy);
    curl_slist_free_all(d->headers);
    free(d->payload);
    free(d);
}

static size_t
on_body(char *p, size_t size, size_t n, void *ud)
{
    struct delivery *d = ud;
    size_t len = size * n, keep;

    if (d->resp_len < RESP_KEEP) {
        keep = RESP_KEEP - d->resp_len;
        if (keep > len)
            keep = len;
        memcpy(d->resp + d->resp_len, p, keep);
        d->resp_len += keep;
        d->resp[d->resp_len] = '\0';
    }
    d->received += len;
    /* Cutting the transfer fails it with CURLE_WRITE_ERROR; conclude()
     * then goes by the status, which came first. */
    return d->received > RESP_MAX ? 0 : len;
}

/* Refuses connections to loopback and private networks unless allowed:
 * checked on the resolved address, so a DNS name that points inside (or
 * rebinds between checks) cannot reach internal services either. */
static curl_socket_t
open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct delivery *d = ud;

    if (purpose == CURLSOCKTYPE_IPCXN && !d->allow_private &&
        !kd_notify_addr_public(&addr->addr, addr->addrlen)) {
        d->blocked = true;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* Printable ASCII of a receiver's answer for the log: the column is text in
 * UTF-8, and a hostile receiver chooses these bytes. */
static void
printable(char *s)
{
    char *end = s;

    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = ' ';
        if (*s != ' ')
            end = s + 1;
    }
    *end = '\0'; /* no trailing blanks (a body's final newline) */
}

static enum kd_err
add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[256];
    struct curl_slist *n;
    enum kd_err rc;

    /* "Name:" alone removes a header libcurl would add by itself. */
    if ((rc = kd_snprintf(line, sizeof(line), "%s:%s%s", name, *value != '\0' ? " " : "", value)) !=
        KD_OK)
        return rc;
    if ((n = curl_slist_append(*list, line)) == NULL)
        return KD_ENOMEM;
    *list = n;
    return KD_OK;
}

/* Builds the request of a claimed delivery. The secret is only read here. */
static enum kd_err
prepare(struct notifier *nt, struct delivery *d, const char *url, const char *secret)
{
    const struct kd_config *cfg = nt->cfg;
    char sig[160], id[32];
    CURL *e;
    enum kd_err rc;

    if ((d->easy = e = curl_easy_init()) == NULL)
        return KD_ENOMEM;
    if ((rc = kd_notify_signature(secret, kd_now_ms() / 1000, d->payload, strlen(d->payload), sig,
                                  sizeof(sig))) != KD_OK)
        return rc;
    snprintf(id, sizeof(id), "%lld", (long long)d->id);
    rc = add_header(&d->headers, "Content-Type", "application/json");
    if (rc == KD_OK)
        rc = add_header(&d->headers, "Kadr-Signature", sig);
    if (rc == KD_OK)
        rc = add_header(&d->headers, "Kadr-Event", d->event);
    if (rc == KD_OK)
        rc = add_header(&d->headers, "Kadr-Delivery", id);
    /* No "Expect: 100-continue" round trip before the body. */
    if (rc == KD_OK)
        rc = add_header(&d->headers, "Expect", "");
    explicit_bzero(sig, sizeof(sig));
    if (rc != KD_OK)
        return rc;
    /* The API checked the URL's form; what libcurl still refuses fails this
     * try like any unreachable receiver. */
    if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK)
        return KD_EINVAL;
    if (curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
        /* Proxies from the environment would hide the real address from
         * open_socket(). */
        curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, d->payload) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(d->payload)) !=
            CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->headers) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_USERAGENT, nt->user_agent) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->notify_connect_timeout_ms) !=
            CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)cfg->notify_timeout_ms) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->errbuf) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, d) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, d) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PRIVATE, d) != CURLE_OK) {
        kd_log(KD_LOG_ERROR, "notify: libcurl refused an option (is it older than 7.85?)");
        return KD_EINTERNAL;
    }
    return KD_OK;
}

static int
free_slots(const struct notifier *nt)
{
    int n = 0;

    for (size_t i = 0; i < nt->n_slots; i++)
        n += nt->slots[i] == NULL;
    return n;
}

static size_t
busy_slots(const struct notifier *nt)
{
    return nt->n_slots - (size_t)free_slots(nt);
}

static struct delivery **
slot_for(struct notifier *nt)
{
    for (size_t i = 0; i < nt->n_slots; i++)
        if (nt->slots[i] == NULL)
            return &nt->slots[i];
    return NULL;
}

static void
slot_release(struct notifier *nt, struct delivery *d)
{
    for (size_t i = 0; i < nt->n_slots; i++)
        if (nt->slots[i] == d)
            nt->slots[i] = NULL;
    delivery_free(d);
}

/* Claims up to want due deliveries and starts their requests. *got counts
 * the claimed ones. A delivery that cannot be prepared is concluded as a
 * failed try at once, so it follows the schedule like any other. */
static enum kd_err
claim(struct notifier *nt, int want, int *got)
{
    struct kd_dbres *res = NULL;
    char n_text[24], ms_text[24];
    const char *p[3] = {n_text, ms_text, nt->name};
    enum kd_err rc;

    *got = 0;
    snprintf(n_text, sizeof(n_text), "%d", want);
    snprintf(ms_text, sizeof(ms_text), "%lld", (long long)nt->claim_ms);
    if ((rc = kd_db_query(nt->db, SQL_CLAIM, 3, p, &res)) != KD_OK)
        goto out;
    for (int i = 0; i < kd_dbres_rows(res); i++) {
        struct delivery **slot = slot_for(nt), *d;
        const char *url = kd_dbres_get(res, i, 4), *secret = kd_dbres_get(res, i, 6);
        const char *payload = kd_dbres_get(res, i, 5);

        if (slot == NULL) /* cannot happen: want <= free slots */
            break;
        if ((d = calloc(1, sizeof(*d))) == NULL) {
            rc = KD_ENOMEM;
            goto out;
        }
        *slot = d;
        (*got)++;
        d->id = kd_dbres_i64(res, i, 0, 0);
        d->attempt = (int)kd_dbres_i64(res, i, 1, 1);
        d->elapsed_ms = kd_dbres_i64(res, i, 7, 0);
        d->log_id = kd_dbres_i64(res, i, 8, 0);
        d->claimed_ms = kd_mono_ms();
        d->allow_private = nt->cfg->notify_allow_private != 0;
        snprintf(d->job_id, sizeof(d->job_id), "%s", kd_dbres_get(res, i, 2));
        snprintf(d->event, sizeof(d->event), "%s", kd_dbres_get(res, i, 3));
        d->payload = strdup(payload != NULL ? payload : "");
        d->started_ms = kd_mono_ms();
        enum kd_err prc = KD_ENOMEM;

        if (d->payload != NULL && url != NULL && secret != NULL)
            prc = prepare(nt, d, url, secret);
        if (prc == KD_OK && curl_multi_add_handle(nt->multi, d->easy) != CURLM_OK)
            prc = KD_EINTERNAL;
        if (prc != KD_OK) {
            d->done = true;
            d->status = 0;
            snprintf(d->error, sizeof(d->error), "the request could not be made (%s)",
                     kd_err_name(prc));
            d->give_up = kd_notify_give_up(d->elapsed_ms, nt->cfg->notify_retry_window_s * 1000);
            d->delay_ms = kd_notify_backoff_ms(d->attempt, nt->cfg->notify_backoff_base_ms, 0.5);
            continue;
        }
        kd_log(KD_LOG_DEBUG, "notify: delivery %lld (job %s, %s) try %d sent", (long long)d->id,
               d->job_id, d->event, d->attempt);
    }
out:
    kd_dbres_free(res);
    return rc;
}

static double
jitter(void)
{
    uint32_t r;

    if (kd_random_bytes(&r, sizeof(r)) != KD_OK)
        return 0.5;
    return (double)r / 4294967296.0;
}

/* A finished transfer: what came of it, and what happens next. */
static void
conclude(struct notifier *nt, struct delivery *d, CURLcode cc)
{
    long status = 0;

    curl_multi_remove_handle(nt->multi, d->easy);
    curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &status);
    d->duration_ms = kd_mono_ms() - d->started_ms;
    d->status = status;
    /* A body cut at RESP_MAX still answered with its status. */
    if (cc == CURLE_WRITE_ERROR && d->received > RESP_MAX && status > 0)
        cc = CURLE_OK;
    d->resp[d->resp_len] = '\0';
    printable(d->resp);
    if (cc == CURLE_OK && status >= 200 && status <= 299) {
        d->delivered = true;
        d->error[0] = '\0';
    } else if (cc == CURLE_OK && status >= 300 && status <= 399) {
        snprintf(d->error, sizeof(d->error), "HTTP %ld: redirects are not followed", status);
    } else if (cc == CURLE_OK) {
        snprintf(d->error, sizeof(d->error), "HTTP %ld%s%.200s", status,
                 d->resp_len > 0 ? ": " : "", d->resp);
    } else if (d->blocked && (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST)) {
        d->status = 0;
        snprintf(d->error, sizeof(d->error),
                 "the host resolves to a private or reserved address (notify_allow_private)");
    } else {
        d->status = 0;
        snprintf(d->error, sizeof(d->error), "%s",
                 d->errbuf[0] != '\0' ? d->errbuf : curl_easy_strerror(cc));
        printable(d->error);
    }
    if (!d->delivered) {
        d->give_up = kd_notify_give_up(d->elapsed_ms + d->duration_ms,
                                       nt->cfg->notify_retry_window_s * 1000);
        d->delay_ms = kd_notify_backoff_ms(d->attempt, nt->cfg->notify_backoff_base_ms, jitter());
    }
    d->done = true;
    d->record_at_ms = 0;
    curl_easy_cleanup(d->easy);
    d->easy = NULL;
}

/* Writes the outcome of d. KD_OK also when the claim was lost meanwhile
 * (another notifier's try then counts). */
static enum kd_err
record(struct notifier *nt, struct delivery *d)
{
    char id[24], log_id[24], attempt[16], status[16], dur[24], delay[24];
    const char *p[10];
    struct kd_dbres *res = NULL;
    enum kd_err rc;

    snprintf(id, sizeof(id), "%lld", (long long)d->id);
    snprintf(attempt, sizeof(attempt), "%d", d->attempt);
    snprintf(status, sizeof(status), "%ld", d->status);
    snprintf(dur, sizeof(dur), "%lld", (long long)d->duration_ms);
    snprintf(delay, sizeof(delay), "%lld", (long long)d->delay_ms);
    snprintf(log_id, sizeof(log_id), "%lld", (long long)d->log_id);
    p[0] = id;
    p[1] = attempt;
    p[2] = d->status > 0 ? status : NULL;
    p[3] = d->delivered ? NULL : d->error;
    p[4] = dur;
    p[5] = nt->name;
    p[6] = d->delivered ? "true" : "false";
    p[7] = d->give_up ? "true" : "false";
    p[8] = delay;
    p[9] = log_id;
    if ((rc = kd_db_query(nt->db, SQL_RECORD, 10, p, &res)) != KD_OK)
        goto out;
    if (kd_dbres_affected(res) == 0)
        kd_log(KD_LOG_WARN,
               "notify: delivery %lld try %d outlived its claim; its outcome is only logged",
               (long long)d->id, d->attempt);
    else if (d->delivered)
        kd_log(KD_LOG_INFO,
               "notify: delivery %lld (job %s, %s) delivered on try %d (HTTP %ld, %lld ms)",
               (long long)d->id, d->job_id, d->event, d->attempt, d->status,
               (long long)d->duration_ms);
    else if (d->give_up)
        kd_log(KD_LOG_WARN, "notify: delivery %lld (job %s, %s) given up after try %d: %s",
               (long long)d->id, d->job_id, d->event, d->attempt, d->error);
    else
        kd_log(KD_LOG_INFO, "notify: delivery %lld (job %s, %s) try %d failed: %s; next in %lld ms",
               (long long)d->id, d->job_id, d->event, d->attempt, d->error, (long long)d->delay_ms);
out:
    kd_dbres_free(res);
    return rc;
}

/* Writes the outcomes waiting to be written. One that cannot be written
 * before its claim runs out is dropped: the delivery comes due again and is
 * sent once more (at least once). */
static void
record_done(struct notifier *nt, int64_t now)
{
    for (size_t i = 0; i < nt->n_slots; i++) {
        struct delivery *d = nt->slots[i];
        enum kd_err rc;

        if (d == NULL || !d->done || now < d->record_at_ms)
            continue;
        if ((rc = record(nt, d)) == KD_OK) {
            slot_release(nt, d);
        } else if (rc == KD_EUNAVAIL && now - d->claimed_ms < nt->claim_ms) {
            d->record_at_ms = now + RECORD_RETRY_MS;
        } else {
            kd_log(KD_LOG_ERROR,
                   "notify: the outcome of delivery %lld try %d is lost (%s); "
                   "it will be sent again",
                   (long long)d->id, d->attempt, kd_err_name(rc));
            slot_release(nt, d);
        }
    }
}

static void
harvest(struct notifier *nt)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(nt->multi, &left)) != NULL) {
        struct delivery *d = NULL;

        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&d);
        if (d != NULL)
            conclude(nt, d, m->data.result);
    }
}

/* The second signal: requests in flight are abandoned; their claims run out
 * and they are sent again, by this or another notifier. */
static void
abandon_all(struct notifier *nt)
{
    for (size_t i = 0; i < nt->n_slots; i++) {
        struct delivery *d = nt->slots[i];

        if (d == NULL)
            continue;
        if (d->easy != NULL)
            curl_multi_remove_handle(nt->multi, d->easy);
        slot_release(nt, d);
    }
}

/* Deletes old settled deliveries; failures wait for the next round. */
static void
purge(struct notifier *nt)
{
    char days[24], batch[24];
    const char *p[2] = {days, batch};
    int64_t total = 0;

    snprintf(days, sizeof(days), "%lld", (long long)nt->cfg->retention_days);
    snprintf(batch, sizeof(batch), "%d", PURGE_BATCH);
    for (int i = 0; i < PURGE_BATCHES && stop_signals == 0; i++) {
        struct kd_dbres *res = NULL;
        int64_t n;

        if (kd_db_query(nt->db, SQL_PURGE, 2, p, &res) != KD_OK) {
            kd_dbres_free(res);
            return;
        }
        n = kd_dbres_affected(res);
        kd_dbres_free(res);
        total += n;
        if (n < PURGE_BATCH)
            break;
    }
    if (total > 0)
        kd_log(KD_LOG_INFO, "notify: deleted %lld delivery(ies) settled more than %lld days ago",
               (long long)total, (long long)nt->cfg->retention_days);
}

static void
run(struct notifier *nt)
{
    int64_t next_poll = 0, stop_deadline = 0, next_purge = 0;
    int failures = 0, running = 0;

    for (;;) {
        int64_t now = kd_mono_ms();

        if (stop_signals > 0 && stop_deadline == 0) {
            stop_deadline = now + nt->cfg->notify_timeout_ms + 5000;
            kd_log(KD_LOG_INFO, "notify: stopping; %zu delivery(ies) in flight", busy_slots(nt));
        }
        if (stop_signals > 0) {
            if (busy_slots(nt) == 0)
                return;
            if (stop_signals > 1 || now >= stop_deadline) {
                kd_log(KD_LOG_WARN, "notify: stopping now; %zu delivery(ies) will be sent again",
                       busy_slots(nt));
                abandon_all(nt);
                return;
            }
        }
        record_done(nt, now);
        if (stop_signals == 0 && now >= next_purge) {
            purge(nt);
            next_purge = kd_mono_ms() + PURGE_EVERY_MS;
        }
        int want = free_slots(nt);

        if (stop_signals == 0 && want > 0 && now >= next_poll) {
            int got = 0;
            enum kd_err rc = claim(nt, want, &got);

            if (rc == KD_OK) {
                if (failures > 0)
                    kd_log(KD_LOG_INFO, "notify: the database answers again");
                failures = 0;
                /* A full batch: more may be due, so look again at once. */
                next_poll = got == want ? now : now + nt->cfg->notify_poll_ms;
            } else {
                failures++;
                if (failures == 1 || failures % 50 == 0)
                    kd_log(KD_LOG_WARN, "notify: cannot claim deliveries (%s); backing off",
                           kd_err_name(rc));
                /* At most 10 s: deliveries resume soon after an outage,
                 * and one query in 10 s costs a recovering server nothing. */
                int64_t back = nt->cfg->notify_poll_ms << (failures < 6 ? failures : 6);

                next_poll = now + (back < 10000 ? back : 10000);
            }
        }
        curl_multi_perform(nt->multi, &running);
        harvest(nt);
        int wait = TICK_MS;

        if (stop_signals == 0 && next_poll > now && next_poll - now < wait)
            wait = (int)(next_poll - now);
        if (wait > 0)
            curl_multi_poll(nt->multi, NULL, 0, wait, NULL);
    }
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
    struct notifier nt = {0};
    const char *config_path = NULL;
    bool check_only = false, curl_ready = false;
    char errbuf[512], host[64];
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
        fprintf(stderr, "kadr-notify: %s\n", errbuf);
        return 1;
    }
    if (check_only) {
        printf("configuration ok\n");
        status = 0;
        goto out;
    }
    level = kd_log_level_parse(cfg->log_level);
    kd_log_init("kadr-notify", level >= 0 ? (enum kd_log_level)level : KD_LOG_INFO);

    nt.cfg = cfg;
    nt.n_slots = (size_t)cfg->notify_concurrency;
    nt.claim_ms = cfg->notify_timeout_ms + CLAIM_MARGIN_MS;
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "notify");
    host[sizeof(host) - 1] = '\0';
    snprintf(nt.name, sizeof(nt.name), "%s-%d", host, (int)getpid());
    snprintf(nt.user_agent, sizeof(nt.user_agent), "kadr-notify/%s", PACKAGE_VERSION);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        kd_log(KD_LOG_ERROR, "notify: libcurl cannot be initialised");
        goto out;
    }
    curl_ready = true;
    if ((nt.multi = curl_multi_init()) == NULL ||
        (nt.slots = calloc(nt.n_slots, sizeof(*nt.slots))) == NULL) {
        kd_log(KD_LOG_ERROR, "notify: out of memory");
        goto out;
    }
    if ((rc = kd_db_open(cfg->database_url, &nt.db)) != KD_OK) {
        kd_log(KD_LOG_ERROR, "notify: cannot set up the database connection (%s)", kd_err_name(rc));
        goto out;
    }

    /* No SA_RESTART: waits end at a signal. SIGPIPE: a receiver that hangs
     * up shows as an error of its transfer. */
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

    kd_log(KD_LOG_INFO, "notify: %s started, %zu request(s) at once, private receivers %s", nt.name,
           nt.n_slots, cfg->notify_allow_private ? "allowed" : "refused");
    run(&nt);
    kd_log(KD_LOG_INFO, "notify: stopped");
    status = 0;
out:
    if (nt.slots != NULL)
        abandon_all(&nt);
    free(nt.slots);
    if (nt.multi != NULL)
        curl_multi_cleanup(nt.multi);
    if (curl_ready)
        curl_global_cleanup();
    kd_db_close(nt.db);
    kd_config_free(cfg);
    return status;
}
