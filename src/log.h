/* log.h: structured logging, one JSON object per line on stderr.
 *
 * Each line: {"time","level","program","pid","request_id","job_id",
 * ["attempt",] "message"}; request_id and job_id are null outside a request
 * or a job. The context
 * (request id, job id) is per process: set it at the start of a request or
 * job and clear it after. Messages are escaped; callers cap user text. */
#ifndef KD_LOG_H
#define KD_LOG_H

#include <stdarg.h>

enum kd_log_level { KD_LOG_DEBUG, KD_LOG_INFO, KD_LOG_WARN, KD_LOG_ERROR };

/* prog names the program in every line; min_level filters. */
void kd_log_init(const char *prog, enum kd_log_level min_level);
/* Parses "debug", "info", "warn", "error"; -1 if none of them. */
int kd_log_level_parse(const char *s);
void kd_log_set_request(const char *request_id); /* NULL clears */
void kd_log_set_job(const char *job_id, int attempt); /* NULL clears */

void kd_log(enum kd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like kd_log, adding ": <strerror(err)>" for a saved errno value. */
void kd_log_errno(enum kd_log_level level, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kd_vlog(enum kd_log_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif
