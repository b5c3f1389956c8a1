/* Unit tests of src/storage.c: keys, the local backend, presigned URLs. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "storage.h"
#include "util.h"

static char root[64];
static struct kd_config *cfg;
static struct kd_storage *st;

static void
setup(void)
{
    char err[256];

    snprintf(root, sizeof(root), "/tmp/kadr-storage-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
    setenv("KADR_STORAGE_ROOT", root, 1);
    setenv("KADR_URL_SIGNING_SECRET", "an-example-secret-of-forty-bytes-long!!", 1);
    setenv("KADR_PUBLIC_URL", "http://127.0.0.1:8080", 1);
    ck_assert_int_eq(kd_config_load(NULL, &cfg, err, sizeof(err)), KD_OK);
    ck_assert_int_eq(kd_storage_open(cfg, &st), KD_OK);
}

static int
remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

static void
teardown(void)
{
    kd_storage_close(st);
    kd_config_free(cfg);
    nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

START_TEST(key_rules)
{
    ck_assert(kd_storage_key_valid("media/0b7c4d2e-1f2a-4b3c-8d9e-0123456789ab"));
    ck_assert(kd_storage_key_valid("outputs/a/b.mp4"));
    ck_assert(!kd_storage_key_valid(""));
    ck_assert(!kd_storage_key_valid("/media/x"));
    ck_assert(!kd_storage_key_valid("media//x"));
    ck_assert(!kd_storage_key_valid("media/x/"));
    ck_assert(!kd_storage_key_valid("media/../etc/passwd"));
    ck_assert(!kd_storage_key_valid("media/.hidden"));
    ck_assert(!kd_storage_key_valid("Media/x"));
    ck_assert(!kd_storage_key_valid("media/x y"));
    ck_assert(!kd_storage_key_valid("media/x%2f"));
}
END_TEST

START_TEST(put_stat_get_delete)
{
    char src[256], back[256];
    struct kd_storage_stat s;
    char *text = NULL;
    size_t len = 0;
    FILE *f;

    snprintf(src, sizeof(src), "%s/src.bin", root);
    snprintf(back, sizeof(back), "%s/back.bin", root);
    f = fopen(src, "w");
    fputs("some media bytes", f);
    fclose(f);
    ck_assert_int_eq(kd_storage_put_file(st, "media/abc", src), KD_OK);
    ck_assert_int_eq(kd_storage_stat(st, "media/abc", &s), KD_OK);
    ck_assert_int_eq(s.size, 16);
    ck_assert_int_eq(kd_storage_get_file(st, "media/abc", back), KD_OK);
    ck_assert_int_eq(kd_read_file(back, 1024, &text, &len), KD_OK);
    ck_assert_str_eq(text, "some media bytes");
    free(text);
    ck_assert_int_eq(kd_storage_delete(st, "media/abc"), KD_OK);
    ck_assert_int_eq(kd_storage_stat(st, "media/abc", &s), KD_ENOTFOUND);
    ck_assert_int_eq(kd_storage_delete(st, "media/abc"), KD_OK); /* missing is fine */
    ck_assert_int_eq(kd_storage_put_file(st, "../escape", src), KD_EINVAL);
    ck_assert_int_eq(kd_storage_check(st), KD_OK);
}
END_TEST

/* Returns the part of a presigned URL after the public base. */
static const char *
uri_of(const char *url)
{
    return url + strlen("http://127.0.0.1:8080");
}

START_TEST(presigned_put_round_trip)
{
    struct kd_presign opt = {.ttl_s = 60, .size = 1234};
    struct kd_presigned_req req;
    char *url = NULL;
    int64_t exp = 0, now = kd_now_ms() / 1000;

    ck_assert_int_eq(kd_storage_presign(st, "PUT", "media/k1", &opt, &url, &exp), KD_OK);
    ck_assert(exp >= now + 59 && exp <= now + 61);
    ck_assert_int_eq(strncmp(url, "http://127.0.0.1:8080/upload/media/k1?", 38), 0);
    ck_assert_int_eq(kd_storage_verify(st, "PUT", uri_of(url), now, &req), KD_OK);
    ck_assert_str_eq(req.key, "media/k1");
    ck_assert_int_eq(req.size, 1234);
    /* A PUT URL is not a GET URL, and expiry is enforced. */
    ck_assert_int_eq(kd_storage_verify(st, "GET", uri_of(url), now, &req), KD_EFORBIDDEN);
    ck_assert_int_eq(kd_storage_verify(st, "PUT", uri_of(url), exp + 1, &req), KD_ETIMEOUT);
    free(url);
}
END_TEST

