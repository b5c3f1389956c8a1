/* Unit tests of src/util.c and src/problem.c. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "problem.h"
#include "util.h"

START_TEST(buf_caps_and_grows)
{
    struct kd_buf b;

    kd_buf_init(&b, 10);
    ck_assert_int_eq(kd_buf_puts(&b, "hello"), KD_OK);
    ck_assert_int_eq(kd_buf_printf(&b, "%d", 12345), KD_OK);
    ck_assert_str_eq(b.data, "hello12345");
    ck_assert_uint_eq(b.len, 10);
    /* One byte over the cap is refused and leaves the contents alone. */
    ck_assert_int_eq(kd_buf_puts(&b, "x"), KD_ELIMIT);
    ck_assert_str_eq(b.data, "hello12345");
    char *s = kd_buf_take(&b);
    ck_assert_str_eq(s, "hello12345");
    ck_assert_ptr_null(b.data);
    free(s);
    kd_buf_clear(&b);
}
END_TEST

/* cap == SIZE_MAX means "no cap of ours": cap + 1 must not wrap to a
 * zero-byte allocation that the append then overruns. */
START_TEST(buf_without_cap)
{
    struct kd_buf b;

    kd_buf_init(&b, SIZE_MAX);
    ck_assert_int_eq(kd_buf_puts(&b, "hello"), KD_OK);
    ck_assert_uint_ge(b.alloc, 6);
    ck_assert_int_eq(kd_buf_printf(&b, " %s", "world"), KD_OK);
    ck_assert_str_eq(b.data, "hello world");
    kd_buf_clear(&b);
}
END_TEST

START_TEST(parse_i64_strict)
{
    int64_t v = 7;

    ck_assert_int_eq(kd_parse_i64("42", 0, 100, &v), KD_OK);
    ck_assert_int_eq(v, 42);
    ck_assert_int_eq(kd_parse_i64("-5", -10, 10, &v), KD_OK);
    ck_assert_int_eq(v, -5);
    v = 7;
    ck_assert_int_eq(kd_parse_i64("101", 0, 100, &v), KD_EINVAL);
    ck_assert_int_eq(kd_parse_i64("", 0, 100, &v), KD_EINVAL);
    ck_assert_int_eq(kd_parse_i64(" 4", 0, 100, &v), KD_EINVAL);
    ck_assert_int_eq(kd_parse_i64("4 ", 0, 100, &v), KD_EINVAL);
    ck_assert_int_eq(kd_parse_i64("4x", 0, 100, &v), KD_EINVAL);
    ck_assert_int_eq(kd_parse_i64("99999999999999999999", 0, INT64_MAX, &v), KD_EINVAL);
    ck_assert_int_eq(kd_parse_i64(NULL, 0, 100, &v), KD_EINVAL);
    ck_assert_int_eq(v, 7); /* untouched on failure */
}
END_TEST

START_TEST(parse_size_suffixes)
{
    int64_t v;

    ck_assert_int_eq(kd_parse_size("128k", true, INT64_MAX, &v), KD_OK);
    ck_assert_int_eq(v, 128000);
    ck_assert_int_eq(kd_parse_size("2M", true, INT64_MAX, &v), KD_OK);
    ck_assert_int_eq(v, 2000000);
    ck_assert_int_eq(kd_parse_size("1m", false, INT64_MAX, &v), KD_OK);
    ck_assert_int_eq(v, 1048576);
    ck_assert_int_eq(kd_parse_size("5G", false, INT64_MAX, &v), KD_OK);
    ck_assert_int_eq(v, 5LL * 1024 * 1024 * 1024);
    ck_assert_int_eq(kd_parse_size("-1k", true, INT64_MAX, &v), KD_EINVAL);
    ck_assert_int_eq(kd_parse_size("k", true, INT64_MAX, &v), KD_EINVAL);
    ck_assert_int_eq(kd_parse_size("9999999999999999999G", false, INT64_MAX, &v), KD_EINVAL);
    ck_assert_int_eq(kd_parse_size("2k", true, 1999, &v), KD_EINVAL);
}
END_TEST

START_TEST(parse_double_finite)
{
    double d;

    ck_assert_int_eq(kd_parse_double("2.5", 0, 10, &d), KD_OK);
    ck_assert(fabs(d - 2.5) < 1e-12);
    ck_assert_int_eq(kd_parse_double("nan", 0, 10, &d), KD_EINVAL);
    ck_assert_int_eq(kd_parse_double("inf", 0, 1e308, &d), KD_EINVAL);
    ck_assert_int_eq(kd_parse_double("1e999", 0, 1e308, &d), KD_EINVAL);
    ck_assert_int_eq(kd_parse_double("11", 0, 10, &d), KD_EINVAL);
}
END_TEST

