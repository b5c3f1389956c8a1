/* policy.h: the worker's decisions that depend on no I/O: whether a failed
 * attempt is final, how long to back off, and how to name a child's end. */
#ifndef KD_WORKER_POLICY_H
#define KD_WORKER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Retrying a failed attempt is switched off until the retry scheduler
 * exists (run_at plus a wake-up of pending jobs); with it off every failure
 * is final and recorded as such. */
#define KD_POLICY_RETRIES_ENABLED false

enum kd_fate { KD_FATE_FAIL, KD_FATE_RETRY };

struct kd_decision {
    enum kd_fate fate;
    int64_t delay_ms;  /* RETRY: run again no earlier than this from now */
};

/* True for the codes that describe the input (invalid_input, invalid_media,
 * unsupported, forbidden_input, limit_exceeded) or a user's decision
 * (cancelled): running again cannot change them. */
bool kd_policy_code_final(const char *code);

/* What to do with an attempt that failed with code: attempt counts from 1.
 * Final codes, the last attempt, or retries disabled -> FAIL. Otherwise
 * RETRY after an exponential delay (30 s, 2 min, 8 min, ... capped at 1 h). */
struct kd_decision kd_policy_decide(const char *code, int attempt, int max_attempts,
                                    bool retries_enabled);

/* Delay before the next try after failures consecutive failures (from 1):
 * base_ms doubled each time, capped at max_ms. */
int64_t kd_policy_backoff_ms(int failures, int64_t base_ms, int64_t max_ms);

/* Describes how a task's child ended, for the job's error message, from its
 * wait status (as waitpid gives it). Signals that resource limits send say
 * so. */
void kd_policy_describe_exit(int wstatus, char *out, size_t out_len);

#endif
