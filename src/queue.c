#include "queue.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
#include "util.h"

/* Messages that one blocking read returned beyond the first (rare: only when
 * several streams receive at the same instant). They are ours already. */
#define SPARE_MAX 16

struct kd_queue {
    const struct kd_config *cfg;
    redisContext *rc;
    bool groups_ready;
    char streams[KD_QUEUE_PRIORITIES][64];
    struct kd_queue_msg spare[SPARE_MAX];
    size_t n_spare;
};

static void
drop(struct kd_queue *q)
{
    if (q->rc != NULL)
        redisFree(q->rc);
    q->rc = NULL;
    q->groups_ready = false;
}

/* Sets the socket timeout for the next command: a blocking read must be
 * allowed to wait its own time plus a margin. */
static void
set_timeout(struct kd_queue *q, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

    redisSetTimeout(q->rc, tv);
}

static enum kd_err
connect_redis(struct kd_queue *q)
{
    struct timeval tv = {.tv_sec = 2};
    redisReply *r;

    if (q->rc != NULL && q->rc->err == 0)
        return KD_OK;
    drop(q);
    if (q->cfg->redis_socket[0] != '\0')
        q->rc = redisConnectUnixWithTimeout(q->cfg->redis_socket, tv);
    else
        q->rc = redisConnectWithTimeout(q->cfg->redis_host, (int)q->cfg->redis_port, tv);
    if (q->rc == NULL)
        return KD_ENOMEM;
    if (q->rc->err != 0) {
        kd_log(KD_LOG_WARN, "redis: cannot connect: %s", q->rc->errstr);
        drop(q);
        return KD_EUNAVAIL;
    }
    set_timeout(q, 5000);
    if (q->cfg->redis_password[0] != '\0') {
        r = redisCommand(q->rc, "AUTH %s", q->cfg->redis_password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            kd_log(KD_LOG_ERROR, "redis: AUTH failed: %s",
                   r != NULL ? r->str : q->rc->errstr);
            if (r != NULL)
                freeReplyObject(r);
            drop(q);
            return KD_EUNAVAIL;
        }
        freeReplyObject(r);
    }
    return KD_OK;
}

/* Runs one command (argv form: arguments are never parsed by Redis as
 * syntax). *out is NULL on failure. Connection errors drop the connection. */
static enum kd_err
command(struct kd_queue *q, int argc, const char **argv, redisReply **out)
{
    redisReply *r;
    enum kd_err rc;
    bool reused;
    int err;

    *out = NULL;
    reused = q->rc != NULL && q->rc->err == 0;
    if ((rc = connect_redis(q)) != KD_OK)
        return rc;
    r = redisCommandArgv(q->rc, argc, argv, NULL);
    err = errno;
    if (r == NULL && reused &&
        (q->rc->err == REDIS_ERR_EOF ||
         (q->rc->err == REDIS_ERR_IO && (err == EPIPE || err == ECONNRESET)))) {
        /* A connection that had worked was closed under us (Redis
         * restarted): once more on a new one, or the first push after a
         * restart would be lost. A repeat is harmless: messages are hints
         * and PostgreSQL holds the truth. A timeout is not retried. */
        kd_log(KD_LOG_INFO, "redis: %s: %s; reconnecting", argv[0], q->rc->errstr);
        drop(q);
        if ((rc = connect_redis(q)) != KD_OK)
            return rc;
        r = redisCommandArgv(q->rc, argc, argv, NULL);
    }
    if (r == NULL) {
        kd_log(KD_LOG_WARN, "redis: %s: %s", argv[0], q->rc->errstr);
        drop(q);
        return KD_EUNAVAIL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* The stream or its group is gone: Redis lost its data (a restart
         * without persistence, FLUSHALL) or a key was deleted; a blocked
         * read learns it as UNBLOCKED. The next call creates them again. */
        if (strncmp(r->str, "NOGROUP", 7) == 0 || strncmp(r->str, "UNBLOCKED", 9) == 0) {
            q->groups_ready = false;
            freeReplyObject(r);
            return KD_EAGAIN;
        }
        if (strncmp(r->str, "LOADING", 7) == 0 || strncmp(r->str, "BUSY", 4) == 0) {
            freeReplyObject(r);
            return KD_EUNAVAIL;
        }
        kd_log(KD_LOG_ERROR, "redis: %s: %.200s", argv[0], r->str);
        freeReplyObject(r);
        return KD_EINTERNAL;
    }
    *out = r;
    return KD_OK;
}

