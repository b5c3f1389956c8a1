/* Unit tests of src/db.c against a private PostgreSQL: initdb and pg_ctl
 * from PG_BIN in a temporary directory, listening on a unix socket only.
 * initdb refuses root, so as root the server runs as the user kadr.
 * Skipped (exit 77) when no server can be started here. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth.h"
#include "db.h"
#include "util.h"

#define PG_BIN  "/usr/lib/postgresql/15/bin"
#define PG_USER "kadr"
#define PG_PORT "54329"

static char dir[64], data[128], logfile[128], cmdlog[128], conninfo[256];
static bool as_other;
static uid_t pg_uid;
static gid_t pg_gid;

/* Runs argv to completion, as the PostgreSQL user when we are root; output
 * goes to cmdlog. Returns the exit status, -1 when it did not exit. */
static int
run(const char *const *argv)
{
    pid_t pid;
    int st, fd;

    if ((pid = fork()) < 0)
        return -1;
    if (pid == 0) {
        if ((fd = open(cmdlog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        if (chdir("/") != 0)
            _exit(126);
        if (as_other && (setgroups(0, NULL) != 0 || setgid(pg_gid) != 0 || setuid(pg_uid) != 0))
            _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int
pg_ctl(const char *action)
{
    char opts[256];

    snprintf(opts, sizeof(opts), "-c listen_addresses='' -k %s -p %s -c fsync=off", dir, PG_PORT);
    const char *argv[] = {PG_BIN "/pg_ctl", "-D", data, "-l",   logfile, "-w", "-t", "30", "-m",
                          "fast",           "-o", opts, action, NULL};

    return run(argv);
}

static bool
pg_boot(void)
{
    struct passwd *pw;

    if (access(PG_BIN "/initdb", X_OK) != 0)
        return false;
    if (geteuid() == 0) {
        /* The stack's user when it exists, else the server package's own
         * (a fresh CI machine has no kadr user before the stack starts). */
        if ((pw = getpwnam(PG_USER)) == NULL && (pw = getpwnam("postgres")) == NULL &&
            (pw = getpwnam("nobody")) == NULL)
            return false;
        as_other = true;
        pg_uid = pw->pw_uid;
        pg_gid = pw->pw_gid;
    }
    snprintf(dir, sizeof(dir), "/tmp/kadr-db-test-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return false;
    if (as_other && chown(dir, pg_uid, pg_gid) != 0)
        return false;
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(logfile, sizeof(logfile), "%s/server.log", dir);
    snprintf(cmdlog, sizeof(cmdlog), "%s/commands.log", dir);
    snprintf(conninfo, sizeof(conninfo), "host=%s port=%s dbname=postgres user=%s", dir, PG_PORT,
             PG_USER);
    const char *initdb[] = {PG_BIN "/initdb", "-D", data,   "-U",          PG_USER,     "-A",
                            "trust",          "-E", "UTF8", "--no-locale", "--no-sync", NULL};

    return run(initdb) == 0 && pg_ctl("start") == 0;
}

static void
pg_destroy(void)
{
    const char *rm[] = {"/bin/rm", "-rf", dir, NULL};

    pg_ctl("stop");
    as_other = false; /* removing needs no other user */
    run(rm);
}

static struct kd_db *
open_db(void)
{
    struct kd_db *db = NULL;

    ck_assert_int_eq(kd_db_open(conninfo, &db), KD_OK);
    ck_assert_int_eq(kd_db_connect(db), KD_OK);
    return db;
}

/* Runs sql and returns its one integer (or -1). */
static int64_t
one_int(struct kd_db *db, const char *sql, int nparams, const char *const *params)
{
    struct kd_dbres *r = NULL;
    int64_t v;

    ck_assert_int_eq(kd_db_query(db, sql, nparams, params, &r), KD_OK);
    v = kd_dbres_i64(r, 0, 0, -1);
    kd_dbres_free(r);
    return v;
}

/* Counts the lines of stderr that hold needle while fn runs. */
static int stderr_fd = -1, capture_fd = -1;

static void
capture_start(void)
{
    char path[160];

    snprintf(path, sizeof(path), "%s/stderr-XXXXXX", dir);
    capture_fd = mkstemp(path);
    ck_assert_int_ge(capture_fd, 0);
    unlink(path);
    stderr_fd = dup(STDERR_FILENO);
    dup2(capture_fd, STDERR_FILENO);
}

static int
capture_end(const char *needle)
{
    char buf[16384];
    ssize_t n;
    int count = 0;

    dup2(stderr_fd, STDERR_FILENO);
    close(stderr_fd);
    n = pread(capture_fd, buf, sizeof(buf) - 1, 0);
    close(capture_fd);
    buf[n > 0 ? n : 0] = '\0';
    for (const char *p = buf; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        count++;
    return count;
}

START_TEST(parameters_and_prepared_statements)
{
    struct kd_db *db = open_db();
    struct kd_dbres *r = NULL;
    const char *hostile = "it's \"quoted\"; DROP TABLE t1; --";
    const char *ins[] = {"1", hostile, NULL};
    const char *sel[] = {"1"};

    ck_assert_int_eq(kd_db_script(db, "DROP TABLE IF EXISTS t1;"
                                      "CREATE TABLE t1 (id int PRIMARY KEY, name text, u uuid)"),
                     KD_OK);
    ck_assert_int_eq(
        kd_db_query(db, "INSERT INTO t1 (id, name, u) VALUES ($1, $2, $3)", 3, ins, &r), KD_OK);
    ck_assert_int_eq(kd_dbres_affected(r), 1);
    kd_dbres_free(r);
    for (int i = 0; i < 3; i++) {
        r = NULL;
        ck_assert_int_eq(
            kd_db_query(db, "SELECT name, u, id, id > 0 FROM t1 WHERE id = $1", 1, sel, &r), KD_OK);
        ck_assert_int_eq(kd_dbres_rows(r), 1);
        ck_assert_str_eq(kd_dbres_get(r, 0, 0), hostile);
        ck_assert_ptr_null(kd_dbres_get(r, 0, 1)); /* SQL NULL */
        ck_assert_int_eq(kd_dbres_i64(r, 0, 2, -1), 1);
        ck_assert(kd_dbres_bool(r, 0, 3));
        ck_assert_ptr_null(kd_dbres_get(r, 1, 0)); /* out of range */
        ck_assert_ptr_null(kd_dbres_get(r, 0, 9));
        ck_assert_int_eq(kd_dbres_i64(r, 0, 0, -7), -7); /* not a number */
        kd_dbres_free(r);
    }
    /* Three runs, one prepared statement. */
    ck_assert_int_eq(one_int(db,
                             "SELECT count(*) FROM pg_prepared_statements "
                             "WHERE statement LIKE 'SELECT name, u, id, id > 0 FROM t1%'",
                             0, NULL),
                     1);
    ck_assert_int_eq(kd_dbres_rows(NULL), 0);
    kd_db_close(db);
}
END_TEST

START_TEST(errors_are_mapped)
{
    struct kd_db *db = open_db();
    const char *dup[] = {"1"};
    const char *bad_uuid[] = {"not-a-uuid"};
    const char *bad_int[] = {"12x"};
    const char *neg[] = {"-1"};
    const char *orphan[] = {"99"};

    ck_assert_int_eq(kd_db_script(db, "DROP TABLE IF EXISTS t2c; DROP TABLE IF EXISTS t2;"
                                      "CREATE TABLE t2 (id int PRIMARY KEY CHECK (id > 0));"
                                      "CREATE TABLE t2c (p int REFERENCES t2 (id))"),
                     KD_OK);
    ck_assert_int_eq(kd_db_query(db, "INSERT INTO t2 (id) VALUES ($1)", 1, dup, NULL), KD_OK);
    ck_assert_int_eq(kd_db_query(db, "INSERT INTO t2 (id) VALUES ($1)", 1, dup, NULL),
                     KD_ECONFLICT);
    ck_assert_int_eq(kd_db_query(db, "SELECT $1::uuid", 1, bad_uuid, NULL), KD_EINVAL);
    ck_assert_int_eq(kd_db_query(db, "SELECT $1::int", 1, bad_int, NULL), KD_EINVAL);
    ck_assert_int_eq(kd_db_query(db, "INSERT INTO t2 (id) VALUES ($1)", 1, neg, NULL), KD_EINVAL);
    ck_assert_int_eq(kd_db_query(db, "INSERT INTO t2c (p) VALUES ($1)", 1, orphan, NULL),
                     KD_EINVAL);
    ck_assert_int_eq(kd_db_query(db, "SELEC 1", 0, NULL, NULL), KD_EINTERNAL);
    /* None of that cost the connection. */
    ck_assert_int_eq(one_int(db, "SELECT count(*) FROM t2", 0, NULL), 1);
    kd_db_close(db);
}
END_TEST

START_TEST(transactions)
{
    struct kd_db *db = open_db();
    const char *p10[] = {"10"}, *p11[] = {"11"}, *p12[] = {"12"};
    const char *count = "SELECT count(*) FROM t3 WHERE id = $1";

    ck_assert_int_eq(
        kd_db_script(db, "DROP TABLE IF EXISTS t3; CREATE TABLE t3 (id int PRIMARY KEY)"), KD_OK);
    ck_assert_int_eq(kd_db_commit(db), KD_EINTERNAL); /* none open */
    kd_db_rollback(db);                               /* a no-op */

    ck_assert_int_eq(kd_db_begin(db), KD_OK);
    ck_assert(kd_db_in_tx(db));
    ck_assert_int_eq(kd_db_begin(db), KD_EINTERNAL); /* no nesting */
    ck_assert_int_eq(kd_db_query(db, "INSERT INTO t3 VALUES ($1)", 1, p10, NULL), KD_OK);
    kd_db_rollback(db);
    ck_assert(!kd_db_in_tx(db));
    ck_assert_int_eq(one_int(db, count, 1, p10), 0);

    ck_assert_int_eq(kd_db_begin(db), KD_OK);
    ck_assert_int_eq(kd_db_query(db, "INSERT INTO t3 VALUES ($1)", 1, p11, NULL), KD_OK);
    ck_assert_int_eq(kd_db_commit(db), KD_OK);
    ck_assert_int_eq(one_int(db, count, 1, p11), 1);

    /* An error aborts the transaction; its COMMIT must not report success
     * (PostgreSQL turns it into a ROLLBACK and says so only in the tag). */
    ck_assert_int_eq(kd_db_begin(db), KD_OK);
    ck_assert_int_eq(kd_db_query(db, "INSERT INTO t3 VALUES ($1)", 1, p12, NULL), KD_OK);
    ck_assert_int_eq(kd_db_query(db, "INSERT INTO t3 VALUES ($1)", 1, p11, NULL), KD_ECONFLICT);
    ck_assert_int_ne(kd_db_commit(db), KD_OK);
    ck_assert(!kd_db_in_tx(db));
    ck_assert_int_eq(one_int(db, count, 1, p12), 0);
    kd_db_close(db);
}
END_TEST

START_TEST(reconnects_outside_a_transaction)
{
    struct kd_db *db = open_db();
    const char *p[] = {"5"};

    ck_assert_int_eq(one_int(db, "SELECT $1::int + 1", 1, p), 6);
    ck_assert_int_eq(pg_ctl("restart"), 0);
    /* The old connection is dead; the statement is retried on a new one,
     * where it has to be prepared again. */
    ck_assert_int_eq(one_int(db, "SELECT $1::int + 1", 1, p), 6);
    ck_assert_int_eq(one_int(db, "SELECT $1::int + 1", 1, p), 6);
    kd_db_close(db);
}
END_TEST

START_TEST(a_transaction_does_not_survive_its_connection)
{
    struct kd_db *db = open_db();
    const char *p20[] = {"20"}, *p21[] = {"21"}, *p22[] = {"22"};

    ck_assert_int_eq(
        kd_db_script(db, "DROP TABLE IF EXISTS t5; CREATE TABLE t5 (id int PRIMARY KEY)"), KD_OK);
    ck_assert_int_eq(kd_db_begin(db), KD_OK);
    ck_assert_int_eq(kd_db_query(db, "INSERT INTO t5 VALUES ($1)", 1, p20, NULL), KD_OK);
    ck_assert_int_eq(pg_ctl("restart"), 0);
    ck_assert_int_eq(kd_db_query(db, "INSERT INTO t5 VALUES ($1)", 1, p21, NULL), KD_EUNAVAIL);
    /* Still inside the (lost) transaction: later statements must not run
     * one by one on a new connection. */
    ck_assert(kd_db_in_tx(db));
    ck_assert_int_eq(kd_db_query(db, "INSERT INTO t5 VALUES ($1)", 1, p22, NULL), KD_EUNAVAIL);
    ck_assert_int_eq(kd_db_script(db, "INSERT INTO t5 VALUES (23)"), KD_EUNAVAIL);
    ck_assert_int_eq(kd_db_commit(db), KD_EUNAVAIL);
    ck_assert(!kd_db_in_tx(db));
    ck_assert_int_eq(one_int(db, "SELECT count(*) FROM t5", 0, NULL), 0);

    /* The same, ended by a rollback: the connection comes back after it. */
    ck_assert_int_eq(kd_db_begin(db), KD_OK);
    ck_assert_int_eq(pg_ctl("restart"), 0);
    ck_assert_int_eq(kd_db_query(db, "INSERT INTO t5 VALUES ($1)", 1, p20, NULL), KD_EUNAVAIL);
    ck_assert_int_eq(kd_db_query(db, "INSERT INTO t5 VALUES ($1)", 1, p21, NULL), KD_EUNAVAIL);
    kd_db_rollback(db);
    ck_assert(!kd_db_in_tx(db));
    ck_assert_int_eq(one_int(db, "SELECT count(*) FROM t5", 0, NULL), 0);
    kd_db_close(db);
}
END_TEST

START_TEST(server_down_then_back)
{
    struct kd_db *db = open_db();
    int attempts;

    enum kd_err first, second, begin;

    ck_assert_int_eq(one_int(db, "SELECT 1", 0, NULL), 1);
    ck_assert_int_eq(pg_ctl("stop"), 0);
    capture_start();
    first = kd_db_query(db, "SELECT 1", 0, NULL, NULL);
    second = kd_db_query(db, "SELECT 1", 0, NULL, NULL);
    attempts = capture_end("cannot connect");
    begin = kd_db_begin(db);
    /* Up again before any assertion, for the tests that follow. */
    ck_assert_int_eq(pg_ctl("start"), 0);
    ck_assert_int_eq(first, KD_EUNAVAIL);
    ck_assert_int_eq(second, KD_EUNAVAIL);
    /* The first call retries once (its connection had worked); the second
     * made its own connection and does not try again at once. */
    ck_assert_int_eq(attempts, 2);
    ck_assert_int_eq(begin, KD_EUNAVAIL);
    ck_assert(!kd_db_in_tx(db));
    ck_assert_int_eq(one_int(db, "SELECT 1", 0, NULL), 1);
    kd_db_close(db);
}
END_TEST

START_TEST(prepared_statements_survive_schema_changes)
{
    struct kd_db *db = open_db();
    struct kd_dbres *r = NULL;
    const char *sel = "SELECT * FROM t7";

    ck_assert_int_eq(kd_db_script(db, "DROP TABLE IF EXISTS t7; CREATE TABLE t7 (a int);"
                                      "INSERT INTO t7 VALUES (1)"),
                     KD_OK);
    ck_assert_int_eq(one_int(db, sel, 0, NULL), 1);
    /* A migration changes the result type of the prepared statement. */
    ck_assert_int_eq(kd_db_script(db, "ALTER TABLE t7 ADD COLUMN b int DEFAULT 7"), KD_OK);
    ck_assert_int_eq(kd_db_query(db, sel, 0, NULL, &r), KD_OK);
    ck_assert_str_eq(kd_dbres_get(r, 0, 1), "7");
    kd_dbres_free(r);
    /* Inside a transaction the error stands (it aborted the transaction),
     * but the statement is prepared afresh next time. */
    ck_assert_int_eq(kd_db_script(db, "ALTER TABLE t7 ADD COLUMN c int DEFAULT 8"), KD_OK);
    ck_assert_int_eq(kd_db_begin(db), KD_OK);
    ck_assert_int_eq(kd_db_query(db, sel, 0, NULL, NULL), KD_EINTERNAL);
    kd_db_rollback(db);
    r = NULL;
    ck_assert_int_eq(kd_db_query(db, sel, 0, NULL, &r), KD_OK);
    ck_assert_str_eq(kd_dbres_get(r, 0, 2), "8");
    kd_dbres_free(r);
    kd_db_close(db);
}
END_TEST

/* The real schema, in a database of its own, for the auth tests. */
static struct kd_db *
open_schema_db(void)
{
    struct kd_db *admin = open_db(), *db = NULL;
    char info[320], *sql = NULL;

    ck_assert_int_eq(kd_db_script(admin, "DROP DATABASE IF EXISTS kadr_schema"), KD_OK);
    ck_assert_int_eq(kd_db_script(admin, "CREATE DATABASE kadr_schema"), KD_OK);
    kd_db_close(admin);
    snprintf(info, sizeof(info), "host=%s port=%s dbname=kadr_schema user=%s", dir, PG_PORT,
             PG_USER);
    ck_assert_int_eq(kd_db_open(info, &db), KD_OK);
    ck_assert_int_eq(kd_read_file(KD_TOP_SRCDIR "/sql/001_init.sql", 1 << 20, &sql, NULL), KD_OK);
    ck_assert_int_eq(kd_db_script(db, sql), KD_OK);
    free(sql);
    return db;
}

static int64_t
seconds_since_use(struct kd_db *db, const char *key_id)
{
    const char *p[] = {key_id};

    return one_int(db,
                   "SELECT coalesce(extract(epoch FROM now() - last_used_at)::bigint, -1) "
                   "FROM api_keys WHERE id = $1",
                   1, p);
}

START_TEST(statement_timeout_cancels_slow_statements)
{
    struct kd_db *db = NULL;

    ck_assert_int_eq(kd_db_open(conninfo, &db), KD_OK);
    kd_db_set_statement_timeout(db, 100);
    ck_assert_int_eq(kd_db_query(db, "SELECT pg_sleep(2)", 0, NULL, NULL), KD_ETIMEOUT);
    /* The connection stays usable, and quick statements are unaffected. */
    ck_assert_int_eq(one_int(db, "SELECT 7", 0, NULL), 7);
    kd_db_close(db);
}
END_TEST

START_TEST(api_keys)
{
    struct kd_db *db = open_schema_db();
    struct kd_dbres *r = NULL;
    struct kd_principal who;
    char key[KD_APIKEY_MAXLEN + 1], prefix[16], hash[65], id[37], hdr[128], other[65];
    char good[128];
    const char *uid;

    /* The form: kadr_ + 43 base62 characters, a display prefix, its hash. */
    ck_assert_int_eq(kd_apikey_generate(key, prefix, hash), KD_OK);
    ck_assert_uint_eq(strlen(key), 48);
    ck_assert_int_eq(strncmp(key, "kadr_", 5), 0);
    ck_assert_uint_eq(
        strspn(key + 5, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"), 43);
    ck_assert_int_eq(strncmp(prefix, key, 9), 0);
    ck_assert_uint_eq(strlen(prefix), 9);
    kd_sha256_hex(key, strlen(key), other);
    ck_assert_str_eq(hash, other);

    ck_assert_int_eq(kd_db_query(db,
                                 "INSERT INTO users (email, plan) VALUES ('a@example.org', 'pro') "
                                 "RETURNING id",
                                 0, NULL, &r),
                     KD_OK);
    uid = kd_dbres_get(r, 0, 0);
    ck_assert_int_eq(kd_apikey_create(db, uid, "ci", key, id), KD_OK);
    ck_assert(kd_uuid_valid(id));
    snprintf(hdr, sizeof(hdr), "Bearer %s", key);
    snprintf(good, sizeof(good), "%s", hdr);
    memset(&who, 0, sizeof(who));
    ck_assert_int_eq(kd_auth_bearer(db, NULL, hdr, &who), KD_OK);
    ck_assert_str_eq(who.user_id, uid);
    ck_assert_str_eq(who.credential_id, id);
    ck_assert_str_eq(who.plan, "pro");
    ck_assert(!who.is_admin);
    ck_assert_int_eq(who.via, KD_AUTH_APIKEY);
    snprintf(hdr, sizeof(hdr), "bearer   %s", key);
    ck_assert_int_eq(kd_auth_bearer(db, NULL, hdr, &who), KD_OK);

    /* last_used_at: written on first use, then at most once a minute. */
    ck_assert_int_ge(seconds_since_use(db, id), 0);
    ck_assert_int_le(seconds_since_use(db, id), 5);
    const char *pid[] = {id};
    ck_assert_int_eq(kd_db_query(db,
                                 "UPDATE api_keys SET last_used_at = now() - interval '30 s' "
                                 "WHERE id = $1",
                                 1, pid, NULL),
                     KD_OK);
    ck_assert_int_eq(kd_auth_bearer(db, NULL, hdr, &who), KD_OK);
    ck_assert_int_ge(seconds_since_use(db, id), 29); /* not rewritten */
    ck_assert_int_eq(kd_db_query(db,
                                 "UPDATE api_keys SET last_used_at = now() - interval '2 min' "
                                 "WHERE id = $1",
                                 1, pid, NULL),
                     KD_OK);
    ck_assert_int_eq(kd_auth_bearer(db, NULL, hdr, &who), KD_OK);
    ck_assert_int_le(seconds_since_use(db, id), 5); /* rewritten */

    /* Refused: absent, other schemes, malformed, unknown, revoked. */
    ck_assert_int_eq(kd_auth_bearer(db, NULL, NULL, &who), KD_EINVAL);
    ck_assert_int_eq(kd_auth_bearer(db, NULL, "Basic a2FkcjprYWRy", &who), KD_EINVAL);
    ck_assert_int_eq(kd_auth_bearer(db, NULL, "Bearer ", &who), KD_EINVAL);
    ck_assert_int_eq(kd_auth_bearer(db, NULL, "Bearer kadr_short", &who), KD_ENOTFOUND);
    snprintf(hdr, sizeof(hdr), "Bearer %s ", key); /* a trailing blank */
    ck_assert_int_eq(kd_auth_bearer(db, NULL, hdr, &who), KD_ENOTFOUND);
    snprintf(hdr, sizeof(hdr), "Bearer %s", key);
    hdr[20] = '-';
    ck_assert_int_eq(kd_auth_bearer(db, NULL, hdr, &who), KD_ENOTFOUND);
    ck_assert_int_eq(kd_apikey_generate(key, prefix, hash), KD_OK);
    snprintf(hdr, sizeof(hdr), "Bearer %s", key);
    ck_assert_int_eq(kd_auth_bearer(db, NULL, hdr, &who), KD_ENOTFOUND);
    ck_assert_int_eq(kd_auth_bearer(db, NULL, "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", &who),
                     KD_ENOTFOUND);
    ck_assert_int_eq(
        kd_db_query(db, "UPDATE api_keys SET revoked_at = now() WHERE id = $1", 1, pid, NULL),
        KD_OK);
    ck_assert_int_eq(kd_auth_bearer(db, NULL, good, &who), KD_ENOTFOUND);
    kd_dbres_free(r);
    kd_db_close(db);
}
END_TEST

int
main(void)
{
    Suite *s;
    TCase *tc;
    SRunner *sr;
    int failed;

    if (!pg_boot()) {
        char *log = NULL;

        printf("db_test: cannot start a private PostgreSQL here, skipped\n");
        if (cmdlog[0] != '\0' && kd_read_file(cmdlog, 1 << 16, &log, NULL) == KD_OK)
            printf("%s", log);
        free(log);
        if (dir[0] != '\0')
            pg_destroy();
        return 77; /* automake's "skipped" */
    }
    s = suite_create("db");
    tc = tcase_create("postgresql");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, parameters_and_prepared_statements);
    tcase_add_test(tc, errors_are_mapped);
    tcase_add_test(tc, transactions);
    tcase_add_test(tc, reconnects_outside_a_transaction);
    tcase_add_test(tc, a_transaction_does_not_survive_its_connection);
    tcase_add_test(tc, server_down_then_back);
    tcase_add_test(tc, prepared_statements_survive_schema_changes);
    tcase_add_test(tc, statement_timeout_cancels_slow_statements);
    tcase_add_test(tc, api_keys);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    pg_destroy();
    return failed == 0 ? 0 : 1;
}
