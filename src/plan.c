/* plan.c: plan limits. See plan.h. */
#include "plan.h"

#include <string.h>

void
kd_plan_limits_get(const struct kd_config *cfg, const char *plan, bool is_admin,
                   struct kd_plan_limits *out)
{
    bool premium = plan != NULL && strcmp(plan, "premium") == 0;

    if (is_admin) {
        out->jobs_per_hour = out->uploads = out->storage_bytes = -1;
        return;
    }
    out->jobs_per_hour = premium ? cfg->plan_premium_jobs_per_hour : cfg->plan_free_jobs_per_hour;
    if (out->jobs_per_hour > cfg->jobs_per_hour_cap)
        out->jobs_per_hour = cfg->jobs_per_hour_cap;
    out->uploads = premium ? cfg->plan_premium_uploads : cfg->plan_free_uploads;
    out->storage_bytes = premium ? cfg->plan_premium_storage_bytes : cfg->plan_free_storage_bytes;
}
