/* kadrctl: the operator's tool: schema migrations, users and API keys, the
 * queue, the configuration.
 *
 * Exit status: 0 done, 1 failed (one line on stderr says why), 2 usage. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "auth.h"
#include "cleanup.h"
#include "config.h"
#include "db.h"
#include "json.h"
#include "log.h"
#include "queue.h"
#include "util.h"

#define EXIT_USAGE 2
/* Migrations are short SQL scripts; anything bigger is a mistake. */
#define MIGRATION_MAX_BYTES (16 * 1024 * 1024)
#define MIGRATIONS_MAX      1000

struct ctl {
    const char *config_path;
    struct kd_config *cfg;
    struct kd_db *db;
};

static const char usage_text[] =
    "usage: kadrctl [--config PATH] [--check-config] <command>\n"
    "commands:\n"
    "  migrate [--sql-dir DIR]            apply the SQL migrations not applied yet\n"
    "  user create --email E [--admin] [--plan P] [--api-key [--key-name N]] [--json]\n"
    "  user list [--json]\n"
    "  user show --email E [--json]   (includes the webhook signing secret)\n"
    "  user set EMAIL [--plan free|premium] [--admin on|off]\n"
    "  user revoke-sessions EMAIL         end every login session of the user\n"
    "  apikey create --email E [--name N] [--json]\n"
    "  apikey list --email E [--json]\n"
    "  apikey revoke ID\n"
    "  queue stats [--json]               queue lengths and jobs by status\n"
    "  cleanup [--json]                   delete expired refresh tokens and sessions, old\n"
    "                                     audit events and job runs (the scheduler does\n"
    "                                     this every hour)\n"
    "  dlq list [--json] [--limit N]      dead letters: jobs that failed out of attempts\n"
    "  dlq show JOB_ID                    a dead letter with its job and events (JSON)\n"
    "  dlq requeue JOB_ID... | --all      back to pending with fresh attempts\n"
    "  dlq purge JOB_ID... | --all | --older-than-days N   forget dead letters\n"
    "  config                             the effective settings (secrets masked)\n"
    "  config help                        every setting with its range and variable\n"
    "(user create, user set, user revoke-sessions and the apikey commands are\n"
    " recorded in the audit log)\n"
    "exit status: 0 done, 1 failed, 2 usage\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("kadrctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (kadrctl --help shows the usage)\n", stderr);
    return EXIT_USAGE;
}