enum kd_err
kd_queue_open(const struct kd_config *cfg, struct kd_queue **out)
{
    struct kd_queue *q;

    if ((q = calloc(1, sizeof(*q))) == NULL)
        return KD_ENOMEM;
    q->cfg = cfg;
    for (int i = 0; i < KD_QUEUE_PRIORITIES; i++) {
        if (kd_snprintf(q->streams[i], sizeof(q->streams[i]), "%sq:%d", cfg->redis_prefix, i + 1) !=
            KD_OK) {
            free(q);
            return KD_EINVAL;
        }
    }
    *out = q;
    return KD_OK;
}

void
kd_queue_close(struct kd_queue *q)
{
    if (q == NULL)
        return;
    drop(q);
    free(q);
}

enum kd_err
kd_queue_ping(struct kd_queue *q)
{
    const char *argv[] = {"PING"};
    redisReply *r;
    enum kd_err rc;

    if ((rc = command(q, 1, argv, &r)) != KD_OK)
        return rc == KD_EINTERNAL ? KD_EUNAVAIL : rc;
    freeReplyObject(r);
    return KD_OK;
}

enum kd_err
kd_queue_push(struct kd_queue *q, const char *kind, const char *ref, int priority)
{
    const char *argv[] = {"XADD", NULL, "*", "kind", kind, "ref", ref};
    redisReply *r;
    enum kd_err rc;

    /* What the reader could not hold whole it would drop as malformed. */
    if (strlen(kind) >= sizeof(((struct kd_queue_msg *)0)->kind) ||
        strlen(ref) >= sizeof(((struct kd_queue_msg *)0)->ref))
        return KD_EINVAL;
    if (priority < 1)
        priority = 1;
    if (priority > KD_QUEUE_PRIORITIES)
        priority = KD_QUEUE_PRIORITIES;
    argv[1] = q->streams[priority - 1];
    if ((rc = command(q, (int)KD_ARRAY_LEN(argv), argv, &r)) != KD_OK)
        return rc;
    freeReplyObject(r);
    return KD_OK;
}

/* Creates the consumer group on every stream. Starting at "0" delivers what
 * was pushed before any worker ever ran. */
static enum kd_err
ensure_groups(struct kd_queue *q)
{
    redisReply *r;
    enum kd_err rc;

    if (q->groups_ready)
        return KD_OK;
    for (int i = 0; i < KD_QUEUE_PRIORITIES; i++) {
        const char *argv[] = {"XGROUP", "CREATE", q->streams[i], KD_QUEUE_GROUP, "0", "MKSTREAM"};

        if ((rc = connect_redis(q)) != KD_OK)
            return rc;
        r = redisCommandArgv(q->rc, (int)KD_ARRAY_LEN(argv), argv, NULL);
        if (r == NULL) {
            drop(q);
            return KD_EUNAVAIL;
        }
        /* BUSYGROUP: it exists already, which is what we want. */
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "LOADING", 7) == 0) {
            freeReplyObject(r);
            return KD_EUNAVAIL; /* still reading its data after a restart */
        }
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0) {
            kd_log(KD_LOG_ERROR, "redis: XGROUP CREATE %s: %.200s", q->streams[i], r->str);
            freeReplyObject(r);
            return KD_EINTERNAL;
        }
        freeReplyObject(r);
    }
    q->groups_ready = true;
    return KD_OK;
}

static int
priority_of(const struct kd_queue *q, const char *stream)
{
    for (int i = 0; i < KD_QUEUE_PRIORITIES; i++)
        if (strcmp(q->streams[i], stream) == 0)
            return i + 1;
    return 0;
}

/* Reads one entry [id, [field, value, ...]] into msg. False when malformed
 * (or nil: an entry deleted while pending). */
static bool
parse_entry(const struct kd_queue *q, const char *stream, const redisReply *e,
            struct kd_queue_msg *msg)
{
    const redisReply *fields;

    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
        return false;
    memset(msg, 0, sizeof(*msg));
    if (kd_snprintf(msg->stream, sizeof(msg->stream), "%s", stream) != KD_OK ||
        kd_snprintf(msg->id, sizeof(msg->id), "%s", e->element[0]->str) != KD_OK)
        return false;
    fields = e->element[1];
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        /* A value too long for its field is malformed, not cut: a cut ref
         * could name another object. */
        if (strcmp(k->str, "kind") == 0 &&
            kd_snprintf(msg->kind, sizeof(msg->kind), "%s", v->str) != KD_OK)
            return false;
        if (strcmp(k->str, "ref") == 0 &&
            kd_snprintf(msg->ref, sizeof(msg->ref), "%s", v->str) != KD_OK)
            return false;
    }
    msg->priority = priority_of(q, stream);
    return msg->kind[0] != '\0' && msg->ref[0] != '\0';
}

