/* http.c: the request as FastCGI gives it, and the buffered response. */
#include "http.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* --- process state ------------------------------------------------------ */

enum kd_err
kd_app_db(struct kd_app *app, struct kd_db **out)
{
    enum kd_err rc = KD_OK;

    if (app->db == NULL) {
        if ((rc = kd_db_open(app->cfg->database_url, &app->db)) != KD_OK)
            goto out;
        /* A request must never wait on PostgreSQL longer than this. */
        kd_db_set_statement_timeout(app->db, app->cfg->api_db_timeout_ms);
    }
    *out = app->db;
out:
    return rc;
}

enum kd_err
kd_app_queue(struct kd_app *app, struct kd_queue **out)
{
    enum kd_err rc = KD_OK;

    if (app->queue == NULL && (rc = kd_queue_open(app->cfg, &app->queue)) != KD_OK)
        goto out;
    *out = app->queue;
out:
    return rc;
}

enum kd_err
kd_app_storage(struct kd_app *app, struct kd_storage **out)
{
    enum kd_err rc = KD_OK;

    if (app->storage == NULL && (rc = kd_storage_open(app->cfg, &app->storage)) != KD_OK)
        goto out;
    *out = app->storage;
out:
    return rc;
}

void
kd_app_clear(struct kd_app *app)
{
    kd_db_close(app->db);
    kd_queue_close(app->queue);
    kd_storage_close(app->storage);
    kd_stats_close(app->stats);
    app->stats = NULL;
    app->db = NULL;
    app->queue = NULL;
    app->storage = NULL;
}

/* --- request ------------------------------------------------------------ */