static int failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
failure(const char *fmt, ...)
{
    va_list ap;

    fputs("kadrctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    return EXIT_FAILURE;
}

static int
load_config(struct ctl *c)
{
    char errbuf[512];

    if (c->cfg != NULL)
        return EXIT_SUCCESS;
    if (kd_config_load(c->config_path, &c->cfg, errbuf, sizeof(errbuf)) != KD_OK)
        return failure("%s", errbuf);
    return EXIT_SUCCESS;
}

static int
open_db(struct ctl *c)
{
    int st;

    if ((st = load_config(c)) != EXIT_SUCCESS)
        return st;
    if (kd_db_open(c->cfg->database_url, &c->db) != KD_OK)
        return failure("out of memory");
    if (kd_db_connect(c->db) != KD_OK)
        return failure("cannot connect to PostgreSQL (database_url)");
    return EXIT_SUCCESS;
}

/* Prints v as JSON on stdout and frees it. */
static int
print_json(json_t *v)
{
    char *text = v != NULL ? json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

    json_decref(v);
    if (text == NULL)
        return failure("out of memory");
    puts(text);
    free(text);
    return EXIT_SUCCESS;
}

/* A JSON string from a database field, null for SQL NULL. */
static json_t *
jfield(const struct kd_dbres *r, int row, int col)
{
    const char *s = kd_dbres_get(r, row, col);

    return s != NULL ? json_string(s) : json_null();
}

static const char *
or_dash(const char *s)
{
    return s != NULL ? s : "-";
}

/* Records what an operator did in the audit log (audit.h), inside the
 * caller's transaction, so that the change and its record commit together.
 * detail (stolen; NULL for none) gains "by": "kadrctl" and the operator's
 * login name: the API's events name a client address, these a person. */
static enum kd_err
audit_ctl(struct ctl *c, const char *event, const char *user_id, json_t *detail)
{
    const struct passwd *pw = getpwuid(geteuid());
    char *text = NULL;
    enum kd_err rc = KD_ENOMEM;

    if (detail == NULL && (detail = json_object()) == NULL)
        goto out;
    if (kd_json_set_str(detail, "by", "kadrctl") != KD_OK ||
        kd_json_set_str(detail, "operator", pw != NULL ? pw->pw_name : "?") != KD_OK)
        goto out;
    if ((text = json_dumps(detail, JSON_COMPACT)) == NULL)
        goto out;
    rc = kd_audit(c->db, event, user_id, NULL, NULL, text);
out:
    free(text);
    json_decref(detail);
    return rc;
}

/* --- migrate ------------------------------------------------------------- */

struct migration {
    int version;
    char name[256]; /* file name without ".sql" */
};

/* "NNN_name.sql" with lowercase letters, digits and '_' in name. */
static bool
migration_name(const char *file, struct migration *m)
{
    size_t len = strlen(file);
    int64_t v;
    char num[4];

    if (len < 9 || len >= sizeof(m->name) + 4 || strcmp(file + len - 4, ".sql") != 0 ||
        file[3] != '_')
        return false;
    for (size_t i = 0; i < 3; i++)
        if (!isdigit((unsigned char)file[i]))
            return false;
    for (size_t i = 4; i < len - 4; i++)
        if (!(islower((unsigned char)file[i]) || isdigit((unsigned char)file[i]) || file[i] == '_'))
            return false;
    memcpy(num, file, 3);
    num[3] = '\0';
    if (kd_parse_i64(num, 1, 999, &v) != KD_OK)
        return false;
    m->version = (int)v;
    snprintf(m->name, sizeof(m->name), "%.*s", (int)(len - 4), file);
    return true;
}

static int
migration_cmp(const void *a, const void *b)
{
    return ((const struct migration *)a)->version - ((const struct migration *)b)->version;
}

static int
list_migrations(const char *dir, struct migration **out, size_t *n_out)
{
    struct migration *list = NULL;
    struct dirent *e;
    size_t n = 0;
    int st = EXIT_FAILURE;
    DIR *d;

    if ((d = opendir(dir)) == NULL)
        return failure("cannot read the migrations directory %s: %s", dir, strerror(errno));
    if ((list = calloc(MIGRATIONS_MAX, sizeof(*list))) == NULL) {
        failure("out of memory");
        goto out;
    }
    while ((e = readdir(d)) != NULL) {
        if (!migration_name(e->d_name, &list[n]))
            continue;
        if (++n == MIGRATIONS_MAX) {
            failure("more than %d migrations in %s", MIGRATIONS_MAX - 1, dir);
            goto out;
        }
    }
    if (n == 0) {
        failure("no migrations (NNN_name.sql) in %s", dir);
        goto out;
    }
    qsort(list, n, sizeof(*list), migration_cmp);
    for (size_t i = 1; i < n; i++) {
        if (list[i].version == list[i - 1].version) {
            failure("two migrations with version %03d: %s and %s", list[i].version,
                    list[i - 1].name, list[i].name);
            goto out;
        }
    }
    *out = list;
    *n_out = n;
    list = NULL;
    st = EXIT_SUCCESS;
out:
    free(list);
    closedir(d);
    return st;
}

/* Every step runs under one transaction-scoped advisory lock, so two
 * migrates at once apply each file once: the second waits, then sees it. */
static const char SQL_LOCK[] = "SELECT pg_advisory_xact_lock(hashtext('kadr.migrate'))";
static const char SQL_MIGRATIONS_TABLE[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                           " version integer PRIMARY KEY,"
                                           " name text NOT NULL,"
                                           " applied_at timestamptz NOT NULL DEFAULT now())";

/* Applies one migration unless it is recorded; *applied tells which. */
static enum kd_err
apply_migration(struct kd_db *db, const char *dir, const struct migration *m, bool *applied,
                char *why, size_t why_len)
{
    struct kd_dbres *res = NULL;
    char path[4096], version[16];
    char *sql = NULL;
    enum kd_err rc;

    *applied = false;
    snprintf(version, sizeof(version), "%d", m->version);
    const char *p[] = {version, m->name};

    if ((rc = kd_db_begin(db)) != KD_OK || (rc = kd_db_query(db, SQL_LOCK, 0, NULL, NULL)) != KD_OK)
        goto out;
    if ((rc = kd_db_query(db, "SELECT name FROM schema_migrations WHERE version = $1::int", 1, p,
                          &res)) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) > 0) {
        if (strcmp(kd_dbres_get(res, 0, 0), m->name) != 0)
            fprintf(stderr, "kadrctl: warning: version %03d is recorded as %s, the file is %s\n",
                    m->version, kd_dbres_get(res, 0, 0), m->name);
        rc = kd_db_commit(db);
        goto out;
    }
    if (kd_snprintf(path, sizeof(path), "%s/%s.sql", dir, m->name) != KD_OK) {
        rc = KD_EINVAL;
        snprintf(why, why_len, "path too long");
        goto out;
    }
    if ((rc = kd_read_file(path, MIGRATION_MAX_BYTES, &sql, NULL)) != KD_OK) {
        snprintf(why, why_len, "cannot read %.400s", path);
        goto out;
    }
    if ((rc = kd_db_script(db, sql)) != KD_OK) {
        snprintf(why, why_len, "%s failed (the server's message is logged above)", m->name);
        goto out;
    }
    if ((rc = kd_db_query(db, "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)",
                          2, p, NULL)) != KD_OK ||
        (rc = kd_db_commit(db)) != KD_OK)
        goto out;
    *applied = true;
out:
    kd_db_rollback(db);
    kd_dbres_free(res);
    free(sql);
    return rc;
}

static int
cmd_migrate(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"sql-dir", required_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    struct migration *list = NULL;
    const char *dir = getenv("KADR_SQL_DIR");
    char why[512] = "";
    size_t n = 0, n_applied = 0;
    int st, opt;

    if (dir == NULL || dir[0] == '\0')
        dir = KD_PKGDATADIR;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt != 'd')
            return usage_error("migrate: unknown option");
        dir = optarg;
    }
    if (optind != argc)
        return usage_error("migrate: unexpected argument %s", argv[optind]);
    if ((st = list_migrations(dir, &list, &n)) != EXIT_SUCCESS)
        return st;
    if ((st = open_db(c)) != EXIT_SUCCESS)
        goto out;
    st = EXIT_FAILURE;
    if (kd_db_begin(c->db) != KD_OK || kd_db_query(c->db, SQL_LOCK, 0, NULL, NULL) != KD_OK ||
        kd_db_script(c->db, SQL_MIGRATIONS_TABLE) != KD_OK || kd_db_commit(c->db) != KD_OK) {
        kd_db_rollback(c->db);
        failure("cannot create the table schema_migrations");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        bool applied;

        if (apply_migration(c->db, dir, &list[i], &applied, why, sizeof(why)) != KD_OK) {
            failure("migration %s: %s", list[i].name, why[0] != '\0' ? why : "database error");
            goto out;
        }
        if (applied) {
            printf("applied %s\n", list[i].name);
            n_applied++;
        }
    }
    if (n_applied == 0)
        printf("up to date (version %03d)\n", list[n - 1].version);
    st = EXIT_SUCCESS;
out:
    free(list);
    return st;
}

/* --- users and keys -------------------------------------------------------- */

/* A plausible address: one '@' inside, no blanks or control characters.
 * Deliverability is not kadrctl's business. */
static bool
email_ok(const char *e)
{
    size_t len = strlen(e);
    const char *at = strchr(e, '@');

    if (len < 3 || len > 254 || at == NULL || at == e || at[1] == '\0' || strchr(at + 1, '@'))
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)e[i] <= 0x20 || e[i] == 0x7f)
            return false;
    return kd_utf8_valid(e, len);
}

static bool
plan_ok(const char *p)
{
    size_t len = strlen(p);

    if (len == 0 || len > 31)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!(islower((unsigned char)p[i]) || isdigit((unsigned char)p[i]) || p[i] == '_' ||
              p[i] == '-'))
            return false;
    return true;
}

static int
user_create(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"email", required_argument, NULL, 'e'},
        {"admin", no_argument, NULL, 'a'},
        {"plan", required_argument, NULL, 'p'},
        {"api-key", no_argument, NULL, 'k'},
        {"key-name", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    const char *email = NULL, *plan = "free", *key_name = "kadrctl";
    bool admin = false, with_key = false, json = false, key_name_set = false;
    char key[KD_APIKEY_MAXLEN + 1] = "", key_id[37] = "", user_id[37];
    struct kd_dbres *res = NULL;
    enum kd_err rc;
    int st, opt;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'e':
            email = optarg;
            break;
        case 'a':
            admin = true;
            break;
        case 'p':
            plan = optarg;
            break;
        case 'k':
            with_key = true;
            break;
        case 'n':
            key_name = optarg;
            key_name_set = true;
            break;
        case 'j':
            json = true;
            break;
        default:
            return usage_error("user create: unknown option");
        }
    }
    if (optind != argc)
        return usage_error("user create: unexpected argument %s", argv[optind]);
    if (email == NULL)
        return usage_error("user create: --email is required");
    if (!email_ok(email))
        return usage_error("user create: \"%s\" is not an email address", email);
    if (!plan_ok(plan))
        return usage_error("user create: a plan is 1-31 of a-z, 0-9, '_', '-'");
    if (key_name_set && !with_key)
        return usage_error("user create: --key-name goes with --api-key");
    if (strlen(key_name) > 100 || !kd_utf8_valid(key_name, strlen(key_name)))
        return usage_error("user create: the key name is at most 100 bytes of UTF-8");
    if ((st = open_db(c)) != EXIT_SUCCESS)
        return st;
    const char *p[] = {email, plan, admin ? "true" : "false"};

    st = EXIT_FAILURE;
    if ((rc = kd_db_begin(c->db)) != KD_OK)
        goto db_error;
    rc = kd_db_query(c->db,
                     "INSERT INTO users (email, plan, is_admin) VALUES ($1, $2, $3::boolean) "
                     "RETURNING id",
                     3, p, &res);
    if (rc == KD_ECONFLICT) {
        failure("a user with the email %s exists already", email);
        goto out;
    }
    if (rc != KD_OK)
        goto db_error;
    snprintf(user_id, sizeof(user_id), "%s", kd_dbres_get(res, 0, 0));
    if ((rc = audit_ctl(c, "user_created", user_id,
                        json_pack("{s:s,s:b}", "plan", plan, "is_admin", admin))) != KD_OK)
        goto db_error;
    /* The user and the key are made together or not at all. */
    if (with_key && ((rc = kd_apikey_create(c->db, user_id, key_name, key, key_id)) != KD_OK ||
                     (rc = audit_ctl(c, "api_key_created", user_id,
                                     json_pack("{s:s}", "key_id", key_id))) != KD_OK))
        goto db_error;
    if ((rc = kd_db_commit(c->db)) != KD_OK)
        goto db_error;
    if (json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:b}", "user_id", user_id, "email", email, "plan", plan,
                              "is_admin", admin);

        if (o != NULL && with_key &&
            (kd_json_set_str(o, "api_key_id", key_id) != KD_OK ||
             kd_json_set_str(o, "api_key", key) != KD_OK)) {
            json_decref(o);
            o = NULL;
        }
        st = print_json(o);
    } else {
        printf("user_id: %s\n", user_id);
        if (with_key)
            printf("api_key_id: %s\napi_key: %s\n", key_id, key);
        st = EXIT_SUCCESS;
    }
    goto out;
db_error:
    failure("could not create the user (%s)", kd_err_name(rc));
out:
    kd_db_rollback(c->db);
    explicit_bzero(key, sizeof(key));
    kd_dbres_free(res);
    return st;
}

static int
user_list(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    struct kd_dbres *res = NULL;
    json_t *arr = NULL;
    bool json = false;
    int st, opt;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt != 'j')
            return usage_error("user list: unknown option");
        json = true;
    }
    if (optind != argc)
        return usage_error("user list: unexpected argument %s", argv[optind]);
    if ((st = open_db(c)) != EXIT_SUCCESS)
        return st;
    if (kd_db_query(c->db,
                    "SELECT u.id, u.email, u.plan, u.is_admin, kadr_ts(u.created_at), "
                    "(SELECT count(*) FROM api_keys k WHERE k.user_id = u.id "
                    "AND k.revoked_at IS NULL) FROM users u ORDER BY u.created_at, u.id",
                    0, NULL, &res) != KD_OK) {
        st = failure("could not list the users");
        goto out;
    }
    if (json && (arr = json_array()) == NULL) {
        st = failure("out of memory");
        goto out;
    }
    if (!json)
        printf("%-36s  %-5s  %-10s  %-4s  %-24s  %s\n", "ID", "ADMIN", "PLAN", "KEYS", "CREATED",
               "EMAIL");
    for (int i = 0; i < kd_dbres_rows(res); i++) {
        if (!json) {
            printf("%-36s  %-5s  %-10s  %-4s  %-24s  %s\n", kd_dbres_get(res, i, 0),
                   kd_dbres_bool(res, i, 3) ? "yes" : "no", kd_dbres_get(res, i, 2),
                   kd_dbres_get(res, i, 5), kd_dbres_get(res, i, 4), kd_dbres_get(res, i, 1));
            continue;
        }
        json_t *o = json_pack(
            "{s:o,s:o,s:o,s:b,s:I,s:o}", "id", jfield(res, i, 0), "email", jfield(res, i, 1),
            "plan", jfield(res, i, 2), "is_admin", kd_dbres_bool(res, i, 3), "active_keys",
            (json_int_t)kd_dbres_i64(res, i, 5, 0), "created_at", jfield(res, i, 4));

        if (o == NULL || json_array_append_new(arr, o) != 0) {
            st = failure("out of memory");
            goto out;
        }
    }
    st = EXIT_SUCCESS;
    if (json) {
        st = print_json(arr);
        arr = NULL;
    }
out:
    json_decref(arr);
    kd_dbres_free(res);
    return st;
}

/* One user, with the secret its webhooks are signed with: the operator's
 * way to hand it over (GET /me is the user's own). */