START_TEST(tampering_is_refused)
{
    struct kd_presign opt = {.ttl_s = 60, .size = 100};
    struct kd_presigned_req req;
    char *url = NULL, buf[1024];
    int64_t exp = 0, now = kd_now_ms() / 1000;
    char *p;

    ck_assert_int_eq(kd_storage_presign(st, "PUT", "media/k2", &opt, &url, &exp), KD_OK);
    /* A bigger size. */
    snprintf(buf, sizeof(buf), "%s", uri_of(url));
    p = strstr(buf, "X-Kadr-Size=100");
    ck_assert_ptr_nonnull(p);
    p[strlen("X-Kadr-Size=")] = '9';
    ck_assert_int_eq(kd_storage_verify(st, "PUT", buf, now, &req), KD_EFORBIDDEN);
    /* Another key. */
    snprintf(buf, sizeof(buf), "%s", uri_of(url));
    p = strstr(buf, "k2");
    p[1] = '3';
    ck_assert_int_eq(kd_storage_verify(st, "PUT", buf, now, &req), KD_EFORBIDDEN);
    /* A later expiry. */
    snprintf(buf, sizeof(buf), "%s", uri_of(url));
    p = strstr(buf, "X-Kadr-Expires=") + strlen("X-Kadr-Expires=");
    p[0] = p[0] == '9' ? '8' : (char)(p[0] + 1);
    ck_assert_int_eq(kd_storage_verify(st, "PUT", buf, now, &req), KD_EFORBIDDEN);
    /* A flipped signature digit, a missing or repeated parameter, an extra one. */
    snprintf(buf, sizeof(buf), "%s", uri_of(url));
    p = buf + strlen(buf) - 1;
    *p = *p == 'a' ? 'b' : 'a';
    ck_assert_int_eq(kd_storage_verify(st, "PUT", buf, now, &req), KD_EFORBIDDEN);
    snprintf(buf, sizeof(buf), "%s&X-Kadr-Size=100", uri_of(url));
    ck_assert_int_eq(kd_storage_verify(st, "PUT", buf, now, &req), KD_EFORBIDDEN);
    snprintf(buf, sizeof(buf), "%s&x=1", uri_of(url));
    ck_assert_int_eq(kd_storage_verify(st, "PUT", buf, now, &req), KD_EFORBIDDEN);
    ck_assert_int_eq(kd_storage_verify(st, "PUT", "/upload/media/k2", now, &req), KD_EFORBIDDEN);
    ck_assert_int_eq(kd_storage_verify(st, "PUT", "/upload/../x?X-Kadr-Expires=1", now, &req),
                     KD_EFORBIDDEN);
    free(url);
}
END_TEST

START_TEST(presigned_get_carries_the_name)
{
    struct kd_presign opt = {.ttl_s = 60, .filename = "отпуск & \"друзья\".mp4"};
    struct kd_presigned_req req;
    char *url = NULL;
    int64_t exp = 0, now = kd_now_ms() / 1000;

    ck_assert_int_eq(kd_storage_presign(st, "GET", "media/k4", &opt, &url, &exp), KD_OK);
    ck_assert_ptr_null(strchr(url, ' '));
    ck_assert_ptr_null(strchr(url, '"'));
    ck_assert_int_eq(kd_storage_verify(st, "GET", uri_of(url), now, &req), KD_OK);
    ck_assert_str_eq(req.filename, "отпуск & \"друзья\".mp4");
    ck_assert_int_eq(kd_storage_verify(st, "HEAD", uri_of(url), now, &req), KD_OK);
    free(url);
}
END_TEST

