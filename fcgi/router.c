/* router.c: the route table and the common steps of every request. */
#include "router.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"

/* Every endpoint of kadr-api. Order matters only for the Allow header.
 * Routes with a quota check the caller's plan limit first (quota.c). */
static const struct kd_route routes[] = {
    {"GET", "/api/v1/health", kd_health_get, KD_ROUTE_NONE, KD_BODY_IGNORED, 0},
    {"GET", "/api/v1/health/live", kd_health_live, KD_ROUTE_NONE, KD_BODY_IGNORED, 0},
    {"POST", "/api/v1/uploads", kd_uploads_create, KD_ROUTE_USER, KD_BODY_JSON, 16 * 1024,
     KD_QUOTA_UPLOAD},
    {"POST", "/api/v1/uploads/{id}/complete", kd_uploads_complete, KD_ROUTE_USER,
     KD_BODY_JSON_OPTIONAL, 0},
    {"GET", "/api/v1/media", kd_media_list, KD_ROUTE_USER, KD_BODY_IGNORED, 0},
    {"GET", "/api/v1/media/{id}", kd_media_get, KD_ROUTE_USER, KD_BODY_IGNORED, 0},
    {"DELETE", "/api/v1/media/{id}", kd_media_delete, KD_ROUTE_USER, KD_BODY_IGNORED, 0},
    {"GET", "/api/v1/media/{id}/download", kd_media_download, KD_ROUTE_USER, KD_BODY_IGNORED, 0},
    {"POST", "/api/v1/jobs", kd_jobs_create, KD_ROUTE_USER, KD_BODY_JSON, 0, KD_QUOTA_JOB},
    {"GET", "/api/v1/jobs", kd_jobs_list, KD_ROUTE_USER, KD_BODY_IGNORED, 0},
    {"GET", "/api/v1/jobs/{id}", kd_jobs_get, KD_ROUTE_USER, KD_BODY_IGNORED, 0},
    {"DELETE", "/api/v1/jobs/{id}", kd_jobs_delete, KD_ROUTE_USER, KD_BODY_IGNORED, 0},
    {"GET", "/api/v1/jobs/{id}/events", kd_jobs_events, KD_ROUTE_USER, KD_BODY_IGNORED, 0},
    {"POST", "/api/v1/jobs/{id}/cancel", kd_jobs_cancel, KD_ROUTE_USER, KD_BODY_IGNORED, 0},
    {"POST", "/api/v1/jobs/{id}/retry", kd_jobs_retry, KD_ROUTE_USER, KD_BODY_IGNORED, 0,
     KD_QUOTA_RETRY},
    /* Accounts: small bodies, and nginx's stricter rate zone on /auth/. */
    {"POST", "/api/v1/auth/register", kd_auth_register, KD_ROUTE_NONE, KD_BODY_JSON, 8 * 1024},
    {"POST", "/api/v1/auth/login", kd_auth_login, KD_ROUTE_NONE, KD_BODY_JSON, 8 * 1024},
    {"POST", "/api/v1/auth/refresh", kd_auth_refresh, KD_ROUTE_NONE, KD_BODY_JSON, 4096},
    {"POST", "/api/v1/auth/logout", kd_auth_logout, KD_ROUTE_NONE, KD_BODY_JSON, 4096},
    {"GET", "/api/v1/me", kd_me_get, KD_ROUTE_USER, KD_BODY_IGNORED, 0},
    {"POST", "/api/v1/api-keys", kd_apikeys_create, KD_ROUTE_USER, KD_BODY_JSON_OPTIONAL, 4096},
    {"GET", "/api/v1/api-keys", kd_apikeys_list, KD_ROUTE_USER, KD_BODY_IGNORED, 0},
    {"DELETE", "/api/v1/api-keys/{id}", kd_apikeys_delete, KD_ROUTE_USER, KD_BODY_IGNORED, 0},
    {"GET", "/api/v1/admin/audit", kd_admin_audit, KD_ROUTE_ADMIN, KD_BODY_IGNORED, 0},
    {"GET", "/api/v1/admin/queue", kd_admin_queue, KD_ROUTE_ADMIN, KD_BODY_IGNORED, 0},
    /* nginx's auth_request subrequest keeps the client's method (PUT or GET)
     * and headers, Content-Length included, so this route takes any method
     * and never looks at a body. */
    {"*", "/api/v1/internal/verify", kd_internal_verify, KD_ROUTE_INTERNAL, KD_BODY_IGNORED, 0},
    /* Answered only when nginx's /metrics location (trusted addresses)
     * marks the request; through /api/ it does not exist. */
    {"GET", "/metrics", kd_metrics_get, KD_ROUTE_METRICS, KD_BODY_IGNORED, 0},
};

