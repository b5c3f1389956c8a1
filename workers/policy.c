#include "policy.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "util.h"

static const char *const final_codes[] = {
    "invalid_input",   "invalid_media",  "unsupported",
    "forbidden_input", "limit_exceeded", "cancelled",
};

bool
kd_policy_code_final(const char *code)
{
    for (size_t i = 0; code != NULL && i < KD_ARRAY_LEN(final_codes); i++)
        if (strcmp(code, final_codes[i]) == 0)
            return true;
    return false;
}

int64_t
kd_policy_retry_ceiling_ms(int attempt)
{
    int64_t d = KD_POLICY_RETRY_BASE_MS;

    for (int i = 1; i < attempt && d < KD_POLICY_RETRY_CAP_MS; i++)
        d *= 2;
    return d < KD_POLICY_RETRY_CAP_MS ? d : KD_POLICY_RETRY_CAP_MS;
}

struct kd_decision
kd_policy_decide(const char *code, int attempt, int max_attempts, uint64_t rnd)
{
    struct kd_decision d = {.fate = KD_FATE_FAIL, .dead_letter = false, .delay_ms = 0};

    if (kd_policy_code_final(code))
        return d;
    if (attempt >= max_attempts) {
        d.dead_letter = true;
        return d;
    }
    d.fate = KD_FATE_RETRY;
    d.delay_ms = (int64_t)(rnd % (uint64_t)(kd_policy_retry_ceiling_ms(attempt) + 1));
    return d;
}

int64_t
kd_policy_unavailable_delay_ms(uint64_t rnd)
{
    const int64_t half = KD_POLICY_UNAVAILABLE_MS / 2;

    return half + (int64_t)(rnd % (uint64_t)(half + 1));
}

int64_t
kd_policy_backoff_ms(int failures, int64_t base_ms, int64_t max_ms)
{
    int64_t d = base_ms > 0 ? base_ms : 1;

    for (int i = 1; i < failures && d < max_ms; i++)
        d *= 2;
    return d < max_ms ? d : max_ms;
}

void
kd_policy_describe_exit(int wstatus, char *out, size_t out_len)
{
    if (WIFEXITED(wstatus)) {
        snprintf(out, out_len, "the job process exited with status %d without a result",
                 WEXITSTATUS(wstatus));
        return;
    }
    if (!WIFSIGNALED(wstatus)) {
        snprintf(out, out_len, "the job process ended in an unknown way (status %#x)", wstatus);
        return;
    }
    int sig = WTERMSIG(wstatus);
    const char *name = sigabbrev_np(sig);
    const char *why = "";

    /* RLIMIT_CPU sends SIGXCPU at the soft limit and SIGKILL at the hard
     * one; the kernel's OOM killer and RLIMIT_AS exhaustion in a thread
     * that cannot report it end the same way. */
    if (sig == SIGXCPU)
        why = " (resource limit: CPU time)";
    else if (sig == SIGXFSZ)
        why = " (resource limit: file size)";
    else if (sig == SIGKILL)
        why = " (resource limit: memory or CPU time, or killed by the system)";
    snprintf(out, out_len, "the job process was killed by SIG%s%s", name != NULL ? name : "?", why);
}
