#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

enum setting_type { T_STR, T_INT };

struct setting {
    const char *key;
    enum setting_type type;
    size_t offset;
    const char *def;  /* default as text (parsed like any other value) */
    int64_t min, max; /* T_INT range */
    bool secret;      /* never dumped; wiped when freed */
    bool file_ok;     /* may be read from "<key>_file" (every secret may) */
    const char *help;
};

#define S(k, field, d, h)                                                                          \
    {                                                                                              \
        k, T_STR, offsetof(struct kd_config, field), d, 0, 0, false, false, h                      \
    }
#define SECRET(k, field, d, h)                                                                     \
    {                                                                                              \
        k, T_STR, offsetof(struct kd_config, field), d, 0, 0, true, true, h                        \
    }
/* Not secret as a whole but may carry one (a connection string's password):
 * readable from a file, dumped with the secret part masked. */
#define S_FILE(k, field, d, h)                                                                     \
    {                                                                                              \
        k, T_STR, offsetof(struct kd_config, field), d, 0, 0, false, true, h                       \
    }
#define I(k, field, d, lo, hi, h)                                                                  \
    {                                                                                              \
        k, T_INT, offsetof(struct kd_config, field), d, lo, hi, false, false, h                    \
    }

#define GIB (1024LL * 1024 * 1024)

