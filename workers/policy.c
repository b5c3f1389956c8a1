#include "policy.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "util.h"

static const char *const final_codes[] = {
    "invalid_input", "invalid_media", "unsupported", "forbidden_input",
    "limit_exceeded", "cancelled",
};

bool
kd_policy_code_final(const char *code)
{
    for (size_t i = 0; code != NULL && i < KD_ARRAY_LEN(final_codes); i++)
        if (strcmp(code, final_codes[i]) == 0)
            return true;
    return false;
}

struct kd_decision
kd_policy_decide(const char *code, int attempt, int max_attempts, bool retries_enabled)
{
    struct kd_decision d = {.fate = KD_FATE_FAIL, .delay_ms = 0};

    if (!retries_enabled || kd_policy_code_final(code) || attempt >= max_attempts)
        return d;
    d.fate = KD_FATE_RETRY;
    /* 30 s, 2 min, 8 min, ...: long enough for a dependency to come back,
     * short enough that a user sees the job move within the hour. */
    d.delay_ms = 30000;
    for (int i = 1; i < attempt && d.delay_ms < 3600000; i++)
        d.delay_ms *= 4;
    if (d.delay_ms > 3600000)
        d.delay_ms = 3600000;
    return d;
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
    snprintf(out, out_len, "the job process was killed by SIG%s%s", name != NULL ? name : "?",
             why);
}
