/* Unit tests of workers/proto.c: the child -> parent pipe protocol. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"

static enum kd_err
decode(const char *line, struct kd_proto_msg *m)
{
    char why[160];

    return kd_proto_decode(line, strlen(line), m, why, sizeof(why));
}

START_TEST(decodes_each_message)
{
    struct kd_proto_msg m = {0};

    ck_assert_int_eq(decode("{\"progress\":0.42}", &m), KD_OK);
    ck_assert_int_eq(m.type, KD_PROTO_PROGRESS);
    ck_assert(m.progress > 0.419 && m.progress < 0.421);
    kd_proto_msg_clear(&m);

    ck_assert_int_eq(decode("{\"progress\":1}", &m), KD_OK);
    ck_assert(m.progress == 1.0);
    kd_proto_msg_clear(&m);

    ck_assert_int_eq(decode("{\"event\":\"warning\",\"detail\":\"Привет\"}", &m), KD_OK);
    ck_assert_int_eq(m.type, KD_PROTO_EVENT);
    ck_assert_str_eq(m.event, "warning");
    ck_assert_str_eq(m.detail, "Привет");
    kd_proto_msg_clear(&m);

    ck_assert_int_eq(decode("{\"ok\":false,\"error\":\"invalid_media\",\"message\":\"bad\"}", &m),
                     KD_OK);
    ck_assert_int_eq(m.type, KD_PROTO_RESULT);
    ck_assert(!m.ok);
    ck_assert_str_eq(m.error, "invalid_media");
    ck_assert_str_eq(m.message, "bad");
    ck_assert_ptr_null(m.payload);
    kd_proto_msg_clear(&m);

    ck_assert_int_eq(decode("{\"ok\":true,\"duration\":3.5}", &m), KD_OK);
    ck_assert(m.ok);
    ck_assert_ptr_nonnull(m.payload);
    ck_assert(json_number_value(json_object_get(m.payload, "duration")) == 3.5);
    kd_proto_msg_clear(&m);
    ck_assert_ptr_null(m.payload);
}
END_TEST

/* Storing outputs: which one, and the multipart upload to abort should
 * the child be killed; and the store's outage as a result of its own. */
START_TEST(store_messages_and_unavailable)
{
    struct kd_proto_msg m = {0};
    int p[2];
    char buf[512];
    ssize_t n;

    ck_assert_int_eq(decode("{\"store\":0}", &m), KD_OK);
    ck_assert_int_eq(m.type, KD_PROTO_STORE);
    ck_assert_int_eq(m.store_index, 0);
    ck_assert_ptr_null(m.upload_id);
    kd_proto_msg_clear(&m);
    ck_assert_int_eq(decode("{\"store\":20,\"upload_id\":\"abc.DEF-1\"}", &m), KD_OK);
    ck_assert_int_eq(m.store_index, 20);
    ck_assert_str_eq(m.upload_id, "abc.DEF-1");
    kd_proto_msg_clear(&m);
    ck_assert_int_eq(decode("{\"store\":21}", &m), KD_EINVAL);
    ck_assert_int_eq(decode("{\"store\":-1}", &m), KD_EINVAL);
    ck_assert_int_eq(decode("{\"store\":\"0\"}", &m), KD_EINVAL);
    ck_assert_int_eq(decode("{\"store\":0,\"upload_id\":\"\"}", &m), KD_EINVAL);
    ck_assert_int_eq(decode("{\"store\":0,\"upload_id\":7}", &m), KD_EINVAL);

    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(kd_proto_send_unavailable(p[1], "the storage is unavailable"), KD_OK);
    ck_assert_int_eq(kd_proto_send_store(p[1], 3, "u-1"), KD_OK);
    close(p[1]);
    n = read(p[0], buf, sizeof(buf) - 1);
    close(p[0]);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    char *nl = strchr(buf, '\n');
    ck_assert_ptr_nonnull(nl);
    ck_assert_int_eq(kd_proto_decode(buf, (size_t)(nl - buf), &m, buf + 400, 100), KD_OK);
    ck_assert_int_eq(m.type, KD_PROTO_RESULT);
    ck_assert(!m.ok && m.unavailable);
    ck_assert_str_eq(m.error, "internal");
    ck_assert_str_eq(m.message, "the storage is unavailable");
    kd_proto_msg_clear(&m);
    *strchr(nl + 1, '\n') = '\0';
    ck_assert_int_eq(decode(nl + 1, &m), KD_OK);
    ck_assert_int_eq(m.store_index, 3);
    ck_assert_str_eq(m.upload_id, "u-1");
    kd_proto_msg_clear(&m);
    /* a plain failure is not an outage */
    ck_assert_int_eq(decode("{\"ok\":false,\"error\":\"internal\",\"message\":\"x\"}", &m), KD_OK);
    ck_assert(!m.unavailable);
    kd_proto_msg_clear(&m);
}
END_TEST

