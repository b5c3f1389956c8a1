/* http.h: one HTTP request as FastCGI hands it to kadr-api, and the response
 * a handler builds for it.
 *
 * The request is parsed from the FastCGI parameters (an environment-style
 * array, so tests can build one by hand) and lives until kd_req_clear, which
 * runs before the next accept: every string a handler borrows from it is
 * valid for the request only. The response is buffered whole and written by
 * kd_resp_send; nothing reaches the client before the handler returns, so a
 * failure half-way can still become a clean problem+json. */
#ifndef KD_FCGI_HTTP_H
#define KD_FCGI_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <fcgiapp.h>
#include <jansson.h>

#include "auth.h"
#include "config.h"
#include "db.h"
#include "err.h"
#include "problem.h"
#include "queue.h"
#include "stats.h"
#include "storage.h"
#include "util.h"

#define KD_REQUEST_ID_MAX 128
/* No route of ours is longer; a longer request path is refused (400). */
#define KD_PATH_MAX 2048
/* Query strings of the API are a few short parameters; more is abuse (400). */
#define KD_QUERY_MAX        4096
#define KD_QUERY_PARAMS_MAX 32
/* Headers the API reads are capped before use. */
#define KD_HEADER_MAX 8192
/* Responses: the header block and the body. A list stops adding items at
 * KD_LIST_SOFT_MAX and hands out a cursor for the rest, so the hard cap is
 * only reached by a single object, which the schema keeps far smaller. */
#define KD_RESP_HEADERS_MAX (16 * 1024)
#define KD_RESP_BODY_MAX    (64 * 1024 * 1024)
#define KD_LIST_SOFT_MAX    (8 * 1024 * 1024)

/* The per-process state the handlers share: the configuration and the
 * connections, each opened on first use (a process that only answers
 * /health/live never connects anywhere) and kept for the life of the process.
 * The wrapped modules reconnect by themselves after a loss. */
struct kd_app {
    const struct kd_config *cfg;
    struct kd_db *db;
    struct kd_queue *queue;
    struct kd_storage *storage;
    struct kd_stats *stats; /* NULL when api_metrics_file is not set (or unusable) */
};

/* Borrowed handles, valid until kd_app_clear. */
KD_MUST_CHECK enum kd_err kd_app_db(struct kd_app *app, struct kd_db **out);
KD_MUST_CHECK enum kd_err kd_app_queue(struct kd_app *app, struct kd_queue **out);
KD_MUST_CHECK enum kd_err kd_app_storage(struct kd_app *app, struct kd_storage **out);
void kd_app_clear(struct kd_app *app); /* closes what was opened */

struct kd_query_param {
    char *name;  /* percent-decoded, NUL-free */
    char *value; /* percent-decoded ('+' is a space), NUL-free; "" when no '=' */
};

struct kd_req {
    char **envp;     /* FastCGI parameters (borrowed) */
    FCGX_Stream *in; /* the body; NULL in tests */
    struct kd_app *app;
    const struct kd_config *cfg;
    int64_t start_ms; /* monotonic, for the access log */
    char request_id[KD_REQUEST_ID_MAX + 1];
    char method[16]; /* "GET"; "" when absent or too long */
    char *path;      /* decoded, starts with '/' */
    struct kd_query_param query[KD_QUERY_PARAMS_MAX];
    size_t n_query;
    char id[KD_UUID_STRLEN + 1];   /* the route's {id}, lowercase; "" when none */
    struct kd_principal principal; /* set for user and admin routes */
    char *body;                    /* NUL-terminated; NULL when none was read */
    size_t body_len;
    json_t *json; /* the parsed body for JSON routes, else NULL */
};

struct kd_resp {
    int status;               /* 0 until a handler set a response */
    const char *content_type; /* static string; NULL: no body */
    struct kd_buf headers;    /* extra "Name: value\r\n" lines */
    struct kd_buf body;
    bool omit_body; /* HEAD: the headers (Content-Length too) only */
};

