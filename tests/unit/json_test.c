/* Unit tests of src/json.c (strict parsing) and of the JSON lines that
 * src/log.c writes, read back with jansson. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "util.h"

static enum kd_err
parse(const char *text, json_t **out)
{
    char why[200];

    return kd_json_parse(text, strlen(text), out, why, sizeof(why));
}

START_TEST(accepts_plain_objects)
{
    json_t *v = NULL;

    ck_assert_int_eq(parse("{\"a\": 1, \"b\": \"Привет\"}", &v), KD_OK);
    ck_assert_str_eq(kd_json_str(v, "b"), "Привет");
    ck_assert_ptr_null(kd_json_str(v, "a"));
    char *dump = kd_json_dump(v);
    ck_assert_str_eq(dump, "{\"a\":1,\"b\":\"Привет\"}");
    free(dump);
    json_decref(v);
}
END_TEST

START_TEST(refuses_bad_bodies)
{
    json_t *v = NULL;
    char deep[200] = "";
    char why[200];

    ck_assert_int_eq(parse("{\"a\": 1, \"a\": 2}", &v), KD_EINVAL); /* duplicate key */
    ck_assert_int_eq(parse("{\"a\": ", &v), KD_EINVAL);             /* truncated */
    ck_assert_int_eq(parse("{} {}", &v), KD_EINVAL);                /* two values */
    ck_assert_int_eq(parse("{\"a\": \"\\u0000\"}", &v), KD_EINVAL); /* NUL in a string */
    ck_assert_int_eq(kd_json_parse("{\"a\":\"\xcf\xf0\"}", 10, &v, why, sizeof(why)), KD_EINVAL);
    ck_assert(strstr(why, "UTF-8") != NULL);
    for (int i = 0; i < KD_JSON_MAX_DEPTH + 1; i++)
        strcat(deep, "[");
    for (int i = 0; i < KD_JSON_MAX_DEPTH + 1; i++)
        strcat(deep, "]");
    ck_assert_int_eq(kd_json_parse(deep, strlen(deep), &v, why, sizeof(why)), KD_EINVAL);
    ck_assert(strstr(why, "nesting") != NULL);
    ck_assert_ptr_null(v);
}
END_TEST

START_TEST(unknown_members_are_found_and_cut)
{
    static const char *const allowed[] = {"a", "b", NULL};
    json_t *v = NULL;
    const char *k;
    void *it = NULL;
    char shown[KD_JSON_KEY_SHOWN], why[128];
    int n = 0;
    /* 19 two-byte letters after 'x': byte 40 falls inside a character. */
    const char *text = "{\"a\":1,\"zz\":2,\"b\":3,"
                       "\"xЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖ\":4}";

    ck_assert_int_eq(kd_json_parse(text, strlen(text), &v, why, sizeof(why)), KD_OK);
    while ((k = kd_json_next_unknown(v, allowed, &it)) != NULL) {
        kd_json_key_shown(k, shown);
        if (n++ == 0) {
            ck_assert_str_eq(shown, "zz");
        } else {
            ck_assert_uint_eq(strlen(shown), 39 + 3); /* 'x', 19 letters, "..." */
            ck_assert_str_eq(shown + 39, "...");
        }
    }
    ck_assert_int_eq(n, 2);
    json_decref(v);
}
END_TEST

START_TEST(depth_at_the_limit_is_fine)
{
    char deep[200] = "";
    json_t *v = NULL;

    for (int i = 0; i < KD_JSON_MAX_DEPTH; i++)
        strcat(deep, "[");
    for (int i = 0; i < KD_JSON_MAX_DEPTH; i++)
        strcat(deep, "]");
    ck_assert_int_eq(parse(deep, &v), KD_OK);
    json_decref(v);
}
END_TEST

START_TEST(setters)
{
    json_t *o = json_object();

    ck_assert_int_eq(kd_json_set_str(o, "k", "v"), KD_OK);
    ck_assert_int_eq(kd_json_set_str(o, "n", NULL), KD_OK);
    ck_assert(json_is_null(json_object_get(o, "n")));
    ck_assert_int_eq(kd_json_set_new(o, "x", NULL), KD_ENOMEM);
    json_decref(o);
}
END_TEST

/* Runs the log calls of a test with stderr sent to a file and returns what
 * was written (the caller frees). */
static int saved_stderr = -1, log_fd = -1;

static void
log_capture(void)
{
    char path[] = "/tmp/kadr-log-test-XXXXXX";

    log_fd = mkstemp(path);
    ck_assert_int_ge(log_fd, 0);
    unlink(path);
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_ge(saved_stderr, 0);
    dup2(log_fd, STDERR_FILENO);
}

static char *
log_collect(void)
{
    char *text = malloc(1 << 20);
    ssize_t n;

    ck_assert_ptr_nonnull(text);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    n = pread(log_fd, text, (1 << 20) - 1, 0);
    close(log_fd);
    ck_assert_int_ge(n, 0);
    text[n] = '\0';
    return text;
}