START_TEST(unknown_codes_become_internal)
{
    struct kd_proto_msg m = {0};

    ck_assert_int_eq(decode("{\"ok\":false,\"error\":\"pwned\"}", &m), KD_OK);
    ck_assert_str_eq(m.error, "internal");
    ck_assert_str_eq(m.message, "");
    kd_proto_msg_clear(&m);
    ck_assert_int_eq(decode("{\"ok\":false}", &m), KD_OK);
    ck_assert_str_eq(m.error, "internal");
    kd_proto_msg_clear(&m);
    ck_assert(kd_proto_code_valid("timeout"));
    ck_assert(!kd_proto_code_valid("Timeout"));
    ck_assert(!kd_proto_code_valid(NULL));
}
END_TEST

START_TEST(refuses_what_is_not_the_protocol)
{
    static const char *const bad[] = {
        "",
        "not json",
        "[1,2]",
        "42",
        "{}",
        "{\"progress\":1.5}",
        "{\"progress\":-0.1}",
        "{\"progress\":\"0.5\"}",
        "{\"ok\":\"yes\"}",
        "{\"event\":\"\"}",
        "{\"event\":7}",
        "{\"event\":\"a-name-much-longer-than-thirty-two-bytes\"}",
        "{\"a\":1,\"a\":2}",
        "{\"ok\":true} {}",
    };
    struct kd_proto_msg m = {0};
    char why[160];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(kd_proto_decode(bad[i], strlen(bad[i]), &m, why, sizeof(why)) == KD_EINVAL,
                      "accepted: %s", bad[i]);
        ck_assert(why[0] != '\0');
        ck_assert_ptr_null(m.payload);
    }
    /* Not UTF-8. */
    ck_assert_int_eq(
        kd_proto_decode("{\"event\":\"w\",\"detail\":\"\xff\"}", 25, &m, why, sizeof(why)),
        KD_EINVAL);
}
END_TEST

START_TEST(caps_text_on_a_character_boundary)
{
    size_t n = KD_PROTO_TEXT_MAX + 40;
    char *line = malloc(n * 2 + 64);
    struct kd_proto_msg m = {0};
    size_t pos;

    /* "ж" is two bytes; an odd prefix puts the cap inside one. */
    pos = (size_t)snprintf(line, 64, "{\"ok\":false,\"error\":\"internal\",\"message\":\"x");
    for (size_t i = 0; i < n / 2; i++) {
        memcpy(line + pos, "ж", 2);
        pos += 2;
    }
    memcpy(line + pos, "\"}", 3);
    ck_assert_int_eq(decode(line, &m), KD_OK);
    ck_assert_uint_le(strlen(m.message), KD_PROTO_TEXT_MAX);
    ck_assert_uint_ge(strlen(m.message), KD_PROTO_TEXT_MAX - 1);
    ck_assert_uint_eq(strlen(m.message) % 2, 1); /* "x" plus whole characters */
    kd_proto_msg_clear(&m);
    free(line);
}
END_TEST

