#include "err.h"

#include <stddef.h>

/* One table keeps the three views of an error in step. */
static const struct {
    const char *name;
    int http;
    const char *job_code;
} table[] = {
    [KD_OK] = {"OK", 200, NULL},
    [KD_ENOMEM] = {"ENOMEM", 500, "internal"},
    [KD_EINVAL] = {"EINVAL", 422, "invalid_input"},
    [KD_ENOTFOUND] = {"ENOTFOUND", 404, "invalid_input"},
    [KD_ECONFLICT] = {"ECONFLICT", 409, "internal"},
    [KD_ELIMIT] = {"ELIMIT", 429, "limit_exceeded"},
    [KD_EAGAIN] = {"EAGAIN", 503, "internal"},
    [KD_EUNAVAIL] = {"EUNAVAIL", 503, "internal"},
    [KD_ETIMEOUT] = {"ETIMEOUT", 504, "timeout"},
    [KD_ECANCELED] = {"ECANCELED", 409, "cancelled"},
    [KD_EIO] = {"EIO", 500, "internal"},
    [KD_EFORBIDDEN] = {"EFORBIDDEN", 403, "forbidden_input"},
    [KD_EUNSUPPORTED] = {"EUNSUPPORTED", 422, "unsupported"},
    [KD_EMEDIA] = {"EMEDIA", 422, "invalid_media"},
    [KD_EINTERNAL] = {"EINTERNAL", 500, "internal"},
};

static int
valid(enum kd_err e)
{
    return (unsigned)e < sizeof(table) / sizeof(table[0]) && table[e].name != NULL;
}

const char *
kd_err_name(enum kd_err e)
{
    return valid(e) ? table[e].name : "EUNKNOWN";
}

int
kd_err_http_status(enum kd_err e)
{
    return valid(e) ? table[e].http : 500;
}

const char *
kd_err_job_code(enum kd_err e)
{
    if (!valid(e) || table[e].job_code == NULL)
        return "internal";
    return table[e].job_code;
}