START_TEST(a_different_secret_does_not_verify)
{
    struct kd_presign opt = {.ttl_s = 60, .size = 1};
    struct kd_presigned_req req;
    struct kd_config *other = NULL;
    struct kd_storage *st2 = NULL;
    char *url = NULL, err[256];
    int64_t exp = 0;

    ck_assert_int_eq(kd_storage_presign(st, "PUT", "media/k5", &opt, &url, &exp), KD_OK);
    setenv("KADR_URL_SIGNING_SECRET", "another-secret-that-is-also-long-enough!", 1);
    ck_assert_int_eq(kd_config_load(NULL, &other, err, sizeof(err)), KD_OK);
    ck_assert_int_eq(kd_storage_open(other, &st2), KD_OK);
    ck_assert_int_eq(kd_storage_verify(st2, "PUT", uri_of(url), kd_now_ms() / 1000, &req),
                     KD_EFORBIDDEN);
    kd_storage_close(st2);
    kd_config_free(other);
    free(url);
}
END_TEST

START_TEST(verify_writes_nothing_unless_genuine)
{
    struct kd_presign opt = {.ttl_s = 60, .size = 10};
    struct kd_presigned_req req;
    char *url = NULL, buf[1024];
    int64_t exp = 0, now = kd_now_ms() / 1000;

    ck_assert_int_eq(kd_storage_presign(st, "PUT", "media/k6", &opt, &url, &exp), KD_OK);
    snprintf(buf, sizeof(buf), "%s", uri_of(url));
    buf[strlen(buf) - 1] = buf[strlen(buf) - 1] == 'a' ? 'b' : 'a';
    memset(&req, 'Z', sizeof(req));
    ck_assert_int_eq(kd_storage_verify(st, "PUT", buf, now, &req), KD_EFORBIDDEN);
    ck_assert_int_eq(req.key[0], 'Z');
    ck_assert_int_eq(kd_storage_verify(st, "PUT", uri_of(url), exp + 1, &req), KD_ETIMEOUT);
    ck_assert_int_eq(req.key[0], 'Z');
    ck_assert_int_eq(kd_storage_verify(st, "PUT", uri_of(url), exp, &req), KD_OK);
    ck_assert_str_eq(req.key, "media/k6");
    ck_assert_str_eq(req.method, "PUT");
    ck_assert_int_eq(req.expires_at, exp);
    free(url);
}
END_TEST

START_TEST(presign_ttl_is_bounded)
{
    struct kd_presign opt = {.ttl_s = 0, .size = 1};
    char *url = NULL;
    int64_t exp = 0;

    ck_assert_int_eq(kd_storage_presign(st, "PUT", "media/k7", &opt, &url, &exp), KD_EINVAL);
    opt.ttl_s = -60;
    ck_assert_int_eq(kd_storage_presign(st, "PUT", "media/k7", &opt, &url, &exp), KD_EINVAL);
    opt.ttl_s = INT64_MAX; /* would overflow the expiry */
    ck_assert_int_eq(kd_storage_presign(st, "PUT", "media/k7", &opt, &url, &exp), KD_EINVAL);
    ck_assert_ptr_null(url);
    opt.ttl_s = 7 * 86400;
    ck_assert_int_eq(kd_storage_presign(st, "PUT", "media/k7", &opt, &url, &exp), KD_OK);
    free(url);
}
END_TEST