/* Parses every line as one JSON object; returns them in an array. */
static json_t *
log_lines(char *text)
{
    json_t *all = json_array();
    char *line = text, *nl;

    while ((nl = strchr(line, '\n')) != NULL) {
        json_error_t err;
        json_t *v;

        /* Valid UTF-8 too: jansson checks it while parsing. */
        v = json_loadb(line, (size_t)(nl - line), 0, &err);
        ck_assert_msg(v != NULL, "not JSON (%s): %.*s", err.text, (int)(nl - line), line);
        ck_assert(json_is_object(v));
        ck_assert(json_is_string(json_object_get(v, "time")));
        ck_assert(json_is_string(json_object_get(v, "level")));
        ck_assert(json_is_string(json_object_get(v, "program")));
        ck_assert(json_is_string(json_object_get(v, "message")));
        json_array_append_new(all, v);
        line = nl + 1;
    }
    ck_assert_str_eq(line, ""); /* every line ends with its newline */
    return all;
}

START_TEST(log_lines_stay_json_whatever_the_text)
{
    static char quotes[6000], controls[3000], accents[5000];
    const char *tricky = "q\" b\\ n\n r\r t\t bell\a del\x7f }{\"x\":1";
    const char *broken = "\xff\xfe \xc0\xaf \xed\xa0\x80 \x80 \xf8\x88\x80\x80\x80 \xf0\x9f\x8e";
    json_t *lines;
    char *text;

    memset(quotes, '"', sizeof(quotes) - 1);
    for (size_t i = 0; i + 1 < sizeof(controls); i++)
        controls[i] = (char)(1 + i % 31);
    for (size_t i = 0; i + 2 < sizeof(accents); i += 2)
        memcpy(accents + i, "\xc3\xa9", 2); /* cut mid-character by the line cap */

    log_capture();
    kd_log_init("api\"\n\\", KD_LOG_DEBUG);
    kd_log_set_request("req\"}\x01\xff");
    kd_log_set_job("job\",\"level\":\"x", 3);
    kd_log(KD_LOG_INFO, "%s", tricky);
    kd_log(KD_LOG_WARN, "%s", broken);
    kd_log(KD_LOG_ERROR, "Привет 🎬 %s", "ok");
    kd_log(KD_LOG_INFO, "%s", quotes);
    kd_log(KD_LOG_INFO, "%s", controls);
    kd_log(KD_LOG_INFO, "%s", accents);
    kd_log_errno(KD_LOG_ERROR, 2, "open %s", "\"x\"");
    kd_log((enum kd_log_level)7, "a level out of range");
    kd_log_init("kadr", KD_LOG_WARN);
    kd_log(KD_LOG_INFO, "below the level: not written");
    kd_log_set_request(NULL);
    kd_log_set_job(NULL, 0);
    kd_log(KD_LOG_WARN, "no context");
    kd_log_init("kadr", KD_LOG_INFO);
    text = log_collect();

    lines = log_lines(text);
    ck_assert_uint_eq(json_array_size(lines), 9);
    for (size_t i = 0; i < 8; i++) {
        json_t *l = json_array_get(lines, i);

        ck_assert_str_eq(json_string_value(json_object_get(l, "program")), "api\"\n\\");
        ck_assert_str_eq(json_string_value(json_object_get(l, "job_id")), "job\",\"level\":\"x");
        ck_assert_int_eq(json_integer_value(json_object_get(l, "attempt")), 3);
        ck_assert_ptr_nonnull(json_string_value(json_object_get(l, "request_id")));
    }
    ck_assert_str_eq(kd_json_str(json_array_get(lines, 0), "message"), tricky);
    ck_assert_str_eq(kd_json_str(json_array_get(lines, 0), "level"), "info");
    ck_assert_str_eq(kd_json_str(json_array_get(lines, 2), "message"), "Привет 🎬 ok");
    ck_assert_str_eq(kd_json_str(json_array_get(lines, 2), "level"), "error");
    /* Long messages are cut, not dropped. */
    ck_assert_uint_gt(strlen(kd_json_str(json_array_get(lines, 3), "message")), 1000);
    ck_assert_ptr_nonnull(strstr(kd_json_str(json_array_get(lines, 6), "message"), "\"x\": "));
    ck_assert_str_eq(kd_json_str(json_array_get(lines, 7), "level"), "error");
    ck_assert_str_eq(kd_json_str(json_array_get(lines, 8), "message"), "no context");
    ck_assert(json_is_null(json_object_get(json_array_get(lines, 8), "job_id")));
    ck_assert(json_is_null(json_object_get(json_array_get(lines, 8), "request_id")));
    ck_assert_ptr_null(json_object_get(json_array_get(lines, 8), "attempt"));
    json_decref(lines);
    free(text);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, accepts_plain_objects);
    tcase_add_test(tc, refuses_bad_bodies);
    tcase_add_test(tc, depth_at_the_limit_is_fine);
    tcase_add_test(tc, unknown_members_are_found_and_cut);
    tcase_add_test(tc, setters);
    tcase_add_test(tc, log_lines_stay_json_whatever_the_text);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
