/* db.h: PostgreSQL access through libpq: parameters only, prepared statements.
 *
 * One connection per process, opened lazily and reopened after it is lost.
 * Every statement goes through kd_db_query with text parameters (NULL is SQL
 * NULL); it is prepared once per connection (cached by its text) and executed
 * with PQexecPrepared. Outside a transaction, a statement that meets a lost
 * connection is retried once on a new one. Inside one, a lost connection
 * fails that statement and every later one (and the commit) with KD_EUNAVAIL
 * until the transaction ends; kd_db_in_tx stays true until then. */
#ifndef KD_DB_H
#define KD_DB_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct kd_db;
struct kd_dbres;

/* Keeps a copy of conninfo; does not connect yet. */
KD_MUST_CHECK enum kd_err kd_db_open(const char *conninfo, struct kd_db **out);
void kd_db_close(struct kd_db *db); /* NULL is a no-op */
/* Makes PostgreSQL cancel any statement running longer than ms (0: no
 * limit) on connections opened from now on; the statement then fails with
 * KD_ETIMEOUT. Call before the first query. */
void kd_db_set_statement_timeout(struct kd_db *db, int64_t ms);
/* Connects now if needed: KD_EUNAVAIL when the server cannot be reached. */
KD_MUST_CHECK enum kd_err kd_db_connect(struct kd_db *db);

/* Errors: KD_EUNAVAIL (connection), KD_ECONFLICT (unique or exclusion
 * violation, serialization failure), KD_EINVAL (a parameter PostgreSQL could
 * not convert, check or foreign-key violation), KD_EINTERNAL (anything else;
 * logged once with the server's message). On success *out (when out is not
 * NULL) holds the result, which the caller frees. */
KD_MUST_CHECK enum kd_err kd_db_query(struct kd_db *db, const char *sql, int nparams,
                                      const char *const *params, struct kd_dbres **out);
/* Runs a script of several statements without parameters (migrations). */
KD_MUST_CHECK enum kd_err kd_db_script(struct kd_db *db, const char *sql);

KD_MUST_CHECK enum kd_err kd_db_begin(struct kd_db *db);
/* KD_EINTERNAL when an earlier error had aborted the transaction (PostgreSQL
 * then rolls it back). The transaction is over whatever it returns. */
KD_MUST_CHECK enum kd_err kd_db_commit(struct kd_db *db);
void kd_db_rollback(struct kd_db *db); /* safe to call when no transaction is open */
bool kd_db_in_tx(const struct kd_db *db);

int kd_dbres_rows(const struct kd_dbres *r);
/* Rows changed by INSERT/UPDATE/DELETE. */
int64_t kd_dbres_affected(const struct kd_dbres *r);
/* A field as text, or NULL for SQL NULL. Valid until kd_dbres_free. */
const char *kd_dbres_get(const struct kd_dbres *r, int row, int col);
/* The field parsed as an integer; def when NULL or unparsable. */
int64_t kd_dbres_i64(const struct kd_dbres *r, int row, int col, int64_t def);
/* "t" -> true. */
bool kd_dbres_bool(const struct kd_dbres *r, int row, int col);
void kd_dbres_free(struct kd_dbres *r); /* NULL is a no-op */

#endif