const struct kd_route *
kd_router_routes(size_t *n)
{
    *n = KD_ARRAY_LEN(routes);
    return routes;
}

bool
kd_router_match(const char *pattern, const char *path, char id[KD_UUID_STRLEN + 1])
{
    const char *p = pattern, *q = path;

    while (*p != '\0' && *q != '\0') {
        if (strncmp(p, "{id}", 4) == 0) {
            char seg[KD_UUID_STRLEN + 1];
            size_t n = strcspn(q, "/"), i;

            if (n != KD_UUID_STRLEN)
                return false;
            memcpy(seg, q, n);
            seg[n] = '\0';
            if (!kd_uuid_valid(seg))
                return false;
            for (i = 0; i <= n; i++)
                id[i] = (char)tolower((unsigned char)seg[i]);
            p += 4;
            q += n;
        } else if (*p == *q) {
            p++;
            q++;
        } else {
            return false;
        }
    }
    return *p == '\0' && *q == '\0';
}

/* Whether nginx set the marker param: only nginx's own locations set
 * these (fastcgi_param), and a client's header would arrive as HTTP_*. */
static bool
has_marker(const struct kd_req *rq, const char *name)
{
    const char *v = kd_req_param(rq, name);

    return v != NULL && strcmp(v, "1") == 0;
}

/* Finds the route; 404 or 405 (with Allow) when there is none. */
static enum kd_err
find_route(struct kd_req *rq, struct kd_resp *rs, const struct kd_route **out)
{
    char allow[128] = "";
    size_t i, allow_len = 0;
    bool path_known = false;
    /* RFC 9110 section 9.3.2: HEAD is GET without the body. */
    const char *method = strcmp(rq->method, "HEAD") == 0 ? "GET" : rq->method;
    enum kd_err rc = KD_OK;

    *out = NULL;
    for (i = 0; i < KD_ARRAY_LEN(routes); i++) {
        const struct kd_route *r = &routes[i];
        char id[KD_UUID_STRLEN + 1] = "";

        /* An internal or metrics route does not exist for anyone else:
         * 404, not 403. */
        if (r->auth == KD_ROUTE_INTERNAL && !has_marker(rq, "KADR_INTERNAL"))
            continue;
        if (r->auth == KD_ROUTE_METRICS && !has_marker(rq, "KADR_METRICS"))
            continue;
        if (!kd_router_match(r->pattern, rq->path, id))
            continue;
        path_known = true;
        if (strcmp(r->method, "*") == 0 || strcmp(r->method, method) == 0) {
            memcpy(rq->id, id, sizeof(rq->id));
            *out = r;
            goto out;
        }
        if (kd_snprintf(allow + allow_len, sizeof(allow) - allow_len, "%s%s%s",
                        allow_len > 0 ? ", " : "", r->method,
                        strcmp(r->method, "GET") == 0 ? ", HEAD" : "") == KD_OK)
            allow_len = strlen(allow);
    }
    if (!path_known) {
        rc = kd_resp_problem(rs, 404, "not-found", "there is no resource at this path");
        goto out;
    }
    if ((rc = kd_resp_header(rs, "Allow", allow)) != KD_OK)
        goto out;
    rc = kd_resp_problem(rs, 405, "method-not-allowed", "this resource allows %s", allow);
out:
    return rc;
}

/* Authenticates for routes that need it. Answers 401/403/503 itself and
 * returns KD_EAGAIN then, so the caller stops. */