static int
user_show(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"email", required_argument, NULL, 'e'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    struct kd_dbres *res = NULL;
    const char *email = NULL;
    bool json = false;
    int st, opt;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'e':
            email = optarg;
            break;
        case 'j':
            json = true;
            break;
        default:
            return usage_error("user show: unknown option");
        }
    }
    if (optind != argc)
        return usage_error("user show: unexpected argument %s", argv[optind]);
    if (email == NULL)
        return usage_error("user show: --email is required");
    if ((st = open_db(c)) != EXIT_SUCCESS)
        return st;
    const char *p[] = {email};

    if (kd_db_query(c->db,
                    "SELECT id, email, plan, is_admin, kadr_ts(created_at), webhook_secret "
                    "FROM users WHERE lower(email) = lower($1)",
                    1, p, &res) != KD_OK) {
        st = failure("could not look the user up");
        goto out;
    }
    if (kd_dbres_rows(res) != 1) {
        st = failure("no user with the email %s", email);
        goto out;
    }
    if (json) {
        st = print_json(json_pack("{s:o,s:o,s:o,s:b,s:o,s:o}", "id", jfield(res, 0, 0), "email",
                                  jfield(res, 0, 1), "plan", jfield(res, 0, 2), "is_admin",
                                  kd_dbres_bool(res, 0, 3), "created_at", jfield(res, 0, 4),
                                  "webhook_secret", jfield(res, 0, 5)));
    } else {
        printf("user_id: %s\nemail: %s\nplan: %s\nis_admin: %s\ncreated_at: %s\n"
               "webhook_secret: %s\n",
               kd_dbres_get(res, 0, 0), kd_dbres_get(res, 0, 1), kd_dbres_get(res, 0, 2),
               kd_dbres_bool(res, 0, 3) ? "yes" : "no", kd_dbres_get(res, 0, 4),
               kd_dbres_get(res, 0, 5));
        st = EXIT_SUCCESS;
    }
out:
    kd_dbres_free(res);
    return st;
}

/* The id of the user with this email (case-insensitive, as the unique index). */
static int
user_by_email(struct ctl *c, const char *email, char id[37])
{
    struct kd_dbres *res = NULL;
    const char *p[] = {email};
    int st = EXIT_SUCCESS;

    if (kd_db_query(c->db, "SELECT id FROM users WHERE lower(email) = lower($1)", 1, p, &res) !=
        KD_OK)
        st = failure("could not look the user up");
    else if (kd_dbres_rows(res) == 0)
        st = failure("no user with the email %s", email);
    else
        snprintf(id, 37, "%s", kd_dbres_get(res, 0, 0));
    kd_dbres_free(res);
    return st;
}

/* "on" or "off"; -1 for anything else. */
static int
on_off(const char *s)
{
    if (strcmp(s, "on") == 0)
        return 1;
    if (strcmp(s, "off") == 0)
        return 0;
    return -1;
}

/* Changes a user's plan or admin role. Both take effect with the user's
 * next request: every request reads the plan and the role afresh. */
static int
user_set(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"plan", required_argument, NULL, 'p'},
        {"admin", required_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    const char *email, *plan = NULL;
    struct kd_dbres *res = NULL;
    json_t *detail = NULL;
    int admin = -1, st, opt;
    char user_id[37], old_plan[32];
    bool old_admin;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            plan = optarg;
            break;
        case 'a':
            if ((admin = on_off(optarg)) < 0)
                return usage_error("user set: --admin is on or off");
            break;
        default:
            return usage_error("user set: unknown option");
        }
    }
    if (optind + 1 != argc)
        return usage_error("user set: give one email");
    email = argv[optind];
    /* Only the plans that have limits of their own (plan.h). */
    if (plan != NULL && strcmp(plan, "free") != 0 && strcmp(plan, "premium") != 0)
        return usage_error("user set: --plan is free or premium");
    if (plan == NULL && admin < 0)
        return usage_error("user set: nothing to change (--plan, --admin)");
    if ((st = open_db(c)) != EXIT_SUCCESS)
        return st;
    const char *p[] = {email};

    st = EXIT_FAILURE;
    if (kd_db_begin(c->db) != KD_OK ||
        kd_db_query(c->db,
                    "SELECT id, plan, is_admin FROM users WHERE lower(email) = lower($1) "
                    "FOR UPDATE",
                    1, p, &res) != KD_OK) {
        failure("could not look the user up");
        goto out;
    }
    if (kd_dbres_rows(res) != 1) {
        failure("no user with the email %s", email);
        goto out;
    }
    snprintf(user_id, sizeof(user_id), "%s", kd_dbres_get(res, 0, 0));
    snprintf(old_plan, sizeof(old_plan), "%s", kd_dbres_get(res, 0, 1));
    old_admin = kd_dbres_bool(res, 0, 2);
    if (plan == NULL)
        plan = old_plan;
    if (admin < 0)
        admin = old_admin;
    if (strcmp(plan, old_plan) == 0 && (bool)admin == old_admin) {
        printf("%s: nothing changed (plan %s, admin %s)\n", email, plan, admin ? "on" : "off");
        st = EXIT_SUCCESS;
        goto out;
    }
    kd_dbres_free(res);
    res = NULL;
    const char *up[] = {user_id, plan, admin ? "true" : "false"};

    if (kd_db_query(c->db, "UPDATE users SET plan = $2, is_admin = $3::boolean WHERE id = $1", 3,
                    up, NULL) != KD_OK) {
        failure("could not change the user");
        goto out;
    }
    detail = json_pack("{s:{s:s,s:s},s:{s:b,s:b}}", "plan", "from", old_plan, "to", plan,
                       "is_admin", "from", old_admin, "to", admin);
    if (audit_ctl(c, "user_changed", user_id, detail) != KD_OK || kd_db_commit(c->db) != KD_OK) {
        failure("could not change the user");
        goto out;
    }
    printf("%s: plan %s, admin %s\n", email, plan, admin ? "on" : "off");
    st = EXIT_SUCCESS;
out:
    kd_db_rollback(c->db);
    kd_dbres_free(res);
    return st;
}

/* Revokes every live session (refresh-token family) of a user, as logout
 * would: their refresh tokens and access tokens stop working with the next
 * request. API keys are not sessions; revoke them with apikey revoke. */