/* The one table of every setting: loading, validation, dump and help read it. */
static const struct setting settings[] = {
    S_FILE("database_url", database_url, "dbname=kadr", "libpq connection string or URI"),
    S("redis_host", redis_host, "127.0.0.1", "Redis host"),
    I("redis_port", redis_port, "6379", 1, 65535, "Redis TCP port"),
    S("redis_socket", redis_socket, "", "Redis unix socket; used instead of host/port when set"),
    SECRET("redis_password", redis_password, "", "Redis AUTH password"),
    S("redis_prefix", redis_prefix, "kadr:", "prefix of every Redis key"),
    S("storage_backend", storage_backend, "local", "where media bytes live: local or s3"),
    S("storage_root", storage_root, "./run/storage", "local backend: the storage directory"),
    S("public_url", public_url, "http://127.0.0.1:8080",
      "base URL of nginx as clients reach it (presigned URLs)"),
    SECRET("url_signing_secret", url_signing_secret, "",
           "HMAC key of presigned URLs (at least 32 bytes)"),
    I("upload_url_ttl_s", upload_url_ttl_s, "3600", 10, 7 * 86400, "validity of upload URLs"),
    I("download_url_ttl_s", download_url_ttl_s, "900", 10, 7 * 86400, "validity of download URLs"),
    S("s3_endpoint", s3_endpoint, "http://127.0.0.1:9000", "s3 backend: base URL of the S3 API"),
    S("s3_public_endpoint", s3_public_endpoint, "",
      "s3 backend: base URL of presigned URLs as browsers reach it (default s3_endpoint)"),
    S("s3_region", s3_region, "us-east-1", "s3 backend: region signed into requests"),
    S("s3_bucket", s3_bucket, "kadr", "s3 backend: the bucket"),
    I("s3_path_style", s3_path_style, "1", 0, 1,
      "s3 backend: 1 puts the bucket in the path, 0 in the host name"),
    S("s3_access_key", s3_access_key, "", "s3 backend: access key id"),
    SECRET("s3_secret_key", s3_secret_key, "", "s3 backend: secret access key"),
    I("s3_part_size", s3_part_size, "64M", 5 * 1024 * 1024, 5 * GIB,
      "s3 backend: size of multipart upload parts"),
    I("s3_multipart_threshold", s3_multipart_threshold, "64M", 5 * 1024 * 1024, 5 * GIB,
      "s3 backend: larger objects are uploaded in parts"),
    I("s3_timeout_ms", s3_timeout_ms, "30000", 100, 3600000,
      "s3 backend: a request stalled this long fails (retried)"),
    I("s3_retries", s3_retries, "4", 0, 20, "s3 backend: retries of a transient failure"),
    I("api_db_timeout_ms", api_db_timeout_ms, "5000", 100, 600000,
      "statement timeout of API queries"),
    I("worker_slots", worker_slots, "2", 1, 64, "jobs a worker runs side by side"),
    S("worker_name", worker_name, "", "consumer name of the worker; default <host>-<pid>"),
    S("worker_tmp_dir", worker_tmp_dir, "/tmp/kadr-work",
      "where jobs get their private directories"),
    I("worker_job_timeout_s", worker_job_timeout_s, "3600", 1, 7 * 86400,
      "wall-clock limit of one attempt"),
    I("worker_mem_limit_mb", worker_mem_limit_mb, "4096", 64, 1024 * 1024,
      "address-space limit of a job's process"),
    I("worker_cpu_limit_s", worker_cpu_limit_s, "14400", 1, 30 * 86400,
      "CPU-time limit of a job's process"),
    I("worker_file_limit_mb", worker_file_limit_mb, "65536", 1, 16 * 1024 * 1024,
      "largest file a job's process may write"),
    I("worker_progress_ms", worker_progress_ms, "250", 50, 60000,
      "least interval between progress writes"),
    I("worker_threads", worker_threads, "0", 0, 64, "encoder threads per job; 0 picks"),
    I("worker_grace_s", worker_grace_s, "30", 0, 3600,
      "on SIGTERM, how long running jobs may finish"),
    I("queue_claim_idle_ms", queue_claim_idle_ms, "60000", 1000, 86400000,
      "take over deliveries unacknowledged this long"),
    I("job_lease_ms", job_lease_ms, "30000", 1000, 3600000,
      "a job's lease: another worker takes it over this long after the last heartbeat"),
    I("user_max_processing", user_max_processing, "5", 1, 1000,
      "jobs of one user processing at once (users.max_processing overrides)"),
    I("queue_aging_s", queue_aging_s, "120", 1, 86400,
      "a pending job is pushed one priority more urgent per this many seconds waited"),
    I("job_max_attempts", job_max_attempts, "3", 1, 10, "attempts of a job"),
    I("retention_days", retention_days, "7", 1, 3650, "days media and outputs are kept"),
    I("notify_poll_ms", notify_poll_ms, "1000", 50, 60000,
      "kadr-notify: how often due webhook deliveries are looked for"),
    I("notify_concurrency", notify_concurrency, "16", 1, 256,
      "kadr-notify: webhook requests in flight at once"),
    I("notify_connect_timeout_ms", notify_connect_timeout_ms, "5000", 100, 60000,
      "kadr-notify: connect timeout of a webhook request"),
    I("notify_timeout_ms", notify_timeout_ms, "10000", 500, 120000,
      "kadr-notify: total timeout of a webhook request"),
    I("notify_backoff_base_ms", notify_backoff_base_ms, "10000", 10, 3600000,
      "kadr-notify: first retry delay; later ones grow to 180 times it"),
    I("notify_retry_window_s", notify_retry_window_s, "3600", 1, 7 * 86400,
      "kadr-notify: keep retrying a webhook at least this long"),
    I("notify_allow_private", notify_allow_private, "0", 0, 1,
      "kadr-notify: 1 lets webhooks reach loopback and private addresses"),
    S("log_level", log_level, "info", "debug, info, warn or error"),
    SECRET("jwt_secret", jwt_secret, "", "HMAC key of access tokens (at least 32 bytes)"),
    S("jwt_kid", jwt_kid, "k1", "key id of jwt_secret, named in every token it signs"),
    SECRET("jwt_previous_keys", jwt_previous_keys, "",
           "retired keys still accepted: kid:secret,kid:secret"),
    S("jwt_issuer", jwt_issuer, "kadr", "iss of access tokens"),
    S("jwt_audience", jwt_audience, "kadr-api", "aud of access tokens"),
    I("jwt_ttl_s", jwt_ttl_s, "900", 60, 86400, "lifetime of access tokens"),
    I("refresh_ttl_s", refresh_ttl_s, "2592000", 300, 365 * 86400, "lifetime of refresh tokens"),
    I("password_scrypt_log2n", password_scrypt_log2n, "15", 10, 20,
      "scrypt cost: log2 of N (memory = 128 * r * N bytes)"),
    I("password_scrypt_r", password_scrypt_r, "8", 1, 32, "scrypt block size r"),
    I("password_scrypt_p", password_scrypt_p, "1", 1, 16, "scrypt parallelism p"),
    I("login_max_failures", login_max_failures, "5", 1, 1000,
      "failed logins of one account before it is locked for the window"),
    I("login_max_failures_addr", login_max_failures_addr, "20", 1, 100000,
      "failed logins from one address before it is locked for the window"),
    I("login_failure_window_s", login_failure_window_s, "900", 10, 86400,
      "window of the failed-login limits"),
    I("plan_free_jobs_per_hour", plan_free_jobs_per_hour, "5", 0, 1000000,
      "free plan: jobs per hour"),
    I("plan_premium_jobs_per_hour", plan_premium_jobs_per_hour, "50", 0, 1000000,
      "premium plan: jobs per hour"),
    I("jobs_per_hour_cap", jobs_per_hour_cap, "100", 0, 1000000,
      "jobs per hour of any plan (admins are exempt)"),
    I("plan_free_uploads", plan_free_uploads, "10", 0, 1000000,
      "free plan: unfinished uploads at once"),
    I("plan_premium_uploads", plan_premium_uploads, "10", 0, 1000000,
      "premium plan: unfinished uploads at once"),
    I("plan_free_storage_bytes", plan_free_storage_bytes, "10G", 0, 1024 * 1024 * GIB,
      "free plan: bytes of live media"),
    I("plan_premium_storage_bytes", plan_premium_storage_bytes, "100G", 0, 1024 * 1024 * GIB,
      "premium plan: bytes of live media"),
    I("body_max_bytes", limits.body_max_bytes, "1048576", 1024, 64 * 1024 * 1024,
      "largest API request body"),
    I("upload_max_bytes", limits.upload_max_bytes, "5368709120", 1, 5 * 1024 * GIB,
      "largest upload"),
    I("max_inputs", limits.max_inputs, "50", 1, 500, "inputs of one job"),
    I("max_layers", limits.max_layers, "20", 0, 200, "layers of one job"),
    I("max_text_bytes", limits.max_text_bytes, "4096", 1, 65536, "text of one text layer"),
    I("max_width", limits.max_width, "7680", 16, 16384, "largest frame width"),
    I("max_height", limits.max_height, "4320", 16, 16384, "largest frame height"),
    I("max_pixels", limits.max_pixels, "33177600", 256, 268435456, "largest frame area"),
    I("max_duration_s", limits.max_duration_s, "14400", 1, 7 * 86400, "longest input or output"),
    I("max_streams", limits.max_streams, "16", 1, 256, "streams of one input file"),
    I("max_metadata_bytes", limits.max_metadata_bytes, "4096", 0, 1024 * 1024,
      "job metadata, serialised"),
};

