/* cleanup.c: housekeeping of the account tables. See cleanup.h.
 *
 * What may go, and why nothing is lost by it:
 *   - a refresh token past expires_at can no longer be refreshed; the one
 *     thing it still did was tell a replay (reuse detection), and a replay
 *     of an expired token is refused as unknown all the same;
 *   - a session (token family) that is revoked, older than
 *     refresh_family_max_age_s, or has no token left has no way to continue:
 *     its access tokens already fail (src/auth.c checks the family), and
 *     deleting it takes its remaining tokens along (ON DELETE CASCADE);
 *   - audit events older than the retention; the failed-login limits look
 *     back at most a day (login_failure_window_s), the retention is at
 *     least a day;
 *   - job runs older than a day: the jobs-per-hour limit counts one hour. */
#include "cleanup.h"

#include <inttypes.h>

#include "audit.h"
#include "util.h"

static enum kd_err
delete_rows(struct kd_db *db, const char *sql, int nparams, const char *const *params, int64_t *n)
{
    struct kd_dbres *res = NULL;
    enum kd_err rc;

    if ((rc = kd_db_query(db, sql, nparams, params, &res)) == KD_OK)
        *n = kd_dbres_affected(res);
    kd_dbres_free(res);
    return rc;
}

enum kd_err
kd_cleanup_accounts(struct kd_db *db, const struct kd_config *cfg, struct kd_cleanup_counts *out)
{
    struct kd_cleanup_counts n = {0};
    char max_age[24];
    enum kd_err rc;

    if ((rc = kd_snprintf(max_age, sizeof(max_age), "%" PRId64, cfg->refresh_family_max_age_s)) !=
        KD_OK)
        goto out;
    const char *p[] = {max_age};
    if ((rc = delete_rows(db, "DELETE FROM refresh_tokens WHERE expires_at <= now()", 0, NULL,
                          &n.refresh_tokens)) != KD_OK)
        goto out;
    /* The hour of grace on "no token left" is for nothing in particular: a
     * login makes its family and first token in one transaction. */
    if ((rc = delete_rows(db,
                          "DELETE FROM token_families f "
                          " WHERE f.revoked_at IS NOT NULL "
                          "    OR f.created_at + $1::bigint * interval '1 second' <= now() "
                          "    OR (f.created_at < now() - interval '1 hour' "
                          "        AND NOT EXISTS (SELECT 1 FROM refresh_tokens rt "
                          "                         WHERE rt.family_id = f.id))",
                          1, p, &n.sessions)) != KD_OK)
        goto out;
    if ((rc = kd_audit_expire(db, cfg->audit_retention_days, &n.audit_events)) != KD_OK)
        goto out;
    if ((rc = delete_rows(db, "DELETE FROM job_runs WHERE at < now() - interval '1 day'", 0, NULL,
                          &n.job_runs)) != KD_OK)
        goto out;
    *out = n;
out:
    return rc;
}