bool
kd_request_id_valid(const char *s)
{
    size_t i;

    if (s == NULL)
        return false;
    for (i = 0; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];

        if (i >= KD_REQUEST_ID_MAX)
            return false;
        if (!(isalnum(c) && c < 0x80) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return i > 0;
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

enum kd_err
kd_percent_decode(const char *s, size_t len, bool plus_is_space, char **out)
{
    char *d = NULL;
    size_t i, n = 0;
    enum kd_err rc = KD_OK;

    /* The decoded text is never longer than the input. */
    if ((d = malloc(len + 1)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    for (i = 0; i < len; i++) {
        char c = s[i];

        if (c == '%') {
            int hi, lo;

            if (len - i < 3) {
                rc = KD_EINVAL;
                goto out;
            }
            hi = hex_value(s[i + 1]);
            lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) {
                rc = KD_EINVAL;
                goto out;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        /* A NUL would cut every C string made from the value: refuse it. */
        if (c == '\0') {
            rc = KD_EINVAL;
            goto out;
        }
        d[n++] = c;
    }
    d[n] = '\0';
    *out = d;
    d = NULL;
out:
    free(d);
    return rc;
}

const char *
kd_req_param(const struct kd_req *rq, const char *name)
{
    const char *v;

    if (rq->envp == NULL)
        return NULL;
    v = FCGX_GetParam(name, rq->envp);
    if (v == NULL || strnlen(v, KD_HEADER_MAX + 1) > KD_HEADER_MAX)
        return NULL;
    return v;
}

const char *
kd_req_query(const struct kd_req *rq, const char *name)
{
    size_t i;

    for (i = 0; i < rq->n_query; i++)
        if (strcmp(rq->query[i].name, name) == 0)
            return rq->query[i].value;
    return NULL;
}

bool
kd_req_query_repeated(const struct kd_req *rq)
{
    size_t i, j;

    for (i = 0; i < rq->n_query; i++)
        for (j = i + 1; j < rq->n_query; j++)
            if (strcmp(rq->query[i].name, rq->query[j].name) == 0)
                return true;
    return false;
}

static enum kd_err
parse_query(struct kd_req *rq, const char *qs)
{
    const char *p = qs;
    enum kd_err rc = KD_OK;

    if (strnlen(qs, KD_QUERY_MAX + 1) > KD_QUERY_MAX) {
        rc = KD_EINVAL;
        goto out;
    }
    while (*p != '\0') {
        const char *end = strchr(p, '&');
        const char *eq;
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        struct kd_query_param *qp;

        if (len > 0) {
            if (rq->n_query >= KD_QUERY_PARAMS_MAX) {
                rc = KD_EINVAL;
                goto out;
            }
            qp = &rq->query[rq->n_query];
            eq = memchr(p, '=', len);
            if (eq == NULL) {
                if ((rc = kd_percent_decode(p, len, true, &qp->name)) != KD_OK)
                    goto out;
                if ((qp->value = strdup("")) == NULL) {
                    free(qp->name);
                    qp->name = NULL;
                    rc = KD_ENOMEM;
                    goto out;
                }
            } else {
                if ((rc = kd_percent_decode(p, (size_t)(eq - p), true, &qp->name)) != KD_OK)
                    goto out;
                rc = kd_percent_decode(eq + 1, len - (size_t)(eq - p) - 1, true, &qp->value);
                if (rc != KD_OK) {
                    free(qp->name);
                    qp->name = NULL;
                    goto out;
                }
            }
            rq->n_query++;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
out:
    return rc;
}

/* The path to route on. nginx gives DOCUMENT_URI ($document_uri: decoded and
 * normalised, and in an auth_request subrequest the subrequest's own path,
 * whereas REQUEST_URI stays the client's original). Without it (a bare
 * FastCGI client) the path part of REQUEST_URI is decoded here. */
static enum kd_err
parse_path(struct kd_req *rq)
{
    const char *doc = kd_req_param(rq, "DOCUMENT_URI");
    const char *uri = kd_req_param(rq, "REQUEST_URI");
    enum kd_err rc = KD_OK;

    if (doc != NULL && doc[0] == '/') {
        if ((rq->path = strdup(doc)) == NULL)
            rc = KD_ENOMEM;
    } else if (uri != NULL && uri[0] == '/') {
        rc = kd_percent_decode(uri, strcspn(uri, "?#"), false, &rq->path);
    } else {
        rc = KD_EINVAL;
    }
    if (rc != KD_OK)
        goto out;
    if (strlen(rq->path) > KD_PATH_MAX)
        rc = KD_EINVAL;
out:
    return rc;
}

enum kd_err
kd_req_init(struct kd_req *rq, struct kd_app *app, char **envp, FCGX_Stream *in)
{
    const char *rid, *method, *qs;
    enum kd_err rc;

    memset(rq, 0, sizeof(*rq));
    rq->envp = envp;
    rq->in = in;
    rq->app = app;
    rq->cfg = app != NULL ? app->cfg : NULL;
    rq->start_ms = kd_mono_ms();

    rid = kd_req_param(rq, "HTTP_X_REQUEST_ID");
    if (kd_request_id_valid(rid)) {
        /* Valid ids are at most KD_REQUEST_ID_MAX bytes: this cannot truncate. */
        if ((rc = kd_snprintf(rq->request_id, sizeof(rq->request_id), "%s", rid)) != KD_OK)
            goto out;
    } else if ((rc = kd_uuid_new(rq->request_id)) != KD_OK) {
        goto out;
    }

    /* Without a path the access log still needs something to print. */
    if ((rc = parse_path(rq)) != KD_OK) {
        free(rq->path);
        if ((rq->path = strdup("-")) == NULL)
            rc = KD_ENOMEM;
        goto out;
    }
    method = kd_req_param(rq, "REQUEST_METHOD");
    if (method == NULL || method[0] == '\0' ||
        kd_snprintf(rq->method, sizeof(rq->method), "%s", method) != KD_OK) {
        rq->method[0] = '\0';
        rc = KD_EINVAL;
        goto out;
    }
    qs = kd_req_param(rq, "QUERY_STRING");
    if ((rc = parse_query(rq, qs != NULL ? qs : "")) != KD_OK)
        goto out;
out:
    return rc;
}

void
kd_req_clear(struct kd_req *rq)
{
    size_t i;

    for (i = 0; i < rq->n_query; i++) {
        free(rq->query[i].name);
        free(rq->query[i].value);
    }
    free(rq->path);
    free(rq->body);
    json_decref(rq->json);
    memset(rq, 0, sizeof(*rq));
}

bool
kd_content_type_is_json(const char *value)
{
    static const char json[] = "application/json";
    const char *p;

    if (value == NULL)
        return false;
    while (*value == ' ' || *value == '\t')
        value++;
    if (strncasecmp(value, json, sizeof(json) - 1) != 0)
        return false;
    p = value + sizeof(json) - 1;
    /* Parameters: ';' separated name=value; only charset has a meaning. */
    while (*p != '\0') {
        const char *name, *val;
        size_t name_len, val_len;

        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        if (*p != ';')
            return false;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        name = p;
        name_len = strcspn(p, "=; \t");
        p += name_len;
        if (name_len == 0 && *p == '\0')
            break; /* a trailing ';' */
        if (name_len == 0 || *p != '=')
            return false;
        p++;
        if (*p == '"') {
            val = ++p;
            val_len = strcspn(p, "\"");
            p += val_len;
            if (*p != '"')
                return false;
            p++;
        } else {
            val = p;
            val_len = strcspn(p, "; \t");
            p += val_len;
        }
        if (name_len == 7 && strncasecmp(name, "charset", 7) == 0 &&
            !(val_len == 5 && strncasecmp(val, "utf-8", 5) == 0) &&
            !(val_len == 4 && strncasecmp(val, "utf8", 4) == 0))
            return false;
    }
    return true;
}

enum kd_err
kd_req_content_length(const struct kd_req *rq, int64_t *out)
{
    const char *v = kd_req_param(rq, "CONTENT_LENGTH");
    int64_t n = -1;
    enum kd_err rc = KD_OK;

    if (v != NULL && v[0] != '\0' && (rc = kd_parse_i64(v, 0, INT64_MAX, &n)) != KD_OK) {
        rc = KD_EINVAL;
        goto out;
    }
    *out = n;
out:
    return rc;
}

enum kd_err
kd_req_read_body(struct kd_req *rq, int64_t length, int64_t cap)
{
    char *buf = NULL;
    size_t want, got = 0;
    enum kd_err rc = KD_OK;

    if (length > cap) {
        rc = KD_ELIMIT;
        goto out;
    }
    /* Without a declared length read one byte past the cap to tell "exactly
     * cap" from "more". */
    want = length >= 0 ? (size_t)length : (size_t)cap + 1;
    if ((buf = malloc(want + 1)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    while (got < want && rq->in != NULL) {
        size_t chunk = want - got > 65536 ? 65536 : want - got;
        int n = FCGX_GetStr(buf + got, (int)chunk, rq->in);

        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (length >= 0 && got < (size_t)length) {
        rc = KD_EINVAL;
        goto out;
    }
    if (got > (size_t)cap) {
        rc = KD_ELIMIT;
        goto out;
    }
    buf[got] = '\0';
    free(rq->body);
    rq->body = buf;
    rq->body_len = got;
    buf = NULL;
out:
    free(buf);
    return rc;
}

/* --- response ----------------------------------------------------------- */

void
kd_resp_init(struct kd_resp *rs)
{
    rs->status = 0;
    rs->content_type = NULL;
    rs->omit_body = false;
    kd_buf_init(&rs->headers, KD_RESP_HEADERS_MAX);
    kd_buf_init(&rs->body, KD_RESP_BODY_MAX);
}

void
kd_resp_clear(struct kd_resp *rs)
{
    kd_buf_clear(&rs->headers);
    kd_buf_clear(&rs->body);
    rs->status = 0;
    rs->content_type = NULL;
}

void
kd_resp_reset(struct kd_resp *rs)
{
    kd_buf_reset(&rs->headers);
    kd_buf_reset(&rs->body);
    rs->status = 0;
    rs->content_type = NULL;
}

enum kd_err
kd_resp_header(struct kd_resp *rs, const char *name, const char *value)
{
    enum kd_err rc;

    if (strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL) {
        rc = KD_EINVAL;
        goto out;
    }
    rc = kd_buf_printf(&rs->headers, "%s: %s\r\n", name, value);
out:
    return rc;
}

enum kd_err
kd_resp_empty(struct kd_resp *rs, int status)
{
    kd_buf_reset(&rs->body);
    rs->status = status;
    rs->content_type = NULL;
    return KD_OK;
}

enum kd_err
kd_resp_text(struct kd_resp *rs, int status, const char *content_type, const char *text, size_t len)
{
    enum kd_err rc;

    kd_buf_reset(&rs->body);
    if ((rc = kd_buf_append(&rs->body, text, len)) != KD_OK)
        goto out;
    rs->status = status;
    rs->content_type = content_type;
out:
    return rc;
}

enum kd_err
kd_resp_json_text(struct kd_resp *rs, int status, const char *text)
{
    enum kd_err rc;

    kd_buf_reset(&rs->body);
    if ((rc = kd_buf_puts(&rs->body, text)) != KD_OK)
        goto out;
    rs->status = status;
    rs->content_type = "application/json";
out:
    return rc;
}

enum kd_err
kd_resp_json(struct kd_resp *rs, int status, const json_t *v)
{
    char *text = NULL;
    enum kd_err rc;

    if ((text = json_dumps(v, JSON_COMPACT)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    rc = kd_resp_json_text(rs, status, text);
out:
    free(text);
    return rc;
}

static enum kd_err
problem(struct kd_resp *rs, int status, const char *slug, const char *detail,
        const struct kd_problem *pb)
{
    json_t *o = NULL, *errs = NULL;
    char type[96];
    size_t i;
    enum kd_err rc;

    if ((rc = kd_snprintf(type, sizeof(type), "urn:kadr:problem:%s", slug)) != KD_OK)
        goto out;
    o = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title", kd_http_reason(status), "status",
                  status, "detail", detail);
    if (o == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if (pb != NULL && pb->n > 0) {
        if ((errs = json_array()) == NULL) {
            rc = KD_ENOMEM;
            goto out;
        }
        for (i = 0; i < pb->n; i++) {
            json_t *e = json_pack("{s:s, s:s}", "field", pb->errors[i].field, "message",
                                  pb->errors[i].message);

            if (e == NULL || json_array_append_new(errs, e) != 0) {
                rc = KD_ENOMEM;
                goto out;
            }
        }
        if (json_object_set_new(o, "errors", errs) != 0) {
            errs = NULL;
            rc = KD_ENOMEM;
            goto out;
        }
        errs = NULL;
    }
    if ((rc = kd_resp_json(rs, status, o)) != KD_OK)
        goto out;
    rs->content_type = "application/problem+json";
out:
    json_decref(errs);
    json_decref(o);
    return rc;
}

enum kd_err
kd_resp_problem(struct kd_resp *rs, int status, const char *slug, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    /* A detail is one sentence for a person: cutting a long one is harmless
     * (the buffer stays terminated), failing to answer is not. */
    if (n < 0)
        detail[0] = '\0';
    return problem(rs, status, slug, detail, NULL);
}

enum kd_err
kd_resp_problem_fields(struct kd_resp *rs, int status, const char *slug, const char *detail,
                       const struct kd_problem *pb)
{
    char more[1024];
    enum kd_err rc;

    if (pb != NULL && pb->dropped > 0) {
        if (kd_snprintf(more, sizeof(more), "%s (%zu more errors not listed)", detail,
                        pb->dropped) == KD_OK)
            detail = more;
    }
    rc = problem(rs, status, slug, detail, pb);
    return rc;
}

enum kd_err
kd_resp_unavailable(struct kd_resp *rs, const char *what)
{
    enum kd_err rc;

    kd_resp_reset(rs);
    if ((rc = kd_resp_header(rs, "Retry-After", "5")) != KD_OK)
        goto out;
    rc = kd_resp_problem(rs, 503, "unavailable", "the %s is unavailable; retry in a few seconds",
                         what);
out:
    return rc;
}

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {302, "Found"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {409, "Conflict"},
    {413, "Content Too Large"}, /* RFC 9110 section 15.5.14 */
    {415, "Unsupported Media Type"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {500, "Internal Server Error"},
    {503, "Service Unavailable"},
};

const char *
kd_http_reason(int status)
{
    size_t i;

    for (i = 0; i < KD_ARRAY_LEN(reasons); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}

enum kd_err
kd_resp_send(const struct kd_resp *rs, const char *request_id, FCGX_Stream *out)
{
    struct kd_buf head;
    enum kd_err rc;

    kd_buf_init(&head, KD_RESP_HEADERS_MAX + 512);
    rc = kd_buf_printf(&head, "Status: %d %s\r\nX-Request-Id: %s\r\nCache-Control: no-store\r\n",
                       rs->status, kd_http_reason(rs->status), request_id);
    if (rc != KD_OK)
        goto out;
    if (rs->content_type != NULL &&
        (rc = kd_buf_printf(&head, "Content-Type: %s\r\n", rs->content_type)) != KD_OK)
        goto out;
    /* RFC 9110 section 8.6: no Content-Length on a 204. */
    if (rs->status != 204 &&
        (rc = kd_buf_printf(&head, "Content-Length: %zu\r\n", rs->body.len)) != KD_OK)
        goto out;
    if ((rc = kd_buf_append(&head, rs->headers.data != NULL ? rs->headers.data : "",
                            rs->headers.len)) != KD_OK)
        goto out;
    if ((rc = kd_buf_puts(&head, "\r\n")) != KD_OK)
        goto out;
    if (FCGX_PutStr(head.data, (int)head.len, out) != (int)head.len) {
        rc = KD_EIO;
        goto out;
    }
    if (rs->status != 204 && !rs->omit_body && rs->body.len > 0 &&
        FCGX_PutStr(rs->body.data, (int)rs->body.len, out) != (int)rs->body.len) {
        rc = KD_EIO;
        goto out;
    }
    if (FCGX_FFlush(out) != 0)
        rc = KD_EIO;
out:
    kd_buf_clear(&head);
    return rc;
}

/* --- lists -------------------------------------------------------------- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

enum kd_err
kd_cursor_encode(const char *text, char *out, size_t out_len)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t len = strlen(text), i, n = 0;
    enum kd_err rc = KD_OK;

    if ((len + 2) / 3 * 4 + 1 > out_len) {
        rc = KD_ELIMIT;
        goto out;
    }
    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

        out[n++] = b64url[v >> 18 & 63];
        out[n++] = b64url[v >> 12 & 63];
        out[n++] = b64url[v >> 6 & 63];
        out[n++] = b64url[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;

        out[n++] = b64url[v >> 18 & 63];
        out[n++] = b64url[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

        out[n++] = b64url[v >> 18 & 63];
        out[n++] = b64url[v >> 12 & 63];
        out[n++] = b64url[v >> 6 & 63];
    }
    out[n] = '\0';
out:
    return rc;
}

enum kd_err
kd_cursor_decode(const char *b64, char *out, size_t out_len)
{
    size_t len = strlen(b64), i, n = 0;
    uint32_t acc = 0;
    int bits = 0;
    enum kd_err rc = KD_OK;

    if (len == 0 || len % 4 == 1 || len / 4 * 3 + 2 >= out_len) {
        rc = KD_EINVAL;
        goto out;
    }
    for (i = 0; i < len; i++) {
        const char *pos = strchr(b64url, b64[i]);

        if (b64[i] == '\0' || pos == NULL) {
            rc = KD_EINVAL;
            goto out;
        }
        acc = acc << 6 | (uint32_t)(pos - b64url);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n] = (char)(acc >> bits & 0xff);
            if (out[n] == '\0') {
                rc = KD_EINVAL;
                goto out;
            }
            n++;
        }
    }
    /* Leftover bits must be zero: one text has one encoding. */
    if ((acc & ((1u << bits) - 1)) != 0) {
        rc = KD_EINVAL;
        goto out;
    }
    out[n] = '\0';
out:
    return rc;
}

enum kd_err
kd_page_parse(const struct kd_req *rq, struct kd_page *pg, struct kd_problem *pb)
{
    const char *limit = kd_req_query(rq, "limit");
    const char *cursor = kd_req_query(rq, "cursor");
    int64_t v;
    enum kd_err rc = KD_OK;

    pg->limit = KD_LIST_LIMIT_DEFAULT;
    pg->has_cursor = false;
    pg->cursor[0] = '\0';
    if (limit != NULL) {
        if (kd_parse_i64(limit, 1, KD_LIST_LIMIT_MAX, &v) == KD_OK) {
            pg->limit = (int)v;
        } else {
            rc = KD_EINVAL;
            if (kd_problem_add(pb, "limit", "must be an integer from 1 to %d", KD_LIST_LIMIT_MAX) !=
                KD_OK)
                rc = KD_ENOMEM;
        }
    }
    if (cursor != NULL) {
        if (strlen(cursor) <= KD_CURSOR_MAX * 4 / 3 + 4 &&
            kd_cursor_decode(cursor, pg->cursor, sizeof(pg->cursor)) == KD_OK) {
            pg->has_cursor = true;
        } else {
            pg->cursor[0] = '\0';
            if (rc == KD_OK)
                rc = KD_EINVAL;
            if (kd_problem_add(pb, "cursor", "is not a cursor this API handed out") != KD_OK)
                rc = KD_ENOMEM;
        }
    }
    return rc;
}

void
kd_list_init(struct kd_list *l)
{
    kd_buf_init(&l->buf, KD_RESP_BODY_MAX);
    l->n = 0;
}

void
kd_list_clear(struct kd_list *l)
{
    kd_buf_clear(&l->buf);
    l->n = 0;
}

bool
kd_list_full(const struct kd_list *l)
{
    return l->buf.len >= KD_LIST_SOFT_MAX;
}

enum kd_err
kd_list_add(struct kd_list *l, const char *json_text)
{
    enum kd_err rc;

    if ((rc = kd_buf_puts(&l->buf, l->n == 0 ? "{\"items\":[" : ",")) != KD_OK)
        goto out;
    if ((rc = kd_buf_puts(&l->buf, json_text)) != KD_OK)
        goto out;
    l->n++;
out:
    return rc;
}

enum kd_err
kd_list_finish(struct kd_list *l, const char *cursor_text, struct kd_resp *rs)
{
    char enc[KD_CURSOR_MAX * 2];
    enum kd_err rc;

    if (l->n == 0 && (rc = kd_buf_puts(&l->buf, "{\"items\":[")) != KD_OK)
        goto out;
    if (cursor_text != NULL) {
        if ((rc = kd_cursor_encode(cursor_text, enc, sizeof(enc))) != KD_OK)
            goto out;
        rc = kd_buf_printf(&l->buf, "],\"next_cursor\":\"%s\"}", enc);
    } else {
        rc = kd_buf_puts(&l->buf, "],\"next_cursor\":null}");
    }
    if (rc != KD_OK)
        goto out;
    kd_buf_clear(&rs->body);
    rs->body = l->buf;
    kd_buf_init(&l->buf, KD_RESP_BODY_MAX);
    l->n = 0;
    rs->status = 200;
    rs->content_type = "application/json";
out:
    return rc;
}

enum kd_err
kd_resp_list_rows(struct kd_resp *rs, const struct kd_dbres *res, int limit)
{
    struct kd_list l;
    const char *cursor = NULL;
    int i, rows = kd_dbres_rows(res);
    bool more = rows > limit;
    enum kd_err rc = KD_OK;

    kd_list_init(&l);
    for (i = 0; i < rows && i < limit; i++) {
        const char *item = kd_dbres_get(res, i, 0);

        if (item == NULL)
            continue;
        if ((rc = kd_list_add(&l, item)) != KD_OK)
            goto out;
        cursor = kd_dbres_get(res, i, 1);
        /* Cut by size: the rest comes with the cursor of this item. */
        if (kd_list_full(&l)) {
            more = i + 1 < rows;
            break;
        }
    }
    rc = kd_list_finish(&l, more ? cursor : NULL, rs);
out:
    kd_list_clear(&l);
    return rc;
}

enum kd_err
kd_cursor_split(const char *cursor, char micros[24], char id[KD_UUID_STRLEN + 1])
{
    const char *colon = strchr(cursor, ':');
    int64_t v;
    enum kd_err rc = KD_EINVAL;
    size_t n;

    if (colon == NULL)
        goto out;
    n = (size_t)(colon - cursor);
    if (n == 0 || n >= 24)
        goto out;
    memcpy(micros, cursor, n);
    micros[n] = '\0';
    if (kd_parse_i64(micros, 0, INT64_MAX, &v) != KD_OK)
        goto out;
    if (!kd_uuid_valid(colon + 1))
        goto out;
    memcpy(id, colon + 1, KD_UUID_STRLEN + 1);
    rc = KD_OK;
out:
    return rc;
}

/* --- downloads ---------------------------------------------------------- */

enum kd_err
kd_content_disposition(const char *filename, char **out)
{
    static const char attr_extra[] = "!#$&+-.^_`|~";
    const unsigned char *p = (const unsigned char *)filename;
    struct kd_buf b;
    size_t i, len = strlen(filename);
    enum kd_err rc;

    kd_buf_init(&b, 64 + len * 4);
    if ((rc = kd_buf_puts(&b, "attachment; filename=\"")) != KD_OK)
        goto out;
    if (len == 0 && (rc = kd_buf_puts(&b, "download")) != KD_OK)
        goto out;
    for (i = 0; i < len; i++) {
        unsigned char c = p[i];
        char r;

        if (c >= 0x80 && c < 0xc0)
            continue; /* a continuation byte: its character already gave '_' */
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '%' && c != '/')
            r = (char)c;
        else
            r = '_';
        if ((rc = kd_buf_append(&b, &r, 1)) != KD_OK)
            goto out;
    }
    if ((rc = kd_buf_puts(&b, "\"")) != KD_OK)
        goto out;
    if (len > 0) {
        /* RFC 8187 section 3.2.1: attr-char stays, every other byte is %XX. */
        if ((rc = kd_buf_puts(&b, "; filename*=UTF-8''")) != KD_OK)
            goto out;
        for (i = 0; i < len; i++) {
            unsigned char c = p[i];

            if ((c < 0x80 && isalnum(c)) || (c != '\0' && strchr(attr_extra, c) != NULL))
                rc = kd_buf_append(&b, &p[i], 1);
            else
                rc = kd_buf_printf(&b, "%%%02X", c);
            if (rc != KD_OK)
                goto out;
        }
    }
    *out = kd_buf_take(&b);
    if (*out == NULL)
        rc = KD_ENOMEM;
out:
    kd_buf_clear(&b);
    return rc;
}
