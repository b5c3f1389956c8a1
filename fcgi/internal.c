/* internal.c: /api/v1/internal/verify, nginx's auth_request check of a
 * request that arrived at a presigned storage URL (local backend).
 *
 * nginx calls it from an internal location and passes, as FastCGI params:
 *   KADR_INTERNAL=1, KADR_ORIGINAL_METHOD ($request_method),
 *   KADR_ORIGINAL_URI ($request_uri), KADR_ORIGINAL_LENGTH ($http_content_length).
 * HEAD is checked as GET. auth_request understands 2xx (go on), 401 and 403 only, so every refusal
 * is 403 with an empty body. The original URI carries the signature in its
 * query: it is never logged, only the storage key is. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "router.h"

static enum kd_err
refuse(struct kd_resp *rs, const char *why, const char *key)
{
    kd_log(KD_LOG_INFO, "storage request refused: %s (key %s)", why,
           key != NULL && key[0] != '\0' ? key : "-");
    return kd_resp_empty(rs, 403);
}

/* A PUT is allowed while its upload is open: not completed, not expired,
 * its media neither deleted nor past "uploading". The signed size must be
 * the request's exact Content-Length (nginx also stops at that length), so
 * nothing larger than declared can land in storage. */
static enum kd_err
verify_put(struct kd_req *rq, struct kd_resp *rs, struct kd_db *db,
           const struct kd_presigned_req *pr)
{
    static const char sel[] =
        "SELECT 1 FROM uploads u JOIN media m ON m.id = u.media_id "
        " WHERE u.storage_key = $1 AND u.completed_at IS NULL AND u.expires_at > now() "
        "   AND m.deleted_at IS NULL AND m.status = 'uploading' AND u.declared_size = $2::bigint";
    const char *length = kd_req_param(rq, "KADR_ORIGINAL_LENGTH");
    struct kd_dbres *res = NULL;
    char size_txt[24];
    int64_t n;
    enum kd_err rc;

    if (length == NULL || length[0] == '\0' || kd_parse_i64(length, 0, INT64_MAX, &n) != KD_OK) {
        rc = refuse(rs, "PUT without a Content-Length", pr->key);
        goto out;
    }
    if (n != pr->size) {
        rc = refuse(rs, "Content-Length differs from the signed size", pr->key);
        goto out;
    }
    if ((rc = kd_snprintf(size_txt, sizeof(size_txt), "%" PRId64, pr->size)) != KD_OK)
        goto out;
    {
        const char *params[2] = {pr->key, size_txt};

        if ((rc = kd_db_query(db, sel, 2, params, &res)) != KD_OK)
            goto out;
    }
    if (kd_dbres_rows(res) < 1) {
        rc = refuse(rs, "no open upload for this key", pr->key);
        goto out;
    }
    rc = kd_resp_empty(rs, 200);
out:
    kd_dbres_free(res);
    return rc;
}

/* A GET is allowed for live, ready media; nginx adds the disposition we
 * return so the browser saves the file under its own (sanitised) name. */
static enum kd_err
verify_get(struct kd_resp *rs, struct kd_db *db, const struct kd_presigned_req *pr)
{
    static const char sel[] = "SELECT filename FROM media "
                              " WHERE storage_key = $1 AND deleted_at IS NULL AND status = 'ready'";
    const char *params[1] = {pr->key};
    struct kd_dbres *res = NULL;
    const char *filename;
    char *disposition = NULL;
    enum kd_err rc;

    if ((rc = kd_db_query(db, sel, 1, params, &res)) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) != 1) {
        rc = refuse(rs, "no ready media for this key", pr->key);
        goto out;
    }
    filename = pr->filename[0] != '\0' ? pr->filename : kd_dbres_get(res, 0, 0);
    if ((rc = kd_content_disposition(filename != NULL ? filename : "", &disposition)) != KD_OK)
        goto out;
    if ((rc = kd_resp_empty(rs, 200)) != KD_OK ||
        (rc = kd_resp_header(rs, "X-Kadr-Disposition", disposition)) != KD_OK)
        goto out;
out:
    free(disposition);
    kd_dbres_free(res);
    return rc;
}

enum kd_err
kd_internal_verify(struct kd_req *rq, struct kd_resp *rs)
{
    const char *method = kd_req_param(rq, "KADR_ORIGINAL_METHOD");
    const char *uri = kd_req_param(rq, "KADR_ORIGINAL_URI");
    struct kd_presigned_req pr;
    struct kd_storage *st;
    struct kd_db *db;
    bool is_put;
    enum kd_err rc, vrc;

    if (method == NULL || uri == NULL || uri[0] != '/') {
        rc = refuse(rs, "the original request is not described", NULL);
        goto out;
    }
    /* HEAD shows no more than GET and is checked as one. */
    if (strcmp(method, "PUT") != 0 && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        rc = refuse(rs, "only PUT, GET and HEAD are presigned", NULL);
        goto out;
    }
    is_put = strcmp(method, "PUT") == 0;
    if ((rc = kd_app_storage(rq->app, &st)) != KD_OK)
        goto out;
    memset(&pr, 0, sizeof(pr));
    vrc = kd_storage_verify(st, method, uri, kd_now_ms() / 1000, &pr);
    if (vrc == KD_ETIMEOUT) {
        rc = refuse(rs, "the URL expired", NULL);
        goto out;
    }
    if (vrc != KD_OK) {
        rc = refuse(rs, "the signature does not match", NULL);
        goto out;
    }
    if (strcmp(pr.method, is_put ? "PUT" : "GET") != 0 || !kd_storage_key_valid(pr.key)) {
        rc = refuse(rs, "the URL was signed for another request", pr.key);
        goto out;
    }
    /* A database that is down is not a refusal: 503 makes nginx answer 500
     * instead of telling the client its URL is bad. */
    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    if (is_put)
        rc = verify_put(rq, rs, db, &pr);
    else
        rc = verify_get(rs, db, &pr);
out:
    return rc;
}
