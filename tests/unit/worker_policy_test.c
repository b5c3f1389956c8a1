/* Unit tests of workers/policy.c: final or retry, backoff, exit wording. */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "policy.h"

START_TEST(input_errors_are_final)
{
    ck_assert(kd_policy_code_final("invalid_input"));
    ck_assert(kd_policy_code_final("invalid_media"));
    ck_assert(kd_policy_code_final("unsupported"));
    ck_assert(kd_policy_code_final("forbidden_input"));
    ck_assert(kd_policy_code_final("cancelled"));
    ck_assert(!kd_policy_code_final("internal"));
    ck_assert(!kd_policy_code_final("timeout"));
    ck_assert(!kd_policy_code_final(NULL));
}
END_TEST

START_TEST(decide)
{
    struct kd_decision d;

    d = kd_policy_decide("internal", 1, 3, 0);
    ck_assert_int_eq(d.fate, KD_FATE_RETRY);
    ck_assert(!d.dead_letter);
    ck_assert_int_eq(d.delay_ms, 0);
    /* Full jitter: 0 up to the ceiling, inclusive. */
    d = kd_policy_decide("internal", 1, 3, 5000);
    ck_assert_int_eq(d.delay_ms, 5000);
    d = kd_policy_decide("internal", 1, 3, 5001);
    ck_assert_int_eq(d.delay_ms, 0);
    d = kd_policy_decide("timeout", 2, 3, UINT64_MAX);
    ck_assert_int_eq(d.fate, KD_FATE_RETRY);
    ck_assert_int_le(d.delay_ms, 10000);
    /* Out of attempts: a dead letter. */
    d = kd_policy_decide("timeout", 3, 3, 7);
    ck_assert_int_eq(d.fate, KD_FATE_FAIL);
    ck_assert(d.dead_letter);
    /* Final codes fail at once and are no dead letters. */
    d = kd_policy_decide("invalid_media", 1, 3, 7);
    ck_assert_int_eq(d.fate, KD_FATE_FAIL);
    ck_assert(!d.dead_letter);
    d = kd_policy_decide("cancelled", 3, 3, 7);
    ck_assert(!d.dead_letter);
    d = kd_policy_decide("internal", 9, 10, UINT64_MAX - 1);
    ck_assert_int_eq(d.fate, KD_FATE_RETRY);
    ck_assert_int_le(d.delay_ms, KD_POLICY_RETRY_CAP_MS);
}
END_TEST

START_TEST(retry_ceiling_doubles_up_to_ten_minutes)
{
    ck_assert_int_eq(kd_policy_retry_ceiling_ms(1), 5000);
    ck_assert_int_eq(kd_policy_retry_ceiling_ms(2), 10000);
    ck_assert_int_eq(kd_policy_retry_ceiling_ms(3), 20000);
    ck_assert_int_eq(kd_policy_retry_ceiling_ms(7), 320000);
    ck_assert_int_eq(kd_policy_retry_ceiling_ms(8), 600000);
    ck_assert_int_eq(kd_policy_retry_ceiling_ms(1000), 600000);
}
END_TEST

START_TEST(backoff_doubles_up_to_its_cap)
{
    ck_assert_int_eq(kd_policy_backoff_ms(1, 100, 5000), 100);
    ck_assert_int_eq(kd_policy_backoff_ms(2, 100, 5000), 200);
    ck_assert_int_eq(kd_policy_backoff_ms(6, 100, 5000), 3200);
    ck_assert_int_eq(kd_policy_backoff_ms(7, 100, 5000), 5000);
    ck_assert_int_eq(kd_policy_backoff_ms(1000000, 100, 5000), 5000);
    ck_assert_int_eq(kd_policy_backoff_ms(0, 100, 5000), 100);
}
END_TEST

START_TEST(unavailable_delay_stays_in_its_band)
{
    /* never immediate (no spinning while the store is away), never long */
    ck_assert_int_eq(kd_policy_unavailable_delay_ms(0), KD_POLICY_UNAVAILABLE_MS / 2);
    for (uint64_t r = 1; r < 100000; r = r * 3 + 7) {
        int64_t d = kd_policy_unavailable_delay_ms(r);

        ck_assert_int_ge(d, KD_POLICY_UNAVAILABLE_MS / 2);
        ck_assert_int_le(d, KD_POLICY_UNAVAILABLE_MS);
    }
    ck_assert_int_le(kd_policy_unavailable_delay_ms(UINT64_MAX), KD_POLICY_UNAVAILABLE_MS);
}
END_TEST

START_TEST(describes_how_a_child_ended)
{
    char m[200];

    kd_policy_describe_exit(W_EXITCODE(3, 0), m, sizeof(m));
    ck_assert(strstr(m, "status 3") != NULL);
    kd_policy_describe_exit(W_EXITCODE(0, SIGSEGV), m, sizeof(m));
    ck_assert(strstr(m, "SIGSEGV") != NULL);
    ck_assert(strstr(m, "resource limit") == NULL);
    kd_policy_describe_exit(W_EXITCODE(0, SIGXCPU), m, sizeof(m));
    ck_assert(strstr(m, "SIGXCPU") != NULL);
    ck_assert(strstr(m, "resource limit") != NULL);
    kd_policy_describe_exit(W_EXITCODE(0, SIGKILL), m, sizeof(m));
    ck_assert(strstr(m, "SIGKILL") != NULL);
    ck_assert(strstr(m, "resource limit") != NULL);
    kd_policy_describe_exit(W_EXITCODE(0, SIGXFSZ), m, sizeof(m));
    ck_assert(strstr(m, "file size") != NULL);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("worker_policy");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, input_errors_are_final);
    tcase_add_test(tc, decide);
    tcase_add_test(tc, retry_ceiling_doubles_up_to_ten_minutes);
    tcase_add_test(tc, backoff_doubles_up_to_its_cap);
    tcase_add_test(tc, unavailable_delay_stays_in_its_band);
    tcase_add_test(tc, describes_how_a_child_ended);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
