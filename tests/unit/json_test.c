/* Unit tests of src/json.c: strict parsing. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

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

    ck_assert_int_eq(parse("{\"a\": 1, \"a\": 2}", &v), KD_EINVAL);  /* duplicate key */
    ck_assert_int_eq(parse("{\"a\": ", &v), KD_EINVAL);              /* truncated */
    ck_assert_int_eq(parse("{} {}", &v), KD_EINVAL);                 /* two values */
    ck_assert_int_eq(parse("{\"a\": \"\\u0000\"}", &v), KD_EINVAL);  /* NUL in a string */
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
    tcase_add_test(tc, setters);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