/* The request id a client may set: [A-Za-z0-9._-]{1,128}. */
bool kd_request_id_valid(const char *s);

/* Decodes %XX escapes of s[0..len) into a new string; with plus_is_space
 * ('application/x-www-form-urlencoded' queries) '+' becomes a space.
 * KD_EINVAL on a broken escape or a decoded NUL byte. */
KD_MUST_CHECK enum kd_err kd_percent_decode(const char *s, size_t len, bool plus_is_space,
                                            char **out);

/* Starts a request from the FastCGI parameters: request id (the client's
 * X-Request-Id when valid, else a new UUID), method, path and query.
 * KD_EINVAL: the request line cannot be parsed (the caller answers 400; the
 * request id is set even then); KD_ENOMEM. kd_req_clear frees it. */
KD_MUST_CHECK enum kd_err kd_req_init(struct kd_req *rq, struct kd_app *app, char **envp,
                                      FCGX_Stream *in);
void kd_req_clear(struct kd_req *rq);

/* A FastCGI parameter ("HTTP_AUTHORIZATION", "CONTENT_TYPE"), or NULL when
 * absent or longer than KD_HEADER_MAX. Borrowed for the request. */
const char *kd_req_param(const struct kd_req *rq, const char *name);
/* A decoded query parameter, NULL when absent. Borrowed for the request. */
const char *kd_req_query(const struct kd_req *rq, const char *name);
/* True when the query names the parameter more than once. */
bool kd_req_query_repeated(const struct kd_req *rq);

/* True for "application/json" with optional parameters, where a charset,
 * when given, must be UTF-8 (RFC 8259 section 8.1 allows nothing else). */
bool kd_content_type_is_json(const char *value);

/* The Content-Length of the request: *out = -1 when absent. KD_EINVAL when
 * present but not a non-negative decimal number. */
KD_MUST_CHECK enum kd_err kd_req_content_length(const struct kd_req *rq, int64_t *out);
/* Reads the body, at most cap bytes, into rq->body. length is the declared
 * Content-Length or -1. KD_ELIMIT: larger than cap (413); KD_EINVAL: the
 * stream ended before length bytes (400); KD_ENOMEM. */
KD_MUST_CHECK enum kd_err kd_req_read_body(struct kd_req *rq, int64_t length, int64_t cap);

void kd_resp_init(struct kd_resp *rs);
void kd_resp_clear(struct kd_resp *rs);
/* Drops whatever a handler had built (status, headers, body). */
void kd_resp_reset(struct kd_resp *rs);
/* Adds a header line. The value must not contain CR, LF or NUL (KD_EINVAL:
 * header injection is refused here, once, for every caller). */
KD_MUST_CHECK enum kd_err kd_resp_header(struct kd_resp *rs, const char *name, const char *value);
/* A response without a body (204, 302, an internal 200). */
KD_MUST_CHECK enum kd_err kd_resp_empty(struct kd_resp *rs, int status);
/* A JSON body from a jansson value (borrowed; integers and strings only:
 * jansson would print reals with 17 digits, so reals come from PostgreSQL
 * text via kd_resp_json_text). */
KD_MUST_CHECK enum kd_err kd_resp_json(struct kd_resp *rs, int status, const json_t *v);
/* A body of another type (content_type: a static string), copied. */
KD_MUST_CHECK enum kd_err kd_resp_text(struct kd_resp *rs, int status, const char *content_type,
                                       const char *text, size_t len);
/* A JSON body from text that already is JSON (kadr_job_json output). */
KD_MUST_CHECK enum kd_err kd_resp_json_text(struct kd_resp *rs, int status, const char *text);
/* An application/problem+json body (RFC 9457): type "urn:kadr:problem:<slug>",
 * title the status's reason phrase, detail formatted; no "errors" member. */
