/* plan.h: the limits of a user's plan (doc/security.md), from the
 * configuration: jobs per hour (free 5, premium 50, and at most
 * jobs_per_hour_cap for every plan), unfinished uploads at once, and bytes
 * of storage. Admins have none. Any plan name other than "premium" gets the
 * free limits: a plan kadrctl was given by mistake must not mean no limits. */
#ifndef KD_PLAN_H
#define KD_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

/* -1 means no limit (admins). */
struct kd_plan_limits {
    int64_t jobs_per_hour; /* jobs created or retried within the last hour */
    int64_t uploads;       /* unfinished uploads at once */
    int64_t storage_bytes; /* live media, declared sizes of unfinished uploads included */
};

void kd_plan_limits_get(const struct kd_config *cfg, const char *plan, bool is_admin,
                        struct kd_plan_limits *out);

#endif
