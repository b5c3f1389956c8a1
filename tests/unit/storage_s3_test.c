/* storage_s3_test: the S3 backend against a real S3-compatible server
 * named by KD_TEST_S3_ENDPOINT: tests/s3/s3server.sh (s3rver behind a
 * SigV4-verifying proxy) or MinIO; scripts/test.sh starts the former. Without it the test is
 * skipped (exit 77). Presigned URLs are exercised with curl(1), an independent client. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "storage.h"
#include "util.h"

static struct kd_config *cfg;
static struct kd_storage *st;
static char dir[256];
static char prefix[64]; /* each run its own keys */

static void
setup(void)
{
    char err[512];
    const char *ep = getenv("KD_TEST_S3_ENDPOINT");

    ck_assert_int_eq(setenv("KADR_STORAGE_BACKEND", "s3", 1), 0);
    ck_assert_int_eq(setenv("KADR_S3_ENDPOINT", ep, 1), 0);
    ck_assert_int_eq(setenv("KADR_S3_BUCKET",
                            getenv("KD_TEST_S3_BUCKET") ? getenv("KD_TEST_S3_BUCKET") : "kadr", 1),
                     0);
    ck_assert_int_eq(
        setenv("KADR_S3_ACCESS_KEY",
               getenv("KD_TEST_S3_ACCESS_KEY") ? getenv("KD_TEST_S3_ACCESS_KEY") : "S3RVER", 1),
        0);
    ck_assert_int_eq(
        setenv("KADR_S3_SECRET_KEY",
               getenv("KD_TEST_S3_SECRET_KEY") ? getenv("KD_TEST_S3_SECRET_KEY") : "S3RVER", 1),
        0);
    ck_assert_int_eq(setenv("KADR_S3_PART_SIZE", "5M", 1), 0);
    ck_assert_int_eq(setenv("KADR_S3_MULTIPART_THRESHOLD", "5M", 1), 0);
    ck_assert_int_eq(setenv("KADR_S3_RETRIES", "2", 1), 0);
    ck_assert_int_eq(kd_config_load(NULL, &cfg, err, sizeof(err)), KD_OK);
    ck_assert_int_eq(kd_storage_open(cfg, &st), KD_OK);
    ck_assert_str_eq(kd_storage_backend_name(st), "s3");
    snprintf(dir, sizeof(dir), "/tmp/kd-s3-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    unsigned char rb[4];
    char hex[9];
    ck_assert_int_eq(kd_random_bytes(rb, 4), KD_OK);
    kd_hex_encode(rb, 4, hex);
    snprintf(prefix, sizeof(prefix), "test-%s", hex);
}

static void
teardown(void)
{
    char cmd[512];

    kd_storage_close(st);
    kd_config_free(cfg);
    snprintf(cmd, sizeof(cmd), "%s/a", dir);
    unlink(cmd);
    snprintf(cmd, sizeof(cmd), "%s/b", dir);
    unlink(cmd);
    snprintf(cmd, sizeof(cmd), "%s/c", dir);
    unlink(cmd);
    rmdir(dir);
}

static void
write_pattern(const char *path, size_t len)
{
    FILE *f = fopen(path, "wb");

    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < len; i++)
        fputc((int)((i * 7 + i / 4093) & 0xff), f);
    ck_assert_int_eq(fclose(f), 0);
}

static bool
same_file(const char *a, const char *b)
{
    char *x = NULL, *y = NULL;
    size_t xl, yl;
    bool same;

    ck_assert_int_eq(kd_read_file(a, 64 << 20, &x, &xl), KD_OK);
    ck_assert_int_eq(kd_read_file(b, 64 << 20, &y, &yl), KD_OK);
    same = xl == yl && memcmp(x, y, xl) == 0;
    free(x);
    free(y);
    return same;
}

