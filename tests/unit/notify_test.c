/* Unit tests of notify/policy.c: the signature, the retry schedule, the
 * give-up rule and the address filter. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

START_TEST(signature_matches_openssl)
{
    /* printf '1700000000.{"event":"job.completed"}' |
     *     openssl dgst -sha256 -hmac secret123 */
    const char *body = "{\"event\":\"job.completed\"}";
    char out[160];

    ck_assert_int_eq(
        kd_notify_signature("secret123", 1700000000, body, strlen(body), out, sizeof(out)), KD_OK);
    ck_assert_str_eq(out, "t=1700000000,v1="
                          "e33f8a5f452a8814d408f6c5160211c5c8f57cfb0103cefc0fb466ee08780fca");
    /* Another time, another signature: t is signed too. */
    ck_assert_int_eq(
        kd_notify_signature("secret123", 1700000001, body, strlen(body), out, sizeof(out)), KD_OK);
    ck_assert(strstr(out, "e33f8a5f") == NULL);
    /* Too small a buffer is an error, never a cut signature. */
    ck_assert_int_eq(kd_notify_signature("secret123", 1700000000, body, strlen(body), out, 40),
                     KD_ELIMIT);
}
END_TEST

START_TEST(backoff_schedule)
{
    static const int64_t want_s[] = {10, 30, 60, 120, 300, 600, 1200, 1800, 1800, 1800};
    int64_t total = 0;
    int tries = 1;

    /* jitter 0.5 is the middle: exactly the table. */
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(kd_notify_backoff_ms(i + 1, 10000, 0.5), want_s[i] * 1000);
    /* The spread is 80..120 %. */
    ck_assert_int_eq(kd_notify_backoff_ms(1, 10000, 0.0), 8000);
    ck_assert_int_le(kd_notify_backoff_ms(1, 10000, 0.999999), 12000);
    ck_assert_int_ge(kd_notify_backoff_ms(1, 10000, 0.999999), 11999);
    /* Odd input stays sane. */
    ck_assert_int_eq(kd_notify_backoff_ms(0, 10000, 0.5), 10000);
    ck_assert_int_eq(kd_notify_backoff_ms(1000, 10000, 0.5), 1800000);
    ck_assert_int_eq(kd_notify_backoff_ms(1, 10000, 7.0), 10000);
    ck_assert_int_ge(kd_notify_backoff_ms(1, 0, 0.0), 1);
    /* With the shortest delays the default window still takes more than an
     * hour of tries, and gives up only after it. */
    while (!kd_notify_give_up(total, 3600 * 1000)) {
        total += kd_notify_backoff_ms(tries, 10000, 0.0);
        tries++;
        ck_assert_int_lt(tries, 50);
    }
    ck_assert_int_ge(total, 3600 * 1000);
    ck_assert_int_ge(tries, 9);
}
END_TEST

START_TEST(give_up_rule)
{
    ck_assert(!kd_notify_give_up(0, 3600000));
    ck_assert(!kd_notify_give_up(3599999, 3600000));
    ck_assert(kd_notify_give_up(3600000, 3600000));
}
END_TEST

static bool
public_v4(const char *text)
{
    struct sockaddr_in s = {.sin_family = AF_INET};

    ck_assert_int_eq(inet_pton(AF_INET, text, &s.sin_addr), 1);
    return kd_notify_addr_public((const struct sockaddr *)&s, sizeof(s));
}

static bool
public_v6(const char *text)
{
    struct sockaddr_in6 s = {.sin6_family = AF_INET6};

    ck_assert_int_eq(inet_pton(AF_INET6, text, &s.sin6_addr), 1);
    return kd_notify_addr_public((const struct sockaddr *)&s, sizeof(s));
}

START_TEST(address_filter)
{
    static const char *const closed4[] = {
        "127.0.0.1",       "127.255.255.254", "10.1.2.3",   "172.16.0.1",  "172.31.255.255",
        "192.168.1.1",     "169.254.169.254", "100.64.0.1", "0.0.0.0",     "224.0.0.1",
        "255.255.255.255", "198.18.0.1",      "192.0.2.10", "203.0.113.5",
    };
    static const char *const open4[] = {"93.184.216.34", "8.8.8.8",     "172.32.0.1",
                                        "1.1.1.1",       "100.128.0.1", "11.0.0.1"};
    static const char *const closed6[] = {
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "2001:db8::1",
        "2002:c0a8:0101::1",
        "::127.0.0.1",
    };
    static const char *const open6[] = {"2606:4700:4700::1111", "::ffff:8.8.8.8",
                                        "2002:0808:0808::1"};

    for (size_t i = 0; i < sizeof(closed4) / sizeof(*closed4); i++)
        ck_assert_msg(!public_v4(closed4[i]), "%s is let through", closed4[i]);
    for (size_t i = 0; i < sizeof(open4) / sizeof(*open4); i++)
        ck_assert_msg(public_v4(open4[i]), "%s is refused", open4[i]);
    for (size_t i = 0; i < sizeof(closed6) / sizeof(*closed6); i++)
        ck_assert_msg(!public_v6(closed6[i]), "%s is let through", closed6[i]);
    for (size_t i = 0; i < sizeof(open6) / sizeof(*open6); i++)
        ck_assert_msg(public_v6(open6[i]), "%s is refused", open6[i]);

    /* A short length or another family is refused. */
    struct sockaddr_in s = {.sin_family = AF_INET};

    inet_pton(AF_INET, "8.8.8.8", &s.sin_addr);
    ck_assert(!kd_notify_addr_public((const struct sockaddr *)&s, 4));
    ck_assert(!kd_notify_addr_public(NULL, 0));
    struct sockaddr un = {.sa_family = AF_UNIX};

    ck_assert(!kd_notify_addr_public(&un, sizeof(un)));
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = tcase_create("policy");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, signature_matches_openssl);
    tcase_add_test(tc, backoff_schedule);
    tcase_add_test(tc, give_up_rule);
    tcase_add_test(tc, address_filter);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
