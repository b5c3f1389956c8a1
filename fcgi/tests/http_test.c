/* Unit tests of fcgi/http.c: request parsing, response building, cursors
 * and the download disposition. The FastCGI parameters are a hand-made
 * environment array, as libfcgi hands them over. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

START_TEST(request_id_charset_and_length)
{
    char long_id[KD_REQUEST_ID_MAX + 2];

    ck_assert(kd_request_id_valid("abc.DEF_1-2"));
    ck_assert(!kd_request_id_valid(""));
    ck_assert(!kd_request_id_valid(NULL));
    ck_assert(!kd_request_id_valid("a b"));
    ck_assert(!kd_request_id_valid("a\nb"));
    ck_assert(!kd_request_id_valid("\xc3\xa9"));
    memset(long_id, 'a', sizeof(long_id));
    long_id[KD_REQUEST_ID_MAX] = '\0';
    ck_assert(kd_request_id_valid(long_id));
    long_id[KD_REQUEST_ID_MAX] = 'a';
    long_id[KD_REQUEST_ID_MAX + 1] = '\0';
    ck_assert(!kd_request_id_valid(long_id));
}
END_TEST

START_TEST(percent_decoding)
{
    char *s = NULL;

    ck_assert_int_eq(kd_percent_decode("a%20b+c%2F", 10, true, &s), KD_OK);
    ck_assert_str_eq(s, "a b c/");
    free(s);
    ck_assert_int_eq(kd_percent_decode("a+b", 3, false, &s), KD_OK);
    ck_assert_str_eq(s, "a+b");
    free(s);
    s = NULL;
    ck_assert_int_eq(kd_percent_decode("%4", 2, false, &s), KD_EINVAL);
    ck_assert_int_eq(kd_percent_decode("%", 1, false, &s), KD_EINVAL);
    ck_assert_int_eq(kd_percent_decode("%zz", 3, false, &s), KD_EINVAL);
    ck_assert_int_eq(kd_percent_decode("a%00b", 5, false, &s), KD_EINVAL);
    ck_assert_ptr_null(s);
    /* Only len bytes are read: a trailing escape cut by len is broken. */
    ck_assert_int_eq(kd_percent_decode("%41%42", 4, false, &s), KD_EINVAL);
    ck_assert_int_eq(kd_percent_decode("%41%42", 5, false, &s), KD_EINVAL);
    ck_assert_int_eq(kd_percent_decode("%41%42", 3, false, &s), KD_OK);
    ck_assert_str_eq(s, "A");
    free(s);
}
END_TEST

START_TEST(request_from_params)
{
    char *env[] = {
        "REQUEST_METHOD=GET", "REQUEST_URI=/api/v1/media%2Fx?limit=5&cursor=a%2Bb&flag&&x=1+2",
        "QUERY_STRING=limit=5&cursor=a%2Bb&flag&&x=1+2", "HTTP_X_REQUEST_ID=req-1", NULL};
    struct kd_req rq;

    ck_assert_int_eq(kd_req_init(&rq, NULL, env, NULL), KD_OK);
    ck_assert_str_eq(rq.method, "GET");
    ck_assert_str_eq(rq.path, "/api/v1/media/x");
    ck_assert_str_eq(rq.request_id, "req-1");
    ck_assert_uint_eq(rq.n_query, 4);
    ck_assert_str_eq(kd_req_query(&rq, "limit"), "5");
    ck_assert_str_eq(kd_req_query(&rq, "cursor"), "a+b");
    ck_assert_str_eq(kd_req_query(&rq, "flag"), "");
    ck_assert_str_eq(kd_req_query(&rq, "x"), "1 2");
    ck_assert_ptr_null(kd_req_query(&rq, "nope"));
    ck_assert(!kd_req_query_repeated(&rq));
    kd_req_clear(&rq);
}
END_TEST