/* Acknowledges away an entry parse_entry refused, so that it cannot come
 * back forever. */
static void
drop_malformed(struct kd_queue *q, const char *stream, const redisReply *er)
{
    struct kd_queue_msg bad = {0};

    if (er == NULL || er->type != REDIS_REPLY_ARRAY || er->elements < 1 ||
        er->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (kd_snprintf(bad.stream, sizeof(bad.stream), "%s", stream) != KD_OK ||
        kd_snprintf(bad.id, sizeof(bad.id), "%s", er->element[0]->str) != KD_OK)
        return;
    kd_log(KD_LOG_WARN, "queue: dropping malformed entry %s", bad.id);
    if (kd_queue_ack(q, &bad) != KD_OK)
        kd_log(KD_LOG_WARN, "queue: could not drop entry %s", bad.id);
}

/* Collects the entries of an XREADGROUP reply [[stream, [entry...]]...]:
 * the first good one into *msg, the rest into the spare list. Malformed
 * entries are acknowledged away so that they cannot come back forever. */
static bool
collect(struct kd_queue *q, const redisReply *r, struct kd_queue_msg *msg)
{
    bool have = false;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return false;
    for (size_t s = 0; s < r->elements; s++) {
        const redisReply *sr = r->element[s];

        if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 ||
            sr->element[0]->type != REDIS_REPLY_STRING || sr->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        for (size_t e = 0; e < sr->element[1]->elements; e++) {
            struct kd_queue_msg m;
            const redisReply *er = sr->element[1]->element[e];

            if (!parse_entry(q, sr->element[0]->str, er, &m)) {
                drop_malformed(q, sr->element[0]->str, er);
                continue;
            }
            if (!have) {
                *msg = m;
                have = true;
            } else if (q->n_spare < SPARE_MAX) {
                q->spare[q->n_spare++] = m;
            }
        }
    }
    return have;
}

static int
spare_cmp(const void *a, const void *b)
{
    const struct kd_queue_msg *x = a, *y = b;

    return x->priority - y->priority;
}

enum kd_err
kd_queue_next(struct kd_queue *q, const char *consumer, int wait_ms, struct kd_queue_msg *msg)
{
    char block[24];
    const char *argv[9 + 2 * KD_QUEUE_PRIORITIES];
    redisReply *r = NULL;
    enum kd_err rc;
    int argc;

    if (q->n_spare > 0) {
        qsort(q->spare, q->n_spare, sizeof(q->spare[0]), spare_cmp);
        *msg = q->spare[0];
        memmove(&q->spare[0], &q->spare[1], (q->n_spare - 1) * sizeof(q->spare[0]));
        q->n_spare--;
        return KD_OK;
    }
    if ((rc = connect_redis(q)) != KD_OK || (rc = ensure_groups(q)) != KD_OK)
        return rc;
    /* Most urgent first: one non-blocking read per stream, in order, so a
     * message is taken only from the most urgent stream that has one. */
    for (int i = 0; i < KD_QUEUE_PRIORITIES; i++) {
        const char *a[] = {"XREADGROUP", "GROUP", KD_QUEUE_GROUP, consumer, "COUNT", "1",
                           "STREAMS", q->streams[i], ">"};

        if ((rc = command(q, (int)KD_ARRAY_LEN(a), a, &r)) != KD_OK)
            return rc;
        bool got = collect(q, r, msg);

        freeReplyObject(r);
        if (got)
            return KD_OK;
    }
    if (wait_ms <= 0)
        return KD_EAGAIN;
    /* The socket timeout adds a margin to the wait: keep the sum an int. */
    if (wait_ms > INT_MAX - 3000)
        wait_ms = INT_MAX - 3000;
    /* Nothing waiting: block on all streams until something arrives. */
    snprintf(block, sizeof(block), "%d", wait_ms);
    argc = 0;
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = KD_QUEUE_GROUP;
    argv[argc++] = consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = "1";
    argv[argc++] = "BLOCK";
    argv[argc++] = block;
    argv[argc++] = "STREAMS";
    for (int i = 0; i < KD_QUEUE_PRIORITIES; i++)
        argv[argc++] = q->streams[i];
    for (int i = 0; i < KD_QUEUE_PRIORITIES; i++)
        argv[argc++] = ">";
    set_timeout(q, wait_ms + 3000);
    rc = command(q, argc, argv, &r);
    if (q->rc != NULL)
        set_timeout(q, 5000);
    if (rc != KD_OK)
        return rc;
    bool got = collect(q, r, msg);

    freeReplyObject(r);
    return got ? KD_OK : KD_EAGAIN;
}

enum kd_err
kd_queue_claim_stale(struct kd_queue *q, const char *consumer, int64_t idle_ms,
                     struct kd_queue_msg *msg)
{
    char idle[24];
    redisReply *r = NULL, *c = NULL;
    struct kd_queue_msg m;
    enum kd_err rc = KD_EAGAIN;

    snprintf(idle, sizeof(idle), "%lld", (long long)idle_ms);
    if ((rc = connect_redis(q)) != KD_OK || (rc = ensure_groups(q)) != KD_OK)
        return rc;
    for (int i = 0; i < KD_QUEUE_PRIORITIES; i++) {
        const char *pa[] = {"XPENDING", q->streams[i], KD_QUEUE_GROUP, "IDLE", idle, "-", "+", "1"};

        if ((rc = command(q, (int)KD_ARRAY_LEN(pa), pa, &r)) != KD_OK)
            goto out;
        if (r->type != REDIS_REPLY_ARRAY || r->elements == 0 ||
            r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements < 1 ||
            r->element[0]->element[0]->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            r = NULL;
            continue;
        }
        /* XCLAIM re-checks the idle time, so two claimers cannot both win. */
        const char *ca[] = {"XCLAIM", q->streams[i], KD_QUEUE_GROUP, consumer, idle,
                            r->element[0]->element[0]->str};

        if ((rc = command(q, (int)KD_ARRAY_LEN(ca), ca, &c)) != KD_OK)
            goto out;
        if (c->type == REDIS_REPLY_ARRAY && c->elements > 0) {
            if (parse_entry(q, q->streams[i], c->element[0], &m)) {
                kd_log(KD_LOG_INFO, "queue: claimed stale entry %s (%s %s)", m.id, m.kind, m.ref);
                *msg = m;
                rc = KD_OK;
                goto out;
            }
            /* Ours now, and never valid: or it would be claimed forever. */
            drop_malformed(q, q->streams[i], c->element[0]);
        }
        freeReplyObject(r);
        freeReplyObject(c);
        r = c = NULL;
    }
    rc = KD_EAGAIN;
out:
    if (r != NULL)
        freeReplyObject(r);
    if (c != NULL)
        freeReplyObject(c);
    return rc;
}

enum kd_err
kd_queue_ack(struct kd_queue *q, const struct kd_queue_msg *msg)
{
    const char *ack[] = {"XACK", msg->stream, KD_QUEUE_GROUP, msg->id};
    const char *del[] = {"XDEL", msg->stream, msg->id};
    redisReply *r;
    enum kd_err rc;

    if ((rc = command(q, (int)KD_ARRAY_LEN(ack), ack, &r)) != KD_OK)
        return rc;
    freeReplyObject(r);
    /* Deleting keeps the streams short; it is safe once acknowledged. */
    if ((rc = command(q, (int)KD_ARRAY_LEN(del), del, &r)) != KD_OK)
        return rc;
    freeReplyObject(r);
    return KD_OK;
}

static int64_t
int_field(const redisReply *map, const char *name, int64_t def)
{
    for (size_t i = 0; map->type == REDIS_REPLY_ARRAY && i + 1 < map->elements; i += 2) {
        const redisReply *k = map->element[i], *v = map->element[i + 1];

        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0) {
            if (v->type == REDIS_REPLY_INTEGER)
                return v->integer;
            return def;
        }
    }
    return def;
}