static char **
str_field(struct kd_config *cfg, const struct setting *s)
{
    return (char **)((char *)cfg + s->offset);
}

static int64_t *
int_field(struct kd_config *cfg, const struct setting *s)
{
    return (int64_t *)((char *)cfg + s->offset);
}

static const struct setting *
find(const char *key)
{
    for (size_t i = 0; i < KD_ARRAY_LEN(settings); i++)
        if (strcmp(settings[i].key, key) == 0)
            return &settings[i];
    return NULL;
}

static enum kd_err
set_value(struct kd_config *cfg, const struct setting *s, const char *value, const char *origin,
          char *errbuf, size_t errbuf_len)
{
    if (s->type == T_STR) {
        char *copy = strdup(value);

        if (copy == NULL)
            return KD_ENOMEM;
        /* A secret overridden (file, then environment) is wiped, not just freed. */
        if (s->secret && *str_field(cfg, s) != NULL)
            explicit_bzero(*str_field(cfg, s), strlen(*str_field(cfg, s)));
        free(*str_field(cfg, s));
        *str_field(cfg, s) = copy;
        return KD_OK;
    }
    int64_t v;

    if (kd_parse_size(value, false, s->max, &v) != KD_OK || v < s->min) {
        snprintf(errbuf, errbuf_len, "%s: %s = \"%.64s\": expected an integer in %lld..%lld",
                 origin, s->key, value, (long long)s->min, (long long)s->max);
        return KD_EINVAL;
    }
    *int_field(cfg, s) = v;
    return KD_OK;
}