START_TEST(request_prefers_document_uri)
{
    /* nginx's auth_request subrequest: REQUEST_URI is the client's. */
    char *env[] = {"REQUEST_METHOD=PUT", "REQUEST_URI=/upload/media/x?X-Kadr-Signature=s",
                   "DOCUMENT_URI=/api/v1/internal/verify", "HTTP_X_REQUEST_ID=bad id", NULL};
    struct kd_req rq;

    ck_assert_int_eq(kd_req_init(&rq, NULL, env, NULL), KD_OK);
    ck_assert_str_eq(rq.path, "/api/v1/internal/verify");
    /* An invalid client id is replaced by a fresh UUID. */
    ck_assert(kd_uuid_valid(rq.request_id));
    kd_req_clear(&rq);
}
END_TEST

START_TEST(request_refusals)
{
    char *no_method[] = {"REQUEST_URI=/a", NULL};
    char *bad_query[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/a", "QUERY_STRING=a=%zz", NULL};
    char *repeated[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/a", "QUERY_STRING=a=1&a=2", NULL};
    char *no_path[] = {"REQUEST_METHOD=GET", NULL};
    char *many[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/a", NULL, NULL};
    struct kd_buf qs;
    struct kd_req rq;
    int i;

    ck_assert_int_eq(kd_req_init(&rq, NULL, no_method, NULL), KD_EINVAL);
    ck_assert(rq.request_id[0] != '\0'); /* still set: the 400 carries it */
    kd_req_clear(&rq);
    ck_assert_int_eq(kd_req_init(&rq, NULL, bad_query, NULL), KD_EINVAL);
    kd_req_clear(&rq);
    ck_assert_int_eq(kd_req_init(&rq, NULL, no_path, NULL), KD_EINVAL);
    ck_assert_str_eq(rq.path, "-");
    kd_req_clear(&rq);
    ck_assert_int_eq(kd_req_init(&rq, NULL, repeated, NULL), KD_OK);
    ck_assert(kd_req_query_repeated(&rq));
    kd_req_clear(&rq);
    kd_buf_init(&qs, 4096);
    ck_assert_int_eq(kd_buf_puts(&qs, "QUERY_STRING="), KD_OK);
    for (i = 0; i <= KD_QUERY_PARAMS_MAX; i++)
        ck_assert_int_eq(kd_buf_puts(&qs, "k=v&"), KD_OK);
    many[2] = qs.data;
    ck_assert_int_eq(kd_req_init(&rq, NULL, many, NULL), KD_EINVAL);
    kd_req_clear(&rq);
    kd_buf_clear(&qs);
}
END_TEST

START_TEST(content_type_json)
{
    ck_assert(kd_content_type_is_json("application/json"));
    ck_assert(kd_content_type_is_json("Application/JSON"));
    ck_assert(kd_content_type_is_json("application/json; charset=utf-8"));
    ck_assert(kd_content_type_is_json("application/json;charset=\"UTF-8\""));
    ck_assert(kd_content_type_is_json("application/json; foo=bar"));
    ck_assert(kd_content_type_is_json("application/json;"));
    ck_assert(!kd_content_type_is_json(NULL));
    ck_assert(!kd_content_type_is_json(""));
    ck_assert(!kd_content_type_is_json("application/jsonp"));
    ck_assert(!kd_content_type_is_json("text/json"));
    ck_assert(!kd_content_type_is_json("application/json; charset=latin1"));
    ck_assert(!kd_content_type_is_json("application/json; charset"));
    ck_assert(!kd_content_type_is_json("application/json x"));
}
END_TEST

START_TEST(content_length)
{
    char *none[] = {NULL};
    char *empty[] = {"CONTENT_LENGTH=", NULL};
    char *ten[] = {"CONTENT_LENGTH=10", NULL};
    char *neg[] = {"CONTENT_LENGTH=-1", NULL};
    char *junk[] = {"CONTENT_LENGTH=1x", NULL};
    struct kd_req rq = {0};
    int64_t n = 0;

    rq.envp = none;
    ck_assert_int_eq(kd_req_content_length(&rq, &n), KD_OK);
    ck_assert_int_eq(n, -1);
    rq.envp = empty;
    ck_assert_int_eq(kd_req_content_length(&rq, &n), KD_OK);
    ck_assert_int_eq(n, -1);
    rq.envp = ten;
    ck_assert_int_eq(kd_req_content_length(&rq, &n), KD_OK);
    ck_assert_int_eq(n, 10);
    rq.envp = neg;
    ck_assert_int_eq(kd_req_content_length(&rq, &n), KD_EINVAL);
    rq.envp = junk;
    ck_assert_int_eq(kd_req_content_length(&rq, &n), KD_EINVAL);
}
END_TEST

START_TEST(response_headers_refuse_injection)
{
    struct kd_resp rs;

    kd_resp_init(&rs);
    ck_assert_int_eq(kd_resp_header(&rs, "Location", "/a"), KD_OK);
    ck_assert_int_eq(kd_resp_header(&rs, "Location", "/a\r\nSet-Cookie: x"), KD_EINVAL);
    ck_assert_int_eq(kd_resp_header(&rs, "X\nY", "v"), KD_EINVAL);
    ck_assert_int_eq(kd_resp_header(&rs, "X: Y", "v"), KD_EINVAL);
    ck_assert_str_eq(rs.headers.data, "Location: /a\r\n");
    kd_resp_clear(&rs);
}
END_TEST

START_TEST(problem_document)
{
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct kd_resp rs;
    json_t *v, *e;

    kd_resp_init(&rs);
    ck_assert_int_eq(kd_problem_add(&pb, "inputs[1].media_id", "names no media"), KD_OK);
    ck_assert_int_eq(kd_resp_problem_fields(&rs, 422, "validation", "bad", &pb), KD_OK);
    ck_assert_int_eq(rs.status, 422);
    ck_assert_str_eq(rs.content_type, "application/problem+json");
    v = json_loads(rs.body.data, 0, NULL);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(json_string_value(json_object_get(v, "type")), "urn:kadr:problem:validation");
    ck_assert_str_eq(json_string_value(json_object_get(v, "title")), "Unprocessable Content");
    ck_assert_int_eq(json_integer_value(json_object_get(v, "status")), 422);
    ck_assert_str_eq(json_string_value(json_object_get(v, "detail")), "bad");
    e = json_array_get(json_object_get(v, "errors"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(e, "field")), "inputs[1].media_id");
    json_decref(v);

    /* Without field errors there is no "errors" member. */
    ck_assert_int_eq(kd_resp_problem(&rs, 404, "not-found", "no %s", "job"), KD_OK);
    v = json_loads(rs.body.data, 0, NULL);
    ck_assert_ptr_null(json_object_get(v, "errors"));
    ck_assert_str_eq(json_string_value(json_object_get(v, "detail")), "no job");
    json_decref(v);
    kd_problem_clear(&pb);
    kd_resp_clear(&rs);
}
END_TEST

START_TEST(cursor_round_trip)
{
    static const char *const texts[] = {"1", "12", "123",
                                        "1700000000123456:0d4c1f8e-1b2a-4c3d-8e9f-0a1b2c3d4e5f"};
    char enc[256], dec[KD_CURSOR_MAX + 1];
    size_t i;

    for (i = 0; i < KD_ARRAY_LEN(texts); i++) {
        ck_assert_int_eq(kd_cursor_encode(texts[i], enc, sizeof(enc)), KD_OK);
        ck_assert(strpbrk(enc, "+/=") == NULL);
        ck_assert_int_eq(kd_cursor_decode(enc, dec, sizeof(dec)), KD_OK);
        ck_assert_str_eq(dec, texts[i]);
    }
    ck_assert_int_eq(kd_cursor_decode("", dec, sizeof(dec)), KD_EINVAL);
    ck_assert_int_eq(kd_cursor_decode("A", dec, sizeof(dec)), KD_EINVAL);
    ck_assert_int_eq(kd_cursor_decode("MQ==", dec, sizeof(dec)), KD_EINVAL);
    ck_assert_int_eq(kd_cursor_decode("M+", dec, sizeof(dec)), KD_EINVAL);
    /* "MR" has non-zero spare bits: a second spelling of "1" is refused. */
    ck_assert_int_eq(kd_cursor_decode("MR", dec, sizeof(dec)), KD_EINVAL);
    /* A NUL byte inside. */
    ck_assert_int_eq(kd_cursor_decode("AA", dec, sizeof(dec)), KD_EINVAL);
    /* Too long for the buffer. */
    ck_assert_int_eq(kd_cursor_decode("MTIzNDU2Nzg5MA", dec, 8), KD_EINVAL);
}
END_TEST

START_TEST(cursor_split)
{
    char micros[24], id[KD_UUID_STRLEN + 1];

    ck_assert_int_eq(
        kd_cursor_split("1700000000123456:0d4c1f8e-1b2a-4c3d-8e9f-0a1b2c3d4e5f", micros, id),
        KD_OK);
    ck_assert_str_eq(micros, "1700000000123456");
    ck_assert_str_eq(id, "0d4c1f8e-1b2a-4c3d-8e9f-0a1b2c3d4e5f");
    ck_assert_int_eq(kd_cursor_split("17:xyz", micros, id), KD_EINVAL);
    ck_assert_int_eq(kd_cursor_split(":0d4c1f8e-1b2a-4c3d-8e9f-0a1b2c3d4e5f", micros, id),
                     KD_EINVAL);
    ck_assert_int_eq(kd_cursor_split("-1:0d4c1f8e-1b2a-4c3d-8e9f-0a1b2c3d4e5f", micros, id),
                     KD_EINVAL);
    ck_assert_int_eq(kd_cursor_split("17", micros, id), KD_EINVAL);
}
END_TEST

START_TEST(list_envelope)
{
    struct kd_resp rs;
    struct kd_list l;
    char enc[64];

    kd_resp_init(&rs);
    kd_list_init(&l);
    ck_assert_int_eq(kd_list_finish(&l, NULL, &rs), KD_OK);
    ck_assert_str_eq(rs.body.data, "{\"items\":[],\"next_cursor\":null}");
    kd_list_clear(&l);

    kd_list_init(&l);
    ck_assert_int_eq(kd_list_add(&l, "{\"a\":1}"), KD_OK);
    ck_assert_int_eq(kd_list_add(&l, "{\"a\":2}"), KD_OK);
    ck_assert_int_eq(kd_list_finish(&l, "42", &rs), KD_OK);
    ck_assert_int_eq(kd_cursor_encode("42", enc, sizeof(enc)), KD_OK);
    ck_assert_str_eq(enc, "NDI");
    ck_assert_str_eq(rs.body.data, "{\"items\":[{\"a\":1},{\"a\":2}],\"next_cursor\":\"NDI\"}");
    ck_assert_int_eq(rs.status, 200);
    kd_list_clear(&l);
    kd_resp_clear(&rs);
}
END_TEST

START_TEST(disposition)
{
    char *d = NULL;

    ck_assert_int_eq(kd_content_disposition("clip.mp4", &d), KD_OK);
    ck_assert_str_eq(d, "attachment; filename=\"clip.mp4\"; filename*=UTF-8''clip.mp4");
    free(d);
    ck_assert_int_eq(kd_content_disposition("a\"b\\c/d%e;f\r\n.mp4", &d), KD_OK);
    ck_assert_str_eq(d, "attachment; filename=\"a_b_c_d_e;f__.mp4\"; "
                        "filename*=UTF-8''a%22b%5Cc%2Fd%25e%3Bf%0D%0A.mp4");
    free(d);
    /* One '_' per non-ASCII character, the bytes percent-encoded. */
    ck_assert_int_eq(kd_content_disposition("Привет.mp4", &d), KD_OK);
    ck_assert_str_eq(d, "attachment; filename=\"______.mp4\"; "
                        "filename*=UTF-8''%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82.mp4");
    free(d);
    ck_assert_int_eq(kd_content_disposition("", &d), KD_OK);
    ck_assert_str_eq(d, "attachment; filename=\"download\"");
    free(d);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, request_id_charset_and_length);
    tcase_add_test(tc, percent_decoding);
    tcase_add_test(tc, request_from_params);
    tcase_add_test(tc, request_prefers_document_uri);
    tcase_add_test(tc, request_refusals);
    tcase_add_test(tc, content_type_json);
    tcase_add_test(tc, content_length);
    tcase_add_test(tc, response_headers_refuse_injection);
    tcase_add_test(tc, problem_document);
    tcase_add_test(tc, cursor_round_trip);
    tcase_add_test(tc, cursor_split);
    tcase_add_test(tc, list_envelope);
    tcase_add_test(tc, disposition);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
