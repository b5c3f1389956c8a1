/* policy.h: the worker's decisions that depend on no I/O: whether a failed
 * attempt is final, how long to back off, and how to name a child's end. */
#ifndef KD_WORKER_POLICY_H
#define KD_WORKER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Retries: the ceiling of the delay before attempt n+1 is base * 2^(n-1),
 * at most the cap; the delay is drawn uniformly from 0 up to that ceiling
 * ("full jitter"), so jobs that failed together (a dependency went down)
 * do not come back together. */
#define KD_POLICY_RETRY_BASE_MS 5000
#define KD_POLICY_RETRY_CAP_MS  (10 * 60 * 1000)

/* A task handed back because the store did not answer comes again after
 * a delay drawn from [base/2, base]: long enough not to spin while the
 * store is away, short enough to follow soon after it returns. */
#define KD_POLICY_UNAVAILABLE_MS 10000

enum kd_fate { KD_FATE_FAIL, KD_FATE_RETRY };

struct kd_decision {
    enum kd_fate fate;
    bool dead_letter; /* FAIL of a retryable failure: out of attempts */
    int64_t delay_ms; /* RETRY: run again no earlier than this from now */
};

/* True for the codes that describe the input (invalid_input, invalid_media,
 * unsupported, forbidden_input, limit_exceeded) or a user's decision
 * (cancelled): running again cannot change them. */
bool kd_policy_code_final(const char *code);

/* What to do with an attempt that failed with code: attempt counts from 1.
 * Final codes fail at once; a retryable one (internal, timeout, storage or
 * database trouble: anything not final) is retried after a jittered
 * exponential delay drawn with rnd (any random 64-bit value) while attempts
 * are left, and becomes a dead letter on the last attempt. */
struct kd_decision kd_policy_decide(const char *code, int attempt, int max_attempts, uint64_t rnd);

/* The delay before a task handed back for an unavailable store runs
 * again (no attempt is counted for it), drawn with rnd. */
int64_t kd_policy_unavailable_delay_ms(uint64_t rnd);

/* The ceiling of the jittered delay after attempt (from 1). */
int64_t kd_policy_retry_ceiling_ms(int attempt);

/* Delay before the next try after failures consecutive failures (from 1):
 * base_ms doubled each time, capped at max_ms. */
int64_t kd_policy_backoff_ms(int failures, int64_t base_ms, int64_t max_ms);

/* Describes how a task's child ended, for the job's error message, from its
 * wait status (as waitpid gives it). Signals that resource limits send say
 * so. */
void kd_policy_describe_exit(int wstatus, char *out, size_t out_len);

#endif