static int
user_revoke_sessions(struct ctl *c, int argc, char **argv)
{
    struct kd_dbres *res = NULL;
    char user_id[37];
    int st, n;

    if (argc != 2 || argv[1][0] == '-')
        return usage_error("user revoke-sessions: give one email");
    if ((st = open_db(c)) != EXIT_SUCCESS ||
        (st = user_by_email(c, argv[1], user_id)) != EXIT_SUCCESS)
        return st;
    const char *p[] = {user_id};

    st = EXIT_FAILURE;
    if (kd_db_begin(c->db) != KD_OK ||
        kd_db_query(c->db,
                    "UPDATE token_families SET revoked_at = now(), revoked_reason = 'admin' "
                    " WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
                    1, p, &res) != KD_OK) {
        failure("could not revoke the sessions");
        goto out;
    }
    n = kd_dbres_rows(res);
    for (int i = 0; i < n; i++) {
        if (audit_ctl(c, "token_family_revoked", user_id,
                      json_pack("{s:s,s:s}", "family", kd_dbres_get(res, i, 0), "reason",
                                "admin")) != KD_OK) {
            failure("could not record the revocation");
            goto out;
        }
    }
    if (kd_db_commit(c->db) != KD_OK) {
        failure("could not revoke the sessions");
        goto out;
    }
    printf("revoked %d session(s) of %s\n", n, argv[1]);
    st = EXIT_SUCCESS;
out:
    kd_db_rollback(c->db);
    kd_dbres_free(res);
    return st;
}

static int
cmd_user(struct ctl *c, int argc, char **argv)
{
    if (argc < 2)
        return usage_error("user: create, list, show, set or revoke-sessions?");
    if (strcmp(argv[1], "create") == 0)
        return user_create(c, argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0)
        return user_list(c, argc - 1, argv + 1);
    if (strcmp(argv[1], "show") == 0)
        return user_show(c, argc - 1, argv + 1);
    if (strcmp(argv[1], "set") == 0)
        return user_set(c, argc - 1, argv + 1);
    if (strcmp(argv[1], "revoke-sessions") == 0)
        return user_revoke_sessions(c, argc - 1, argv + 1);
    return usage_error("user: unknown subcommand %s", argv[1]);
}

static int
apikey_create(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"email", required_argument, NULL, 'e'},
        {"name", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    const char *email = NULL, *name = "kadrctl";
    char user_id[37], key[KD_APIKEY_MAXLEN + 1] = "", key_id[37];
    bool json = false;
    enum kd_err rc;
    int st, opt;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'e':
            email = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'j':
            json = true;
            break;
        default:
            return usage_error("apikey create: unknown option");
        }
    }
    if (optind != argc)
        return usage_error("apikey create: unexpected argument %s", argv[optind]);
    if (email == NULL)
        return usage_error("apikey create: --email is required");
    if (strlen(name) > 100 || !kd_utf8_valid(name, strlen(name)))
        return usage_error("apikey create: the name is at most 100 bytes of UTF-8");
    if ((st = open_db(c)) != EXIT_SUCCESS ||
        (st = user_by_email(c, email, user_id)) != EXIT_SUCCESS)
        return st;
    /* The key and its audit record commit together or not at all. */
    if ((rc = kd_db_begin(c->db)) != KD_OK ||
        (rc = kd_apikey_create(c->db, user_id, name, key, key_id)) != KD_OK ||
        (rc = audit_ctl(c, "api_key_created", user_id, json_pack("{s:s}", "key_id", key_id))) !=
            KD_OK ||
        (rc = kd_db_commit(c->db)) != KD_OK) {
        st = failure("could not create the key (%s)", kd_err_name(rc));
        goto out;
    }
    if (json)
        st = print_json(json_pack("{s:s,s:s,s:s,s:s}", "api_key_id", key_id, "name", name,
                                  "user_id", user_id, "api_key", key));
    else
        printf("api_key_id: %s\napi_key: %s\n", key_id, key);
out:
    kd_db_rollback(c->db);
    explicit_bzero(key, sizeof(key));
    return st;
}

static int
apikey_list(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"email", required_argument, NULL, 'e'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    struct kd_dbres *res = NULL;
    const char *email = NULL;
    char user_id[37];
    json_t *arr = NULL;
    bool json = false;
    int st, opt;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'e':
            email = optarg;
            break;
        case 'j':
            json = true;
            break;
        default:
            return usage_error("apikey list: unknown option");
        }
    }
    if (optind != argc)
        return usage_error("apikey list: unexpected argument %s", argv[optind]);
    if (email == NULL)
        return usage_error("apikey list: --email is required");
    if ((st = open_db(c)) != EXIT_SUCCESS ||
        (st = user_by_email(c, email, user_id)) != EXIT_SUCCESS)
        return st;
    const char *p[] = {user_id};

    if (kd_db_query(c->db,
                    "SELECT id, name, prefix, kadr_ts(created_at), kadr_ts(last_used_at), "
                    "kadr_ts(revoked_at) FROM api_keys WHERE user_id = $1 "
                    "ORDER BY created_at, id",
                    1, p, &res) != KD_OK) {
        st = failure("could not list the keys");
        goto out;
    }
    if (json && (arr = json_array()) == NULL) {
        st = failure("out of memory");
        goto out;
    }
    if (!json)
        printf("%-36s  %-12s  %-24s  %-24s  %-24s  %s\n", "ID", "PREFIX", "CREATED", "LAST USED",
               "REVOKED", "NAME");
    for (int i = 0; i < kd_dbres_rows(res); i++) {
        if (!json) {
            printf("%-36s  %-12s  %-24s  %-24s  %-24s  %s\n", kd_dbres_get(res, i, 0),
                   kd_dbres_get(res, i, 2), kd_dbres_get(res, i, 3),
                   or_dash(kd_dbres_get(res, i, 4)), or_dash(kd_dbres_get(res, i, 5)),
                   kd_dbres_get(res, i, 1));
            continue;
        }
        json_t *o = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "id", jfield(res, i, 0), "name",
                              jfield(res, i, 1), "prefix", jfield(res, i, 2), "created_at",
                              jfield(res, i, 3), "last_used_at", jfield(res, i, 4), "revoked_at",
                              jfield(res, i, 5));

        if (o == NULL || json_array_append_new(arr, o) != 0) {
            st = failure("out of memory");
            goto out;
        }
    }
    st = EXIT_SUCCESS;
    if (json) {
        st = print_json(arr);
        arr = NULL;
    }
out:
    json_decref(arr);
    kd_dbres_free(res);
    return st;
}