enum kd_err
kd_queue_stats(struct kd_queue *q, struct kd_queue_stats *out)
{
    redisReply *r;
    enum kd_err rc;

    memset(out, 0, sizeof(*out));
    /* XINFO GROUPS fails on a stream that vanished (Redis lost its data)
     * while groups_ready still believed in it: stats are rare, so make
     * sure every time. */
    q->groups_ready = false;
    if ((rc = connect_redis(q)) != KD_OK || (rc = ensure_groups(q)) != KD_OK)
        return rc;
    for (int i = 0; i < KD_QUEUE_PRIORITIES; i++) {
        const char *xl[] = {"XLEN", q->streams[i]};
        const char *xg[] = {"XINFO", "GROUPS", q->streams[i]};

        if ((rc = command(q, 2, xl, &r)) != KD_OK)
            return rc;
        out->length[i] = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        freeReplyObject(r);
        if ((rc = command(q, 3, xg, &r)) != KD_OK)
            return rc;
        for (size_t g = 0; r->type == REDIS_REPLY_ARRAY && g < r->elements; g++) {
            const redisReply *grp = r->element[g];
            const redisReply *name = NULL;

            for (size_t k = 0; grp->type == REDIS_REPLY_ARRAY && k + 1 < grp->elements; k += 2)
                if (grp->element[k]->type == REDIS_REPLY_STRING &&
                    strcmp(grp->element[k]->str, "name") == 0)
                    name = grp->element[k + 1];
            if (name == NULL || name->type != REDIS_REPLY_STRING ||
                strcmp(name->str, KD_QUEUE_GROUP) != 0)
                continue;
            out->pending[i] = int_field(grp, "pending", 0);
            out->lag[i] = int_field(grp, "lag", 0);
            int64_t consumers = int_field(grp, "consumers", 0);

            if (consumers > out->consumers)
                out->consumers = consumers;
        }
        freeReplyObject(r);
    }
    return KD_OK;
}

