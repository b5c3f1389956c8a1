/* apikeys.c: POST|GET /api/v1/api-keys, DELETE /api/v1/api-keys/{id}.
 *
 * A key is shown once, in the answer that creates it; the database keeps
 * its SHA-256 and a short prefix for lists (src/auth.c). Revoking sets
 * revoked_at, which the lookup of every request checks: the key stops
 * working with the next request. Another user's key id answers 404 like a
 * missing one. Creation and revocation go to the audit log. */
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "log.h"
#include "router.h"

#define NAME_MAX_BYTES 100

/* SQL rendering of a key for lists: never the key, nor its hash. */
#define KEY_JSON                                                                                   \
    "json_build_object('id', k.id, 'name', k.name, 'prefix', k.prefix, "                           \
    "'created_at', kadr_ts(k.created_at), 'last_used_at', kadr_ts(k.last_used_at))::text"

enum kd_err
kd_apikeys_create(struct kd_req *rq, struct kd_resp *rs)
{
    static const char *const members[] = {"name", NULL};
    struct kd_problem pb = KD_PROBLEM_INIT;
    const json_t *jname = json_object_get(rq->json, "name");
    const char *name = "";
    char key[KD_APIKEY_MAXLEN + 1] = "", id[37], detail[96];
    struct kd_dbres *res = NULL;
    struct kd_db *db;
    json_t *o = NULL;
    enum kd_err rc = KD_OK;

    if (rq->json != NULL && (rc = kd_check_members(rq->json, members, &pb)) != KD_OK)
        goto out;
    if (jname != NULL && !json_is_null(jname)) {
        if (!json_is_string(jname))
            rc = kd_problem_add(&pb, "name", "must be a string");
        else if (json_string_length(jname) > NAME_MAX_BYTES)
            rc = kd_problem_add(&pb, "name", "must be at most %d bytes", NAME_MAX_BYTES);
        else if (strlen(json_string_value(jname)) != json_string_length(jname))
            rc = kd_problem_add(&pb, "name", "must not contain NUL characters");
        else
            name = json_string_value(jname);
        if (rc != KD_OK)
            goto out;
    }
    if (pb.n > 0) {
        rc = kd_resp_problem_fields(rs, 422, "validation", "the body is invalid", &pb);
        goto out;
    }
    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    if ((rc = kd_db_begin(db)) != KD_OK)
        goto out;
    if ((rc = kd_apikey_create(db, rq->principal.user_id, name, key, id)) != KD_OK)
        goto out;
    if ((rc = kd_snprintf(detail, sizeof(detail), "{\"key_id\":\"%s\"}", id)) != KD_OK ||
        (rc = kd_audit(db, "api_key_created", rq->principal.user_id, NULL, kd_req_addr(rq),
                       detail)) != KD_OK)
        goto out;
    const char *params[] = {id};
    if ((rc = kd_db_query(db, "SELECT kadr_ts(created_at), prefix FROM api_keys WHERE id = $1", 1,
                          params, &res)) != KD_OK)
        goto out;
    if ((rc = kd_db_commit(db)) != KD_OK)
        goto out;
    o = json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", id, "name", name, "prefix",
                  kd_dbres_get(res, 0, 1), "key", key, "created_at", kd_dbres_get(res, 0, 0));
    if (o == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    rc = kd_resp_json(rs, 201, o);
out:
    explicit_bzero(key, sizeof(key));
    if (o != NULL) {
        /* The key's only copy outside the response buffer. */
        json_t *k = json_object_get(o, "key");

        if (k != NULL && json_string_length(k) > 0)
            explicit_bzero((char *)json_string_value(k), json_string_length(k));
        json_decref(o);
    }
    kd_dbres_free(res);
    kd_problem_clear(&pb);
    return rc;
}

enum kd_err
kd_apikeys_list(struct kd_req *rq, struct kd_resp *rs)
{
    /* Live keys, newest first, in pages (see media.c for the cursor). */
    static const char sel[] =
        "SELECT " KEY_JSON ", "
        "       (extract(epoch FROM k.created_at) * 1000000)::bigint || ':' || k.id "
        "  FROM api_keys k "
        " WHERE k.user_id = $1 AND k.revoked_at IS NULL "
        "   AND ($2::bigint IS NULL OR (k.created_at, k.id) < "
        "        (timestamptz 'epoch' + $2::bigint / 1000000 * interval '1 second' "
        "         + $2::bigint % 1000000 * interval '1 microsecond', $3::uuid)) "
        " ORDER BY k.created_at DESC, k.id DESC "
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
    const char *params[4] = {rq->principal.user_id, pg.has_cursor ? micros : NULL,
                             pg.has_cursor ? after_id : NULL, limit};
    if ((rc = kd_db_query(db, sel, 4, params, &res)) != KD_OK)
        goto out;
    rc = kd_resp_list_rows(rs, res, pg.limit);
out:
    kd_dbres_free(res);
    kd_problem_clear(&pb);
    return rc;
}

enum kd_err
kd_apikeys_delete(struct kd_req *rq, struct kd_resp *rs)
{
    const char *params[2] = {rq->id, rq->principal.user_id};
    struct kd_dbres *res = NULL;
    struct kd_db *db;
    char detail[96];
    enum kd_err rc;

    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    if ((rc = kd_db_begin(db)) != KD_OK)
        goto out;
    if ((rc = kd_db_query(db,
                          "UPDATE api_keys SET revoked_at = now() "
                          " WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
                          2, params, &res)) != KD_OK)
        goto out;
    if (kd_dbres_affected(res) != 1) {
        rc = kd_resp_problem(rs, 404, "not-found", "there is no such API key");
        goto out;
    }
    if ((rc = kd_snprintf(detail, sizeof(detail), "{\"key_id\":\"%s\"}", rq->id)) != KD_OK ||
        (rc = kd_audit(db, "api_key_revoked", rq->principal.user_id, NULL, kd_req_addr(rq),
                       detail)) != KD_OK)
        goto out;
    if ((rc = kd_db_commit(db)) != KD_OK)
        goto out;
    rc = kd_resp_empty(rs, 204);
out:
    kd_dbres_free(res);
    return rc;
}

/* GET /api/v1/admin/audit: the latest security events (admins only; the
 * router answers 403 to others). */
enum kd_err
kd_admin_audit(struct kd_req *rq, struct kd_resp *rs)
{
    static const char sel[] =
        "SELECT json_build_object('id', a.id, 'at', kadr_ts(a.at), 'event', a.event, "
        "       'user_id', a.user_id, 'email', a.email, 'addr', a.addr, 'detail', a.detail)::text, "
        "       a.id::text "
        "  FROM audit_events a "
        " WHERE $1::bigint IS NULL OR a.id < $1::bigint "
        " ORDER BY a.id DESC LIMIT $2::integer + 1";
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct kd_page pg;
    struct kd_dbres *res = NULL;
    struct kd_db *db;
    char limit[16];
    int64_t after = 0;
    enum kd_err rc;

    rc = kd_page_parse(rq, &pg, &pb);
    if (rc == KD_OK && pg.has_cursor && kd_parse_i64(pg.cursor, 1, INT64_MAX, &after) != KD_OK)
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
    const char *params[2] = {pg.has_cursor ? pg.cursor : NULL, limit};
    if ((rc = kd_db_query(db, sel, 2, params, &res)) != KD_OK)
        goto out;
    rc = kd_resp_list_rows(rs, res, pg.limit);
out:
    kd_dbres_free(res);
    kd_problem_clear(&pb);
    return rc;
}
