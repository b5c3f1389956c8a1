/* uploads.c: POST /api/v1/uploads and POST /api/v1/uploads/{id}/complete.
 *
 * The bytes never pass through here: an upload is a media row (status
 * uploading) plus an uploads row, and a presigned PUT URL that nginx (local
 * storage) checks through /api/v1/internal/verify before it takes a byte.
 * Completing checks that the object is there with the declared size and
 * hands the media to a probe worker.
 *
 * On S3, an upload larger than s3_multipart_threshold is a multipart upload
 * (S3 takes at most 5 GiB in one PUT): the answer carries a part size and a
 * presigned URL per part, and complete joins the parts with the ETags the
 * client collected. The scheduler aborts multipart uploads left unfinished
 * past their expiry. */
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "router.h"

#define FILENAME_MAX_BYTES   255
#define CONTENT_TYPE_MAX     255
#define DEFAULT_CONTENT_TYPE "application/octet-stream"

struct upload_body {
    const char *filename; /* borrowed from the request JSON */
    int64_t size;
    char content_type[CONTENT_TYPE_MAX + 1]; /* lowercased */
};

/* Characters a person cannot see or that reorder text: C0, DEL, C1, the
 * line and paragraph separators, and the bidirectional controls that make
 * "gpj.exe" look like "exe.jpg". The bytes are valid UTF-8 already (the JSON
 * parser checked). */
static bool
has_invisible(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i;

    for (i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return true;
        if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
            return true;
        if (p[i] == 0xe2 && i + 2 < len && p[i + 1] == 0x80 && p[i + 2] >= 0xa8 && p[i + 2] <= 0xae)
            return true; /* U+2028..U+202E */
        if (p[i] == 0xe2 && i + 2 < len && p[i + 1] == 0x81 && p[i + 2] >= 0xa6 && p[i + 2] <= 0xa9)
            return true; /* U+2066..U+2069 */
    }
    return false;
}

/* RFC 9110 section 5.6.2 tchar. */
static bool
is_tchar(unsigned char c)
{
    return (c < 0x80 && isalnum(c)) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* "type/subtype", both tokens, no parameters. */
static bool
content_type_valid(const char *s, size_t len)
{
    size_t i, slash = 0, n_slash = 0;

    if (len == 0 || len > CONTENT_TYPE_MAX)
        return false;
    for (i = 0; i < len; i++) {
        if (s[i] == '/') {
            slash = i;
            n_slash++;
        } else if (!is_tchar((unsigned char)s[i])) {
            return false;
        }
    }
    return n_slash == 1 && slash > 0 && slash + 1 < len;
}

static enum kd_err
parse_body(const json_t *body, struct upload_body *ub, struct kd_problem *pb)
{
    static const char *const members[] = {"filename", "size", "content_type", NULL};
    char shown[KD_JSON_KEY_SHOWN];
    const char *key;
    void *it = NULL;
    json_t *v;
    enum kd_err rc = KD_OK;
    size_t i;

    memset(ub, 0, sizeof(*ub));
    memcpy(ub->content_type, DEFAULT_CONTENT_TYPE, sizeof(DEFAULT_CONTENT_TYPE));
    while ((key = kd_json_next_unknown(body, members, &it)) != NULL) {
        kd_json_key_shown(key, shown);
        if ((rc = kd_problem_add(pb, shown, "is not a field of an upload")) != KD_OK)
            goto out;
    }

    v = json_object_get(body, "filename");
    if (!json_is_string(v)) {
        rc = kd_problem_add(pb, "filename", v == NULL ? "is required" : "must be a string");
    } else if (json_string_length(v) == 0 || json_string_length(v) > FILENAME_MAX_BYTES) {
        rc = kd_problem_add(pb, "filename", "must be 1 to %d bytes of UTF-8", FILENAME_MAX_BYTES);
    } else if (strlen(json_string_value(v)) != json_string_length(v) ||
               has_invisible(json_string_value(v), json_string_length(v))) {
        rc = kd_problem_add(pb, "filename", "must not contain control characters");
    } else {
        ub->filename = json_string_value(v);
    }
    if (rc != KD_OK)
        goto out;

    v = json_object_get(body, "size");
    if (!json_is_integer(v))
        rc = kd_problem_add(pb, "size", v == NULL ? "is required" : "must be an integer");
    else if (json_integer_value(v) < 1)
        rc = kd_problem_add(pb, "size", "must be at least 1 byte");
    else
        ub->size = json_integer_value(v);
    if (rc != KD_OK)
        goto out;

    v = json_object_get(body, "content_type");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v) ||
            !content_type_valid(json_string_value(v), json_string_length(v))) {
            rc = kd_problem_add(pb, "content_type",
                                "must be a media type such as \"video/mp4\" (no parameters)");
        } else {
            const char *s = json_string_value(v);

            for (i = 0; i <= json_string_length(v); i++)
                ub->content_type[i] = (char)tolower((unsigned char)s[i]);
        }
    }