/* --- locks and markers (the scheduler's leadership) ----------------------- */

static enum kd_err
key_name(const struct kd_queue *q, const char *name, char *out, size_t len)
{
    if (name == NULL || name[0] == '\0')
        return KD_EINVAL;
    return kd_snprintf(out, len, "%s%s", q->cfg->redis_prefix, name);
}

/* Take when free, renew when ours: one script, so that a lock that expired
 * between a GET and a PEXPIRE cannot be renewed for someone else. */
static const char LOCK_SCRIPT[] =
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end "
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end "
    "return 0";

static const char UNLOCK_SCRIPT[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
    "return 0";

enum kd_err
kd_queue_lock(struct kd_queue *q, const char *name, const char *token, int64_t ttl_ms, bool *held)
{
    char key[160], ttl[24];
    redisReply *r = NULL;
    enum kd_err rc;

    if (token == NULL || token[0] == '\0' || ttl_ms < 1) {
        rc = KD_EINVAL;
        goto out;
    }
    if ((rc = key_name(q, name, key, sizeof(key))) != KD_OK)
        goto out;
    snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
    const char *argv[] = {"EVAL", LOCK_SCRIPT, "1", key, token, ttl};

    if ((rc = command(q, (int)KD_ARRAY_LEN(argv), argv, &r)) != KD_OK) {
        if (rc == KD_EAGAIN)
            rc = KD_EUNAVAIL; /* never an answer about the lock */
        goto out;
    }
    *held = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
out:
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

enum kd_err
kd_queue_unlock(struct kd_queue *q, const char *name, const char *token)
{
    char key[160];
    redisReply *r = NULL;
    enum kd_err rc;

    if (token == NULL || token[0] == '\0') {
        rc = KD_EINVAL;
        goto out;
    }
    if ((rc = key_name(q, name, key, sizeof(key))) != KD_OK)
        goto out;
    const char *argv[] = {"EVAL", UNLOCK_SCRIPT, "1", key, token};

    if ((rc = command(q, (int)KD_ARRAY_LEN(argv), argv, &r)) == KD_EAGAIN)
        rc = KD_EUNAVAIL;
out:
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

enum kd_err
kd_queue_marker(struct kd_queue *q, const char *name, bool *created)
{
    char key[160];
    redisReply *r = NULL;
    enum kd_err rc;

    if ((rc = key_name(q, name, key, sizeof(key))) != KD_OK)
        goto out;
    const char *argv[] = {"SET", key, "1", "NX"};

    if ((rc = command(q, (int)KD_ARRAY_LEN(argv), argv, &r)) != KD_OK) {
        if (rc == KD_EAGAIN)
            rc = KD_EUNAVAIL;
        goto out;
    }
    /* "OK" when set; a nil reply when the key was there already. */
    *created = r->type == REDIS_REPLY_STATUS;
out:
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}
