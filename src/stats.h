/* stats.h: request counters shared by every kadr-api process of a host.
 *
 * spawn-fcgi runs several API processes that share nothing, yet /metrics,
 * answered by any one of them, must count the requests of all. The
 * counters live in a small file (api_metrics_file) that each process maps
 * MAP_SHARED: counting is one atomic add in memory, with no lock, no round
 * trip and nothing that can be down. The file keeps counting across
 * restarts (Prometheus counters only go up, and handle a reset anyway).
 * Processes on other hosts have their own file: scrape each host. */
#ifndef KD_STATS_H
#define KD_STATS_H

#include <stdint.h>

#include "err.h"

/* What is counted. New counters go at the end: the file's slots keep
 * their meaning across versions. */
enum kd_stat {
    KD_STAT_REQ_1XX,
    KD_STAT_REQ_2XX,
    KD_STAT_REQ_3XX,
    KD_STAT_REQ_4XX,
    KD_STAT_REQ_5XX,
    KD_STAT_UNAUTHORIZED, /* 401: no, a bad or a revoked credential */
    KD_STAT_LIMITED,      /* 429 from the API: a plan limit or a login lockout */
    KD_STAT_ERRORS,       /* 500 and 503: the server failed or a dependency is down */
    KD_STAT_COUNT
};

struct kd_stats;

/* Maps the counter file at path, creating it (mode 0600) when missing.
 * KD_EINVAL: path is not a regular file, or one that is not a counter file;
 * KD_EIO: it cannot be opened, sized or mapped (the error is logged). */
KD_MUST_CHECK enum kd_err kd_stats_open(const char *path, struct kd_stats **out);
void kd_stats_close(struct kd_stats *s); /* NULL is a no-op */

/* Counts one response of HTTP status (its class and, for 401, 429, 500 and
 * 503, its own counter). NULL is a no-op. */
void kd_stats_count_status(struct kd_stats *s, int status);
void kd_stats_add(struct kd_stats *s, enum kd_stat which, uint64_t n);
/* The current value; 0 for NULL. */
uint64_t kd_stats_get(const struct kd_stats *s, enum kd_stat which);

#endif
