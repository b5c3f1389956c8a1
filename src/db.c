#include "db.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* Statements are prepared on first use and remembered by their text. The
 * SQL of kadr is a fixed set of string literals, so the cache stays small;
 * past its size statements simply run unprepared. */
#define STMT_CACHE 256

struct stmt {
    char *sql;
    char name[16];
};

struct kd_db {
    char *conninfo;
    PGconn *conn;
    bool in_tx;   /* the caller began a transaction and has not ended it */
    bool tx_lost; /* ...and its connection died: it can only be rolled back */
    char options[64]; /* libpq "options" for every new connection, or "" */
    struct stmt stmts[STMT_CACHE];
    size_t n_stmts;
    unsigned next_name;
};

struct kd_dbres {
    PGresult *res;
};

static void
forget_statements(struct kd_db *db)
{
    for (size_t i = 0; i < db->n_stmts; i++)
        free(db->stmts[i].sql);
    db->n_stmts = 0;
}

/* Drops a statement the server no longer runs as prepared (its plan went
 * stale after a schema change, or the server forgot it), so that the next
 * use prepares it afresh. The old name is never reused. */
static void
forget_statement(struct kd_db *db, const char *sql)
{
    for (size_t i = 0; i < db->n_stmts; i++) {
        if (strcmp(db->stmts[i].sql, sql) == 0) {
            free(db->stmts[i].sql);
            db->stmts[i] = db->stmts[--db->n_stmts];
            return;
        }
    }
}

/* The open transaction, if any, dies with the connection; in_tx stays set so
 * that the caller's later statements fail instead of running on a new
 * connection one by one, outside the transaction they were written for. */
static void
disconnect(struct kd_db *db)
{
    if (db->conn != NULL)
        PQfinish(db->conn);
    db->conn = NULL;
    if (db->in_tx)
        db->tx_lost = true;
    forget_statements(db);
}

/* True when the caller's transaction cannot go on (its connection is gone). */
static bool
tx_broken(struct kd_db *db)
{
    if (db->in_tx && (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK))
        db->tx_lost = true;
    return db->tx_lost;
}

static void
quiet_notices(void *arg, const char *message)
{
    (void)arg;
    kd_log(KD_LOG_DEBUG, "postgresql: %.300s", message);
}

enum kd_err
kd_db_open(const char *conninfo, struct kd_db **out)
{
    struct kd_db *db;

    if ((db = calloc(1, sizeof(*db))) == NULL)
        return KD_ENOMEM;
    if ((db->conninfo = strdup(conninfo)) == NULL) {
        free(db);
        return KD_ENOMEM;
    }
    *out = db;
    return KD_OK;
}

void
kd_db_close(struct kd_db *db)
{
    if (db == NULL)
        return;
    disconnect(db);
    free(db->conninfo);
    free(db);
}

enum kd_err
kd_db_connect(struct kd_db *db)
{
    /* Our defaults first, so values in the user's conninfo win. Keepalives
     * notice a server that vanished without closing the connection (host
     * down, network cut) in about a minute instead of the kernel's hours. */
    const char *keys[8] = {"connect_timeout", "keepalives", "keepalives_idle",
                           "keepalives_interval", "keepalives_count"};
    const char *vals[8] = {"5", "1", "30", "10", "3"};
    int n = 5;

    if (db->options[0] != '\0') {
        keys[n] = "options";
        vals[n++] = db->options;
    }
    /* libpq expands only the first "dbname" into a whole conninfo. */
    keys[n] = "dbname";
    vals[n++] = db->conninfo;
    keys[n] = NULL;
    vals[n] = NULL;

    if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
        return KD_OK;
    disconnect(db);
    db->conn = PQconnectdbParams(keys, vals, 1);
    if (db->conn == NULL)
        return KD_ENOMEM;
    if (PQstatus(db->conn) != CONNECTION_OK) {
        kd_log(KD_LOG_WARN, "postgresql: cannot connect: %.300s", PQerrorMessage(db->conn));
        disconnect(db);
        return KD_EUNAVAIL;
    }
    PQsetNoticeProcessor(db->conn, quiet_notices, NULL);
    return KD_OK;
}

/* Maps a failed result to our error, logging the server's message once. */
static enum kd_err
map_error(struct kd_db *db, const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(db->conn);

    if (PQstatus(db->conn) != CONNECTION_OK || state == NULL || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "57P", 3) == 0) {
        kd_log(KD_LOG_WARN, "postgresql: connection lost: %.300s", msg);
        return KD_EUNAVAIL;
    }
    if (strcmp(state, "23505") == 0 || strcmp(state, "23P01") == 0 ||
        strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        return KD_ECONFLICT;
    if (strncmp(state, "22", 2) == 0 || strcmp(state, "23503") == 0 ||
        strcmp(state, "23514") == 0 || strcmp(state, "23502") == 0)
        return KD_EINVAL;
    if (strcmp(state, "57014") == 0)
        return KD_ETIMEOUT;
    kd_log(KD_LOG_ERROR, "postgresql: %s: %.500s", state, msg);
    return KD_EINTERNAL;
}

static const char *
prepared_name(struct kd_db *db, const char *sql, int nparams, enum kd_err *rc)
{
    PGresult *res;
    struct stmt *st;

    *rc = KD_OK;
    for (size_t i = 0; i < db->n_stmts; i++)
        if (strcmp(db->stmts[i].sql, sql) == 0)
            return db->stmts[i].name;
    if (db->n_stmts == STMT_CACHE)
        return NULL;
    st = &db->stmts[db->n_stmts];
    snprintf(st->name, sizeof(st->name), "kd%u", db->next_name++);
    res = PQprepare(db->conn, st->name, sql, nparams, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        *rc = map_error(db, res);
        PQclear(res);
        return NULL;
    }
    PQclear(res);
    if ((st->sql = strdup(sql)) == NULL) {
        *rc = KD_ENOMEM; /* prepared but not remembered: harmless */
        return NULL;
    }
    db->n_stmts++;
    return st->name;
}

/* A prepared statement the server refuses to run as prepared: its result
 * type changed under it (0A000, "cached plan must not change result type",
 * after a migration) or the server does not know its name (26000). Either
 * is raised before the statement runs. */
static bool
plan_is_stale(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    return state != NULL && (strcmp(state, "0A000") == 0 || strcmp(state, "26000") == 0);
}

/* *stale tells that a cached statement failed as stale and was forgotten. */
static enum kd_err
run_once(struct kd_db *db, const char *sql, int nparams, const char *const *params, PGresult **out,
         bool *stale)
{
    const char *name;
    PGresult *res;
    enum kd_err rc;

    *stale = false;
    if ((rc = kd_db_connect(db)) != KD_OK)
        return rc;
    name = prepared_name(db, sql, nparams, &rc);
    if (rc != KD_OK)
        return rc;
    if (name != NULL)
        res = PQexecPrepared(db->conn, name, nparams, params, NULL, NULL, 0);
    else
        res = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
        *out = res;
        return KD_OK;
    default:
        if (name != NULL && PQstatus(db->conn) == CONNECTION_OK && plan_is_stale(res)) {
            kd_log(KD_LOG_WARN, "postgresql: prepared statement %s is stale: %.300s", name,
                   PQresultErrorMessage(res));
            forget_statement(db, sql);
            *stale = true;
            rc = KD_EINTERNAL;
        } else {
            rc = map_error(db, res);
        }
        PQclear(res);
        return rc;
    }
}

enum kd_err
kd_db_query(struct kd_db *db, const char *sql, int nparams, const char *const *params,
            struct kd_dbres **out)
{
    struct kd_dbres *r = NULL;
    PGresult *res = NULL;
    bool had_conn = db->conn != NULL, stale;
    enum kd_err rc;

    if (tx_broken(db)) {
        rc = KD_EUNAVAIL;
        goto out;
    }
    rc = run_once(db, sql, nparams, params, &res, &stale);
    if (rc == KD_EUNAVAIL) {
        /* The connection is gone; so is any open transaction. Outside one,
         * the statement had no effect we can observe, so one retry on a
         * fresh connection is safe for the idempotent-or-conditional SQL
         * kadr writes. Only a connection that existed before is worth it:
         * when this call made the connection and it failed, so would a
         * second try at once. */
        disconnect(db);
        if (had_conn && !db->in_tx)
            rc = run_once(db, sql, nparams, params, &res, &stale);
    } else if (stale && !db->in_tx) {
        /* Never ran; inside a transaction the error has aborted it. */
        rc = run_once(db, sql, nparams, params, &res, &stale);
    }
    if (rc != KD_OK)
        goto out;
    if (out != NULL) {
        if ((r = malloc(sizeof(*r))) == NULL) {
            rc = KD_ENOMEM;
            goto out;
        }
        r->res = res;
        res = NULL;
        *out = r;
    }
out:
    PQclear(res);
    return rc;
}