/* Reads the content of a secret file: the value without its trailing newline. */
static enum kd_err
set_from_file(struct kd_config *cfg, const struct setting *s, const char *path, const char *origin,
              char *errbuf, size_t errbuf_len)
{
    char *text = NULL;
    size_t len = 0;
    enum kd_err rc;

    if ((rc = kd_read_file(path, 64 * 1024, &text, &len)) != KD_OK) {
        snprintf(errbuf, errbuf_len, "%s: %s_file: cannot read %.200s", origin, s->key, path);
        return rc == KD_ENOMEM ? rc : KD_EINVAL;
    }
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    /* A NUL would cut the secret short without a word (random bytes often hold one). */
    if (memchr(text, '\0', len) != NULL) {
        snprintf(errbuf, errbuf_len, "%s: %s_file: %.200s contains a NUL byte", origin, s->key,
                 path);
        rc = KD_EINVAL;
    } else {
        rc = set_value(cfg, s, text, origin, errbuf, errbuf_len);
    }
    explicit_bzero(text, len);
    free(text);
    return rc;
}

static char *
trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* Looks up key, accepting "<secret key>_file" too; *is_file tells which. */
static const struct setting *
find_key(const char *key, bool *is_file)
{
    const struct setting *s = find(key);
    size_t len = strlen(key);
    char base[64];

    *is_file = false;
    if (s != NULL)
        return s;
    if (len > 5 && len < sizeof(base) && strcmp(key + len - 5, "_file") == 0) {
        memcpy(base, key, len - 5);
        base[len - 5] = '\0';
        if ((s = find(base)) != NULL && s->file_ok) {
            *is_file = true;
            return s;
        }
    }
    return NULL;
}

static enum kd_err
load_file(struct kd_config *cfg, const char *path, char *errbuf, size_t errbuf_len)
{
    char *text = NULL, *line, *next;
    char origin[300];
    size_t len = 0;
    int lineno = 0;
    enum kd_err rc;

    if ((rc = kd_read_file(path, 1024 * 1024, &text, &len)) != KD_OK) {
        snprintf(errbuf, errbuf_len, "cannot read the configuration file %.200s", path);
        return rc == KD_ENOMEM ? rc : KD_EINVAL;
    }
    /* A NUL would silently end the text early: every later line ignored. */
    if (memchr(text, '\0', len) != NULL) {
        snprintf(errbuf, errbuf_len, "%.200s: contains a NUL byte", path);
        rc = KD_EINVAL;
        goto out;
    }
    /* Split by hand: strtok_r would merge blank lines and miscount lines. */
    for (line = text; line != NULL; line = next) {
        const struct setting *s;
        char *eq, *key, *value;
        bool is_file;

        if ((next = strchr(line, '\n')) != NULL)
            *next++ = '\0';
        lineno++;
        line = trim(line);
        if (*line == '\0' || *line == '#')
            continue;
        snprintf(origin, sizeof(origin), "%.200s line %d", path, lineno);
        if ((eq = strchr(line, '=')) == NULL) {
            snprintf(errbuf, errbuf_len, "%s: expected \"key = value\"", origin);
            rc = KD_EINVAL;
            goto out;
        }
        *eq = '\0';
        key = trim(line);
        value = trim(eq + 1);
        /* A value may be quoted to keep leading or trailing blanks. */
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        if ((s = find_key(key, &is_file)) == NULL) {
            snprintf(errbuf, errbuf_len, "%s: unknown key \"%.64s\"", origin, key);
            rc = KD_EINVAL;
            goto out;
        }
        rc = is_file ? set_from_file(cfg, s, value, origin, errbuf, errbuf_len)
                     : set_value(cfg, s, value, origin, errbuf, errbuf_len);
        if (rc != KD_OK)
            goto out;
    }
    rc = KD_OK;
out:
    free(text);
    return rc;
}

static void
env_name(const char *key, const char *suffix, char *out, size_t len)
{
    size_t i = 0;

    i = (size_t)snprintf(out, len, "KADR_");
    for (const char *k = key; *k != '\0' && i + 1 < len; k++)
        out[i++] = (char)toupper((unsigned char)*k);
    out[i] = '\0';
    strncat(out, suffix, len - i - 1);
}

static enum kd_err
load_env(struct kd_config *cfg, char *errbuf, size_t errbuf_len)
{
    char name[96];
    const char *v;
    enum kd_err rc;

    for (size_t i = 0; i < KD_ARRAY_LEN(settings); i++) {
        const struct setting *s = &settings[i];

        if (s->file_ok) {
            env_name(s->key, "_FILE", name, sizeof(name));
            if ((v = getenv(name)) != NULL && *v != '\0' &&
                (rc = set_from_file(cfg, s, v, name, errbuf, errbuf_len)) != KD_OK)
                return rc;
        }
        env_name(s->key, "", name, sizeof(name));
        if ((v = getenv(name)) != NULL &&
            (rc = set_value(cfg, s, v, name, errbuf, errbuf_len)) != KD_OK)
            return rc;
    }
    return KD_OK;
}

