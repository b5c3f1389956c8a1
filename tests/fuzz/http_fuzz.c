/* http_fuzz.c: libFuzzer harness for the request handling of kadr-api
 * before a handler runs: the request line (method, REQUEST_URI
 * percent-decoding, the query string), headers (request id,
 * Content-Length, Content-Type), the route table's path matching
 * (fcgi/router.c, "{id}" segments), the body reader fed through a FastCGI
 * stream in uneven pieces, JSON parsing of the body with the unknown-member
 * check of the account handlers, list paging (limit, base64url cursors) and
 * Content-Disposition.
 *
 * The input is split at its first six newlines into REQUEST_URI,
 * QUERY_STRING, REQUEST_METHOD, HTTP_X_REQUEST_ID, CONTENT_LENGTH and
 * CONTENT_TYPE, as FastCGI would hand them over; whatever follows the sixth
 * newline is the body. Checked invariants: a parsed path starts with '/'
 * and holds no NUL, query values hold no NUL, the request id is always
 * valid, a route with "{id}" matches only a UUID path segment and yields it
 * lowercase, a route without one matches only its own text, the body read
 * is the bytes given (exactly Content-Length of them when declared, never
 * more than the cap), and a cursor that decodes encodes back to the same
 * text. Built and run by tests/fuzz/run.sh. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "http.h"
#include "json.h"
#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELDS   6
#define BODY_CAP 4096 /* the account routes' cap */

static const char *const names[FIELDS] = {
    "REQUEST_URI=",       "QUERY_STRING=",   "REQUEST_METHOD=",
    "HTTP_X_REQUEST_ID=", "CONTENT_LENGTH=", "CONTENT_TYPE="};

/* A FastCGI input stream over the body, handing it out in pieces of
 * varying size, as records arrive from nginx. */
struct feed {
    const unsigned char *p, *end;
    unsigned step;
};

static void
feed_fill(FCGX_Stream *s)
{
    struct feed *f = s->data;
    size_t left = (size_t)(f->end - f->p), n;

    if (left == 0) {
        s->isClosed = 1;
        return;
    }
    n = 1 + (f->step++ * 37u + left) % 97u;
    if (n > left)
        n = left;
    /* The reader only reads between rdNext and stop. */
    s->rdNext = s->stopUnget = (unsigned char *)f->p;
    s->stop = (unsigned char *)f->p + n;
    f->p += n;
}

static void
check_routes(const char *path)
{
    const struct kd_route *routes;
    size_t n, i, k;

    routes = kd_router_routes(&n);
    for (i = 0; i < n; i++) {
        char id[KD_UUID_STRLEN + 1] = "";
        const char *brace = strstr(routes[i].pattern, "{id}");

        if (!kd_router_match(routes[i].pattern, path, id))
            continue;
        if (brace == NULL) {
            if (strcmp(routes[i].pattern, path) != 0)
                abort();
            continue;
        }
        if (!kd_uuid_valid(id))
            abort();
        for (k = 0; id[k] != '\0'; k++)
            if (isupper((unsigned char)id[k]))
                abort();
        /* The text around {id} is the pattern's own. */
        if (strncmp(path, routes[i].pattern, (size_t)(brace - routes[i].pattern)) != 0 ||
            strcmp(path + (brace - routes[i].pattern) + KD_UUID_STRLEN, brace + 4) != 0)
            abort();
    }
}