/* Runs curl(1) and returns the HTTP status it saw (0 on failure). */
static int
curl_status_h(const char *method, const char *url, const char *upload, const char *out,
              const char *hdr)
{
    int pfd[2], status;
    char buf[16] = "";
    pid_t pid;
    ssize_t n;

    ck_assert_int_eq(pipe(pfd), 0);
    if ((pid = fork()) == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        if (upload != NULL)
            execlp("curl", "curl", "-s", "-o", out ? out : "/dev/null", "-D",
                   hdr ? hdr : "/dev/null", "-w", "%{http_code}", "-X", method, "-T", upload, url,
                   (char *)NULL);
        else
            execlp("curl", "curl", "-s", "-o", out ? out : "/dev/null", "-D",
                   hdr ? hdr : "/dev/null", "-w", "%{http_code}", "-X", method, url, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    n = read(pfd[0], buf, sizeof(buf) - 1);
    close(pfd[0]);
    waitpid(pid, &status, 0);
    buf[n > 0 ? n : 0] = '\0';
    return atoi(buf);
}

static int
curl_status(const char *method, const char *url, const char *upload, const char *out)
{
    return curl_status_h(method, url, upload, out, NULL);
}

/* The ETag header of a dump made by curl -D. */
static void
etag_of(const char *hdr, char *out, size_t out_len)
{
    char *text = NULL, *p, *e;
    size_t len;

    ck_assert_int_eq(kd_read_file(hdr, 1 << 16, &text, &len), KD_OK);
    p = strcasestr(text, "\netag:");
    ck_assert_ptr_nonnull(p);
    p += 6;
    while (*p == ' ')
        p++;
    e = strpbrk(p, "\r\n");
    ck_assert_ptr_nonnull(e);
    *e = '\0';
    snprintf(out, out_len, "%s", p);
    free(text);
}

static enum kd_err
count_fn(const char *key, int64_t size, void *arg)
{
    int *n = arg;

    (void)size;
    if (strncmp(key, prefix, strlen(prefix)) == 0)
        (*n)++;
    return KD_OK;
}

START_TEST(test_put_get_stat_delete)
{
    char a[300], b[300], key[128], buf[64];
    struct kd_storage_stat ss;
    size_t got = 0;
    int n = 0;

    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    snprintf(key, sizeof(key), "%s/small", prefix);
    write_pattern(a, 100000);
    ck_assert_int_eq(kd_storage_stat(st, key, &ss), KD_ENOTFOUND);
    ck_assert_int_eq(kd_storage_put_file(st, key, a), KD_OK);
    ck_assert_int_eq(kd_storage_stat(st, key, &ss), KD_OK);
    ck_assert_int_eq(ss.size, 100000);
    ck_assert_int_eq(kd_storage_get_file(st, key, b), KD_OK);
    ck_assert(same_file(a, b));
    /* ranges: inside, across the end, past the end */
    ck_assert_int_eq(kd_storage_read_range(st, key, 1000, buf, 10, &got), KD_OK);
    ck_assert_uint_eq(got, 10);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq((unsigned char)buf[i], ((1000 + i) * 7 + (1000 + i) / 4093) & 0xff);
    ck_assert_int_eq(kd_storage_read_range(st, key, 99990, buf, 64, &got), KD_OK);
    ck_assert_uint_eq(got, 10);
    ck_assert_int_eq(kd_storage_read_range(st, key, 100000, buf, 64, &got), KD_OK);
    ck_assert_uint_eq(got, 0);
    ck_assert_int_eq(kd_storage_list(st, prefix, count_fn, &n), KD_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(kd_storage_check(st), KD_OK);
    ck_assert_int_eq(kd_storage_delete(st, key), KD_OK);
    ck_assert_int_eq(kd_storage_delete(st, key), KD_OK); /* missing is fine */
    ck_assert_int_eq(kd_storage_stat(st, key, &ss), KD_ENOTFOUND);
    ck_assert_int_eq(kd_storage_get_file(st, key, b), KD_ENOTFOUND);
}
END_TEST

/* 12 MiB with 5 MiB parts: three parts, the last one short. */
START_TEST(test_multipart_put)
{
    char a[300], b[300], key[128];
    struct kd_storage_stat ss;
    struct kd_storage_reader *r = NULL;
    unsigned char buf[8192];
    size_t got;

    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    snprintf(key, sizeof(key), "%s/big", prefix);
    write_pattern(a, 12 * 1024 * 1024 + 123);
    ck_assert_int_eq(kd_storage_put_file(st, key, a), KD_OK);
    ck_assert_int_eq(kd_storage_stat(st, key, &ss), KD_OK);
    ck_assert_int_eq(ss.size, 12 * 1024 * 1024 + 123);
    ck_assert_int_eq(kd_storage_get_file(st, key, b), KD_OK);
    ck_assert(same_file(a, b));
    /* the streaming reader: a seek past the first window, then a read */
    ck_assert_int_eq(kd_storage_reader_open(st, key, &r), KD_OK);
    ck_assert_int_eq(kd_storage_reader_size(r), 12 * 1024 * 1024 + 123);
    ck_assert_int_eq(kd_storage_reader_seek(r, 9 * 1024 * 1024 + 5), KD_OK);
    ck_assert_int_eq(kd_storage_reader_read(r, buf, sizeof(buf), &got), KD_OK);
    ck_assert_uint_eq(got, sizeof(buf));
    for (size_t i = 0; i < got; i++) {
        size_t o = 9 * 1024 * 1024 + 5 + i;
        ck_assert_int_eq(buf[i], (o * 7 + o / 4093) & 0xff);
    }
    ck_assert_int_eq(kd_storage_reader_seek(r, 12 * 1024 * 1024 + 123), KD_OK);
    ck_assert_int_eq(kd_storage_reader_read(r, buf, sizeof(buf), &got), KD_OK);
    ck_assert_uint_eq(got, 0);
    kd_storage_reader_close(r);
    ck_assert_int_eq(kd_storage_delete(st, key), KD_OK);
}
END_TEST

/* The browser's path: presigned part URLs, then complete with the ETags;
 * and an aborted upload leaves neither an object nor parts. */
START_TEST(test_multipart_presigned_and_abort)
{
    char a[300], c[300], key[128];
    struct kd_storage_part parts[2], *listed = NULL;
    struct kd_storage_stat ss;
    char *id = NULL, *url = NULL;
    int64_t exp;
    size_t n = 0;

    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(c, sizeof(c), "%s/c", dir);
    snprintf(key, sizeof(key), "%s/mp", prefix);
    write_pattern(a, 6 * 1024 * 1024);
    ck_assert_int_eq(kd_storage_multipart_begin(st, key, "video/mp4", &id), KD_OK);
    ck_assert_int_eq(
        kd_storage_multipart_presign_part(st, key, id, 1, 6 * 1024 * 1024, 600, &url, &exp), KD_OK);
    snprintf(c, sizeof(c), "%s/c", dir);
    ck_assert_int_eq(curl_status_h("PUT", url, a, NULL, c), 200);
    free(url);
    parts[0].part_number = 1;
    etag_of(c, parts[0].etag, sizeof(parts[0].etag));
    ck_assert_int_eq(kd_storage_multipart_list_parts(st, key, id, &listed, &n), KD_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(listed[0].size, 6 * 1024 * 1024);
    ck_assert_str_eq(listed[0].etag, parts[0].etag);
    free(listed);
    /* a wrong ETag is refused by the store */
    struct kd_storage_part bad = parts[0];
    memcpy(bad.etag, "\"00000000000000000000000000000000\"", 35);
    ck_assert_int_eq(kd_storage_multipart_complete(st, key, id, &bad, 1), KD_EINVAL);
    /* an ETag that is not one is refused before it reaches the store */
    struct kd_storage_part evil = parts[0];
    snprintf(evil.etag, sizeof(evil.etag), "</ETag><x>");
    ck_assert_int_eq(kd_storage_multipart_complete(st, key, id, &evil, 1), KD_EINVAL);
    ck_assert_int_eq(kd_storage_multipart_complete(st, key, id, parts, 1), KD_OK);
    ck_assert_int_eq(kd_storage_stat(st, key, &ss), KD_OK);
    ck_assert_int_eq(ss.size, 6 * 1024 * 1024);
    ck_assert_int_eq(kd_storage_delete(st, key), KD_OK);
    free(id);
    id = NULL;

    /* abort: nothing stays behind */
    ck_assert_int_eq(kd_storage_multipart_begin(st, key, NULL, &id), KD_OK);
    ck_assert_int_eq(kd_storage_multipart_upload_part(st, key, id, 1, open(a, O_RDONLY), 0,
                                                      5 * 1024 * 1024, &parts[0]),
                     KD_OK);
    ck_assert_int_eq(kd_storage_multipart_abort(st, key, id), KD_OK);
    /* the upload is gone: its parts cannot be listed or joined any more */
    ck_assert_int_eq(kd_storage_multipart_list_parts(st, key, id, &listed, &n), KD_ENOTFOUND);
    ck_assert_int_eq(kd_storage_multipart_complete(st, key, id, parts, 1), KD_ENOTFOUND);
    ck_assert_int_eq(kd_storage_multipart_abort(st, key, id), KD_OK); /* twice is fine */
    ck_assert_int_eq(kd_storage_stat(st, key, &ss), KD_ENOTFOUND);
    free(id);
}
END_TEST

START_TEST(test_presigned)
{
    char a[300], b[300], key[128], *url = NULL, *bad;
    struct kd_presign put = {.ttl_s = 600, .size = 1000};
    struct kd_presign get = {.ttl_s = 600, .filename = "my \"clip\" é.mp4"};
    int64_t exp;

    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    snprintf(key, sizeof(key), "%s/pre", prefix);
    write_pattern(a, 1000);
    ck_assert_int_eq(kd_storage_presign(st, "PUT", key, &put, &url, &exp), KD_OK);
    ck_assert_int_eq(curl_status("PUT", url, a, NULL), 200);
    /* tampered: the same URL for another key is refused */
    bad = strdup(url);
    char *k = strstr(bad, "/pre?");
    ck_assert_ptr_nonnull(k);
    k[1] = 'q';
    ck_assert_int_eq(curl_status("PUT", bad, a, NULL), 403);
    free(bad);
    free(url);
    ck_assert_int_eq(kd_storage_presign(st, "GET", key, &get, &url, &exp), KD_OK);
    ck_assert_int_eq(curl_status("GET", url, NULL, b), 200);
    ck_assert(same_file(a, b));
    /* tampered signature */
    bad = strdup(url);
    char *sig = strstr(bad, "X-Amz-Signature=");
    ck_assert_ptr_nonnull(sig);
    sig[16] = sig[16] == '0' ? '1' : '0';
    ck_assert_int_eq(curl_status("GET", bad, NULL, NULL), 403);
    free(bad);
    free(url);
    /* expired: a one-second URL used three seconds later */
    get.ttl_s = 1;
    ck_assert_int_eq(kd_storage_presign(st, "GET", key, &get, &url, &exp), KD_OK);
    sleep(3);
    ck_assert_int_eq(curl_status("GET", url, NULL, NULL), 403);
    free(url);
    ck_assert_int_eq(kd_storage_delete(st, key), KD_OK);
}
END_TEST

/* The test server's fault switch (tests/s3/verify-proxy.js): false when
 * the server has none (MinIO), and the test that needs it is skipped. */
static bool
fault(const char *method, const char *query)
{
    char url[512];

    snprintf(url, sizeof(url), "%s/__faults?%s", getenv("KD_TEST_S3_ENDPOINT"), query);
    return curl_status(method, url, NULL, NULL) == 200;
}

/* A second handle on the same server with other settings (env: name=value
 * pairs, NULL-terminated); the caller closes both. */
static void
other_store(const char *const *env, struct kd_config **c, struct kd_storage **s)
{
    char err[512];

    for (size_t i = 0; env[i] != NULL; i += 2)
        ck_assert_int_eq(setenv(env[i], env[i + 1], 1), 0);
    ck_assert_int_eq(kd_config_load(NULL, c, err, sizeof(err)), KD_OK);
    ck_assert_int_eq(kd_storage_open(*c, s), KD_OK);
}

/* Transient answers (503 SlowDown, 500) are retried with backoff; past
 * s3_retries the store counts as unavailable, its words kept. */
START_TEST(test_retries_with_backoff)
{
    char a[300], key[128];
    struct kd_storage_stat ss;
    int64_t t0;

    if (!fault("PUT", "status=503&code=SlowDown&count=2&methods=PUT")) {
        fprintf(stderr, "storage_s3_test: no fault switch on this server; retries not tested\n");
        return;
    }
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(key, sizeof(key), "%s/retry", prefix);
    write_pattern(a, 1000);
    t0 = kd_mono_ms();
    ck_assert_int_eq(kd_storage_put_file(st, key, a), KD_OK); /* the third try */
    /* two backoffs: at least 50 + 100 ms even with the jitter */
    ck_assert_int_ge(kd_mono_ms() - t0, 150);
    ck_assert_int_eq(kd_storage_stat(st, key, &ss), KD_OK);
    ck_assert_int_eq(ss.size, 1000);
    /* s3_retries = 2: three 500s are an outage */
    ck_assert(fault("PUT", "status=500&code=InternalError&count=3&methods=HEAD"));
    ck_assert_int_eq(kd_storage_stat(st, key, &ss), KD_EUNAVAIL);
    /* a HEAD answer has no body: the status is what is known */
    ck_assert_ptr_nonnull(strstr(kd_storage_last_error(st), "500"));
    ck_assert(fault("PUT", "status=500&code=InternalError&count=3&methods=GET"));
    ck_assert_int_eq(kd_storage_get_file(st, key, a), KD_EUNAVAIL);
    ck_assert_msg(strstr(kd_storage_last_error(st), "500 InternalError") != NULL, "%s",
                  kd_storage_last_error(st));
    /* 501 is a missing feature, not an outage: no retry */
    ck_assert(fault("PUT", "status=501&code=NotImplemented&count=2&methods=GET"));
    ck_assert_int_eq(kd_storage_get_file(st, key, a), KD_EUNSUPPORTED);
    ck_assert_int_eq(kd_storage_get_file(st, key, a), KD_EUNSUPPORTED); /* the second fault */
    ck_assert_int_eq(kd_storage_get_file(st, key, a), KD_OK);
    ck_assert(fault("DELETE", ""));
    ck_assert_int_eq(kd_storage_delete(st, key), KD_OK);
}
END_TEST

/* A CompleteMultipartUpload carried out by the store whose answer is lost:
 * the retry finds no such upload, and the object of the expected size
 * says the first try worked. */
START_TEST(test_complete_answer_lost)
{
    char a[300], b[300], key[128];

    if (!fault("PUT",
               "status=500&code=InternalError&count=1&methods=POST&match=uploadId=&pass=1")) {
        fprintf(stderr, "storage_s3_test: no fault switch on this server; not tested\n");
        return;
    }
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    snprintf(key, sizeof(key), "%s/lost", prefix);
    write_pattern(a, 6 * 1024 * 1024);
    ck_assert_int_eq(kd_storage_put_file(st, key, a), KD_OK);
    ck_assert_int_eq(kd_storage_get_file(st, key, b), KD_OK);
    ck_assert(same_file(a, b));
    ck_assert(fault("DELETE", ""));
    ck_assert_int_eq(kd_storage_delete(st, key), KD_OK);
}
END_TEST

/* Virtual-host style (s3_path_style = 0): the bucket in the host name
 * (<bucket>.localhost resolves to loopback), the key alone in the path;
 * signed and verified that way. */
START_TEST(test_virtual_host)
{
    const char *ep = getenv("KD_TEST_S3_ENDPOINT"), *port = strrchr(ep, ':');
    char endpoint[128], a[300], b[300], key[128], want[256], *url = NULL;
    struct kd_config *c2 = NULL;
    struct kd_storage *s2 = NULL;
    struct kd_presign get = {.ttl_s = 600};
    int64_t exp;

    if (strncmp(ep, "http://127.0.0.1:", 17) != 0) {
        fprintf(stderr, "storage_s3_test: virtual hosts need the loopback test server\n");
        return;
    }
    snprintf(endpoint, sizeof(endpoint), "http://localhost%s", port);
    other_store(
        (const char *const[]){"KADR_S3_ENDPOINT", endpoint, "KADR_S3_PATH_STYLE", "0", NULL}, &c2,
        &s2);
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    snprintf(key, sizeof(key), "%s/vhost", prefix);
    write_pattern(a, 3000);
    ck_assert_int_eq(kd_storage_put_file(s2, key, a), KD_OK);
    ck_assert_int_eq(kd_storage_get_file(s2, key, b), KD_OK);
    ck_assert(same_file(a, b));
    ck_assert_int_eq(kd_storage_presign(s2, "GET", key, &get, &url, &exp), KD_OK);
    snprintf(want, sizeof(want), "http://kadr.localhost%s/%s?", port, key);
    ck_assert_msg(strncmp(url, want, strlen(want)) == 0, "%s", url);
    ck_assert_int_eq(curl_status("GET", url, NULL, b), 200);
    ck_assert(same_file(a, b));
    free(url);
    /* the path-style handle sees the same object */
    ck_assert_int_eq(kd_storage_get_file(st, key, b), KD_OK);
    ck_assert_int_eq(kd_storage_delete(s2, key), KD_OK);
    kd_storage_close(s2);
    kd_config_free(c2);
    setenv("KADR_S3_PATH_STYLE", "1", 1);
}
END_TEST

/* Another region than us-east-1: signed into the scope and verified; a
 * region the server does not serve is refused. */
START_TEST(test_other_region)
{
    char a[300], key[128];
    struct kd_config *c2 = NULL, *c3 = NULL;
    struct kd_storage *s2 = NULL, *s3 = NULL;
    struct kd_storage_stat ss;

    if (!fault("GET", "")) {
        fprintf(stderr, "storage_s3_test: regions are tested against the suite's server only\n");
        return;
    }
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(key, sizeof(key), "%s/region", prefix);
    write_pattern(a, 2000);
    other_store((const char *const[]){"KADR_S3_REGION", "eu-central-1", NULL}, &c2, &s2);
    ck_assert_int_eq(kd_storage_put_file(s2, key, a), KD_OK);
    ck_assert_int_eq(kd_storage_stat(s2, key, &ss), KD_OK);
    ck_assert_int_eq(ss.size, 2000);
    other_store((const char *const[]){"KADR_S3_REGION", "ap-south-1", NULL}, &c3, &s3);
    ck_assert_int_ne(kd_storage_get_file(s3, key, a), KD_OK);
    ck_assert_msg(strstr(kd_storage_last_error(s3), "AuthorizationHeaderMalformed") != NULL, "%s",
                  kd_storage_last_error(s3));
    ck_assert_int_eq(kd_storage_delete(s2, key), KD_OK);
    kd_storage_close(s2);
    kd_storage_close(s3);
    kd_config_free(c2);
    kd_config_free(c3);
    setenv("KADR_S3_REGION", "us-east-1", 1);
}
END_TEST

/* The store down: bounded retries, then KD_EUNAVAIL, never a hang. */
START_TEST(test_down)
{
    struct kd_config *c2 = NULL;
    struct kd_storage *s2 = NULL;
    struct kd_storage_stat ss;
    char err[512];

    ck_assert_int_eq(setenv("KADR_S3_ENDPOINT", "http://127.0.0.1:9", 1), 0);
    ck_assert_int_eq(setenv("KADR_S3_RETRIES", "1", 1), 0);
    ck_assert_int_eq(kd_config_load(NULL, &c2, err, sizeof(err)), KD_OK);
    ck_assert_int_eq(kd_storage_open(c2, &s2), KD_OK);
    ck_assert_int_eq(kd_storage_stat(s2, "media/x", &ss), KD_EUNAVAIL);
    ck_assert_int_eq(kd_storage_check(s2), KD_EUNAVAIL);
    kd_storage_close(s2);
    kd_config_free(c2);
}
END_TEST

int
main(void)
{
    Suite *s;
    TCase *tc;
    SRunner *sr;
    int failed;

    if (getenv("KD_TEST_S3_ENDPOINT") == NULL || getenv("KD_TEST_S3_ENDPOINT")[0] == '\0') {
        fprintf(stderr, "storage_s3_test: SKIP: KD_TEST_S3_ENDPOINT is not set "
                        "(scripts/test.sh starts s3rver and sets it)\n");
        return 77;
    }
    s = suite_create("storage_s3");
    tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_put_get_stat_delete);
    tcase_add_test(tc, test_multipart_put);
    tcase_add_test(tc, test_multipart_presigned_and_abort);
    tcase_add_test(tc, test_presigned);
    tcase_add_test(tc, test_down);
    tcase_add_test(tc, test_retries_with_backoff);
    tcase_add_test(tc, test_complete_answer_lost);
    tcase_add_test(tc, test_virtual_host);
    tcase_add_test(tc, test_other_region);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