/* Checks that span more than one key or are not ranges. */
static enum kd_err
validate(const struct kd_config *cfg, char *errbuf, size_t errbuf_len)
{
    if (strcmp(cfg->storage_backend, "local") != 0 && strcmp(cfg->storage_backend, "s3") != 0) {
        snprintf(errbuf, errbuf_len, "storage_backend = \"%.32s\": expected local or s3",
                 cfg->storage_backend);
        return KD_EINVAL;
    }
    if (strcmp(cfg->storage_backend, "s3") == 0) {
        if (strncmp(cfg->s3_endpoint, "http://", 7) != 0 &&
            strncmp(cfg->s3_endpoint, "https://", 8) != 0) {
            snprintf(errbuf, errbuf_len, "s3_endpoint = \"%.64s\": expected an http(s) URL",
                     cfg->s3_endpoint);
            return KD_EINVAL;
        }
        if (cfg->s3_public_endpoint[0] != '\0' &&
            strncmp(cfg->s3_public_endpoint, "http://", 7) != 0 &&
            strncmp(cfg->s3_public_endpoint, "https://", 8) != 0) {
            snprintf(errbuf, errbuf_len, "s3_public_endpoint = \"%.64s\": expected an http(s) URL",
                     cfg->s3_public_endpoint);
            return KD_EINVAL;
        }
        if (cfg->s3_bucket[0] == '\0' || cfg->s3_access_key[0] == '\0' ||
            cfg->s3_secret_key[0] == '\0') {
            snprintf(errbuf, errbuf_len,
                     "storage_backend = s3 needs s3_bucket, s3_access_key "
                     "and s3_secret_key");
            return KD_EINVAL;
        }
    }
    if (kd_log_level_parse(cfg->log_level) < 0) {
        snprintf(errbuf, errbuf_len, "log_level = \"%.32s\": expected debug, info, warn or error",
                 cfg->log_level);
        return KD_EINVAL;
    }
    if (strncmp(cfg->public_url, "http://", 7) != 0 &&
        strncmp(cfg->public_url, "https://", 8) != 0) {
        snprintf(errbuf, errbuf_len, "public_url = \"%.64s\": expected an http(s) URL",
                 cfg->public_url);
        return KD_EINVAL;
    }
    if (cfg->url_signing_secret[0] != '\0' && strlen(cfg->url_signing_secret) < 32) {
        snprintf(errbuf, errbuf_len, "url_signing_secret: at least 32 bytes are needed");
        return KD_EINVAL;
    }
    if (cfg->jwt_secret[0] != '\0' && strlen(cfg->jwt_secret) < 32) {
        snprintf(errbuf, errbuf_len, "jwt_secret: at least 32 bytes are needed");
        return KD_EINVAL;
    }
    if (128 * cfg->password_scrypt_r * (INT64_C(1) << cfg->password_scrypt_log2n) >
        512 * 1024 * 1024) {
        snprintf(errbuf, errbuf_len,
                 "password_scrypt_log2n and password_scrypt_r: 128 * r * 2^log2n exceeds 512 MiB");
        return KD_EINVAL;
    }
    if (cfg->limits.max_pixels > cfg->limits.max_width * cfg->limits.max_height) {
        snprintf(errbuf, errbuf_len, "max_pixels exceeds max_width * max_height");
        return KD_EINVAL;
    }
    return KD_OK;
}

enum kd_err
kd_config_load(const char *path, struct kd_config **out, char *errbuf, size_t errbuf_len)
{
    struct kd_config *cfg = NULL;
    enum kd_err rc;

    errbuf[0] = '\0';
    if ((cfg = calloc(1, sizeof(*cfg))) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < KD_ARRAY_LEN(settings); i++)
        if ((rc = set_value(cfg, &settings[i], settings[i].def, "default", errbuf, errbuf_len)) !=
            KD_OK)
            goto out;
    if (path == NULL || *path == '\0')
        path = getenv("KADR_CONFIG");
    if (path != NULL && *path != '\0' && (rc = load_file(cfg, path, errbuf, errbuf_len)) != KD_OK)
        goto out;
    if ((rc = load_env(cfg, errbuf, errbuf_len)) != KD_OK)
        goto out;
    if ((rc = validate(cfg, errbuf, errbuf_len)) != KD_OK)
        goto out;
    *out = cfg;
    cfg = NULL;
out:
    if (rc == KD_ENOMEM && errbuf[0] == '\0')
        snprintf(errbuf, errbuf_len, "out of memory while loading the configuration");
    kd_config_free(cfg);
    return rc;
}