static int
apikey_revoke(struct ctl *c, int argc, char **argv)
{
    struct kd_dbres *res = NULL;
    int st;

    if (argc != 2)
        return usage_error("apikey revoke: give one key id");
    if (!kd_uuid_valid(argv[1]))
        return usage_error("apikey revoke: \"%s\" is not a key id", argv[1]);
    if ((st = open_db(c)) != EXIT_SUCCESS)
        return st;
    const char *p[] = {argv[1]};

    st = EXIT_FAILURE;
    if (kd_db_begin(c->db) != KD_OK ||
        kd_db_query(c->db,
                    "UPDATE api_keys SET revoked_at = now() "
                    "WHERE id = $1 AND revoked_at IS NULL RETURNING user_id",
                    1, p, &res) != KD_OK) {
        failure("could not revoke the key");
        goto out;
    }
    if (kd_dbres_rows(res) == 1) {
        if (audit_ctl(c, "api_key_revoked", kd_dbres_get(res, 0, 0),
                      json_pack("{s:s}", "key_id", argv[1])) != KD_OK ||
            kd_db_commit(c->db) != KD_OK) {
            failure("could not revoke the key");
            goto out;
        }
        printf("revoked %s\n", argv[1]);
        st = EXIT_SUCCESS;
        goto out;
    }
    kd_db_rollback(c->db);
    kd_dbres_free(res);
    res = NULL;
    if (kd_db_query(c->db, "SELECT 1 FROM api_keys WHERE id = $1", 1, p, &res) != KD_OK) {
        st = failure("could not look the key up");
        goto out;
    }
    if (kd_dbres_rows(res) == 0) {
        st = failure("no API key %s", argv[1]);
        goto out;
    }
    printf("%s was revoked already\n", argv[1]);
    st = EXIT_SUCCESS;
out:
    kd_db_rollback(c->db);
    kd_dbres_free(res);
    return st;
}

static int
cmd_apikey(struct ctl *c, int argc, char **argv)
{
    if (argc < 2)
        return usage_error("apikey: create, list or revoke?");
    if (strcmp(argv[1], "create") == 0)
        return apikey_create(c, argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0)
        return apikey_list(c, argc - 1, argv + 1);
    if (strcmp(argv[1], "revoke") == 0)
        return apikey_revoke(c, argc - 1, argv + 1);
    return usage_error("apikey: unknown subcommand %s", argv[1]);
}

/* --- dlq: dead letters ------------------------------------------------------ */

static const char SQL_DLQ_LIST[] =
    "SELECT d.job_id, u.email, d.attempts, d.error_code, d.error_message, kadr_ts(d.created_at) "
    "  FROM dead_letters d JOIN users u ON u.id = d.user_id JOIN jobs j ON j.id = d.job_id "
    " WHERE j.status = 'failed' AND j.deleted_at IS NULL "
    " ORDER BY d.created_at, d.job_id LIMIT $1::int";

static int
dlq_list(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {NULL, 0, NULL, 0}};
    struct kd_dbres *res = NULL;
    json_t *arr = NULL;
    bool json = false;
    int64_t limit = 100;
    char lim[24];
    int st, opt;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'j')
            json = true;
        else if (opt == 'l' && kd_parse_i64(optarg, 1, 100000, &limit) == KD_OK)
            continue;
        else
            return usage_error("dlq list: --json or --limit N (1..100000)");
    }
    if (optind != argc)
        return usage_error("dlq list: unexpected argument %s", argv[optind]);
    if ((st = open_db(c)) != EXIT_SUCCESS)
        return st;
    snprintf(lim, sizeof(lim), "%lld", (long long)limit);
    const char *p[] = {lim};

    if (kd_db_query(c->db, SQL_DLQ_LIST, 1, p, &res) != KD_OK) {
        st = failure("cannot read the dead letters");
        goto out;
    }
    if (!json) {
        printf("%-36s  %-24s  %8s  %-14s  %-24s  %s\n", "JOB", "USER", "ATTEMPTS", "CODE", "SINCE",
               "MESSAGE");
        for (int i = 0; i < kd_dbres_rows(res); i++)
            printf("%-36s  %-24s  %8s  %-14s  %-24s  %.100s\n", kd_dbres_get(res, i, 0),
                   kd_dbres_get(res, i, 1), kd_dbres_get(res, i, 2), kd_dbres_get(res, i, 3),
                   kd_dbres_get(res, i, 5), or_dash(kd_dbres_get(res, i, 4)));
        st = EXIT_SUCCESS;
        goto out;
    }
    if ((arr = json_array()) == NULL) {
        st = failure("out of memory");
        goto out;
    }
    for (int i = 0; i < kd_dbres_rows(res); i++) {
        if (json_array_append_new(arr,
                                  json_pack("{s:o,s:o,s:I,s:o,s:o,s:o}", "job_id",
                                            jfield(res, i, 0), "email", jfield(res, i, 1),
                                            "attempts", (json_int_t)kd_dbres_i64(res, i, 2, 0),
                                            "code", jfield(res, i, 3), "message", jfield(res, i, 4),
                                            "created_at", jfield(res, i, 5))) != 0) {
            st = failure("out of memory");
            goto out;
        }
    }
    st = print_json(arr);
    arr = NULL;
out:
    json_decref(arr);
    kd_dbres_free(res);
    return st;
}

static int
dlq_show(struct ctl *c, int argc, char **argv)
{
    static const char sql[] =
        "SELECT json_build_object('job_id', d.job_id, 'email', u.email, 'attempts', d.attempts, "
        "  'code', d.error_code, 'message', d.error_message, 'created_at', kadr_ts(d.created_at), "
        "  'job', kadr_job_json(j), "
        "  'events', (SELECT COALESCE(json_agg(json_build_object('at', kadr_ts(e.at), "
        "               'event', e.event, 'detail', e.detail) ORDER BY e.id), '[]'::json) "
        "               FROM job_events e WHERE e.job_id = d.job_id))::text "
        "  FROM dead_letters d JOIN users u ON u.id = d.user_id JOIN jobs j ON j.id = d.job_id "
        " WHERE d.job_id = $1 AND j.status = 'failed' AND j.deleted_at IS NULL";
    struct kd_dbres *res = NULL;
    json_t *v = NULL;
    char err[128];
    int st;

    if (argc != 2)
        return usage_error("dlq show: give one job id");
    if (!kd_uuid_valid(argv[1]))
        return usage_error("dlq show: \"%s\" is not a job id", argv[1]);
    if ((st = open_db(c)) != EXIT_SUCCESS)
        return st;
    const char *p[] = {argv[1]};

    if (kd_db_query(c->db, sql, 1, p, &res) != KD_OK) {
        st = failure("cannot read the dead letter");
        goto out;
    }
    if (kd_dbres_rows(res) == 0) {
        st = failure("no dead letter for job %s", argv[1]);
        goto out;
    }
    const char *text = kd_dbres_get(res, 0, 0);

    if (kd_json_parse(text, strlen(text), &v, err, sizeof(err)) != KD_OK) {
        st = failure("the database answered something that is not JSON: %s", err);
        goto out;
    }
    st = print_json(v);
out:
    kd_dbres_free(res);
    return st;
}