START_TEST(forgeries_are_refused)
{
    struct kd_presign get = {.ttl_s = 60, .filename = "a.mp4"};
    struct kd_presign put = {.ttl_s = 60, .size = 5};
    struct kd_presigned_req req;
    char *gurl = NULL, *purl = NULL, buf[1024];
    const char *sig, *q;
    int64_t exp = 0, now = kd_now_ms() / 1000;

    ck_assert_int_eq(kd_storage_presign(st, "GET", "media/k8", &get, &gurl, &exp), KD_OK);
    ck_assert_int_eq(kd_storage_presign(st, "PUT", "media/k8", &put, &purl, &exp), KD_OK);
    /* A GET signature on an upload of the same key and expiry. */
    sig = strstr(gurl, "X-Kadr-Signature=") + strlen("X-Kadr-Signature=");
    snprintf(buf, sizeof(buf),
             "/upload/media/k8?X-Kadr-Expires=%lld&X-Kadr-Size=0&X-Kadr-Signature=%s",
             (long long)exp, sig);
    ck_assert_int_eq(kd_storage_verify(st, "PUT", buf, now, &req), KD_EFORBIDDEN);
    /* The download path with the upload's query, or the other way round. */
    q = strchr(purl, '?');
    snprintf(buf, sizeof(buf), "/download/media/k8%s", q);
    ck_assert_int_eq(kd_storage_verify(st, "GET", buf, now, &req), KD_EFORBIDDEN);
    /* Another file name for the browser. */
    snprintf(buf, sizeof(buf), "%s", uri_of(gurl));
    *strstr(buf, "a.mp4") = 'b';
    ck_assert_int_eq(kd_storage_verify(st, "GET", buf, now, &req), KD_EFORBIDDEN);
    /* The same key spelt differently, or leaving the root. */
    snprintf(buf, sizeof(buf), "/download/media%%2fk8%s", strchr(gurl, '?'));
    ck_assert_int_eq(kd_storage_verify(st, "GET", buf, now, &req), KD_EFORBIDDEN);
    snprintf(buf, sizeof(buf), "/download/media/./k8%s", strchr(gurl, '?'));
    ck_assert_int_eq(kd_storage_verify(st, "GET", buf, now, &req), KD_EFORBIDDEN);
    snprintf(buf, sizeof(buf), "/download/media/../../etc/passwd%s", strchr(gurl, '?'));
    ck_assert_int_eq(kd_storage_verify(st, "GET", buf, now, &req), KD_EFORBIDDEN);
    /* Methods that are not presigned. */
    ck_assert_int_eq(kd_storage_verify(st, "POST", uri_of(purl), now, &req), KD_EFORBIDDEN);
    ck_assert_int_eq(kd_storage_verify(st, "DELETE", uri_of(gurl), now, &req), KD_EFORBIDDEN);
    /* A truncated signature, or none at all. */
    snprintf(buf, sizeof(buf), "%s", uri_of(gurl));
    buf[strlen(buf) - 1] = '\0';
    ck_assert_int_eq(kd_storage_verify(st, "GET", buf, now, &req), KD_EFORBIDDEN);
    snprintf(buf, sizeof(buf), "%s", uri_of(gurl));
    *strstr(buf, "&X-Kadr-Signature=") = '\0';
    ck_assert_int_eq(kd_storage_verify(st, "GET", buf, now, &req), KD_EFORBIDDEN);
    free(gurl);
    free(purl);
}
END_TEST

START_TEST(no_secret_no_urls)
{
    struct kd_presign opt = {.ttl_s = 60, .size = 1};
    struct kd_presigned_req req;
    struct kd_config *bare = NULL;
    struct kd_storage *st2 = NULL;
    char *url = NULL, err[256];
    int64_t exp = 0;

    ck_assert_int_eq(kd_storage_presign(st, "PUT", "media/k9", &opt, &url, &exp), KD_OK);
    unsetenv("KADR_URL_SIGNING_SECRET");
    ck_assert_int_eq(kd_config_load(NULL, &bare, err, sizeof(err)), KD_OK);
    ck_assert_int_eq(kd_storage_open(bare, &st2), KD_OK);
    free(url);
    url = NULL;
    ck_assert_int_ne(kd_storage_presign(st2, "PUT", "media/k9", &opt, &url, &exp), KD_OK);
    ck_assert_ptr_null(url);
    /* An empty key signs nothing: no URL made with one verifies. */
    ck_assert_int_ne(
        kd_storage_verify(st2, "PUT",
                          "/upload/media/"
                          "k9?X-Kadr-Expires=9999999999&X-Kadr-Size=1&X-Kadr-Signature="
                          "0000000000000000000000000000000000000000000000000000000000000000",
                          0, &req),
        KD_OK);
    kd_storage_close(st2);
    kd_config_free(bare);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("storage");
    TCase *tc = tcase_create("local");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, key_rules);
    tcase_add_test(tc, put_stat_get_delete);
    tcase_add_test(tc, presigned_put_round_trip);
    tcase_add_test(tc, tampering_is_refused);
    tcase_add_test(tc, presigned_get_carries_the_name);
    tcase_add_test(tc, a_different_secret_does_not_verify);
    tcase_add_test(tc, verify_writes_nothing_unless_genuine);
    tcase_add_test(tc, presign_ttl_is_bounded);
    tcase_add_test(tc, forgeries_are_refused);
    tcase_add_test(tc, no_secret_no_urls);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