out:
    return rc;
}

static enum kd_err
new_lower_uuid(char out[KD_UUID_STRLEN + 1])
{
    enum kd_err rc;
    size_t i;

    if ((rc = kd_uuid_new(out)) != KD_OK)
        return rc;
    for (i = 0; i < KD_UUID_STRLEN; i++)
        out[i] = (char)tolower((unsigned char)out[i]);
    return KD_OK;
}

/* Starts a multipart upload of ub->size bytes under key and presigns a PUT
 * per part. The part size starts at s3_part_size and doubles until the
 * file fits in S3's 10000 parts. */
static enum kd_err
multipart_start(struct kd_req *rq, struct kd_storage *st, const char *key,
                const struct upload_body *ub, char **mp_id, int64_t *part_size_out,
                int64_t *part_count_out, json_t **parts_out, int64_t *expires_at)
{
    int64_t part_size = rq->cfg->s3_part_size, n, exp = 0;
    json_t *parts = NULL, *part;
    char *id = NULL, *url = NULL;
    enum kd_err rc;

    while ((ub->size + part_size - 1) / part_size > KD_STORAGE_MAX_PARTS)
        part_size *= 2;
    n = (ub->size + part_size - 1) / part_size;
    if ((parts = json_array()) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if ((rc = kd_storage_multipart_begin(st, key, ub->content_type, &id)) != KD_OK)
        goto out;
    for (int64_t i = 1; i <= n; i++) {
        /* Every part but the last is part_size; the last holds the rest. */
        int64_t len = i < n ? part_size : ub->size - (n - 1) * part_size;

        if ((rc = kd_storage_multipart_presign_part(
                 st, key, id, (int)i, len, rq->cfg->upload_url_ttl_s, &url, &exp)) != KD_OK)
            goto out;
        part = json_pack("{s:I, s:s}", "part_number", (json_int_t)i, "url", url);
        free(url);
        url = NULL;
        if (part == NULL || json_array_append_new(parts, part) != 0) {
            rc = KD_ENOMEM;
            goto out;
        }
    }
    *mp_id = id;
    id = NULL;
    *part_size_out = part_size;
    *part_count_out = n;
    *parts_out = parts;
    parts = NULL;
    *expires_at = exp;
out:
    if (id != NULL && kd_storage_multipart_abort(st, key, id) != KD_OK)
        kd_log(KD_LOG_WARN, "multipart upload of %s: abort after a failure failed", key);
    free(id);
    free(url);
    json_decref(parts);
    return rc;
}

/* A store that does not answer gets a 503 naming the storage (the
 * router's own 503 is about the database and the queue). */
static enum kd_err
storage_failed(struct kd_resp *rs, enum kd_err src)
{
    if (src == KD_EUNAVAIL || src == KD_ETIMEOUT)
        return kd_resp_unavailable(rs, "storage");
    return src;
}

enum kd_err
kd_uploads_create(struct kd_req *rq, struct kd_resp *rs)
{
    static const char ins_media[] =
        "INSERT INTO media (id, user_id, filename, size, content_type, status, storage_key) "
        "VALUES ($1, $2, $3, $4, $5, 'uploading', $6)";
    static const char ins_upload[] =
        "INSERT INTO uploads (id, user_id, media_id, storage_key, declared_size, expires_at, "
        "                     multipart_id, part_size, part_count) "
        "VALUES ($1, $2, $3, $4, $5, to_timestamp($6::double precision), $7, $8, $9)";
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct upload_body ub;
    struct kd_presign opt = {0};
    struct kd_storage *st;
    struct kd_db *db;
    char media_id[KD_UUID_STRLEN + 1], upload_id[KD_UUID_STRLEN + 1];
    char key[64], size_txt[24], exp_txt[24], exp_iso[32], location[96];
    char *url = NULL, *mp_id = NULL;
    char part_size_txt[24], part_count_txt[24];
    int64_t expires_at = 0, part_size = 0, part_count = 0;
    json_t *out_json = NULL, *parts = NULL;
    bool committed = false;
    enum kd_err rc;

    if ((rc = parse_body(rq->json, &ub, &pb)) != KD_OK)
        goto out;
    if (pb.n > 0 || pb.dropped > 0) {
        rc = kd_resp_problem_fields(rs, 422, "validation", "the upload is invalid", &pb);
        goto out;
    }
    if (ub.size > rq->cfg->limits.upload_max_bytes) {
        rc = kd_resp_problem(rs, 413, "upload-too-large",
                             "size %" PRId64 " is over the limit of %" PRId64 " bytes", ub.size,
                             rq->cfg->limits.upload_max_bytes);
        goto out;
    }
    if ((rc = kd_app_db(rq->app, &db)) != KD_OK || (rc = kd_app_storage(rq->app, &st)) != KD_OK)
        goto out;
    if ((rc = new_lower_uuid(media_id)) != KD_OK || (rc = new_lower_uuid(upload_id)) != KD_OK)
        goto out;
    /* The key is ours alone: never derived from the user's file name. */
    if ((rc = kd_snprintf(key, sizeof(key), "media/%s", media_id)) != KD_OK)
        goto out;
    opt.ttl_s = rq->cfg->upload_url_ttl_s;
    opt.size = ub.size;
    opt.content_type = ub.content_type;
    if (strcmp(kd_storage_backend_name(st), "s3") == 0 &&
        ub.size > rq->cfg->s3_multipart_threshold) {
        if ((rc = multipart_start(rq, st, key, &ub, &mp_id, &part_size, &part_count, &parts,
                                  &expires_at)) != KD_OK) {
            rc = storage_failed(rs, rc);
            goto out;
        }
    } else if ((rc = kd_storage_presign(st, "PUT", key, &opt, &url, &expires_at)) != KD_OK) {
        goto out;
    }
    if ((rc = kd_snprintf(size_txt, sizeof(size_txt), "%" PRId64, ub.size)) != KD_OK ||
        (rc = kd_snprintf(exp_txt, sizeof(exp_txt), "%" PRId64, expires_at)) != KD_OK ||
        (rc = kd_snprintf(part_size_txt, sizeof(part_size_txt), "%" PRId64, part_size)) != KD_OK ||
        (rc = kd_snprintf(part_count_txt, sizeof(part_count_txt), "%" PRId64, part_count)) != KD_OK)
        goto out;

    if ((rc = kd_db_begin(db)) != KD_OK)
        goto out;
    {
        const char *pm[] = {media_id, rq->principal.user_id, ub.filename,
                            size_txt, ub.content_type,       key};
        const char *pu[] = {upload_id,
                            rq->principal.user_id,
                            media_id,
                            key,
                            size_txt,
                            exp_txt,
                            mp_id,
                            mp_id != NULL ? part_size_txt : NULL,
                            mp_id != NULL ? part_count_txt : NULL};

        if ((rc = kd_db_query(db, ins_media, 6, pm, NULL)) != KD_OK ||
            (rc = kd_db_query(db, ins_upload, 9, pu, NULL)) != KD_OK)
            goto out;
    }
    if ((rc = kd_db_commit(db)) != KD_OK)
        goto out;
    committed = true;
    kd_log(KD_LOG_INFO, "upload %s created: media %s, %" PRId64 " bytes", upload_id, media_id,
           ub.size);

    kd_time_rfc3339(expires_at * 1000, exp_iso);
    if (mp_id != NULL)
        out_json = json_pack("{s:s, s:s, s:s, s:I, s:O, s:s}", "upload_id", upload_id, "media_id",
                             media_id, "method", "multipart", "part_size", (json_int_t)part_size,
                             "parts", parts, "expires_at", exp_iso);
    else
        out_json = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:s}", "upload_id", upload_id,
                             "media_id", media_id, "method", "PUT", "url", url, "headers",
                             "Content-Type", ub.content_type, "expires_at", exp_iso);
    if (out_json == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if ((rc = kd_snprintf(location, sizeof(location), "/api/v1/media/%s", media_id)) != KD_OK ||
        (rc = kd_resp_header(rs, "Location", location)) != KD_OK)
        goto out;
    rc = kd_resp_json(rs, 201, out_json);
out:
    /* a multipart upload no row knows of would stay billed until the
     * bucket's lifecycle rule: abort it now */
    if (mp_id != NULL && !committed && kd_storage_multipart_abort(st, key, mp_id) != KD_OK)
        kd_log(KD_LOG_WARN, "multipart upload of %s: abort after a failure failed", key);
    json_decref(out_json);
    json_decref(parts);
    free(url);
    free(mp_id);
    kd_problem_clear(&pb);
    return rc;
}