START_TEST(checked_arithmetic)
{
    size_t r;

    ck_assert(kd_add_size(1, 2, &r) && r == 3);
    ck_assert(!kd_add_size(SIZE_MAX, 1, &r));
    ck_assert(kd_mul_size(1 << 20, 1 << 10, &r) && r == (size_t)1 << 30);
    ck_assert(!kd_mul_size(SIZE_MAX / 2 + 1, 2, &r));
}
END_TEST

START_TEST(snprintf_truncation)
{
    char small[4];

    ck_assert_int_eq(kd_snprintf(small, sizeof(small), "%s", "abc"), KD_OK);
    ck_assert_int_eq(kd_snprintf(small, sizeof(small), "%s", "abcd"), KD_ELIMIT);
}
END_TEST

START_TEST(uuid_form)
{
    char a[KD_UUID_STRLEN + 1], b[KD_UUID_STRLEN + 1];

    ck_assert_int_eq(kd_uuid_new(a), KD_OK);
    ck_assert_int_eq(kd_uuid_new(b), KD_OK);
    ck_assert(kd_uuid_valid(a));
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(a[14], '4');
    ck_assert(strchr("89ab", a[19]) != NULL);
    ck_assert(!kd_uuid_valid("not-a-uuid"));
    ck_assert(!kd_uuid_valid("123e4567-e89b-12d3-a456-4266141740000"));
    ck_assert(!kd_uuid_valid("123e4567-e89b-12d3-a456-42661417400g"));
    ck_assert(!kd_uuid_valid("123e4567xe89b-12d3-a456-426614174000"));
    ck_assert(kd_uuid_valid("123E4567-E89B-12D3-A456-426614174000"));
}
END_TEST

START_TEST(hashes_match_known_values)
{
    char hex[65];

    kd_sha256_hex("abc", 3, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* RFC 4231 test case 2 */
    ck_assert_int_eq(kd_hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28, hex), KD_OK);
    ck_assert_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    ck_assert(kd_secure_equal("abc", "abc", 3));
    ck_assert(!kd_secure_equal("abc", "abd", 3));
}
END_TEST

START_TEST(rfc3339_times)
{
    char t[32];

    kd_time_rfc3339(0, t);
    ck_assert_str_eq(t, "1970-01-01T00:00:00.000Z");
    kd_time_rfc3339(1764051076123LL, t);
    ck_assert_str_eq(t, "2025-11-25T06:11:16.123Z");
}
END_TEST

START_TEST(utf8_validation)
{
    ck_assert(kd_utf8_valid("plain", 5));
    ck_assert(kd_utf8_valid("Привет", strlen("Привет")));
    ck_assert(kd_utf8_valid("\xf0\x9f\x8e\xac", 4));        /* an emoji */
    ck_assert(!kd_utf8_valid("\xc0\xaf", 2));                /* overlong '/' */
    ck_assert(!kd_utf8_valid("\xed\xa0\x80", 3));            /* a surrogate */
    ck_assert(!kd_utf8_valid("\xf4\x90\x80\x80", 4));        /* past U+10FFFF */
    ck_assert(!kd_utf8_valid("\xe2\x82", 2));                /* truncated */
    ck_assert(!kd_utf8_valid("\xcf\xf0\xe8\xe2\xe5\xf2", 6)); /* Windows-1251 */
}
END_TEST

START_TEST(problem_collects_and_caps)
{
    struct kd_problem pb = KD_PROBLEM_INIT;

    ck_assert_int_eq(kd_problem_add(&pb, "inputs[0].start", "must be >= %d", 0), KD_OK);
    ck_assert_uint_eq(pb.n, 1);
    ck_assert_str_eq(pb.errors[0].field, "inputs[0].start");
    ck_assert_str_eq(pb.errors[0].message, "must be >= 0");
    for (int i = 0; i < KD_PROBLEM_MAX_ERRORS + 5; i++)
        ck_assert_int_eq(kd_problem_add(&pb, "x", "e%d", i), KD_OK);
    ck_assert_uint_eq(pb.n, KD_PROBLEM_MAX_ERRORS);
    ck_assert_uint_eq(pb.dropped, 6);
    kd_problem_clear(&pb);
    ck_assert_uint_eq(pb.n, 0);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, buf_caps_and_grows);
    tcase_add_test(tc, buf_without_cap);
    tcase_add_test(tc, parse_i64_strict);
    tcase_add_test(tc, parse_size_suffixes);
    tcase_add_test(tc, parse_double_finite);
    tcase_add_test(tc, checked_arithmetic);
    tcase_add_test(tc, snprintf_truncation);
    tcase_add_test(tc, uuid_form);
    tcase_add_test(tc, hashes_match_known_values);
    tcase_add_test(tc, rfc3339_times);
    tcase_add_test(tc, utf8_validation);
    tcase_add_test(tc, problem_collects_and_caps);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
