/* account.h: what the account handlers (auth.c, me.c, apikeys.c) and the
 * router's limit step (quota.c) share: the audit log and the plan limits.
 * See doc/security.md. */
#ifndef KD_FCGI_ACCOUNT_H
#define KD_FCGI_ACCOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"

/* Records a security event (sql/004 audit_events). user_id, email and addr
 * may be NULL; detail is a JSON object text or NULL. A failure is logged
 * and returned; callers inside a transaction let it abort the work. */
KD_MUST_CHECK enum kd_err kd_audit(struct kd_db *db, const char *event, const char *user_id,
                                   const char *email, const char *addr, const char *detail);

/* The client's address as nginx saw it (REMOTE_ADDR), "" when absent. */
const char *kd_req_addr(const struct kd_req *rq);

/* The limits of a principal's plan; -1 means none (admins). */
struct kd_plan_limits {
    int64_t jobs_per_hour;
    int64_t uploads;       /* unfinished uploads at once */
    int64_t storage_bytes; /* live media, declared sizes of unfinished uploads included */
};

void kd_plan_limits_get(const struct kd_config *cfg, const struct kd_principal *p,
                        struct kd_plan_limits *out);

/* The limit step of a route (router.c): checks the limit before the
 * handler runs and answers 429 with Retry-After itself (KD_EAGAIN then).
 * Holds a per-user advisory lock in *locked from the check until
 * kd_quota_release, so that concurrent requests of one user count exactly. */
enum kd_route_quota {
    KD_QUOTA_NONE = 0,
    KD_QUOTA_JOB,    /* POST /jobs: jobs per hour */
    KD_QUOTA_UPLOAD, /* POST /uploads: unfinished uploads, storage */
};

KD_MUST_CHECK enum kd_err kd_quota_check(struct kd_req *rq, struct kd_resp *rs,
                                         enum kd_route_quota q, bool *locked);
void kd_quota_release(struct kd_req *rq, bool locked);

#endif