/* The complete body is {} (or none) for a single PUT, and
 * {"parts":[{"part_number","etag"}]} with every part in order for a
 * multipart upload of n parts. Fills *parts (the caller frees it). */
static enum kd_err
check_complete_body(const json_t *body, int64_t n, struct kd_storage_part **parts_out,
                    struct kd_problem *pb)
{
    static const char *const multipart_members[] = {"parts", NULL}, *const put_members[] = {NULL};
    struct kd_storage_part *parts = NULL;
    char shown[KD_JSON_KEY_SHOWN];
    const char *key;
    void *it = NULL;
    json_t *v, *arr;
    enum kd_err rc = KD_OK;
    size_t i;

    if (body != NULL) {
        while ((key = kd_json_next_unknown(body, n > 0 ? multipart_members : put_members, &it)) !=
               NULL) {
            kd_json_key_shown(key, shown);
            if ((rc = kd_problem_add(pb, shown,
                                     n > 0 ? "is not a field of a completion"
                                           : "is not expected: this upload was a "
                                             "single PUT")) != KD_OK)
                goto out;
        }
    }
    if (n == 0)
        goto out;
    arr = body != NULL ? json_object_get(body, "parts") : NULL;
    if (!json_is_array(arr) || (int64_t)json_array_size(arr) != n) {
        rc = kd_problem_add(pb, "parts", "must list the %" PRId64 " parts of this upload", n);
        goto out;
    }
    if ((parts = calloc((size_t)n, sizeof(*parts))) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    json_array_foreach(arr, i, v)
    {
        json_t *pn = json_object_get(v, "part_number"), *et = json_object_get(v, "etag");
        char field[48];

        if ((rc = kd_snprintf(field, sizeof(field), "parts[%zu]", i)) != KD_OK)
            goto out;
        if (!json_is_object(v) || json_object_size(v) != 2 || !json_is_integer(pn) ||
            json_integer_value(pn) != (json_int_t)i + 1 || !json_is_string(et) ||
            json_string_length(et) == 0 || json_string_length(et) >= sizeof(parts[i].etag)) {
            rc = kd_problem_add(pb, field,
                                "must be {\"part_number\": %zu, \"etag\": the part's ETag}", i + 1);
            if (rc != KD_OK || pb->n >= 5)
                goto out;
            continue;
        }
        parts[i].part_number = (int)i + 1;
        memcpy(parts[i].etag, json_string_value(et), json_string_length(et) + 1);
    }
    if (pb->n == 0) {
        *parts_out = parts;
        parts = NULL;
    }
out:
    free(parts);
    return rc;
}

enum kd_err
kd_uploads_complete(struct kd_req *rq, struct kd_resp *rs)
{
    static const char sel[] =
        "SELECT u.media_id::text, u.storage_key, u.declared_size, u.completed_at IS NOT NULL, "
        "       u.expires_at <= now(), m.status, m.error_message, u.multipart_id, "
        "       coalesce(u.part_count, 0) "
        "  FROM uploads u JOIN media m ON m.id = u.media_id "
        " WHERE u.id = $1 AND u.user_id = $2 AND m.deleted_at IS NULL "
        "   FOR UPDATE OF u, m";
    static const char reject[] =
        "UPDATE media SET status = 'rejected', error_code = 'invalid_input', error_message = $2 "
        " WHERE id = $1 AND status = 'uploading'";
    static const char to_processing[] =
        "UPDATE media SET status = 'processing', enqueued_at = now() "
        " WHERE id = $1 AND status = 'uploading'";
    static const char mark_done[] = "UPDATE uploads SET completed_at = now() WHERE id = $1";
    const char *params[2] = {rq->id, rq->principal.user_id};
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct kd_dbres *res = NULL;
    struct kd_storage_stat sst;
    struct kd_storage *st;
    struct kd_queue *q;
    struct kd_db *db;
    char media_id[KD_UUID_STRLEN + 1], key[256], msg[160];
    struct kd_storage_part *parts = NULL;
    const char *status, *mp_id;
    int64_t declared, part_count;
    enum kd_err rc, src;

    if ((rc = kd_app_db(rq->app, &db)) != KD_OK || (rc = kd_app_storage(rq->app, &st)) != KD_OK)
        goto out;
    if ((rc = kd_db_begin(db)) != KD_OK)
        goto out;
    if ((rc = kd_db_query(db, sel, 2, params, &res)) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) != 1) {
        rc = kd_resp_problem(rs, 404, "not-found", "there is no such upload");
        goto out;
    }
    if ((rc = kd_snprintf(media_id, sizeof(media_id), "%s", kd_dbres_get(res, 0, 0))) != KD_OK ||
        (rc = kd_snprintf(key, sizeof(key), "%s", kd_dbres_get(res, 0, 1))) != KD_OK)
        goto out;
    declared = kd_dbres_i64(res, 0, 2, -1);
    status = kd_dbres_get(res, 0, 5);
    mp_id = kd_dbres_get(res, 0, 7);
    part_count = kd_dbres_i64(res, 0, 8, 0);
    if ((rc = check_complete_body(rq->json, mp_id != NULL ? part_count : 0, &parts, &pb)) != KD_OK)
        goto out;
    if (pb.n > 0 || pb.dropped > 0) {
        rc = kd_resp_problem_fields(
            rs, 422, "validation",
            mp_id != NULL ? "the parts of the upload are needed" : "the body must be {}", &pb);
        goto out;
    }

