/* audit.h: the audit log of security events (sql/004 audit_events),
 * written by the API (logins, keys, sessions) and by kadrctl (users made or
 * changed, keys, sessions revoked by an operator). See doc/security.md. */
#ifndef KD_AUDIT_H
#define KD_AUDIT_H

#include <stdint.h>

#include "db.h"
#include "err.h"

/* Records one event. user_id, email and addr may be NULL (addr "" counts
 * as NULL); detail is the text of a JSON object or NULL. A failure is
 * logged once and returned; callers inside a transaction let it abort the
 * work, so that no audited change happens unrecorded. */
KD_MUST_CHECK enum kd_err kd_audit(struct kd_db *db, const char *event, const char *user_id,
                                   const char *email, const char *addr, const char *detail);

/* Deletes audit rows older than retention_days; *n_out is how many. The
 * failed-login limits count rows of the last day at most (config.c caps
 * their window), so any retention of a day or more keeps them whole. */
KD_MUST_CHECK enum kd_err kd_audit_expire(struct kd_db *db, int64_t retention_days, int64_t *n_out);

#endif