void
kd_config_free(struct kd_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < KD_ARRAY_LEN(settings); i++) {
        if (settings[i].type != T_STR)
            continue;
        char *v = *str_field(cfg, &settings[i]);

        if (v != NULL && settings[i].secret)
            explicit_bzero(v, strlen(v));
        free(v);
    }
    free(cfg);
}

/* database_url is no secret as a whole, but may carry one: a URI's
 * "user:password@" or a "password=" keyword (also in a URI's query). The dump
 * keeps the rest, which is what an operator checks, and masks those. */
static void
dump_conninfo(FILE *f, const char *v)
{
    const char *p = v, *scheme_end = strstr(v, "://");

    if (scheme_end != NULL) {
        const char *auth = scheme_end + 3, *at = NULL, *colon;
        size_t alen = strcspn(auth, "/?");

        for (const char *c = auth; c < auth + alen; c++)
            if (*c == '@')
                at = c;
        if (at != NULL && (colon = memchr(auth, ':', (size_t)(at - auth))) != NULL) {
            fwrite(v, 1, (size_t)(colon + 1 - v), f);
            fputs("***", f);
            p = at;
        }
    }
    while (*p != '\0') {
        const char *m = strstr(p, "password"), *c;

        if (m == NULL) {
            fputs(p, f);
            break;
        }
        c = m + strlen("password");
        while (*c == ' ' || *c == '\t')
            c++;
        if (*c != '=') {
            fwrite(p, 1, (size_t)(c - p), f);
            p = c;
            continue;
        }
        c++;
        while (*c == ' ' || *c == '\t')
            c++;
        fwrite(p, 1, (size_t)(c - p), f);
        fputs("***", f);
        if (*c == '\'') { /* libpq quoting: '...' with backslash escapes */
            for (c++; *c != '\0' && *c != '\''; c++)
                if (*c == '\\' && c[1] != '\0')
                    c++;
            if (*c == '\'')
                c++;
        } else {
            while (*c != '\0' && !isspace((unsigned char)*c) && *c != '&')
                c++;
        }
        p = c;
    }
}

void
kd_config_dump(const struct kd_config *cfg, FILE *f)
{
    struct kd_config *c = (struct kd_config *)cfg; /* read only; the accessors are shared */

    for (size_t i = 0; i < KD_ARRAY_LEN(settings); i++) {
        const struct setting *s = &settings[i];

        if (s->type == T_INT)
            fprintf(f, "%s = %lld\n", s->key, (long long)*int_field(c, s));
        else if (s->secret)
            fprintf(f, "%s = %s\n", s->key, (*str_field(c, s))[0] != '\0' ? "(set)" : "(empty)");
        else if (s->offset == offsetof(struct kd_config, database_url)) {
            fprintf(f, "%s = ", s->key);
            dump_conninfo(f, *str_field(c, s));
            fputc('\n', f);
        } else
            fprintf(f, "%s = %s\n", s->key, *str_field(c, s));
    }
}

void
kd_config_help(FILE *f)
{
    char name[96];

    for (size_t i = 0; i < KD_ARRAY_LEN(settings); i++) {
        const struct setting *s = &settings[i];

        env_name(s->key, "", name, sizeof(name));
        fprintf(f, "%-22s %s", s->key, s->type == T_INT ? "integer" : "string");
        if (s->type == T_INT)
            fprintf(f, " %lld..%lld", (long long)s->min, (long long)s->max);
        fprintf(f, ", default \"%s\", env %s%s\n    %s\n", s->def, name,
                s->secret ? " (secret)" : "", s->help);
        if (s->file_ok)
            fprintf(f, "    may be read from a file: %s_file = PATH or %s_FILE=PATH\n", s->key,
                    name);
    }
}
