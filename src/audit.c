/* audit.c: the audit log. See audit.h. */
#include "audit.h"

#include <inttypes.h>

#include "log.h"
#include "util.h"

enum kd_err
kd_audit(struct kd_db *db, const char *event, const char *user_id, const char *email,
         const char *addr, const char *detail)
{
    const char *params[5] = {event, user_id, email, addr != NULL && addr[0] != '\0' ? addr : NULL,
                             detail};
    enum kd_err rc;

    rc = kd_db_query(db,
                     "INSERT INTO audit_events (event, user_id, email, addr, detail) "
                     "VALUES ($1, $2::uuid, $3, $4, $5::jsonb)",
                     5, params, NULL);
    if (rc != KD_OK)
        kd_log(KD_LOG_ERROR, "audit: could not record %s: %s", event, kd_err_name(rc));
    return rc;
}

enum kd_err
kd_audit_expire(struct kd_db *db, int64_t retention_days, int64_t *n_out)
{
    struct kd_dbres *res = NULL;
    char days[24];
    enum kd_err rc;

    if ((rc = kd_snprintf(days, sizeof(days), "%" PRId64, retention_days)) != KD_OK)
        goto out;
    const char *params[] = {days};
    if ((rc = kd_db_query(
             db, "DELETE FROM audit_events WHERE at < now() - $1::bigint * interval '1 day'", 1,
             params, &res)) != KD_OK)
        goto out;
    *n_out = kd_dbres_affected(res);
out:
    kd_dbres_free(res);
    return rc;
}
