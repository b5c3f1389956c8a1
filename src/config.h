/* config.h: every setting of kadr, from one table.
 *
 * Precedence: built-in defaults < the file (kadr.conf, "key = value" lines,
 * '#' comments) < environment KADR_<KEY> (upper case). A secret key may also
 * be given as <key>_file in the file or KADR_<KEY>_FILE in the environment,
 * naming a file whose content (trailing newline removed) is the value.
 * The defaults alone run the local stack. */
#ifndef KD_CONFIG_H
#define KD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

struct kd_limits {
    int64_t body_max_bytes;       /* API request body cap */
    int64_t upload_max_bytes;     /* largest declared upload */
    int64_t max_inputs;           /* inputs per job */
    int64_t max_layers;           /* layers per job */
    int64_t max_text_bytes;       /* one text layer */
    int64_t max_width;            /* output and input width/height */
    int64_t max_height;
    int64_t max_pixels;           /* per frame */
    int64_t max_duration_s;       /* of an input or an output */
    int64_t max_streams;          /* per input file */
    int64_t max_metadata_bytes;   /* job metadata, serialised */
};

struct kd_config {
    /* services */
    char *database_url;           /* libpq conninfo or URI */
    char *redis_host;
    int64_t redis_port;
    char *redis_socket;           /* unix socket; wins over host/port when set */
    char *redis_password;         /* secret */
    char *redis_prefix;           /* key prefix, e.g. "kadr:" */
    /* storage */
    char *storage_backend;        /* "local" or "s3" */
    char *storage_root;           /* local backend: the directory */
    char *public_url;             /* base URL clients reach nginx at */
    char *url_signing_secret;     /* secret: HMAC key for presigned URLs */
    int64_t upload_url_ttl_s;
    int64_t download_url_ttl_s;
    char *s3_endpoint;            /* s3: "http://host:port" of the S3 API */
    char *s3_public_endpoint;     /* s3: the same as browsers reach it; "" = s3_endpoint */
    char *s3_region;
    char *s3_bucket;
    int64_t s3_path_style;        /* 1: http://endpoint/bucket/key; 0: bucket.host */
    char *s3_access_key;
    char *s3_secret_key;          /* secret */
    int64_t s3_part_size;         /* bytes per multipart part */
    int64_t s3_multipart_threshold; /* larger objects go in parts */
    int64_t s3_timeout_ms;        /* a stalled request fails after this */
    int64_t s3_retries;           /* retries of a transient failure */
    /* api */
    int64_t api_db_timeout_ms;
    char *api_metrics_file;       /* request counters shared by the API processes (stats.h) */
    /* worker */
    int64_t worker_slots;
    char *worker_name;            /* consumer name; default host-pid */
    char *worker_tmp_dir;
    int64_t worker_job_timeout_s; /* wall clock per attempt */
    int64_t worker_mem_limit_mb;  /* address space of a job's child */
    int64_t worker_cpu_limit_s;   /* CPU seconds of a job's child */
    int64_t worker_file_limit_mb; /* largest file a child may write */
    int64_t worker_progress_ms;   /* min interval of progress writes */
    int64_t worker_heartbeat_ms;  /* lease renewal interval */
    int64_t worker_db_timeout_ms; /* statement timeout of the worker's queries */
    int64_t worker_threads;       /* encoder threads per job; 0 = auto */
    int64_t worker_grace_s;       /* SIGTERM: time running jobs may finish */
    int64_t queue_claim_idle_ms;  /* reclaim entries idle this long */
    int64_t job_lease_ms;         /* lease past each heartbeat */
    int64_t queue_aging_s;        /* anti-starvation step */
    int64_t job_max_attempts;     /* default max_attempts of a job */
    int64_t retention_days;
    /* webhooks (kadr-notify) */
    int64_t notify_poll_ms;            /* how often due deliveries are looked for */
    int64_t notify_concurrency;        /* deliveries in flight per notifier */
    int64_t notify_connect_timeout_ms;
    int64_t notify_timeout_ms;         /* whole request, connect included */
    int64_t notify_backoff_base_ms;    /* first retry delay; later ones are multiples */
    int64_t notify_retry_window_s;     /* retry at least this long, then give up */
    int64_t notify_test_short_window;  /* 1: tests may set a window below an hour */
    int64_t notify_allow_private;      /* 1: receivers on private addresses allowed */
    /* accounts and limits (issue #5; doc/security.md) */
    char *jwt_secret;             /* secret: HMAC key of access tokens */
    char *jwt_kid;                /* key id of jwt_secret */
    char *jwt_previous_keys;      /* secret: "kid:secret,..." still verified */
    char *jwt_issuer;
    char *jwt_audience;
    int64_t jwt_ttl_s;            /* access token lifetime */
    int64_t refresh_ttl_s;        /* refresh token lifetime */
    int64_t refresh_family_max_age_s; /* a session ends this long after its login */
    int64_t audit_retention_days;     /* audit_events older than this are deleted */
    int64_t password_scrypt_log2n;
    int64_t password_scrypt_r;
    int64_t password_scrypt_p;
    int64_t login_max_failures;      /* per account within login_failure_window_s */
    int64_t login_max_failures_addr; /* per client address, same window */
    int64_t login_failure_window_s;
    int64_t plan_free_jobs_per_hour;
    int64_t plan_premium_jobs_per_hour;
    int64_t jobs_per_hour_cap;       /* every plan; admins are exempt */
    int64_t plan_free_uploads;       /* concurrent (unfinished) uploads */
    int64_t plan_premium_uploads;
    int64_t plan_free_storage_bytes;
    int64_t plan_premium_storage_bytes;
    int64_t plan_free_max_processing; /* at once; users.max_processing overrides */
    int64_t plan_premium_max_processing;
    char *log_level;
    struct kd_limits limits;
};

/* Loads the defaults, then path (may be NULL: then $KADR_CONFIG, then none),
 * then the environment; validates every value. On failure returns KD_EINVAL
 * and writes one line naming the key, value and allowed range to errbuf. */
KD_MUST_CHECK enum kd_err kd_config_load(const char *path, struct kd_config **out, char *errbuf,
                                         size_t errbuf_len);
void kd_config_free(struct kd_config *cfg);
/* Prints every key with its value (secrets masked) as "key = value" lines. */
void kd_config_dump(const struct kd_config *cfg, FILE *f);
/* Prints every key with its type, range, environment variable and help. */
void kd_config_help(FILE *f);

#endif