static void
check_body(struct kd_req *rq, const unsigned char *body, size_t body_len)
{
    static const char *const members[] = {"email", "password", NULL};
    struct feed f = {body, body + body_len, 0};
    FCGX_Stream in;
    struct kd_problem pb = KD_PROBLEM_INIT;
    json_t *j = NULL;
    char why[256];
    int64_t length;
    enum kd_err rc;

    if (kd_req_content_length(rq, &length) != KD_OK)
        return;
    memset(&in, 0, sizeof(in));
    in.isReader = 1;
    in.fillBuffProc = feed_fill;
    in.data = &f;
    in.rdNext = in.stop = in.stopUnget = (unsigned char *)body;
    rq->in = &in;
    rc = kd_req_read_body(rq, length, BODY_CAP);
    rq->in = NULL;
    if (length > BODY_CAP && rc != KD_ELIMIT)
        abort();
    if (length >= 0 && length <= BODY_CAP && (size_t)length > body_len && rc != KD_EINVAL)
        abort();
    if (rc != KD_OK)
        return;
    if (rq->body == NULL || rq->body_len > BODY_CAP || rq->body[rq->body_len] != '\0' ||
        rq->body_len > body_len || memcmp(rq->body, body, rq->body_len) != 0)
        abort();
    if (length >= 0 && rq->body_len != (size_t)length)
        abort();
    if (kd_json_parse(rq->body, rq->body_len, &j, why, sizeof(why)) != KD_OK)
        return;
    if (j == NULL)
        abort();
    if (json_is_object(j)) {
        if (kd_check_members(j, members, &pb) == KD_OK && pb.n + pb.dropped > json_object_size(j))
            abort();
        for (size_t i = 0; i < pb.n; i++)
            if (pb.errors[i].field == NULL || strlen(pb.errors[i].field) > 40 + 3)
                abort();
    }
    kd_problem_clear(&pb);
    json_decref(j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *env[FIELDS + 1] = {NULL};
    const char *p = (const char *)data, *end = p + size;
    const unsigned char *body = NULL;
    struct kd_req rq;
    struct kd_page pg;
    struct kd_problem pb = KD_PROBLEM_INIT;
    char cursor[KD_CURSOR_MAX + 1], enc[2 * KD_CURSOR_MAX + 8];
    char *dec = NULL, *disp = NULL;
    int64_t len;
    size_t i, n = 0, body_len = 0;

    if (size > 16384)
        return 0;
    /* Straight decoders on the whole input first. */
    if (memchr(data, '\0', size) == NULL) {
        char *whole = strndup((const char *)data, size);

        if (whole == NULL)
            return 0;
        if (kd_percent_decode(whole, size, true, &dec) == KD_OK) {
            if (strlen(dec) > size)
                abort();
            free(dec);
            dec = NULL;
        }
        if (kd_cursor_decode(whole, cursor, sizeof(cursor)) == KD_OK) {
            if (kd_cursor_encode(cursor, enc, sizeof(enc)) != KD_OK || strcmp(enc, whole) != 0)
                abort();
        }
        if (kd_content_disposition(whole, &disp) == KD_OK) {
            if (strpbrk(disp, "\r\n") != NULL)
                abort();
            free(disp);
        }
        (void)kd_content_type_is_json(whole);
        free(whole);
    }
    /* Then as a request: six parameters, then the body. */
    for (i = 0; i < FIELDS && p <= end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t flen = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        size_t nlen = strlen(names[i]);

        if (memchr(p, '\0', flen) != NULL)
            goto out;
        if ((env[n] = malloc(nlen + flen + 1)) == NULL)
            goto out;
        memcpy(env[n], names[i], nlen);
        memcpy(env[n] + nlen, p, flen);
        env[n][nlen + flen] = '\0';
        n++;
        if (nl == NULL) {
            p = end + 1;
            break;
        }
        p = nl + 1;
    }
    if (i == FIELDS && p <= end) {
        body = (const unsigned char *)p;
        body_len = (size_t)(end - p);
    }
    if (kd_req_init(&rq, NULL, env, NULL) == KD_OK) {
        if (rq.path == NULL || rq.path[0] != '/')
            abort();
        for (i = 0; i < rq.n_query; i++)
            if (rq.query[i].name == NULL || rq.query[i].value == NULL)
                abort();
        if (!kd_request_id_valid(rq.request_id))
            abort();
        check_routes(rq.path);
        (void)kd_req_query_repeated(&rq);
        (void)kd_req_content_length(&rq, &len);
        (void)kd_content_type_is_json(kd_req_param(&rq, "CONTENT_TYPE"));
        if (kd_page_parse(&rq, &pg, &pb) == KD_OK) {
            char micros[24], id[KD_UUID_STRLEN + 1];

            if (pg.limit < 1 || pg.limit > KD_LIST_LIMIT_MAX)
                abort();
            if (pg.has_cursor && kd_cursor_split(pg.cursor, micros, id) == KD_OK &&
                !kd_uuid_valid(id))
                abort();
        }
        kd_problem_clear(&pb);
        check_body(&rq, body != NULL ? body : (const unsigned char *)"", body_len);
    }
    kd_req_clear(&rq);
out:
    for (i = 0; i < n; i++)
        free(env[i]);
    return 0;
}