enum kd_err
kd_db_script(struct kd_db *db, const char *sql)
{
    PGresult *res;
    enum kd_err rc;

    if (tx_broken(db))
        return KD_EUNAVAIL;
    if ((rc = kd_db_connect(db)) != KD_OK)
        return rc;
    res = PQexec(db->conn, sql);
    if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK)
        rc = KD_OK;
    else
        rc = map_error(db, res);
    PQclear(res);
    return rc;
}

enum kd_err
kd_db_begin(struct kd_db *db)
{
    enum kd_err rc;

    if (db->in_tx)
        return KD_EINTERNAL;
    if ((rc = kd_db_query(db, "BEGIN", 0, NULL, NULL)) != KD_OK)
        return rc;
    db->in_tx = true;
    return KD_OK;
}

enum kd_err
kd_db_commit(struct kd_db *db)
{
    struct kd_dbres *r = NULL;
    enum kd_err rc;

    if (!db->in_tx)
        return KD_EINTERNAL;
    if ((rc = kd_db_query(db, "COMMIT", 0, NULL, &r)) != KD_OK)
        goto out;
    /* PostgreSQL answers COMMIT of a transaction that an earlier error
     * aborted with success and the tag "ROLLBACK": nothing was committed. */
    if (strcmp(PQcmdStatus(r->res), "COMMIT") != 0) {
        kd_log(KD_LOG_ERROR, "postgresql: COMMIT of a failed transaction rolled it back");
        rc = KD_EINTERNAL;
    }
out:
    kd_dbres_free(r);
    db->in_tx = false;
    db->tx_lost = false;
    return rc;
}

void
kd_db_rollback(struct kd_db *db)
{
    if (!db->in_tx)
        return;
    if (!db->tx_lost && db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK) {
        PGresult *res = PQexec(db->conn, "ROLLBACK");

        PQclear(res);
    }
    db->in_tx = false;
    db->tx_lost = false;
}

bool
kd_db_in_tx(const struct kd_db *db)
{
    return db->in_tx;
}

int
kd_dbres_rows(const struct kd_dbres *r)
{
    return r != NULL ? PQntuples(r->res) : 0;
}

int64_t
kd_dbres_affected(const struct kd_dbres *r)
{
    int64_t v;
    const char *t = r != NULL ? PQcmdTuples(r->res) : "";

    if (kd_parse_i64(t, 0, INT64_MAX, &v) != KD_OK)
        return 0;
    return v;
}

const char *
kd_dbres_get(const struct kd_dbres *r, int row, int col)
{
    if (r == NULL || row < 0 || row >= PQntuples(r->res) || col < 0 || col >= PQnfields(r->res) ||
        PQgetisnull(r->res, row, col))
        return NULL;
    return PQgetvalue(r->res, row, col);
}

int64_t
kd_dbres_i64(const struct kd_dbres *r, int row, int col, int64_t def)
{
    const char *t = kd_dbres_get(r, row, col);
    int64_t v;

    if (t == NULL || kd_parse_i64(t, INT64_MIN, INT64_MAX, &v) != KD_OK)
        return def;
    return v;
}

bool
kd_dbres_bool(const struct kd_dbres *r, int row, int col)
{
    const char *t = kd_dbres_get(r, row, col);

    return t != NULL && t[0] == 't';
}

void
kd_dbres_free(struct kd_dbres *r)
{
    if (r == NULL)
        return;
    PQclear(r->res);
    free(r);
}

void
kd_db_set_statement_timeout(struct kd_db *db, int64_t ms)
{
    /* Set at connection start, so it holds for every session the process
     * opens, reconnections included, without a statement per request. */
    if (ms > 0)
        snprintf(db->options, sizeof(db->options), "-c statement_timeout=%lld", (long long)ms);
    else
        db->options[0] = '\0';
}