/* Requeue: the job pending again with fresh attempts, its dead letter gone,
 * a "requeued" event; the scheduler pushes it (enqueued_at NULL). Only the
 * dead letters that list and show know of (their job failed, not deleted):
 * a job retried through the API is none any more. */
static const char SQL_DLQ_REQUEUE[] =
    "WITH d AS (DELETE FROM dead_letters dl USING jobs dj "
    "            WHERE dj.id = dl.job_id AND dj.status = 'failed' AND dj.deleted_at IS NULL "
    "              AND ($1::uuid IS NULL OR dl.job_id = $1::uuid) "
    "           RETURNING dl.job_id), "
    "j AS (UPDATE jobs SET status = 'pending', attempts = 0, progress = 0, stage = NULL, "
    "        error_code = NULL, error_message = NULL, started_at = NULL, finished_at = NULL, "
    "        worker = NULL, lease_expires_at = NULL, cancel_requested = false, run_at = NULL, "
    "        enqueued_at = NULL, pushed_priority = NULL, updated_at = now() "
    "       WHERE id IN (SELECT job_id FROM d) AND status = 'failed' AND deleted_at IS NULL "
    "       RETURNING id), "
    "e AS (INSERT INTO job_events (job_id, event, detail) "
    "      SELECT id, 'requeued', json_build_object('reason', 'requeued from the dead "
    "letters')::jsonb "
    "        FROM j) "
    "SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM j)";

static const char SQL_DLQ_PURGE[] =
    "WITH d AS (DELETE FROM dead_letters "
    "            WHERE ($1::uuid IS NULL OR job_id = $1::uuid) "
    "              AND ($2::int IS NULL OR created_at < now() - $2::int * interval '1 day') "
    "           RETURNING 1) SELECT count(*) FROM d";

static int
dlq_change(struct ctl *c, int argc, char **argv, bool requeue)
{
    const char *what = requeue ? "requeue" : "purge";
    struct kd_dbres *res = NULL;
    bool all = false;
    int64_t days = -1, total = 0, jobs = 0;
    char days_text[24];
    int first = 1, st;

    for (; first < argc && argv[first][0] == '-'; first++) {
        if (strcmp(argv[first], "--all") == 0)
            all = true;
        else if (!requeue && strcmp(argv[first], "--older-than-days") == 0 && first + 1 < argc &&
                 kd_parse_i64(argv[first + 1], 0, 36500, &days) == KD_OK)
            first++;
        else
            return usage_error("dlq %s: unknown option %s", what, argv[first]);
    }
    if ((first < argc) == (all || days >= 0))
        return usage_error("dlq %s: give job ids, or %s", what,
                           requeue ? "--all" : "--all or --older-than-days N");
    for (int i = first; i < argc; i++)
        if (!kd_uuid_valid(argv[i]))
            return usage_error("dlq %s: \"%s\" is not a job id", what, argv[i]);
    if ((st = open_db(c)) != EXIT_SUCCESS)
        return st;
    snprintf(days_text, sizeof(days_text), "%lld", (long long)days);
    for (int i = first; i < argc || (first == argc && i == first); i++) {
        const char *id = i < argc ? argv[i] : NULL;
        const char *p[] = {id, days >= 0 ? days_text : NULL};

        if (kd_db_query(c->db, requeue ? SQL_DLQ_REQUEUE : SQL_DLQ_PURGE, requeue ? 1 : 2, p,
                        &res) != KD_OK) {
            st = failure("dlq %s failed", what);
            goto out;
        }
        total += kd_dbres_i64(res, 0, 0, 0);
        if (requeue)
            jobs += kd_dbres_i64(res, 0, 1, 0);
        if (id != NULL && kd_dbres_i64(res, 0, 0, 0) == 0)
            fprintf(stderr, "kadrctl: no dead letter for job %s\n", id);
        kd_dbres_free(res);
        res = NULL;
    }
    if (requeue)
        printf("requeued %lld job(s) of %lld dead letter(s)\n", (long long)jobs, (long long)total);
    else
        printf("purged %lld dead letter(s)\n", (long long)total);
    st = EXIT_SUCCESS;
out:
    kd_dbres_free(res);
    return st;
}

static int
cmd_dlq(struct ctl *c, int argc, char **argv)
{
    if (argc < 2)
        return usage_error("dlq: list, show, requeue or purge?");
    if (strcmp(argv[1], "list") == 0)
        return dlq_list(c, argc - 1, argv + 1);
    if (strcmp(argv[1], "show") == 0)
        return dlq_show(c, argc - 1, argv + 1);
    if (strcmp(argv[1], "requeue") == 0)
        return dlq_change(c, argc - 1, argv + 1, true);
    if (strcmp(argv[1], "purge") == 0)
        return dlq_change(c, argc - 1, argv + 1, false);
    return usage_error("dlq: unknown subcommand %s", argv[1]);
}

/* --- queue, config ----------------------------------------------------------- */

static const char *const job_statuses[] = {"pending", "processing", "completed", "failed",
                                           "cancelled"};