KD_MUST_CHECK enum kd_err kd_resp_problem(struct kd_resp *rs, int status, const char *slug,
                                          const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same with the field errors of pb in "errors" (validation). */
KD_MUST_CHECK enum kd_err kd_resp_problem_fields(struct kd_resp *rs, int status, const char *slug,
                                                 const char *detail, const struct kd_problem *pb);
/* 503 with Retry-After: a dependency is down. */
KD_MUST_CHECK enum kd_err kd_resp_unavailable(struct kd_resp *rs, const char *what);
/* Writes status, headers (plus X-Request-Id, Content-Length) and body.
 * KD_EIO when the client went away. */
KD_MUST_CHECK enum kd_err kd_resp_send(const struct kd_resp *rs, const char *request_id,
                                       FCGX_Stream *out);
/* The reason phrase of a status ("Not Found"); "Unknown" for others. */
const char *kd_http_reason(int status);

/* Lists: ?limit (1..100, default 50) and an opaque ?cursor. */
#define KD_LIST_LIMIT_DEFAULT 50
#define KD_LIST_LIMIT_MAX     100
#define KD_CURSOR_MAX         128

struct kd_page {
    int limit;
    bool has_cursor;
    char cursor[KD_CURSOR_MAX + 1]; /* the decoded cursor text */
};

/* Reads limit and cursor (base64url of text of at most KD_CURSOR_MAX bytes).
 * Each bad one adds an error to pb ("limit", "cursor"); KD_EINVAL then. */
KD_MUST_CHECK enum kd_err kd_page_parse(const struct kd_req *rq, struct kd_page *pg,
                                        struct kd_problem *pb);
/* base64url without padding of text, into out (caller's buffer of out_len). */
KD_MUST_CHECK enum kd_err kd_cursor_encode(const char *text, char *out, size_t out_len);
/* The inverse: KD_EINVAL on a bad alphabet, padding, length or a NUL byte. */
KD_MUST_CHECK enum kd_err kd_cursor_decode(const char *b64, char *out, size_t out_len);

/* A list response under construction: {"items":[...],"next_cursor":...}. */
struct kd_list {
    struct kd_buf buf;
    size_t n;
};

void kd_list_init(struct kd_list *l);
void kd_list_clear(struct kd_list *l);
/* True when the items so far have reached KD_LIST_SOFT_MAX: the caller stops
 * and hands out a cursor at the last item added. */
bool kd_list_full(const struct kd_list *l);
/* Appends one item given as JSON text. */
KD_MUST_CHECK enum kd_err kd_list_add(struct kd_list *l, const char *json_text);
/* Closes the list with next_cursor (cursor text to encode, NULL for null)
 * and makes it the response (200). */
KD_MUST_CHECK enum kd_err kd_list_finish(struct kd_list *l, const char *cursor_text,
                                         struct kd_resp *rs);

/* Answers a page of rows: column 0 is an item as JSON text, column 1 the
 * cursor text that resumes after it. res holds up to limit + 1 rows (the
 * extra one only says that more exist). */
KD_MUST_CHECK enum kd_err kd_resp_list_rows(struct kd_resp *rs, const struct kd_dbres *res,
                                            int limit);
/* Splits a "<microseconds>:<uuid>" cursor (created_at, id) into its parts.
 * KD_EINVAL when it is not one. */
KD_MUST_CHECK enum kd_err kd_cursor_split(const char *cursor, char micros[24],
                                          char id[KD_UUID_STRLEN + 1]);

/* Content-Disposition for a download of filename (UTF-8, untrusted):
 * attachment; filename="<ASCII fallback>"; filename*=UTF-8''<RFC 8187>.
 * The fallback keeps printable ASCII except '"', '\\', '%', '/' and
 * replaces every other byte sequence by '_'. */
KD_MUST_CHECK enum kd_err kd_content_disposition(const char *filename, char **out);

#endif
