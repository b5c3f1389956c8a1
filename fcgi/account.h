/* account.h: what the account handlers (auth.c, me.c, apikeys.c) and the
 * router's limit step (quota.c) share. The audit log (audit.h) and the plan
 * limits (plan.h) live in src/, where kadrctl reaches them too. See
 * doc/security.md. */
#ifndef KD_FCGI_ACCOUNT_H
#define KD_FCGI_ACCOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "audit.h"
#include "http.h"
#include "plan.h"

/* Adds an "unknown field" error to pb for every member of obj not named in
 * allowed (NULL-terminated), as the job spec does: a misspelt member is a
 * mistake to report, not something to ignore. KD_ENOMEM only. */
KD_MUST_CHECK enum kd_err kd_check_members(const json_t *obj, const char *const *allowed,
                                           struct kd_problem *pb);

/* The client's address as nginx saw it (REMOTE_ADDR), "" when absent. */
const char *kd_req_addr(const struct kd_req *rq);

/* The limit step of a route (router.c): checks the limit before the
 * handler runs and answers 429 with Retry-After itself (KD_EAGAIN then).
 * Holds a per-user advisory lock in *locked from the check until
 * kd_quota_release, so that concurrent requests of one user count exactly. */
enum kd_route_quota {
    KD_QUOTA_NONE = 0,
    KD_QUOTA_JOB,    /* POST /jobs: jobs per hour, storage */
    KD_QUOTA_RETRY,  /* POST /jobs/{id}/retry: the same, for a job that will run */
    KD_QUOTA_UPLOAD, /* POST /uploads: unfinished uploads, storage */
};

KD_MUST_CHECK enum kd_err kd_quota_check(struct kd_req *rq, struct kd_resp *rs,
                                         enum kd_route_quota q, bool *locked);
void kd_quota_release(struct kd_req *rq, bool locked);

#endif