static enum kd_err
authenticate(struct kd_req *rq, struct kd_resp *rs, const struct kd_route *r)
{
    const char *authz;
    struct kd_db *db;
    enum kd_err rc = KD_OK, arc;

    if (r->auth == KD_ROUTE_NONE || r->auth == KD_ROUTE_INTERNAL || r->auth == KD_ROUTE_METRICS)
        goto out;
    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    authz = kd_req_param(rq, "HTTP_AUTHORIZATION");
    if (authz == NULL) {
        if ((rc = kd_resp_header(rs, "WWW-Authenticate", "Bearer")) != KD_OK ||
            (rc = kd_resp_problem(rs, 401, "unauthorized",
                                  "this resource needs an Authorization: Bearer credential")) !=
                KD_OK)
            goto out;
        rc = KD_EAGAIN;
        goto out;
    }
    arc = kd_auth_bearer(db, rq->cfg, authz, &rq->principal);
    if (arc == KD_EINVAL || arc == KD_ENOTFOUND) {
        /* RFC 6750 section 3: a credential was sent but is not good. */
        if ((rc = kd_resp_header(rs, "WWW-Authenticate", "Bearer error=\"invalid_token\"")) !=
                KD_OK ||
            (rc = kd_resp_problem(rs, 401, "unauthorized",
                                  "the credential is malformed, unknown, revoked or expired")) !=
                KD_OK)
            goto out;
        rc = KD_EAGAIN;
        goto out;
    }
    if (arc != KD_OK) {
        rc = arc;
        goto out;
    }
    if (r->auth == KD_ROUTE_ADMIN && !rq->principal.is_admin) {
        if ((rc = kd_resp_problem(rs, 403, "forbidden", "this resource is for administrators")) ==
            KD_OK)
            rc = KD_EAGAIN;
        goto out;
    }
out:
    return rc;
}

/* Reads and parses the body of JSON routes. Answers 400/413/415/422 itself
 * and returns KD_EAGAIN then. */
static enum kd_err
read_json(struct kd_req *rq, struct kd_resp *rs, const struct kd_route *r)
{
    const char *ctype = kd_req_param(rq, "CONTENT_TYPE");
    int64_t length, cap = r->body_cap > 0 ? r->body_cap : rq->cfg->limits.body_max_bytes;
    char why[256] = "";
    struct kd_problem pb = KD_PROBLEM_INIT;
    enum kd_err rc = KD_OK, brc;

    if (r->body == KD_BODY_IGNORED)
        goto out;
    if (kd_req_content_length(rq, &length) != KD_OK) {
        if ((rc = kd_resp_problem(rs, 400, "bad-request", "Content-Length is not a number")) ==
            KD_OK)
            rc = KD_EAGAIN;
        goto out;
    }
    /* CGI (RFC 3875 section 4.1.2): no CONTENT_LENGTH means no body. */
    if (length < 0)
        length = 0;
    if (ctype != NULL && ctype[0] == '\0')
        ctype = NULL;
    if (r->body == KD_BODY_JSON_OPTIONAL && length == 0)
        goto out;
    if (!kd_content_type_is_json(ctype)) {
        if ((rc = kd_resp_problem(rs, 415, "unsupported-media-type",
                                  "the body must be sent as Content-Type: application/json")) ==
            KD_OK)
            rc = KD_EAGAIN;
        goto out;
    }
    /* Refused on the declared length, before a byte is read. */
    if (length > cap) {
        if ((rc = kd_resp_problem(rs, 413, "body-too-large",
                                  "the body is larger than %" PRId64 " bytes", cap)) == KD_OK)
            rc = KD_EAGAIN;
        goto out;
    }
    brc = kd_req_read_body(rq, length, cap);
    if (brc == KD_ELIMIT || brc == KD_EINVAL) {
        if (brc == KD_ELIMIT)
            rc = kd_resp_problem(rs, 413, "body-too-large",
                                 "the body is larger than %" PRId64 " bytes", cap);
        else
            rc = kd_resp_problem(rs, 400, "bad-request",
                                 "the body ended before Content-Length bytes");
        if (rc == KD_OK)
            rc = KD_EAGAIN;
        goto out;
    }
    if (brc != KD_OK) {
        rc = brc;
        goto out;
    }
    brc = kd_json_parse(rq->body, rq->body_len, &rq->json, why, sizeof(why));
    if (brc == KD_EINVAL) {
        if ((rc = kd_resp_problem(rs, 400, "malformed-json", "the body is not valid JSON: %s",
                                  why[0] != '\0' ? why : "parse error")) == KD_OK)
            rc = KD_EAGAIN;
        goto out;
    }
    if (brc != KD_OK) {
        rc = brc;
        goto out;
    }
    if (!json_is_object(rq->json)) {
        if ((rc = kd_problem_add(&pb, "", "must be a JSON object")) != KD_OK)
            goto out;
        if ((rc = kd_resp_problem_fields(rs, 422, "validation", "the body is invalid", &pb)) ==
            KD_OK)
            rc = KD_EAGAIN;
        goto out;
    }
out:
    kd_problem_clear(&pb);
    return rc;
}

