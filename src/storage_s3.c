/* storage_s3.c: the S3/MinIO backend of storage.h, over libcurl (HTTP),
 * sigv4.c (signatures) and libxml2 (S3's XML answers). The only file that
 * sees libcurl and libxml2. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sigv4.h"
#include "storage_int.h"
#include "util.h"

/* S3's XML answers (errors, listings of up to 1000 entries) stay far
 * below this; anything larger is not an answer we asked for. */
#define XML_CAP          (4 * 1024 * 1024)
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   5000
/* S3 parts: at least 5 MiB but the last, at most 5 GiB, 10000 of them. */
#define S3_MIN_PART (5LL * 1024 * 1024)

struct kd_s3 {
    CURL *curl;             /* one handle: its connection is reused */
    pid_t pid;              /* the process that made curl (see handle()) */
    char scheme[8];         /* "http" or "https" */
    char authority[256];    /* host[:port] of the endpoint */
    char base_path[256];    /* path of the endpoint, "" or "/x" */
    char public_base[1024]; /* presigned URLs start with this; "" = endpoint */
    struct kd_sigv4_key key;
    bool path_style;
    int64_t part_size;
    int64_t threshold;
    int64_t timeout_ms;
    int64_t retries;
};

/* --- endpoint ---------------------------------------------------------- */

static enum kd_err
parse_endpoint(const char *url, char *scheme, size_t scheme_len, char *authority,
               size_t authority_len, char *path, size_t path_len)
{
    const char *p, *slash;
    size_t alen, plen;

    if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
        if (kd_snprintf(scheme, scheme_len, "http") != KD_OK)
            return KD_EINVAL;
    } else if (strncmp(url, "https://", 8) == 0) {
        p = url + 8;
        if (kd_snprintf(scheme, scheme_len, "https") != KD_OK)
            return KD_EINVAL;
    } else {
        return KD_EINVAL;
    }
    slash = strchr(p, '/');
    alen = slash != NULL ? (size_t)(slash - p) : strlen(p);
    if (alen == 0 || alen >= authority_len || memchr(p, '@', alen) != NULL ||
        memchr(p, '?', alen) != NULL)
        return KD_EINVAL;
    memcpy(authority, p, alen);
    authority[alen] = '\0';
    plen = slash != NULL ? strlen(slash) : 0;
    while (plen > 0 && slash[plen - 1] == '/')
        plen--; /* "http://h/" is "http://h" */
    if (plen >= path_len || (slash != NULL && strpbrk(slash, "?#") != NULL))
        return KD_EINVAL;
    if (plen > 0)
        memcpy(path, slash, plen);
    path[plen] = '\0';
    return KD_OK;
}

/* The Host header and the decoded path of key (NULL: the bucket). */
static enum kd_err
target(struct kd_s3 *s3, const char *bucket, const char *key, char *host, size_t host_len,
       char *path, size_t path_len)
{
    enum kd_err rc;

    if (s3->path_style) {
        if ((rc = kd_snprintf(host, host_len, "%s", s3->authority)) != KD_OK)
            return rc;
        return kd_snprintf(path, path_len, "%s/%s/%s", s3->base_path, bucket,
                           key != NULL ? key : "");
    }
    if ((rc = kd_snprintf(host, host_len, "%s.%s", bucket, s3->authority)) != KD_OK)
        return rc;
    return kd_snprintf(path, path_len, "%s/%s", s3->base_path, key != NULL ? key : "");
}

/* --- one request ------------------------------------------------------- */

struct s3_req {
    const char *method;
    const char *key; /* NULL: the bucket itself */
    const struct kd_sigv4_kv *query;
    size_t query_n;
    const char *content_type; /* sent unsigned; NULL for none */
    const char *range;        /* "bytes=a-b"; NULL for none */
    const char *body;         /* a body in memory (XML) */
    size_t body_len;
    int body_fd; /* or a body from a file; -1 */
    int64_t body_off, body_fd_len;
    int out_fd;    /* the answer's body into a file; -1 */
    void *out_buf; /* or into a buffer; NULL */
    size_t out_cap;
};

struct s3_resp {
    long status;
    struct kd_buf xml; /* the body when neither out_fd nor out_buf */
    size_t out_got;
    int64_t content_length;
    int64_t mtime_ms;
    char etag[128];
    /* the transfer state */
    const struct s3_req *rq;
    int64_t sent;
    bool write_failed;
};

static size_t
on_read(char *buf, size_t size, size_t nmemb, void *arg)
{
    struct s3_resp *r = arg;
    const struct s3_req *rq = r->rq;
    int64_t left = rq->body_fd_len - r->sent;
    size_t want = size * nmemb;
    ssize_t n;

    if (left <= 0)
        return 0;
    if ((int64_t)want > left)
        want = (size_t)left;
    do
        n = pread(rq->body_fd, buf, want, (off_t)(rq->body_off + r->sent));
    while (n < 0 && errno == EINTR);
    if (n <= 0) /* the file shrank or failed: never send a short object */
        return CURL_READFUNC_ABORT;
    r->sent += n;
    return (size_t)n;
}

static size_t
on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct s3_resp *r = arg;
    const struct s3_req *rq = r->rq;
    size_t len = size * nmemb;

    /* Error documents always go to xml, whatever the sink; on_header has
     * seen the status line by now. */
    if (rq->out_fd >= 0 && r->status / 100 == 2) {
        for (size_t off = 0; off < len;) {
            ssize_t n = write(rq->out_fd, data + off, len - off);

            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                r->write_failed = true;
                return 0;
            }
            off += (size_t)n;
        }
        r->out_got += len;
        return len;
    }
    if (rq->out_buf != NULL && r->status / 100 == 2) {
        if (len > rq->out_cap - r->out_got) {
            r->write_failed = true; /* more than asked for: a range ignored */
            return 0;
        }
        memcpy((char *)rq->out_buf + r->out_got, data, len);
        r->out_got += len;
        return len;
    }
    if (kd_buf_append(&r->xml, data, len) != KD_OK) {
        r->write_failed = true;
        return 0;
    }
    return len;
}

