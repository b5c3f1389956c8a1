/* media.c: GET /api/v1/media, GET|DELETE /api/v1/media/{id} and
 * GET /api/v1/media/{id}/download.
 *
 * Every query is scoped to the caller's user id and to live rows, so an id
 * of another user, a deleted one and a missing one all answer the same 404. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "router.h"

enum kd_err
kd_media_respond(struct kd_req *rq, struct kd_resp *rs, struct kd_db *db, const char *media_id,
                 int status, bool wrap)
{
    static const char sel[] = "SELECT kadr_media_json(m)::text FROM media m "
                              " WHERE m.id = $1 AND m.user_id = $2 AND m.deleted_at IS NULL";
    const char *params[2] = {media_id, rq->principal.user_id};
    struct kd_dbres *res = NULL;
    struct kd_buf b;
    enum kd_err rc;

    kd_buf_init(&b, KD_RESP_BODY_MAX);
    if ((rc = kd_db_query(db, sel, 2, params, &res)) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) != 1 || kd_dbres_get(res, 0, 0) == NULL) {
        rc = KD_ENOTFOUND;
        goto out;
    }
    if (!wrap) {
        rc = kd_resp_json_text(rs, status, kd_dbres_get(res, 0, 0));
        goto out;
    }
    if ((rc = kd_buf_printf(&b, "{\"media\":%s}", kd_dbres_get(res, 0, 0))) != KD_OK)
        goto out;
    rc = kd_resp_json_text(rs, status, b.data);
out:
    kd_buf_clear(&b);
    kd_dbres_free(res);
    return rc;
}

enum kd_err
kd_media_list(struct kd_req *rq, struct kd_resp *rs)
{
    /* (created_at, id) descending, resumed strictly after the cursor's pair;
     * the index media_user_list serves both the order and the seek. The
     * cursor's microseconds go back as whole seconds plus microseconds, each
     * small enough to stay exact in interval arithmetic (done in doubles). */
    static const char sel[] =
        "SELECT kadr_media_json(m)::text, "
        "       (extract(epoch FROM m.created_at) * 1000000)::bigint || ':' || m.id "
        "  FROM media m "
        " WHERE m.user_id = $1 AND m.deleted_at IS NULL "
        "   AND ($2::bigint IS NULL OR (m.created_at, m.id) < "
        "        (timestamptz 'epoch' + $2::bigint / 1000000 * interval '1 second' "
        "         + $2::bigint % 1000000 * interval '1 microsecond', $3::uuid)) "
        " ORDER BY m.created_at DESC, m.id DESC "
        " LIMIT $4::integer + 1";
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct kd_page pg;
    struct kd_dbres *res = NULL;
    struct kd_db *db;
    char micros[24] = "", after_id[KD_UUID_STRLEN + 1] = "", limit[16];
    enum kd_err rc;

    rc = kd_page_parse(rq, &pg, &pb);
    if (rc == KD_OK && pg.has_cursor && kd_cursor_split(pg.cursor, micros, after_id) != KD_OK)
        rc = kd_problem_add(&pb, "cursor", "is not a cursor of this list");
    if (rc == KD_ENOMEM)
        goto out;
    if (pb.n > 0) {
        rc = kd_resp_problem_fields(rs, 422, "validation", "the query is invalid", &pb);
        goto out;
    }
    if ((rc = kd_snprintf(limit, sizeof(limit), "%d", pg.limit)) != KD_OK)
        goto out;
    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    {
        const char *params[4] = {rq->principal.user_id, pg.has_cursor ? micros : NULL,
                                 pg.has_cursor ? after_id : NULL, limit};

        if ((rc = kd_db_query(db, sel, 4, params, &res)) != KD_OK)
            goto out;
    }
    rc = kd_resp_list_rows(rs, res, pg.limit);
out:
    kd_dbres_free(res);
    kd_problem_clear(&pb);
    return rc;
}

enum kd_err
kd_media_get(struct kd_req *rq, struct kd_resp *rs)
{
    struct kd_db *db;
    enum kd_err rc;

    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    rc = kd_media_respond(rq, rs, db, rq->id, 200, false);
    if (rc == KD_ENOTFOUND)
        rc = kd_resp_problem(rs, 404, "not-found", "there is no such media");
out:
    return rc;
}

enum kd_err
kd_media_download(struct kd_req *rq, struct kd_resp *rs)
{
    static const char sel[] = "SELECT status, storage_key, filename FROM media "
                              " WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL";
    const char *params[2] = {rq->id, rq->principal.user_id};
    struct kd_presign opt = {0};
    struct kd_dbres *res = NULL;
    struct kd_storage *st;
    struct kd_db *db;
    char *url = NULL;
    char exp_iso[32];
    int64_t expires_at = 0;
    json_t *body = NULL;
    const char *status;
    enum kd_err rc;

    if ((rc = kd_app_db(rq->app, &db)) != KD_OK || (rc = kd_app_storage(rq->app, &st)) != KD_OK)
        goto out;
    if ((rc = kd_db_query(db, sel, 2, params, &res)) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) != 1) {
        rc = kd_resp_problem(rs, 404, "not-found", "there is no such media");
        goto out;
    }
    status = kd_dbres_get(res, 0, 0);
    if (status == NULL || strcmp(status, "ready") != 0) {
        rc = kd_resp_problem(rs, 409, "media-not-ready",
                             "the media is %s; only ready media can be downloaded",
                             status != NULL ? status : "unknown");
        goto out;
    }
    opt.ttl_s = rq->cfg->download_url_ttl_s;
    opt.filename = kd_dbres_get(res, 0, 2);
    if ((rc = kd_storage_presign(st, "GET", kd_dbres_get(res, 0, 1), &opt, &url, &expires_at)) !=
        KD_OK)
        goto out;
    kd_time_rfc3339(expires_at * 1000, exp_iso);
    /* The body repeats the URL for clients that do not follow redirects. */
    if ((body = json_pack("{s:s, s:s}", "url", url, "expires_at", exp_iso)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if ((rc = kd_resp_header(rs, "Location", url)) != KD_OK)
        goto out;
    rc = kd_resp_json(rs, 302, body);
out:
    json_decref(body);
    free(url);
    kd_dbres_free(res);
    return rc;
}

enum kd_err
kd_media_delete(struct kd_req *rq, struct kd_resp *rs)
{
    static const char del[] = "UPDATE media SET deleted_at = now() "
                              " WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL "
                              " RETURNING storage_key";
    const char *params[2] = {rq->id, rq->principal.user_id};
    struct kd_dbres *res = NULL;
    struct kd_storage *st;
    struct kd_db *db;
    enum kd_err rc;

    if ((rc = kd_app_db(rq->app, &db)) != KD_OK || (rc = kd_app_storage(rq->app, &st)) != KD_OK)
        goto out;
    if ((rc = kd_db_query(db, del, 2, params, &res)) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) != 1) {
        rc = kd_resp_problem(rs, 404, "not-found", "there is no such media");
        goto out;
    }
    /* The row goes first: bytes without a live row are garbage an operator
     * can remove (the warning names the key); a live row without bytes
     * would be a broken promise. */
    if (kd_storage_delete(st, kd_dbres_get(res, 0, 0)) != KD_OK)
        kd_log(KD_LOG_WARN, "media %s deleted; removing its object %s failed", rq->id,
               kd_dbres_get(res, 0, 0));
    else
        kd_log(KD_LOG_INFO, "media %s deleted", rq->id);
    rc = kd_resp_empty(rs, 204);
out:
    kd_dbres_free(res);
    return rc;
}