    /* Completing twice answers the same: clients retry on timeouts. */
    if (kd_dbres_bool(res, 0, 3)) {
        if ((rc = kd_db_commit(db)) != KD_OK)
            goto out;
        rc = kd_media_respond(rq, rs, db, media_id, 200, true);
        goto out;
    }
    if (status != NULL && strcmp(status, "rejected") == 0) {
        const char *why = kd_dbres_get(res, 0, 6);

        rc = kd_resp_problem(rs, 422, "upload-rejected", "the upload was rejected: %s",
                             why != NULL ? why : "invalid");
        goto out;
    }
    if (kd_dbres_bool(res, 0, 4) || status == NULL || strcmp(status, "uploading") != 0) {
        rc = kd_resp_problem(rs, 409, "upload-expired",
                             "the upload expired; start a new one with POST /api/v1/uploads");
        goto out;
    }

    if (mp_id != NULL) {
        /* KD_ENOTFOUND: joined already by an earlier attempt whose answer
         * was lost (or aborted): the object, or its absence, tells */
        src = kd_storage_multipart_complete(st, key, mp_id, parts, (size_t)part_count);
        if (src == KD_EINVAL) {
            rc = kd_resp_problem(rs, 422, "upload-parts-invalid",
                                 "the storage refused the parts: check every part was uploaded "
                                 "and its ETag");
            goto out;
        }
        if (src != KD_OK && src != KD_ENOTFOUND) {
            rc = storage_failed(rs, src);
            goto out;
        }
    }
    src = kd_storage_stat(st, key, &sst);
    if (src == KD_ENOTFOUND) {
        rc = kd_resp_problem(rs, 409, "nothing-uploaded",
                             "nothing was uploaded: PUT the file to the upload URL first");
        goto out;
    }
    if (src != KD_OK) {
        rc = storage_failed(rs, src);
        goto out;
    }
    if (sst.size != declared) {
        const char *p[2] = {media_id, msg};

        if ((rc = kd_snprintf(msg, sizeof(msg),
                              "%" PRId64 " bytes were uploaded but %" PRId64 " were declared",
                              sst.size, declared)) != KD_OK)
            goto out;
        if ((rc = kd_db_query(db, reject, 2, p, NULL)) != KD_OK)
            goto out;
        if ((rc = kd_db_commit(db)) != KD_OK)
            goto out;
        if (kd_storage_delete(st, key) != KD_OK)
            kd_log(KD_LOG_WARN, "media %s rejected; deleting its object %s failed", media_id, key);
        if ((rc = kd_problem_add(&pb, "size", "%s", msg)) != KD_OK)
            goto out;
        rc = kd_resp_problem_fields(rs, 422, "upload-size-mismatch",
                                    "the uploaded file does not have the declared size", &pb);
        goto out;
    }

    {
        const char *pm[1] = {media_id};
        const char *pu[1] = {rq->id};

        if ((rc = kd_db_query(db, to_processing, 1, pm, NULL)) != KD_OK ||
            (rc = kd_db_query(db, mark_done, 1, pu, NULL)) != KD_OK)
            goto out;
    }
    if ((rc = kd_media_respond(rq, rs, db, media_id, 200, true)) != KD_OK)
        goto out;
    if ((rc = kd_db_commit(db)) != KD_OK) {
        kd_resp_reset(rs);
        goto out;
    }
    kd_log(KD_LOG_INFO, "upload %s completed: media %s is processing", rq->id, media_id);
    /* After the commit, so a worker never sees a message before the row.
     * A lost message is not a lost media: the row stays "processing" in
     * PostgreSQL, which is the truth, and can be enqueued again. */
    if (kd_app_queue(rq->app, &q) != KD_OK || kd_queue_push(q, "probe", media_id, 1) != KD_OK)
        kd_log(KD_LOG_WARN,
               "media %s: enqueueing the probe failed; it stays processing in PostgreSQL "
               "until its probe is enqueued again",
               media_id);
out:
    free(parts);
    kd_dbres_free(res);
    kd_problem_clear(&pb);
    return rc;
}