static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct s3_resp *r = arg;
    size_t len = size * nmemb;

    /* a new status line starts a new answer (after a 100 Continue) */
    if (len > 5 && strncmp(data, "HTTP/", 5) == 0) {
        const char *sp = memchr(data, ' ', len);

        r->status = sp != NULL ? strtol(sp + 1, NULL, 10) : 0;
        return len;
    }
    if (len > 5 && strncasecmp(data, "ETag:", 5) == 0) {
        size_t i = 5, e = len;

        while (i < e && (data[i] == ' ' || data[i] == '\t'))
            i++;
        while (e > i && (data[e - 1] == '\r' || data[e - 1] == '\n' || data[e - 1] == ' '))
            e--;
        if (e - i < sizeof(r->etag)) {
            memcpy(r->etag, data + i, e - i);
            r->etag[e - i] = '\0';
        }
    } else if (len > 14 && strncasecmp(data, "Last-Modified:", 14) == 0) {
        char v[128];
        size_t n = len - 14 < sizeof(v) - 1 ? len - 14 : sizeof(v) - 1;
        time_t t;

        memcpy(v, data + 14, n);
        v[n] = '\0';
        if ((t = curl_getdate(v, NULL)) != (time_t)-1)
            r->mtime_ms = (int64_t)t * 1000;
    }
    return len;
}