/* Answers for a handler (or a common step) that returned an error. */
static void
answer_error(struct kd_req *rq, struct kd_resp *rs, enum kd_err err)
{
    enum kd_err rc;

    kd_resp_reset(rs);
    switch (err) {
    case KD_EUNAVAIL:
    case KD_ETIMEOUT:
        rc = kd_resp_unavailable(rs, "database or queue");
        break;
    case KD_ENOTFOUND:
        rc = kd_resp_problem(rs, 404, "not-found", "there is no such resource");
        break;
    case KD_ECONFLICT:
        rc = kd_resp_problem(rs, 409, "conflict",
                             "the resource changed at the same time; retry the request");
        break;
    default:
        kd_log(KD_LOG_ERROR, "%s %.256s failed: %s", rq->method, rq->path != NULL ? rq->path : "-",
               kd_err_name(err));
        rc = kd_resp_problem(rs, 500, "internal", "the server failed; the request id names it");
        break;
    }
    if (rc != KD_OK)
        kd_resp_reset(rs); /* left at status 0: the caller sends a bare 500 */
}

static void
dispatch(struct kd_req *rq, struct kd_resp *rs)
{
    const struct kd_route *r = NULL;
    enum kd_err rc;
    bool quota_locked = false;

    if ((rc = find_route(rq, rs, &r)) != KD_OK || r == NULL)
        goto out;
    if ((rc = authenticate(rq, rs, r)) != KD_OK)
        goto out;
    if ((rc = read_json(rq, rs, r)) != KD_OK)
        goto out;
    if ((rc = kd_quota_check(rq, rs, r->quota, &quota_locked)) != KD_OK)
        goto out;
    rc = r->handler(rq, rs);
out:
    /* A handler that failed inside a transaction leaves it to us. */
    if (rq->app->db != NULL && kd_db_in_tx(rq->app->db))
        kd_db_rollback(rq->app->db);
    kd_quota_release(rq, quota_locked);
    if (rc != KD_OK && rc != KD_EAGAIN)
        answer_error(rq, rs, rc);
    else if (rs->status == 0)
        answer_error(rq, rs, KD_EINTERNAL);
}

/* The answer of last resort when even the problem document could not be
 * built (out of memory): fixed bytes, nothing allocated. */
static void
send_bare_500(const char *request_id, FCGX_Stream *out)
{
    static const char body[] = "{\"type\":\"urn:kadr:problem:internal\",\"title\":\"Internal "
                               "Server Error\",\"status\":500,\"detail\":\"out of memory\"}";

    FCGX_FPrintF(out,
                 "Status: 500 Internal Server Error\r\nX-Request-Id: %s\r\n"
                 "Content-Type: application/problem+json\r\nContent-Length: %zu\r\n\r\n%s",
                 request_id, sizeof(body) - 1, body);
}

void
kd_router_serve(struct kd_app *app, FCGX_Request *fcgx)
{
    struct kd_req rq;
    struct kd_resp rs;
    enum kd_err rc;
    int status;

    kd_resp_init(&rs);
    rc = kd_req_init(&rq, app, fcgx->envp, fcgx->in);
    kd_log_set_request(rq.request_id[0] != '\0' ? rq.request_id : NULL);
    if (rc == KD_EINVAL) {
        if (kd_resp_problem(&rs, 400, "bad-request", "the request line cannot be parsed") != KD_OK)
            kd_resp_reset(&rs);
    } else if (rc != KD_OK) {
        answer_error(&rq, &rs, rc);
    } else {
        dispatch(&rq, &rs);
    }

    if (rs.status == 0) {
        send_bare_500(rq.request_id[0] != '\0' ? rq.request_id : "-", fcgx->out);
        status = 500;
    } else {
        status = rs.status;
        rs.omit_body = strcmp(rq.method, "HEAD") == 0;
        if (kd_resp_send(&rs, rq.request_id, fcgx->out) != KD_OK)
            kd_log(KD_LOG_DEBUG, "the client went away before the response was written");
    }
    kd_stats_count_status(app->stats, status);
    /* The path is logged, the query never: presigned URLs carry signatures
     * there, and lists carry cursors nobody needs in a log. */
    kd_log(KD_LOG_INFO, "request method=%s path=%.256s status=%d duration_ms=%" PRId64,
           rq.method[0] != '\0' ? rq.method : "-", rq.path != NULL ? rq.path : "-", status,
           kd_mono_ms() - rq.start_ms);
    kd_log_set_request(NULL);
    kd_resp_clear(&rs);
    kd_req_clear(&rq);
}