static int
queue_stats(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    struct kd_queue_stats qs;
    struct kd_queue *q = NULL;
    struct kd_dbres *res = NULL;
    int64_t counts[KD_ARRAY_LEN(job_statuses)] = {0};
    json_t *o = NULL, *queues, *jobs;
    bool json = false;
    enum kd_err rc;
    int st, opt;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt != 'j')
            return usage_error("queue stats: unknown option");
        json = true;
    }
    if (optind != argc)
        return usage_error("queue stats: unexpected argument %s", argv[optind]);
    if ((st = open_db(c)) != EXIT_SUCCESS)
        return st;
    st = EXIT_FAILURE;
    if (kd_queue_open(c->cfg, &q) != KD_OK) {
        failure("bad Redis settings");
        goto out;
    }
    if ((rc = kd_queue_stats(q, &qs)) != KD_OK) {
        failure("cannot read the queue from Redis (%s)", kd_err_name(rc));
        goto out;
    }
    if (kd_db_query(c->db,
                    "SELECT status, count(*) FROM jobs WHERE deleted_at IS NULL GROUP BY status", 0,
                    NULL, &res) != KD_OK) {
        failure("cannot count the jobs");
        goto out;
    }
    for (int i = 0; i < kd_dbres_rows(res); i++)
        for (size_t s = 0; s < KD_ARRAY_LEN(job_statuses); s++)
            if (strcmp(kd_dbres_get(res, i, 0), job_statuses[s]) == 0)
                counts[s] = kd_dbres_i64(res, i, 1, 0);
    if (!json) {
        printf("%-8s  %8s  %8s  %8s\n", "PRIORITY", "LENGTH", "PENDING", "LAG");
        for (int i = 0; i < KD_QUEUE_PRIORITIES; i++)
            printf("%-8d  %8lld  %8lld  %8lld\n", i + 1, (long long)qs.length[i],
                   (long long)qs.pending[i], (long long)qs.lag[i]);
        printf("consumers: %lld\njobs:", (long long)qs.consumers);
        for (size_t s = 0; s < KD_ARRAY_LEN(job_statuses); s++)
            printf(" %s=%lld", job_statuses[s], (long long)counts[s]);
        printf("\n");
        st = EXIT_SUCCESS;
        goto out;
    }
    if ((o = json_object()) == NULL || (queues = json_array()) == NULL ||
        json_object_set_new(o, "queues", queues) != 0 || (jobs = json_object()) == NULL ||
        json_object_set_new(o, "jobs", jobs) != 0 ||
        json_object_set_new(o, "consumers", json_integer(qs.consumers)) != 0) {
        failure("out of memory");
        goto out;
    }
    for (int i = 0; i < KD_QUEUE_PRIORITIES; i++) {
        if (json_array_append_new(queues, json_pack("{s:i,s:I,s:I,s:I}", "priority", i + 1,
                                                    "length", (json_int_t)qs.length[i], "pending",
                                                    (json_int_t)qs.pending[i], "lag",
                                                    (json_int_t)qs.lag[i])) != 0) {
            failure("out of memory");
            goto out;
        }
    }
    for (size_t s = 0; s < KD_ARRAY_LEN(job_statuses); s++) {
        if (json_object_set_new(jobs, job_statuses[s], json_integer(counts[s])) != 0) {
            failure("out of memory");
            goto out;
        }
    }
    st = print_json(o);
    o = NULL;
out:
    json_decref(o);
    kd_dbres_free(res);
    kd_queue_close(q);
    return st;
}

static int
cmd_queue(struct ctl *c, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "stats") != 0)
        return usage_error("queue: the subcommand is stats");
    return queue_stats(c, argc - 1, argv + 1);
}

static int
cmd_cleanup(struct ctl *c, int argc, char **argv)
{
    struct kd_cleanup_counts n;
    enum kd_err rc;
    bool json = false;
    int st;

    if (argc == 2 && strcmp(argv[1], "--json") == 0)
        json = true;
    else if (argc != 1)
        return usage_error("cleanup: no arguments but --json");
    if ((st = open_db(c)) != EXIT_SUCCESS)
        return st;
    if ((rc = kd_cleanup_accounts(c->db, c->cfg, &n)) != KD_OK)
        return failure("cleanup failed (%s)", kd_err_name(rc));
    if (json)
        return print_json(
            json_pack("{s:I,s:I,s:I,s:I}", "refresh_tokens", (json_int_t)n.refresh_tokens,
                      "sessions", (json_int_t)n.sessions, "audit_events",
                      (json_int_t)n.audit_events, "job_runs", (json_int_t)n.job_runs));
    printf("deleted %lld refresh token(s), %lld session(s), %lld audit event(s), "
           "%lld job run(s)\n",
           (long long)n.refresh_tokens, (long long)n.sessions, (long long)n.audit_events,
           (long long)n.job_runs);
    return EXIT_SUCCESS;
}

static int
cmd_config(struct ctl *c, int argc, char **argv)
{
    int st;

    if (argc == 2 && strcmp(argv[1], "help") == 0) {
        kd_config_help(stdout);
        return EXIT_SUCCESS;
    }
    if (argc != 1)
        return usage_error("config: nothing or help");
    if ((st = load_config(c)) != EXIT_SUCCESS)
        return st;
    kd_config_dump(c->cfg, stdout);
    return EXIT_SUCCESS;
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
    static const struct {
        const char *name;
        int (*fn)(struct ctl *, int, char **);
    } commands[] = {
        {"migrate", cmd_migrate}, {"user", cmd_user},     {"apikey", cmd_apikey},
        {"queue", cmd_queue},     {"config", cmd_config}, {"dlq", cmd_dlq},
        {"cleanup", cmd_cleanup},
    };
    struct ctl c = {0};
    bool check_only = false;
    int st = EXIT_USAGE, opt;

    /* A dropped PostgreSQL or Redis connection is an error to report, not
     * a signal that kills the tool mid-command. */
    signal(SIGPIPE, SIG_IGN);
    /* "+": stop at the command; its options are its own. */
    while ((opt = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            c.config_path = optarg;
            break;
        case 'C':
            check_only = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return EXIT_SUCCESS;
        default:
            fputs(usage_text, stderr);
            return EXIT_USAGE;
        }
    }
    kd_log_init("kadrctl", KD_LOG_WARN);
    if (check_only) {
        if (optind != argc)
            return usage_error("--check-config takes no command");
        if ((st = load_config(&c)) == EXIT_SUCCESS)
            printf("configuration ok\n");
        goto out;
    }
    if (optind >= argc)
        return usage_error("no command");
    for (size_t i = 0; i < KD_ARRAY_LEN(commands); i++) {
        if (strcmp(argv[optind], commands[i].name) == 0) {
            st = commands[i].fn(&c, argc - optind, argv + optind);
            goto out;
        }
    }
    st = usage_error("unknown command %s", argv[optind]);
out:
    kd_db_close(c.db);
    kd_config_free(c.cfg);
    return st;
}