/* S3's error document: <Error><Code>..</Code><Message>..</Message></Error>. */
static void
error_doc(const struct kd_buf *xml, char *code, size_t code_len, char *msg, size_t msg_len)
{
    xmlDocPtr doc = NULL;
    xmlNodePtr root;

    code[0] = msg[0] = '\0';
    if (xml->len == 0 || xml->len > INT32_MAX)
        return;
    doc = xmlReadMemory(xml->data, (int)xml->len, NULL, NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (doc == NULL || (root = xmlDocGetRootElement(doc)) == NULL ||
        xmlStrcmp(root->name, BAD_CAST "Error") != 0)
        goto out;
    for (xmlNodePtr n = root->children; n != NULL; n = n->next) {
        xmlChar *t;

        if (n->type != XML_ELEMENT_NODE)
            continue;
        if ((t = xmlNodeGetContent(n)) == NULL)
            continue;
        if (xmlStrcmp(n->name, BAD_CAST "Code") == 0)
            snprintf(code, code_len, "%.64s", (const char *)t);
        else if (xmlStrcmp(n->name, BAD_CAST "Message") == 0)
            snprintf(msg, msg_len, "%.200s", (const char *)t);
        xmlFree(t);
    }
out:
    xmlFreeDoc(doc);
}

/* 501 Not Implemented is a store without the call, not an outage: it is
 * answered before this is asked. */
static bool
transient_status(long status, const char *code)
{
    return status >= 500 || status == 429 || strcmp(code, "SlowDown") == 0 ||
           strcmp(code, "RequestTimeout") == 0 || strcmp(code, "InternalError") == 0;
}

/* The handle of this process. A child forked by the worker must not
 * talk over its parent's connection: it starts its own, and leaves the
 * inherited one alone. The child closed every inherited descriptor
 * already, so cleaning that handle up would close whatever file now has
 * the old socket's number; the few bytes it holds die with the child. */
static enum kd_err
handle(struct kd_s3 *s3, CURL **out)
{
    if (s3->curl != NULL && s3->pid != getpid())
        s3->curl = NULL;
    if (s3->curl == NULL) {
        if ((s3->curl = curl_easy_init()) == NULL)
            return KD_ENOMEM;
        s3->pid = getpid();
    }
    curl_easy_reset(s3->curl);
    *out = s3->curl;
    return KD_OK;
}

static void
backoff(int attempt)
{
    int64_t ms = BACKOFF_FIRST_MS << (attempt < 10 ? attempt : 10);
    unsigned char j = 0;
    struct timespec ts;

    if (ms > BACKOFF_MAX_MS)
        ms = BACKOFF_MAX_MS;
    /* jitter so that many workers do not retry in step */
    if (kd_random_bytes(&j, 1) == KD_OK)
        ms = ms / 2 + (ms / 2) * j / 255;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* One attempt: signs the request now and performs it. */
static enum kd_err
attempt(struct kd_storage *s, const struct s3_req *rq, struct s3_resp *r, CURLcode *cc)
{
    struct kd_s3 *s3 = s->s3;
    struct curl_slist *hl = NULL, *t;
    struct kd_sigv4_result sig = {0};
    struct kd_buf url, line;
    char host[512], path[1024], date[17], hash[65];
    struct kd_sigv4_kv h[4];
    size_t hn = 0;
    CURL *c = NULL;
    enum kd_err rc;

    kd_buf_init(&url, 16384);
    kd_buf_init(&line, 16384);
    if ((rc = handle(s3, &c)) != KD_OK || (rc = target(s3, s->cfg->s3_bucket, rq->key, host,
                                                       sizeof(host), path, sizeof(path))) != KD_OK)
        goto out;
    kd_sigv4_amz_date(time(NULL), date);
    if (rq->body_fd >= 0)
        memcpy(hash, KD_SIGV4_UNSIGNED_PAYLOAD, sizeof(KD_SIGV4_UNSIGNED_PAYLOAD));
    else
        kd_sha256_hex(rq->body != NULL ? rq->body : "", rq->body_len, hash);
    h[hn++] = (struct kd_sigv4_kv){"host", host};
    h[hn++] = (struct kd_sigv4_kv){"x-amz-content-sha256", hash};
    h[hn++] = (struct kd_sigv4_kv){"x-amz-date", date};
    if (rq->range != NULL)
        h[hn++] = (struct kd_sigv4_kv){"range", rq->range};
    struct kd_sigv4_request sr = {.method = rq->method,
                                  .path = path,
                                  .query = rq->query,
                                  .query_n = rq->query_n,
                                  .headers = h,
                                  .headers_n = hn,
                                  .payload_hash = hash};
    if ((rc = kd_sigv4_sign(&s3->key, date, &sr, &sig)) != KD_OK)
        goto out;
    /* the URL: the same encoding the signer used, so both agree */
    if ((rc = kd_buf_printf(&url, "%s://%s", s3->scheme, host)) != KD_OK ||
        (rc = kd_sigv4_uri_encode(&url, path, strlen(path), true)) != KD_OK)
        goto out;
    if (rq->query_n > 0) {
        char *cq = NULL;
        struct kd_sigv4_request qr = {.method = "GET",
                                      .path = "/",
                                      .query = rq->query,
                                      .query_n = rq->query_n,
                                      .headers = h,
                                      .headers_n = 1,
                                      .payload_hash = hash};

        /* the canonical request's second line is the canonical query */
        if ((rc = kd_sigv4_canonical_request(&qr, &cq)) != KD_OK)
            goto out;
        char *q = strchr(cq, '\n');
        q = q != NULL ? strchr(q + 1, '\n') : NULL;
        char *e = q != NULL ? strchr(q + 1, '\n') : NULL;
        if (q == NULL || e == NULL) {
            free(cq);
            rc = KD_EINTERNAL;
            goto out;
        }
        rc = kd_buf_printf(&url, "?%.*s", (int)(e - q - 1), q + 1);
        free(cq);
        if (rc != KD_OK)
            goto out;
    }
    for (size_t i = 0; i < hn; i++) {
        kd_buf_reset(&line);
        if ((rc = kd_buf_printf(&line, "%s: %s", h[i].name, h[i].value)) != KD_OK)
            goto out;
        if ((t = curl_slist_append(hl, line.data)) == NULL) {
            rc = KD_ENOMEM;
            goto out;
        }
        hl = t;
    }
    kd_buf_reset(&line);
    if ((rc = kd_buf_printf(&line, "Authorization: %s", sig.authorization)) != KD_OK)
        goto out;
    if ((t = curl_slist_append(hl, line.data)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    hl = t;
    /* no 100-continue round trip: S3 answers errors early anyway */
    if ((t = curl_slist_append(hl, "Expect:")) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    hl = t;
    kd_buf_reset(&line);
    if ((rc = kd_buf_printf(&line, "Content-Type:%s%s", rq->content_type ? " " : "",
                            rq->content_type ? rq->content_type : "")) != KD_OK)
        goto out;
    if ((t = curl_slist_append(hl, line.data)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    hl = t;
    curl_easy_setopt(c, CURLOPT_URL, url.data);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)s3->timeout_ms);
    /* a stall, not a long transfer, is a failure: below 1 KiB/s for the
     * timeout aborts (objects of tens of GiB take long but keep moving) */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)((s3->timeout_ms + 999) / 1000));
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    if (strcmp(rq->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (rq->body_fd >= 0) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, r);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_fd_len);
        if (strcmp(rq->method, "PUT") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
    } else if (rq->body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
    } else if (strcmp(rq->method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
        if (strcmp(rq->method, "POST") == 0) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
        }
    }
    *cc = curl_easy_perform(c);
    if (*cc == CURLE_OK) {
        curl_off_t cl = -1;

        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        if (curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK)
            r->content_length = (int64_t)cl;
    }
out:
    curl_slist_free_all(hl);
    kd_sigv4_result_clear(&sig);
    kd_buf_clear(&url);
    kd_buf_clear(&line);
    return rc;
}

/* Performs rq with retries of transient failures (transport errors, 5xx,
 * 429, SlowDown) under exponential backoff with jitter. Maps the outcome:
 * 2xx KD_OK; 404 KD_ENOTFOUND; 416 KD_OK with status kept (the caller
 * decides); S3 refusing the request KD_EINVAL or KD_EFORBIDDEN; the store
 * unreachable after the retries KD_EUNAVAIL. *r is the caller's to clear
 * with kd_buf_clear(&r->xml). */
static enum kd_err
perform(struct kd_storage *s, const struct s3_req *rq, struct s3_resp *r)
{
    struct kd_s3 *s3 = s->s3;
    char code[80], msg[256];
    enum kd_err rc = KD_EUNAVAIL;

    s->last_err[0] = '\0';
    for (int i = 0; i <= s3->retries; i++) {
        CURLcode cc = CURLE_OK;

        if (i > 0)
            backoff(i - 1);
        kd_buf_clear(&r->xml);
        kd_buf_init(&r->xml, XML_CAP);
        r->status = 0;
        r->out_got = 0;
        r->content_length = -1;
        r->mtime_ms = 0;
        r->etag[0] = '\0';
        r->rq = rq;
        r->sent = 0;
        r->write_failed = false;
        if (rq->out_fd >= 0 &&
            (ftruncate(rq->out_fd, 0) != 0 || lseek(rq->out_fd, 0, SEEK_SET) != 0)) {
            rc = KD_EIO;
            goto out;
        }
        if ((rc = attempt(s, rq, r, &cc)) != KD_OK)
            goto out;
        if (r->write_failed) {
            rc = rq->out_fd >= 0 ? KD_EIO : KD_EINTERNAL;
            kd_log(KD_LOG_ERROR, "storage s3: %s %s: answer could not be stored", rq->method,
                   rq->key != NULL ? rq->key : "(bucket)");
            goto out;
        }
        if (cc != CURLE_OK) {
            kd_log(KD_LOG_WARN, "storage s3: %s %s: %s (attempt %d of %lld)", rq->method,
                   rq->key != NULL ? rq->key : "(bucket)", curl_easy_strerror(cc), i + 1,
                   (long long)s3->retries + 1);
            snprintf(s->last_err, sizeof(s->last_err), "%s", curl_easy_strerror(cc));
            rc = cc == CURLE_OPERATION_TIMEDOUT ? KD_ETIMEOUT : KD_EUNAVAIL;
            if (cc == CURLE_ABORTED_BY_CALLBACK || cc == CURLE_READ_ERROR) {
                rc = KD_EIO; /* our file, not the network */
                goto out;
            }
            continue;
        }
        error_doc(&r->xml, code, sizeof(code), msg, sizeof(msg));
        /* CompleteMultipartUpload may fail inside a 200 answer */
        if (r->status / 100 == 2 && code[0] == '\0') {
            rc = KD_OK;
            goto out;
        }
        /* S3's words, for the messages users and operators read */
        snprintf(s->last_err, sizeof(s->last_err), "%ld %s: %s", r->status, code[0] ? code : "-",
                 msg[0] ? msg : "-");
        if (r->status == 501) {
            /* an S3 work-alike without this call (s3rver has no ListParts) */
            kd_log(KD_LOG_WARN, "storage s3: %s %s: the store does not implement this (%s)",
                   rq->method, rq->key != NULL ? rq->key : "(bucket)", code[0] ? code : "-");
            rc = KD_EUNSUPPORTED;
            goto out;
        }
        if (r->status / 100 == 2 || transient_status(r->status, code)) {
            kd_log(KD_LOG_WARN, "storage s3: %s %s: %ld %s: %s (attempt %d of %lld)", rq->method,
                   rq->key != NULL ? rq->key : "(bucket)", r->status, code[0] ? code : "-",
                   msg[0] ? msg : "-", i + 1, (long long)s3->retries + 1);
            rc = KD_EUNAVAIL;
            continue;
        }
        if (r->status == 404 || strcmp(code, "NoSuchKey") == 0 ||
            strcmp(code, "NoSuchUpload") == 0) {
            rc = KD_ENOTFOUND;
            goto out;
        }
        if (r->status == 416) {
            rc = KD_OK;
            goto out;
        }
        if (r->status == 405) {
            /* a method the store does not take on this resource */
            kd_log(KD_LOG_WARN, "storage s3: %s %s: the store does not implement this (%s)",
                   rq->method, rq->key != NULL ? rq->key : "(bucket)", code[0] ? code : "-");
            rc = KD_EUNSUPPORTED;
            goto out;
        }
        /* the store refused: an operator must look (keys, bucket, clock) */
        kd_log(KD_LOG_ERROR, "storage s3: %s %s: %ld %s: %s", rq->method,
               rq->key != NULL ? rq->key : "(bucket)", r->status, code[0] ? code : "-",
               msg[0] ? msg : "-");
        if (r->status == 403)
            rc = KD_EFORBIDDEN;
        else if (r->status == 400 || strncmp(code, "Invalid", 7) == 0 ||
                 strcmp(code, "EntityTooSmall") == 0 || strcmp(code, "EntityTooLarge") == 0)
            rc = KD_EINVAL;
        else
            rc = KD_EUNAVAIL;
        goto out;
    }
out:
    return rc;
}

static void
req_init(struct s3_req *rq, const char *method, const char *key)
{
    memset(rq, 0, sizeof(*rq));
    rq->method = method;
    rq->key = key;
    rq->body_fd = -1;
    rq->out_fd = -1;
}

/* --- XML answers ------------------------------------------------------- */

static xmlDocPtr
parse_xml(const struct kd_buf *xml, const char *root_name)
{
    xmlDocPtr doc;
    xmlNodePtr root;

    if (xml->len == 0 || xml->len > INT32_MAX)
        return NULL;
    doc = xmlReadMemory(xml->data, (int)xml->len, NULL, NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (doc == NULL)
        return NULL;
    if ((root = xmlDocGetRootElement(doc)) == NULL ||
        xmlStrcmp(root->name, BAD_CAST root_name) != 0) {
        xmlFreeDoc(doc);
        return NULL;
    }
    return doc;
}

/* The text of the first child element called name, copied into out. */
static bool
child_text(xmlNodePtr parent, const char *name, char *out, size_t out_len)
{
    for (xmlNodePtr n = parent->children; n != NULL; n = n->next) {
        xmlChar *t;
        bool ok;

        if (n->type != XML_ELEMENT_NODE || xmlStrcmp(n->name, BAD_CAST name) != 0)
            continue;
        if ((t = xmlNodeGetContent(n)) == NULL)
            return false;
        ok = kd_snprintf(out, out_len, "%s", (const char *)t) == KD_OK;
        xmlFree(t);
        return ok;
    }
    return false;
}

/* --- the backend ------------------------------------------------------- */

static enum kd_err s3_mp_abort(struct kd_storage *s, const char *key, const char *upload_id);
static enum kd_err s3_mp_begin(struct kd_storage *s, const char *key, const char *content_type,
                               char **upload_id);
static enum kd_err s3_mp_upload_part(struct kd_storage *s, const char *key, const char *upload_id,
                                     int part_number, int fd, int64_t offset, int64_t len,
                                     struct kd_storage_part *out);
static enum kd_err s3_mp_complete(struct kd_storage *s, const char *key, const char *upload_id,
                                  const struct kd_storage_part *parts, size_t n);
static enum kd_err s3_stat(struct kd_storage *s, const char *key, struct kd_storage_stat *out);

/* A CompleteMultipartUpload whose answer was lost (a connection cut after
 * S3 joined the parts) is retried and finds the upload gone: the object
 * with the expected size says the first try succeeded. */
static enum kd_err
complete_or_joined(struct kd_storage *s, const char *key, const char *upload_id,
                   const struct kd_storage_part *parts, size_t n, int64_t size)
{
    struct kd_storage_stat st;
    enum kd_err rc;

    if ((rc = s3_mp_complete(s, key, upload_id, parts, n)) != KD_ENOTFOUND)
        return rc;
    if (s3_stat(s, key, &st) == KD_OK && st.size == size) {
        kd_log(KD_LOG_INFO, "storage s3: %s was joined by an earlier try of its completion", key);
        return KD_OK;
    }
    snprintf(s->last_err, sizeof(s->last_err), "the multipart upload vanished before completion");
    return KD_ENOTFOUND;
}

/* Uploads the whole of fd under key in parts of part_size; aborts the
 * upload on any failure so no parts stay billed. fn (may be NULL) learns
 * the upload's id before the first part goes out. */
static enum kd_err
put_multipart(struct kd_storage *s, const char *key, int fd, int64_t size, kd_storage_upload_fn *fn,
              void *arg)
{
    struct kd_s3 *s3 = s->s3;
    struct kd_storage_part *parts = NULL;
    char *upload_id = NULL;
    int64_t part_size = s3->part_size, n;
    enum kd_err rc;

    /* grow parts when the file would need more than S3 allows */
    while ((size + part_size - 1) / part_size > KD_STORAGE_MAX_PARTS)
        part_size *= 2;
    n = (size + part_size - 1) / part_size;
    if ((parts = calloc((size_t)n, sizeof(*parts))) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if ((rc = s3_mp_begin(s, key, NULL, &upload_id)) != KD_OK)
        goto out;
    if (fn != NULL)
        fn(arg, upload_id);
    for (int64_t i = 0; i < n; i++) {
        int64_t off = i * part_size, len = size - off < part_size ? size - off : part_size;

        if ((rc = s3_mp_upload_part(s, key, upload_id, (int)i + 1, fd, off, len, &parts[i])) !=
            KD_OK)
            goto out;
    }
    rc = complete_or_joined(s, key, upload_id, parts, (size_t)n, size);
out:
    if (rc != KD_OK && upload_id != NULL && s3_mp_abort(s, key, upload_id) != KD_OK)
        kd_log(KD_LOG_WARN,
               "storage s3: abort of a failed upload of %s failed; the scheduler "
               "retries",
               key);
    free(upload_id);
    free(parts);
    return rc;
}

static enum kd_err
s3_put_file(struct kd_storage *s, const char *key, const char *path, kd_storage_upload_fn *fn,
            void *arg)
{
    struct s3_resp r = {0};
    struct s3_req rq;
    struct stat st;
    int fd = -1;
    enum kd_err rc;

    if (!kd_storage_key_valid(key)) {
        rc = KD_EINVAL;
        goto out;
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = errno == ENOENT ? KD_ENOTFOUND : KD_EIO;
        kd_log_errno(KD_LOG_ERROR, errno, "storage s3: open %s", path);
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = KD_EIO;
        goto out;
    }
    /* S3 takes one PUT up to 5 GiB; larger or past the threshold in parts */
    if (st.st_size > s->s3->threshold) {
        rc = put_multipart(s, key, fd, (int64_t)st.st_size, fn, arg);
        goto out;
    }
    req_init(&rq, "PUT", key);
    rq.body_fd = fd;
    rq.body_off = 0;
    rq.body_fd_len = (int64_t)st.st_size;
    rq.content_type = "application/octet-stream";
    rc = perform(s, &rq, &r);
out:
    kd_buf_clear(&r.xml);
    if (fd >= 0)
        close(fd);
    return rc;
}

static enum kd_err
s3_get_file(struct kd_storage *s, const char *key, const char *path)
{
    struct s3_resp r = {0};
    struct s3_req rq;
    int fd = -1;
    enum kd_err rc;

    if (!kd_storage_key_valid(key)) {
        rc = KD_EINVAL;
        goto out;
    }
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
        rc = KD_EIO;
        goto out;
    }
    req_init(&rq, "GET", key);
    rq.out_fd = fd;
    if ((rc = perform(s, &rq, &r)) != KD_OK)
        goto out;
    if (r.content_length >= 0 && (int64_t)r.out_got != r.content_length) {
        rc = KD_EIO;
        goto out;
    }
out:
    kd_buf_clear(&r.xml);
    if (fd >= 0 && close(fd) != 0 && rc == KD_OK)
        rc = KD_EIO;
    return rc;
}

static enum kd_err
s3_delete(struct kd_storage *s, const char *key)
{
    struct s3_resp r = {0};
    struct s3_req rq;
    enum kd_err rc;

    if (!kd_storage_key_valid(key))
        return KD_EINVAL;
    req_init(&rq, "DELETE", key);
    rc = perform(s, &rq, &r);
    kd_buf_clear(&r.xml);
    return rc == KD_ENOTFOUND ? KD_OK : rc;
}

static enum kd_err
s3_stat(struct kd_storage *s, const char *key, struct kd_storage_stat *out)
{
    struct s3_resp r = {0};
    struct s3_req rq;
    enum kd_err rc;

    if (!kd_storage_key_valid(key))
        return KD_EINVAL;
    req_init(&rq, "HEAD", key);
    if ((rc = perform(s, &rq, &r)) == KD_OK) {
        if (r.content_length < 0) {
            rc = KD_EINTERNAL;
        } else {
            out->size = r.content_length;
            out->mtime_ms = r.mtime_ms;
        }
    }
    kd_buf_clear(&r.xml);
    return rc;
}

static enum kd_err
s3_check(struct kd_storage *s)
{
    struct s3_resp r = {0};
    struct s3_req rq;
    enum kd_err rc;

    req_init(&rq, "HEAD", NULL);
    rc = perform(s, &rq, &r);
    kd_buf_clear(&r.xml);
    return rc == KD_OK ? KD_OK : KD_EUNAVAIL;
}

static enum kd_err
s3_read_range(struct kd_storage *s, const char *key, int64_t offset, void *buf, size_t len,
              size_t *got)
{
    struct s3_resp r = {0};
    struct s3_req rq;
    char range[64];
    enum kd_err rc;

    if (len == 0) {
        *got = 0;
        return KD_OK;
    }
    if ((rc = kd_snprintf(range, sizeof(range), "bytes=%lld-%lld", (long long)offset,
                          (long long)(offset + (int64_t)len - 1))) != KD_OK)
        return rc;
    req_init(&rq, "GET", key);
    rq.range = range;
    rq.out_buf = buf;
    rq.out_cap = len;
    if ((rc = perform(s, &rq, &r)) == KD_OK) {
        if (r.status == 416)
            r.out_got = 0; /* at or past the end */
        else if (r.status != 206 && !(r.status == 200 && offset == 0))
            rc = KD_EINTERNAL; /* a range ignored past the start */
        *got = r.out_got;
    }
    kd_buf_clear(&r.xml);
    return rc;
}

static enum kd_err
s3_list(struct kd_storage *s, const char *prefix, kd_storage_list_fn fn, void *arg)
{
    struct s3_resp r = {0};
    struct s3_req rq;
    char token[1024] = "", truncated[8];
    xmlDocPtr doc = NULL;
    enum kd_err rc = KD_OK;

    for (;;) {
        struct kd_sigv4_kv q[3] = {
            {"list-type", "2"}, {"prefix", prefix}, {"continuation-token", token}};
        xmlNodePtr root;

        req_init(&rq, "GET", NULL);
        rq.query = q;
        rq.query_n = token[0] != '\0' ? 3 : 2;
        if ((rc = perform(s, &rq, &r)) != KD_OK)
            goto out;
        if ((doc = parse_xml(&r.xml, "ListBucketResult")) == NULL) {
            kd_log(KD_LOG_ERROR, "storage s3: list: not a ListBucketResult");
            rc = KD_EUNAVAIL;
            goto out;
        }
        root = xmlDocGetRootElement(doc);
        for (xmlNodePtr n = root->children; n != NULL && rc == KD_OK; n = n->next) {
            char key[1024], size_s[32];
            int64_t size;

            if (n->type != XML_ELEMENT_NODE || xmlStrcmp(n->name, BAD_CAST "Contents") != 0)
                continue;
            if (!child_text(n, "Key", key, sizeof(key)) ||
                !child_text(n, "Size", size_s, sizeof(size_s)) ||
                kd_parse_i64(size_s, 0, INT64_MAX, &size) != KD_OK)
                continue;
            /* keys kadr did not make are not offered to its callers */
            if (kd_storage_key_valid(key))
                rc = fn(key, size, arg);
        }
        if (rc != KD_OK)
            goto out;
        if (!child_text(root, "IsTruncated", truncated, sizeof(truncated)) ||
            strcmp(truncated, "true") != 0 ||
            !child_text(root, "NextContinuationToken", token, sizeof(token)) || token[0] == '\0')
            goto out;
        xmlFreeDoc(doc);
        doc = NULL;
    }
out:
    xmlFreeDoc(doc);
    kd_buf_clear(&r.xml);
    return rc;
}

/* Content-Disposition for a download, safe for any file name: a plain
 * ASCII fallback (quotes, backslashes, controls and non-ASCII replaced)
 * and the exact name in RFC 5987 form. */
static enum kd_err
disposition(const char *name, struct kd_buf *b)
{
    enum kd_err rc;

    if ((rc = kd_buf_puts(b, "attachment; filename=\"")) != KD_OK)
        return rc;
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0' && rc == KD_OK; p++) {
        char c = (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\' || *p == '%') ? '_' : (char)*p;

        rc = kd_buf_append(b, &c, 1);
    }
    if (rc == KD_OK)
        rc = kd_buf_puts(b, "\"; filename*=UTF-8''");
    if (rc == KD_OK)
        rc = kd_sigv4_uri_encode(b, name, strlen(name), false);
    return rc;
}

/* A presigned URL for method on key with extra (signed) query parameters;
 * content_length >= 0 signs the Content-Length so S3 refuses any other
 * size. */
static enum kd_err
presign(struct kd_storage *s, const char *method, const char *key, const struct kd_sigv4_kv *q,
        size_t qn, int64_t content_length, int64_t ttl_s, char **url, int64_t *expires_at)
{
    struct kd_s3 *s3 = s->s3;
    struct kd_sigv4_result sig = {0};
    struct kd_buf b;
    char host[512], path[1024], date[17], cl[24];
    struct kd_sigv4_kv h[2];
    size_t hn = 0;
    time_t now = time(NULL);
    enum kd_err rc;

    kd_buf_init(&b, 32768);
    if (!kd_storage_key_valid(key) || ttl_s < 1 || ttl_s > 604800) {
        rc = KD_EINVAL;
        goto out;
    }
    if ((rc = target(s3, s->cfg->s3_bucket, key, host, sizeof(host), path, sizeof(path))) != KD_OK)
        goto out;
    h[hn++] = (struct kd_sigv4_kv){"host", host};
    if (content_length >= 0) {
        if ((rc = kd_snprintf(cl, sizeof(cl), "%lld", (long long)content_length)) != KD_OK)
            goto out;
        h[hn++] = (struct kd_sigv4_kv){"content-length", cl};
    }
    kd_sigv4_amz_date(now, date);
    struct kd_sigv4_request sr = {
        .method = method, .path = path, .query = q, .query_n = qn, .headers = h, .headers_n = hn};
    if ((rc = kd_sigv4_presign(&s3->key, date, ttl_s, &sr, &sig)) != KD_OK)
        goto out;
    if (s3->public_base[0] != '\0') {
        /* through a proxy (nginx's /s3/ location): its base, then the path
         * below the endpoint's own; the signature is for the endpoint */
        if ((rc = kd_buf_puts(&b, s3->public_base)) != KD_OK ||
            (rc = kd_sigv4_uri_encode(&b, path + strlen(s3->base_path),
                                      strlen(path) - strlen(s3->base_path), true)) != KD_OK)
            goto out;
    } else if ((rc = kd_buf_printf(&b, "%s://%s", s3->scheme, host)) != KD_OK ||
               (rc = kd_sigv4_uri_encode(&b, path, strlen(path), true)) != KD_OK) {
        goto out;
    }
    if ((rc = kd_buf_printf(&b, "?%s", sig.query)) != KD_OK)
        goto out;
    if ((*url = kd_buf_take(&b)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    *expires_at = (int64_t)now + ttl_s;
out:
    kd_sigv4_result_clear(&sig);
    kd_buf_clear(&b);
    return rc;
}

static enum kd_err
s3_presign(struct kd_storage *s, const char *method, const char *key, const struct kd_presign *opt,
           char **url, int64_t *expires_at)
{
    struct kd_buf cd;
    enum kd_err rc;

    kd_buf_init(&cd, 4096);
    if (strcmp(method, "PUT") == 0) {
        rc = opt->size < 0
                 ? KD_EINVAL
                 : presign(s, "PUT", key, NULL, 0, opt->size, opt->ttl_s, url, expires_at);
    } else if (strcmp(method, "GET") == 0) {
        struct kd_sigv4_kv q[1];
        size_t qn = 0;

        if (opt->filename != NULL && opt->filename[0] != '\0') {
            if (strlen(opt->filename) > 255 || (rc = disposition(opt->filename, &cd)) != KD_OK) {
                rc = KD_EINVAL;
                goto out;
            }
            q[qn++] = (struct kd_sigv4_kv){"response-content-disposition", cd.data};
        }
        rc = presign(s, "GET", key, q, qn, -1, opt->ttl_s, url, expires_at);
    } else {
        rc = KD_EINVAL;
    }
out:
    kd_buf_clear(&cd);
    return rc;
}

static bool
upload_id_valid(const char *id)
{
    size_t len = id != NULL ? strlen(id) : 0;

    /* S3 and MinIO use URL-safe base64 and dots; refuse anything that
     * could change the meaning of a query */
    if (len == 0 || len > 1024)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '/' || c == '='))
            return false;
    }
    return true;
}

static enum kd_err
s3_mp_begin(struct kd_storage *s, const char *key, const char *content_type, char **upload_id)
{
    struct kd_sigv4_kv q[] = {{"uploads", ""}};
    struct s3_resp r = {0};
    struct s3_req rq;
    xmlDocPtr doc = NULL;
    char id[1100];
    enum kd_err rc;

    if (!kd_storage_key_valid(key)) {
        rc = KD_EINVAL;
        goto out;
    }
    req_init(&rq, "POST", key);
    rq.query = q;
    rq.query_n = 1;
    rq.content_type = content_type != NULL ? content_type : "application/octet-stream";
    if ((rc = perform(s, &rq, &r)) != KD_OK)
        goto out;
    if ((doc = parse_xml(&r.xml, "InitiateMultipartUploadResult")) == NULL ||
        !child_text(xmlDocGetRootElement(doc), "UploadId", id, sizeof(id)) ||
        !upload_id_valid(id)) {
        kd_log(KD_LOG_ERROR, "storage s3: initiate %s: no usable UploadId in the answer", key);
        rc = KD_EUNAVAIL;
        goto out;
    }
    if ((*upload_id = strdup(id)) == NULL)
        rc = KD_ENOMEM;
out:
    xmlFreeDoc(doc);
    kd_buf_clear(&r.xml);
    return rc;
}

static enum kd_err
s3_mp_presign_part(struct kd_storage *s, const char *key, const char *upload_id, int part_number,
                   int64_t size, int64_t ttl_s, char **url, int64_t *expires_at)
{
    char pn[16];
    enum kd_err rc;

    if (!upload_id_valid(upload_id))
        return KD_EINVAL;
    if ((rc = kd_snprintf(pn, sizeof(pn), "%d", part_number)) != KD_OK)
        return rc;
    struct kd_sigv4_kv q[] = {{"partNumber", pn}, {"uploadId", upload_id}};
    return presign(s, "PUT", key, q, 2, size, ttl_s, url, expires_at);
}

static enum kd_err
s3_mp_upload_part(struct kd_storage *s, const char *key, const char *upload_id, int part_number,
                  int fd, int64_t offset, int64_t len, struct kd_storage_part *out)
{
    struct s3_resp r = {0};
    struct s3_req rq;
    char pn[16];
    enum kd_err rc;

    if (!kd_storage_key_valid(key) || !upload_id_valid(upload_id)) {
        rc = KD_EINVAL;
        goto out;
    }
    if ((rc = kd_snprintf(pn, sizeof(pn), "%d", part_number)) != KD_OK)
        goto out;
    struct kd_sigv4_kv q[] = {{"partNumber", pn}, {"uploadId", upload_id}};
    req_init(&rq, "PUT", key);
    rq.query = q;
    rq.query_n = 2;
    rq.body_fd = fd;
    rq.body_off = offset;
    rq.body_fd_len = len;
    if ((rc = perform(s, &rq, &r)) != KD_OK)
        goto out;
    if (r.etag[0] == '\0') {
        kd_log(KD_LOG_ERROR, "storage s3: part %d of %s: no ETag in the answer", part_number, key);
        rc = KD_EUNAVAIL;
        goto out;
    }
    out->part_number = part_number;
    memcpy(out->etag, r.etag, sizeof(out->etag));
    out->size = len;
out:
    kd_buf_clear(&r.xml);
    return rc;
}

/* An ETag is quoted hex, with "-N" for multipart objects; anything else
 * (it comes from a client) is refused before it reaches the XML. */
static bool
etag_valid(const char *e)
{
    size_t len = strlen(e);

    if (len == 0 || len >= 128)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((e[i] >= '0' && e[i] <= '9') || (e[i] >= 'a' && e[i] <= 'f') ||
              (e[i] >= 'A' && e[i] <= 'F') || e[i] == '"' || e[i] == '-'))
            return false;
    return true;
}

static enum kd_err
s3_mp_complete(struct kd_storage *s, const char *key, const char *upload_id,
               const struct kd_storage_part *parts, size_t n)
{
    struct kd_sigv4_kv q[] = {{"uploadId", upload_id}};
    struct s3_resp r = {0};
    struct s3_req rq;
    struct kd_buf body;
    enum kd_err rc;

    kd_buf_init(&body, (size_t)KD_STORAGE_MAX_PARTS * 200 + 1024);
    if (!kd_storage_key_valid(key) || !upload_id_valid(upload_id)) {
        rc = KD_EINVAL;
        goto out;
    }
    if ((rc = kd_buf_puts(&body, "<CompleteMultipartUpload>")) != KD_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (!etag_valid(parts[i].etag)) {
            rc = KD_EINVAL;
            goto out;
        }
        if ((rc = kd_buf_printf(&body, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>",
                                parts[i].part_number, parts[i].etag)) != KD_OK)
            goto out;
    }
    if ((rc = kd_buf_puts(&body, "</CompleteMultipartUpload>")) != KD_OK)
        goto out;
    req_init(&rq, "POST", key);
    rq.query = q;
    rq.query_n = 1;
    rq.body = body.data;
    rq.body_len = body.len;
    rq.content_type = "application/xml";
    rc = perform(s, &rq, &r);
out:
    kd_buf_clear(&body);
    kd_buf_clear(&r.xml);
    return rc;
}

static enum kd_err
s3_mp_abort(struct kd_storage *s, const char *key, const char *upload_id)
{
    struct kd_sigv4_kv q[] = {{"uploadId", upload_id}};
    struct s3_resp r = {0};
    struct s3_req rq;
    enum kd_err rc;

    if (!kd_storage_key_valid(key) || !upload_id_valid(upload_id))
        return KD_EINVAL;
    req_init(&rq, "DELETE", key);
    rq.query = q;
    rq.query_n = 1;
    rc = perform(s, &rq, &r);
    kd_buf_clear(&r.xml);
    return rc == KD_ENOTFOUND ? KD_OK : rc;
}

static enum kd_err
s3_mp_list_parts(struct kd_storage *s, const char *key, const char *upload_id,
                 struct kd_storage_part **out, size_t *out_n)
{
    struct kd_storage_part *parts = NULL;
    struct s3_resp r = {0};
    struct s3_req rq;
    char marker[16] = "", truncated[8];
    xmlDocPtr doc = NULL;
    size_t n = 0;
    enum kd_err rc;

    if (!kd_storage_key_valid(key) || !upload_id_valid(upload_id)) {
        rc = KD_EINVAL;
        goto out;
    }
    if ((parts = calloc(KD_STORAGE_MAX_PARTS, sizeof(*parts))) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    for (;;) {
        struct kd_sigv4_kv q[] = {{"uploadId", upload_id}, {"part-number-marker", marker}};
        xmlNodePtr root;

        req_init(&rq, "GET", key);
        rq.query = q;
        rq.query_n = marker[0] != '\0' ? 2 : 1;
        if ((rc = perform(s, &rq, &r)) != KD_OK)
            goto out;
        if ((doc = parse_xml(&r.xml, "ListPartsResult")) == NULL) {
            kd_log(KD_LOG_ERROR, "storage s3: list parts of %s: not a ListPartsResult", key);
            rc = KD_EUNAVAIL;
            goto out;
        }
        root = xmlDocGetRootElement(doc);
        for (xmlNodePtr p = root->children; p != NULL; p = p->next) {
            char num[16], size[32];
            int64_t v, sz;

            if (p->type != XML_ELEMENT_NODE || xmlStrcmp(p->name, BAD_CAST "Part") != 0)
                continue;
            if (n == KD_STORAGE_MAX_PARTS || !child_text(p, "PartNumber", num, sizeof(num)) ||
                kd_parse_i64(num, 1, KD_STORAGE_MAX_PARTS, &v) != KD_OK ||
                !child_text(p, "ETag", parts[n].etag, sizeof(parts[n].etag)) ||
                !child_text(p, "Size", size, sizeof(size)) ||
                kd_parse_i64(size, 0, INT64_MAX, &sz) != KD_OK) {
                rc = KD_EUNAVAIL;
                goto out;
            }
            parts[n].part_number = (int)v;
            parts[n].size = sz;
            n++;
        }
        if (!child_text(root, "IsTruncated", truncated, sizeof(truncated)) ||
            strcmp(truncated, "true") != 0 ||
            !child_text(root, "NextPartNumberMarker", marker, sizeof(marker)) || marker[0] == '\0')
            break;
        xmlFreeDoc(doc);
        doc = NULL;
    }
    *out = parts;
    *out_n = n;
    parts = NULL;
out:
    free(parts);
    xmlFreeDoc(doc);
    kd_buf_clear(&r.xml);
    return rc;
}

static void
s3_close(struct kd_storage *s)
{
    if (s->s3 == NULL)
        return;
    if (s->s3->curl != NULL)
        curl_easy_cleanup(s->s3->curl);
    free(s->s3);
    s->s3 = NULL;
}

static const struct kd_storage_ops s3_ops = {
    .name = "s3",
    .close = s3_close,
    .put_file = s3_put_file,
    .get_file = s3_get_file,
    .del = s3_delete,
    .stat = s3_stat,
    .check = s3_check,
    .presign = s3_presign,
    .read_range = s3_read_range,
    .list = s3_list,
    .mp_begin = s3_mp_begin,
    .mp_presign_part = s3_mp_presign_part,
    .mp_upload_part = s3_mp_upload_part,
    .mp_complete = s3_mp_complete,
    .mp_abort = s3_mp_abort,
    .mp_list_parts = s3_mp_list_parts,
};

enum kd_err
kd_storage_s3_init(struct kd_storage *s)
{
    const struct kd_config *cfg = s->cfg;
    struct kd_s3 *s3 = NULL;
    char scheme[8], authority[256], path[256];
    enum kd_err rc;

    if ((s3 = calloc(1, sizeof(*s3))) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if (parse_endpoint(cfg->s3_endpoint, s3->scheme, sizeof(s3->scheme), s3->authority,
                       sizeof(s3->authority), s3->base_path, sizeof(s3->base_path)) != KD_OK) {
        kd_log(KD_LOG_ERROR, "storage s3: s3_endpoint is not a usable http(s) URL");
        rc = KD_EINVAL;
        goto out;
    }
    if (cfg->s3_public_endpoint[0] != '\0') {
        if (parse_endpoint(cfg->s3_public_endpoint, scheme, sizeof(scheme), authority,
                           sizeof(authority), path, sizeof(path)) != KD_OK ||
            kd_snprintf(s3->public_base, sizeof(s3->public_base), "%s://%s%s", scheme, authority,
                        path) != KD_OK) {
            kd_log(KD_LOG_ERROR, "storage s3: s3_public_endpoint is not a usable http(s) URL");
            rc = KD_EINVAL;
            goto out;
        }
    }
    /* a bucket name is DNS-safe by S3's rules; checked so it can go into
     * paths and host names unencoded */
    size_t bl = strlen(cfg->s3_bucket);
    if (bl < 3 || bl > 63 ||
        strspn(cfg->s3_bucket, "abcdefghijklmnopqrstuvwxyz0123456789.-") != bl) {
        kd_log(KD_LOG_ERROR, "storage s3: s3_bucket is not a valid bucket name");
        rc = KD_EINVAL;
        goto out;
    }
    if (cfg->s3_access_key[0] == '\0' || cfg->s3_secret_key[0] == '\0') {
        kd_log(KD_LOG_ERROR, "storage s3: s3_access_key and s3_secret_key are needed");
        rc = KD_EINVAL;
        goto out;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = KD_EINTERNAL;
        goto out;
    }
    s3->key = (struct kd_sigv4_key){.access_key = cfg->s3_access_key,
                                    .secret_key = cfg->s3_secret_key,
                                    .region = cfg->s3_region,
                                    .service = "s3"};
    s3->path_style = cfg->s3_path_style != 0;
    s3->part_size = cfg->s3_part_size < S3_MIN_PART ? S3_MIN_PART : cfg->s3_part_size;
    s3->threshold = cfg->s3_multipart_threshold;
    if (s3->threshold > 5LL * 1024 * 1024 * 1024)
        s3->threshold = 5LL * 1024 * 1024 * 1024; /* S3's largest single PUT */
    s3->timeout_ms = cfg->s3_timeout_ms;
    s3->retries = cfg->s3_retries;
    s->s3 = s3;
    s->ops = &s3_ops;
    s3 = NULL;
    rc = KD_OK;
out:
    free(s3);
    return rc;
}
