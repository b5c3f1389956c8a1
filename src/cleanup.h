/* cleanup.h: housekeeping of the account tables, which otherwise only grow:
 * expired refresh tokens, ended sessions (token families), audit events
 * past audit_retention_days and job runs (sql/007) too old for any limit.
 * kadr-scheduler runs it every hour; `kadrctl cleanup` runs it at once.
 * See doc/security.md. */
#ifndef KD_CLEANUP_H
#define KD_CLEANUP_H

#include <stdint.h>

#include "config.h"
#include "db.h"
#include "err.h"

struct kd_cleanup_counts {
    int64_t refresh_tokens; /* expired */
    int64_t sessions;       /* revoked, past their maximum age, or with no live token */
    int64_t audit_events;   /* older than audit_retention_days */
    int64_t job_runs;       /* older than a day */
};

/* Deletes what has no use left; each table in its own statement, so a
 * failure half way keeps what was done. *out is set on success. */
KD_MUST_CHECK enum kd_err kd_cleanup_accounts(struct kd_db *db, const struct kd_config *cfg,
                                              struct kd_cleanup_counts *out);

#endif