START_TEST(file_descriptions_are_checked)
{
    static const char sha[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    struct kd_proto_file f;
    json_t *o;

    o = json_pack("{s:{s:s,s:s,s:{}}}", "output", "kind", "video", "sha256", sha, "probe");
    ck_assert_int_eq(kd_proto_file_get(o, "output", &f), KD_OK);
    ck_assert_str_eq(f.kind, "video");
    ck_assert_str_eq(f.sha256, sha);
    ck_assert(json_is_object(f.probe));
    ck_assert_int_eq(kd_proto_file_get(o, "missing", &f), KD_EINVAL);
    json_decref(o);

    o = json_pack("{s:s,s:s,s:{}}", "kind", "program", "sha256", sha, "probe");
    ck_assert_int_eq(kd_proto_file_get(o, NULL, &f), KD_EINVAL);
    json_decref(o);
    o = json_pack("{s:s,s:s,s:{}}", "kind", "audio", "sha256", "ABCDEF", "probe");
    ck_assert_int_eq(kd_proto_file_get(o, NULL, &f), KD_EINVAL);
    json_decref(o);
    o = json_pack("{s:s,s:s,s:[]}", "kind", "audio", "sha256", sha, "probe");
    ck_assert_int_eq(kd_proto_file_get(o, NULL, &f), KD_EINVAL);
    json_decref(o);
}
END_TEST

START_TEST(output_names)
{
    char b[16];

    ck_assert_int_eq(kd_proto_output_name("mp4", b, sizeof(b)), KD_OK);
    ck_assert_str_eq(b, "out.mp4");
    ck_assert_int_eq(kd_proto_thumb_name(12, b, sizeof(b)), KD_OK);
    ck_assert_str_eq(b, "thumb-12.jpg");
    ck_assert_int_eq(kd_proto_thumb_name(1, b, 8), KD_ELIMIT);
}
END_TEST

START_TEST(lines_split_across_reads)
{
    struct kd_linereader lr;
    char *line;
    size_t len;

    kd_linereader_init(&lr, 64);
    ck_assert_int_eq(kd_linereader_next(&lr, &line, &len), KD_EAGAIN);
    ck_assert_int_eq(kd_linereader_push(&lr, "{\"a\"", 4), KD_OK);
    ck_assert_int_eq(kd_linereader_next(&lr, &line, &len), KD_EAGAIN);
    ck_assert_uint_eq(kd_linereader_pending(&lr), 4);
    ck_assert_int_eq(kd_linereader_push(&lr, ":1}\n{\"b\":2}\n{\"c\"", 16), KD_OK);
    ck_assert_int_eq(kd_linereader_next(&lr, &line, &len), KD_OK);
    ck_assert_str_eq(line, "{\"a\":1}");
    ck_assert_uint_eq(len, 7);
    ck_assert_int_eq(kd_linereader_next(&lr, &line, &len), KD_OK);
    ck_assert_str_eq(line, "{\"b\":2}");
    ck_assert_int_eq(kd_linereader_next(&lr, &line, &len), KD_EAGAIN);
    ck_assert_int_eq(kd_linereader_push(&lr, ":3}\n", 4), KD_OK);
    ck_assert_int_eq(kd_linereader_next(&lr, &line, &len), KD_OK);
    ck_assert_str_eq(line, "{\"c\":3}");
    ck_assert_uint_eq(kd_linereader_pending(&lr), 0);
    kd_linereader_clear(&lr);
}
END_TEST

START_TEST(long_lines_are_refused)
{
    struct kd_linereader lr;
    char big[100];
    char *line;
    size_t len;

    memset(big, 'x', sizeof(big));
    kd_linereader_init(&lr, 64);
    /* Many short lines in one read are fine... */
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(kd_linereader_push(&lr, "{}\n", 3), KD_OK);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(kd_linereader_next(&lr, &line, &len), KD_OK);
    /* ...one unfinished line past the cap is not, */
    ck_assert_int_eq(kd_linereader_push(&lr, big, 65), KD_ELIMIT);
    kd_linereader_clear(&lr);
    /* nor a finished one. */
    kd_linereader_init(&lr, 64);
    ck_assert_int_eq(kd_linereader_push(&lr, big, 64), KD_OK);
    ck_assert_int_eq(kd_linereader_push(&lr, "x\n", 2), KD_OK);
    ck_assert_int_eq(kd_linereader_next(&lr, &line, &len), KD_ELIMIT);
    kd_linereader_clear(&lr);
}
END_TEST

START_TEST(send_and_decode_round_trip)
{
    struct kd_linereader lr;
    struct kd_proto_msg m = {0};
    char buf[4096], why[160], *line;
    size_t len;
    ssize_t n;
    int p[2];

    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(kd_proto_send_progress(p[1], 0.25), KD_OK);
    ck_assert_int_eq(kd_proto_send_progress(p[1], 7.0), KD_OK); /* clamped */
    ck_assert_int_eq(kd_proto_send_event(p[1], "warning", "a \"quoted\"\nline"), KD_OK);
    ck_assert_int_eq(kd_proto_send_event(p[1], "warning", "\xff not UTF-8"), KD_OK);
    ck_assert_int_eq(kd_proto_send_error(p[1], "unsupported", "no"), KD_OK);
    close(p[1]);
    kd_linereader_init(&lr, KD_PROTO_LINE_MAX);
    while ((n = read(p[0], buf, sizeof(buf))) > 0)
        ck_assert_int_eq(kd_linereader_push(&lr, buf, (size_t)n), KD_OK);
    close(p[0]);

    ck_assert_int_eq(kd_linereader_next(&lr, &line, &len), KD_OK);
    ck_assert_int_eq(kd_proto_decode(line, len, &m, why, sizeof(why)), KD_OK);
    ck_assert(m.progress == 0.25);
    kd_proto_msg_clear(&m);
    ck_assert_int_eq(kd_linereader_next(&lr, &line, &len), KD_OK);
    ck_assert_int_eq(kd_proto_decode(line, len, &m, why, sizeof(why)), KD_OK);
    ck_assert(m.progress == 1.0);
    kd_proto_msg_clear(&m);
    ck_assert_int_eq(kd_linereader_next(&lr, &line, &len), KD_OK);
    ck_assert_int_eq(kd_proto_decode(line, len, &m, why, sizeof(why)), KD_OK);
    ck_assert_str_eq(m.detail, "a \"quoted\"\nline");
    kd_proto_msg_clear(&m);
    ck_assert_int_eq(kd_linereader_next(&lr, &line, &len), KD_OK);
    ck_assert_int_eq(kd_proto_decode(line, len, &m, why, sizeof(why)), KD_OK);
    ck_assert_str_eq(m.detail, "(message not UTF-8)");
    kd_proto_msg_clear(&m);
    ck_assert_int_eq(kd_linereader_next(&lr, &line, &len), KD_OK);
    ck_assert_int_eq(kd_proto_decode(line, len, &m, why, sizeof(why)), KD_OK);
    ck_assert_str_eq(m.error, "unsupported");
    kd_proto_msg_clear(&m);
    ck_assert_int_eq(kd_linereader_next(&lr, &line, &len), KD_EAGAIN);
    kd_linereader_clear(&lr);
}
END_TEST

/* Allocation-failure injection: jansson's allocator fails the Nth call. */
static int alloc_left;

static void *
failing_malloc(size_t n)
{
    if (alloc_left == 0)
        return NULL;
    if (alloc_left > 0)
        alloc_left--;
    return malloc(n);
}

START_TEST(decode_survives_allocation_failures)
{
    static const char *const lines[] = {
        "{\"event\":\"warning\",\"detail\":\"disk almost full\"}",
        "{\"ok\":false,\"error\":\"timeout\",\"message\":\"too slow\"}",
        "{\"ok\":true,\"output\":{\"kind\":\"video\",\"probe\":{\"streams\":[1,2,3]}}}",
    };

    json_set_alloc_funcs(failing_malloc, free);
    for (size_t l = 0; l < sizeof(lines) / sizeof(lines[0]); l++) {
        bool succeeded = false;

        for (int n = 0; n < 200 && !succeeded; n++) {
            struct kd_proto_msg m = {0};
            char why[160];
            enum kd_err rc;

            alloc_left = n;
            rc = kd_proto_decode(lines[l], strlen(lines[l]), &m, why, sizeof(why));
            ck_assert(rc == KD_OK || rc == KD_ENOMEM || rc == KD_EINVAL);
            succeeded = rc == KD_OK;
            kd_proto_msg_clear(&m);
        }
        ck_assert_msg(succeeded, "line %zu never decoded", l);
    }
    alloc_left = -1;
    json_set_alloc_funcs(malloc, free);
}
END_TEST

static Suite *
suite(void)
{
    Suite *s = suite_create("worker_proto");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, decodes_each_message);
    tcase_add_test(tc, unknown_codes_become_internal);
    tcase_add_test(tc, store_messages_and_unavailable);
    tcase_add_test(tc, refuses_what_is_not_the_protocol);
    tcase_add_test(tc, caps_text_on_a_character_boundary);
    tcase_add_test(tc, file_descriptions_are_checked);
    tcase_add_test(tc, output_names);
    tcase_add_test(tc, lines_split_across_reads);
    tcase_add_test(tc, long_lines_are_refused);
    tcase_add_test(tc, send_and_decode_round_trip);
    tcase_add_test(tc, decode_survives_allocation_failures);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
