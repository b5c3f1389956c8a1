/* router.h: the one route table of kadr-api and the steps every request
 * shares (request id, route match, authentication, body checks, errors,
 * access log). Handlers only see requests that passed those steps. */
#ifndef KD_FCGI_ROUTER_H
#define KD_FCGI_ROUTER_H

#include <fcgiapp.h>

#include "err.h"
#include "http.h"
#include "account.h"

enum kd_route_auth {
    KD_ROUTE_NONE,     /* anyone */
    KD_ROUTE_USER,     /* a valid Bearer credential */
    KD_ROUTE_ADMIN,    /* a valid credential of an admin user */
    KD_ROUTE_INTERNAL, /* only from nginx's internal locations (KADR_INTERNAL=1) */
    KD_ROUTE_METRICS,  /* only through nginx's /metrics location (KADR_METRICS=1) */
};

enum kd_route_body {
    KD_BODY_IGNORED,       /* no body is read; Content-Length is not looked at */
    KD_BODY_JSON,          /* a JSON body is required (415 / 400 / 413) */
    KD_BODY_JSON_OPTIONAL, /* empty, or JSON as above (rq->json NULL when empty) */
};

/* A handler answers through rs and returns KD_OK, or returns an error
 * without answering: the router then answers for it (503 + Retry-After for
 * KD_EUNAVAIL, 404, 409, or 500 with the error logged). It never sends. */
typedef enum kd_err (*kd_handler_fn)(struct kd_req *rq, struct kd_resp *rs);

struct kd_route {
    const char *method;  /* "GET", ...; "*" any method */
    const char *pattern; /* "/api/v1/jobs/{id}": {id} matches a UUID only */
    kd_handler_fn handler;
    enum kd_route_auth auth;
    enum kd_route_body body;
    int64_t body_cap;          /* bytes; 0: limits.body_max_bytes */
    enum kd_route_quota quota; /* a plan limit checked before the handler (account.h) */
};

/* The route table, for tests and the fuzzer: *n entries. */
const struct kd_route *kd_router_routes(size_t *n);
/* Whether path matches pattern exactly; a "{id}" segment matches a UUID
 * only (any case), copied lowercase into id. id is meaningful only when
 * the pattern has "{id}" and true is returned. */
bool kd_router_match(const char *pattern, const char *path, char id[KD_UUID_STRLEN + 1]);

/* Serves one accepted request from start to end: parses it, routes it,
 * answers, logs one line, and frees everything the request allocated. */
void kd_router_serve(struct kd_app *app, FCGX_Request *fcgx);

/* Handlers, one file per resource. */
enum kd_err kd_health_get(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_health_live(struct kd_req *rq, struct kd_resp *rs);

enum kd_err kd_uploads_create(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_uploads_complete(struct kd_req *rq, struct kd_resp *rs);

enum kd_err kd_media_list(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_media_get(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_media_download(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_media_delete(struct kd_req *rq, struct kd_resp *rs);

enum kd_err kd_jobs_create(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_jobs_list(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_jobs_get(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_jobs_events(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_jobs_cancel(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_jobs_retry(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_jobs_delete(struct kd_req *rq, struct kd_resp *rs);

enum kd_err kd_internal_verify(struct kd_req *rq, struct kd_resp *rs);

enum kd_err kd_admin_queue(struct kd_req *rq, struct kd_resp *rs);

/* GET /metrics: Prometheus text (metrics.c). */
enum kd_err kd_metrics_get(struct kd_req *rq, struct kd_resp *rs);

/* Accounts (issue #5): auth.c, me.c, apikeys.c. */
enum kd_err kd_auth_register(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_auth_login(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_auth_refresh(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_auth_logout(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_me_get(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_apikeys_create(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_apikeys_list(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_apikeys_delete(struct kd_req *rq, struct kd_resp *rs);
enum kd_err kd_admin_audit(struct kd_req *rq, struct kd_resp *rs);

/* Shared by the media and uploads handlers: answers status with the user's
 * live media id rendered by kadr_media_json, wrapped as {"media": ...} when
 * wrap is true. KD_ENOTFOUND when there is no such media. */
enum kd_err kd_media_respond(struct kd_req *rq, struct kd_resp *rs, struct kd_db *db,
                             const char *media_id, int status, bool wrap);

#endif
