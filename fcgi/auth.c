/* auth.c: POST /api/v1/auth/register, /login, /refresh and /logout, and
 * what the account handlers share.
 *
 * Login answers the same, in the same time, whether or not the e-mail
 * exists: an unknown e-mail is hashed against a dummy (password.h), and
 * both failures give one 401 text. Failed logins are counted per e-mail
 * and per client address in audit_events (PostgreSQL: shared by every API
 * process, kept over restarts); past a limit the login answers 429 without
 * hashing anything.
 *
 * A login opens a session: a refresh-token family. Refreshing uses up the
 * token and returns a new one in the same family; a used token presented
 * again means two parties hold it, and revokes the family, which also ends
 * every access token naming it (auth.c in src/ checks "sid"). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "jwt.h"
#include "json.h"
#include "log.h"
#include "password.h"
#include "router.h"

#define EMAIL_MAX        254
#define PASSWORD_MIN     10 /* characters (code points) */
#define REFRESH_RAW      32 /* 256 bits */
#define REFRESH_TEXT_LEN 43 /* base64url of 32 bytes */

/* --- shared ------------------------------------------------------------- */

const char *
kd_req_addr(const struct kd_req *rq)
{
    const char *a = kd_req_param(rq, "REMOTE_ADDR");

    return a != NULL && strlen(a) <= 64 ? a : "";
}

enum kd_err
kd_check_members(const json_t *obj, const char *const *allowed, struct kd_problem *pb)
{
    char shown[KD_JSON_KEY_SHOWN];
    const char *key;
    void *it = NULL;
    enum kd_err rc = KD_OK;

    while (rc == KD_OK && (key = kd_json_next_unknown(obj, allowed, &it)) != NULL) {
        kd_json_key_shown(key, shown);
        rc = kd_problem_add(pb, shown, "unknown field");
    }
    return rc;
}

/* Code points of valid UTF-8 (the JSON parser checked it). */
static size_t
utf8_chars(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

/* A string member without NUL bytes; NULL (and an error in pb) otherwise. */
static const char *
str_field(const json_t *obj, const char *key, struct kd_problem *pb, enum kd_err *rc)
{
    const json_t *v = json_object_get(obj, key);

    if (!json_is_string(v)) {
        *rc = kd_problem_add(pb, key, v == NULL ? "is required" : "must be a string");
        return NULL;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        *rc = kd_problem_add(pb, key, "must not contain NUL characters");
        return NULL;
    }
    return json_string_value(v);
}

/* An address as people type them: local@domain, printable, no blanks.
 * Deliverability is not ours to judge; uniqueness ignores case. */
static bool
email_valid(const char *s)
{
    size_t len = strlen(s), i;
    const char *at = strchr(s, '@');

    if (len < 3 || len > EMAIL_MAX || at == NULL || at == s || at[1] == '\0' ||
        strchr(at + 1, '@') != NULL)
        return false;
    for (i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* Reads {"email","password"}; for registration also the password rules. */
static enum kd_err
read_credentials(struct kd_req *rq, struct kd_resp *rs, bool registering, const char **email,
                 const char **password)
{
    static const char *const members[] = {"email", "password", NULL};
    struct kd_problem pb = KD_PROBLEM_INIT;
    enum kd_err rc;

    if ((rc = kd_check_members(rq->json, members, &pb)) != KD_OK)
        goto out;
    *email = str_field(rq->json, "email", &pb, &rc);
    if (rc == KD_OK)
        *password = str_field(rq->json, "password", &pb, &rc);
    if (rc != KD_OK)
        goto out;
    if (*email != NULL && !email_valid(*email) &&
        (rc = kd_problem_add(&pb, "email", "must be an e-mail address of at most %d bytes",
                             EMAIL_MAX)) != KD_OK)
        goto out;
    if (*password != NULL && strlen(*password) > KD_PASSWORD_MAX_BYTES &&
        (rc = kd_problem_add(&pb, "password", "must be at most %d bytes", KD_PASSWORD_MAX_BYTES)) !=
            KD_OK)
        goto out;
    if (registering && *password != NULL && utf8_chars(*password) < PASSWORD_MIN &&
        (rc = kd_problem_add(&pb, "password", "must be at least %d characters", PASSWORD_MIN)) !=
            KD_OK)
        goto out;
    if (pb.n > 0) {
        if ((rc = kd_resp_problem_fields(rs, 422, "validation", "the body is invalid", &pb)) ==
            KD_OK)
            rc = KD_EAGAIN;
    }
out:
    kd_problem_clear(&pb);
    return rc;
}

/* A refresh token: 256 random bits as base64url text, and its stored form. */
static enum kd_err
refresh_new(char text[REFRESH_TEXT_LEN + 1], char hash[65])
{
    unsigned char raw[REFRESH_RAW];
    enum kd_err rc;

    if ((rc = kd_random_bytes(raw, sizeof(raw))) != KD_OK)
        goto out;
    if ((rc = kd_b64url_encode(raw, sizeof(raw), text, REFRESH_TEXT_LEN + 1)) != KD_OK)
        goto out;
    kd_sha256_hex(text, REFRESH_TEXT_LEN, hash);
out:
    explicit_bzero(raw, sizeof(raw));
    return rc;
}

/* The refresh_token member, well formed; else answers 401 (or 422 when it
 * is missing) and returns KD_EAGAIN. */
static enum kd_err
read_refresh(struct kd_req *rq, struct kd_resp *rs, char hash[65])
{
    static const char *const members[] = {"refresh_token", NULL};
    struct kd_problem pb = KD_PROBLEM_INIT;
    const char *t;
    size_t i;
    enum kd_err rc;

    if ((rc = kd_check_members(rq->json, members, &pb)) != KD_OK)
        goto out;
    t = str_field(rq->json, "refresh_token", &pb, &rc);
    if (rc != KD_OK)
        goto out;
    if (pb.n > 0) {
        if ((rc = kd_resp_problem_fields(rs, 422, "validation", "the body is invalid", &pb)) ==
            KD_OK)
            rc = KD_EAGAIN;
        goto out;
    }
    for (i = 0; t[i] != '\0' && i <= REFRESH_TEXT_LEN; i++)
        if (!((t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= 'a' && t[i] <= 'z') ||
              (t[i] >= '0' && t[i] <= '9') || t[i] == '-' || t[i] == '_'))
            break;
    if (i != REFRESH_TEXT_LEN || t[i] != '\0') {
        if ((rc = kd_resp_problem(rs, 401, "unauthorized",
                                  "the refresh token is unknown, used, revoked or expired")) ==
            KD_OK)
            rc = KD_EAGAIN;
        goto out;
    }
    kd_sha256_hex(t, REFRESH_TEXT_LEN, hash);
out:
    kd_problem_clear(&pb);
    return rc;
}

/* The answer of login and refresh (RFC 6749 section 5.1 shape). */
static enum kd_err
respond_tokens(struct kd_req *rq, struct kd_resp *rs, const char *access, const char *refresh)
{
    json_t *o = json_pack("{s:s,s:s,s:I,s:s}", "access_token", access, "token_type", "Bearer",
                          "expires_in", (json_int_t)rq->cfg->jwt_ttl_s, "refresh_token", refresh);
    enum kd_err rc;

    if (o == NULL)
        return KD_ENOMEM;
    rc = kd_resp_json(rs, 200, o);
    json_decref(o);
    return rc;
}

/* Stores a refresh token of family fam. It expires refresh_ttl_s from now,
 * but never after the family's own end (refresh_family_max_age_s after the
 * login): refreshing keeps a session going only that long. */
static enum kd_err
insert_refresh(struct kd_req *rq, struct kd_db *db, const char *hash, const char *fam)
{
    char ttl[24], max_age[24];
    enum kd_err rc;

    if ((rc = kd_snprintf(ttl, sizeof(ttl), "%" PRId64, rq->cfg->refresh_ttl_s)) != KD_OK ||
        (rc = kd_snprintf(max_age, sizeof(max_age), "%" PRId64,
                          rq->cfg->refresh_family_max_age_s)) != KD_OK)
        return rc;
    const char *params[] = {hash, fam, ttl, max_age};
    return kd_db_query(db,
                       "INSERT INTO refresh_tokens (token_hash, family_id, expires_at) "
                       "SELECT $1, f.id, least(now() + $3::bigint * interval '1 second', "
                       "                       f.created_at + $4::bigint * interval '1 second') "
                       "  FROM token_families f WHERE f.id = $2",
                       4, params, NULL);
}

/* Starts a session for user_id inside the caller's transaction: a family,
 * its first refresh token, and an access token naming the family. */
static enum kd_err
open_session(struct kd_req *rq, struct kd_db *db, const char *user_id, char **access,
             char refresh[REFRESH_TEXT_LEN + 1])
{
    struct kd_dbres *res = NULL;
    char hash[65], fam[KD_UUID_STRLEN + 1];
    enum kd_err rc;

    const char *p1[] = {user_id};
    if ((rc = kd_db_query(db, "INSERT INTO token_families (user_id) VALUES ($1) RETURNING id", 1,
                          p1, &res)) != KD_OK)
        goto out;
    if ((rc = kd_snprintf(fam, sizeof(fam), "%s", kd_dbres_get(res, 0, 0))) != KD_OK)
        goto out;
    if ((rc = refresh_new(refresh, hash)) != KD_OK)
        goto out;
    if ((rc = insert_refresh(rq, db, hash, fam)) != KD_OK)
        goto out;
    rc = kd_jwt_issue(rq->cfg, user_id, fam, kd_now_ms() / 1000, access);
out:
    kd_dbres_free(res);
    return rc;
}

/* --- POST /auth/register -------------------------------------------------- */

enum kd_err
kd_auth_register(struct kd_req *rq, struct kd_resp *rs)
{
    const char *email = NULL, *password = NULL;
    char hash[KD_PASSWORD_HASH_MAX];
    struct kd_dbres *res = NULL;
    struct kd_buf b;
    struct kd_db *db;
    enum kd_err rc;

    kd_buf_init(&b, 4096);
    if ((rc = read_credentials(rq, rs, true, &email, &password)) != KD_OK)
        goto out;
    if ((rc = kd_password_hash(rq->cfg, password, hash)) != KD_OK)
        goto out;
    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    const char *params[] = {email, hash};
    rc = kd_db_query(db,
                     "INSERT INTO users (email, password_hash) VALUES ($1, $2) "
                     "RETURNING kadr_user_json(users)::text, id",
                     2, params, &res);
    if (rc == KD_ECONFLICT) {
        rc = kd_resp_problem(rs, 409, "email-taken", "an account with this e-mail exists");
        goto out;
    }
    if (rc != KD_OK)
        goto out;
    if (kd_audit(db, "user_registered", kd_dbres_get(res, 0, 1), NULL, kd_req_addr(rq), NULL) !=
        KD_OK)
        kd_log(KD_LOG_WARN, "register: the audit record is missing");
    if ((rc = kd_buf_printf(&b, "{\"user\":%s}", kd_dbres_get(res, 0, 0))) != KD_OK)
        goto out;
    rc = kd_resp_json_text(rs, 201, b.data);
out:
    explicit_bzero(hash, sizeof(hash));
    kd_buf_clear(&b);
    kd_dbres_free(res);
    return rc;
}

/* --- POST /auth/login ----------------------------------------------------- */

/* Whether the account or the address is locked out: failures within the
 * window at or over the limit. Sets *retry_s and *which when locked. */
static enum kd_err
check_lockout(struct kd_req *rq, struct kd_db *db, const char *email, const char *addr,
              bool *locked, int64_t *retry_s, const char **which)
{
    static const char sel[] =
        "SELECT count(*) FILTER (WHERE lower(email) = lower($1)), "
        "       count(*) FILTER (WHERE addr = $2), "
        "       ceil(extract(epoch FROM min(at) FILTER (WHERE lower(email) = lower($1)) "
        "            + $3::bigint * interval '1 second' - now()))::bigint, "
        "       ceil(extract(epoch FROM min(at) FILTER (WHERE addr = $2) "
        "            + $3::bigint * interval '1 second' - now()))::bigint "
        "  FROM audit_events "
        " WHERE event = 'login_failed' AND at > now() - $3::bigint * interval '1 second' "
        "   AND (lower(email) = lower($1) OR addr = $2)";
    struct kd_dbres *res = NULL;
    char window[24];
    int64_t n_email, n_addr;
    enum kd_err rc;

    *locked = false;
    if ((rc = kd_snprintf(window, sizeof(window), "%" PRId64, rq->cfg->login_failure_window_s)) !=
        KD_OK)
        goto out;
    const char *params[] = {email, addr, window};
    if ((rc = kd_db_query(db, sel, 3, params, &res)) != KD_OK)
        goto out;
    n_email = kd_dbres_i64(res, 0, 0, 0);
    n_addr = kd_dbres_i64(res, 0, 1, 0);
    if (n_email >= rq->cfg->login_max_failures) {
        *locked = true;
        *which = "login_max_failures";
        *retry_s = kd_dbres_i64(res, 0, 2, 60);
    } else if (addr[0] != '\0' && n_addr >= rq->cfg->login_max_failures_addr) {
        *locked = true;
        *which = "login_max_failures_addr";
        *retry_s = kd_dbres_i64(res, 0, 3, 60);
    }
    if (*retry_s < 1)
        *retry_s = 1;
out:
    kd_dbres_free(res);
    return rc;
}

static enum kd_err
answer_locked(struct kd_resp *rs, int64_t retry_s, const char *which)
{
    char ra[24];
    enum kd_err rc;

    if ((rc = kd_snprintf(ra, sizeof(ra), "%" PRId64, retry_s)) != KD_OK ||
        (rc = kd_resp_header(rs, "Retry-After", ra)) != KD_OK)
        return rc;
    return kd_resp_problem(rs, 429, "limit-exceeded",
                           "%s: too many failed logins; try again in %" PRId64 " s", which,
                           retry_s);
}

/* Records a failed login; the failure that reaches a limit also records
 * the lockout. */
static void
record_failure(struct kd_req *rq, struct kd_db *db, const char *user_id, const char *email,
               const char *addr)
{
    bool locked = false;
    int64_t retry_s = 0;
    const char *which = NULL;

    if (kd_audit(db, "login_failed", user_id, email, addr, NULL) != KD_OK)
        return;
    if (check_lockout(rq, db, email, addr, &locked, &retry_s, &which) == KD_OK && locked) {
        char detail[96];

        if (kd_snprintf(detail, sizeof(detail), "{\"limit\":\"%s\"}", which) == KD_OK &&
            kd_audit(db, "login_locked", user_id, email, addr, detail) != KD_OK)
            kd_log(KD_LOG_WARN, "login: the lockout record is missing");
        kd_log(KD_LOG_WARN, "login: locked out by %s", which);
    }
}

/* Stores a hash with the configured parameters in place of stored, whose
 * parameters differ (password.h): the cost of every account follows the
 * configuration, one login at a time, and so does the time a login takes.
 * Conditional on the old hash: a password changed meanwhile wins. A failure
 * only postpones the upgrade to the next login. */
static void
rehash(struct kd_req *rq, struct kd_db *db, const char *user_id, const char *password,
       const char *stored)
{
    char hash[KD_PASSWORD_HASH_MAX];
    struct kd_dbres *res = NULL;

    if (kd_password_hash(rq->cfg, password, hash) != KD_OK)
        goto out;
    const char *params[] = {user_id, hash, stored};
    if (kd_db_query(db, "UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash = $3",
                    3, params, &res) != KD_OK) {
        kd_log(KD_LOG_WARN, "login: could not store the rehashed password");
        goto out;
    }
    if (kd_dbres_affected(res) == 1)
        kd_log(KD_LOG_INFO, "login: password hash moved to the configured parameters");
out:
    explicit_bzero(hash, sizeof(hash));
    kd_dbres_free(res);
}

enum kd_err
kd_auth_login(struct kd_req *rq, struct kd_resp *rs)
{
    const char *email = NULL, *password = NULL, *addr = kd_req_addr(rq), *which = NULL;
    const char *user_id = NULL, *stored = NULL;
    char refresh[REFRESH_TEXT_LEN + 1] = "", *access = NULL;
    struct kd_dbres *res = NULL;
    struct kd_db *db;
    bool locked = false;
    int64_t retry_s = 0;
    enum kd_err rc, vrc;

    if ((rc = read_credentials(rq, rs, false, &email, &password)) != KD_OK)
        goto out;
    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    if ((rc = check_lockout(rq, db, email, addr, &locked, &retry_s, &which)) != KD_OK)
        goto out;
    if (locked) {
        /* Recorded as its own event: the limits count login_failed only,
         * so refused attempts do not stretch the lockout. */
        char detail[96];

        if (kd_snprintf(detail, sizeof(detail), "{\"limit\":\"%s\"}", which) != KD_OK ||
            kd_audit(db, "login_refused", NULL, email, addr, detail) != KD_OK)
            kd_log(KD_LOG_WARN, "login: the record of a refused login is missing");
        rc = answer_locked(rs, retry_s, which);
        goto out;
    }
    const char *params[] = {email};
    if ((rc = kd_db_query(db, "SELECT id, password_hash FROM users WHERE lower(email) = lower($1)",
                          1, params, &res)) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) == 1) {
        user_id = kd_dbres_get(res, 0, 0);
        stored = kd_dbres_get(res, 0, 1); /* NULL: an account without a password */
    }
    /* Hashes in every case (a dummy for an unknown e-mail). */
    vrc = kd_password_verify(rq->cfg, password, stored);
    if (vrc != KD_OK && vrc != KD_EINVAL) {
        rc = vrc;
        goto out;
    }
    if (vrc != KD_OK || user_id == NULL) {
        record_failure(rq, db, user_id, email, addr);
        if ((rc = kd_resp_header(rs, "WWW-Authenticate", "Bearer")) != KD_OK)
            goto out;
        rc = kd_resp_problem(rs, 401, "invalid-credentials", "the e-mail or the password is wrong");
        goto out;
    }
    if (kd_password_needs_rehash(rq->cfg, stored))
        rehash(rq, db, user_id, password, stored);
    if ((rc = kd_db_begin(db)) != KD_OK)
        goto out;
    if ((rc = open_session(rq, db, user_id, &access, refresh)) != KD_OK)
        goto out;
    if ((rc = kd_db_commit(db)) != KD_OK)
        goto out;
    rc = respond_tokens(rq, rs, access, refresh);
out:
    if (access != NULL) {
        explicit_bzero(access, strlen(access));
        free(access);
    }
    explicit_bzero(refresh, sizeof(refresh));
    kd_dbres_free(res);
    return rc;
}

/* --- POST /auth/refresh and /auth/logout ---------------------------------- */

static enum kd_err
revoke_family(struct kd_req *rq, struct kd_db *db, const char *family, const char *user_id,
              const char *reason)
{
    char detail[128];
    struct kd_dbres *res = NULL;
    enum kd_err rc;

    const char *params[] = {family, reason};
    if ((rc = kd_db_query(db,
                          "UPDATE token_families SET revoked_at = now(), revoked_reason = $2 "
                          " WHERE id = $1 AND revoked_at IS NULL",
                          2, params, &res)) != KD_OK)
        goto out;
    if (kd_dbres_affected(res) == 0)
        goto out;
    if ((rc = kd_snprintf(detail, sizeof(detail), "{\"family\":\"%s\",\"reason\":\"%s\"}", family,
                          reason)) != KD_OK)
        goto out;
    rc = kd_audit(db, "token_family_revoked", user_id, NULL, kd_req_addr(rq), detail);
out:
    kd_dbres_free(res);
    return rc;
}

static enum kd_err
answer_bad_refresh(struct kd_resp *rs)
{
    return kd_resp_problem(rs, 401, "unauthorized",
                           "the refresh token is unknown, used, revoked or expired");
}

enum kd_err
kd_auth_refresh(struct kd_req *rq, struct kd_resp *rs)
{
    /* FOR UPDATE: two refreshes with one token run one after the other, and
     * the second sees the first's use (and revokes the family). */
    static const char sel[] =
        "SELECT f.id, f.user_id, rt.used_at IS NOT NULL, "
        "       rt.expires_at <= now() "
        "       OR f.created_at + $2::bigint * interval '1 second' <= now(), "
        "       f.revoked_at IS NOT NULL "
        "  FROM refresh_tokens rt JOIN token_families f ON f.id = rt.family_id "
        " WHERE rt.token_hash = $1 FOR UPDATE OF rt, f";
    char hash[65], new_hash[65], max_age[24], refresh[REFRESH_TEXT_LEN + 1] = "", *access = NULL;
    char fam[KD_UUID_STRLEN + 1], user[KD_UUID_STRLEN + 1];
    struct kd_dbres *res = NULL;
    struct kd_db *db;
    enum kd_err rc;

    if ((rc = read_refresh(rq, rs, hash)) != KD_OK)
        goto out;
    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    if ((rc = kd_db_begin(db)) != KD_OK)
        goto out;
    if ((rc = kd_snprintf(max_age, sizeof(max_age), "%" PRId64,
                          rq->cfg->refresh_family_max_age_s)) != KD_OK)
        goto out;
    const char *p1[] = {hash, max_age};
    if ((rc = kd_db_query(db, sel, 2, p1, &res)) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) != 1) {
        rc = answer_bad_refresh(rs);
        goto out;
    }
    if ((rc = kd_snprintf(fam, sizeof(fam), "%s", kd_dbres_get(res, 0, 0))) != KD_OK ||
        (rc = kd_snprintf(user, sizeof(user), "%s", kd_dbres_get(res, 0, 1))) != KD_OK)
        goto out;
    if (kd_dbres_bool(res, 0, 2)) {
        /* A used token again: it was copied. End the session for both. */
        kd_log(KD_LOG_WARN, "refresh: a used refresh token came back; revoking its family");
        if ((rc = revoke_family(rq, db, fam, user, "reuse")) != KD_OK ||
            (rc = kd_db_commit(db)) != KD_OK)
            goto out;
        rc = answer_bad_refresh(rs);
        goto out;
    }
    if (kd_dbres_bool(res, 0, 3) || kd_dbres_bool(res, 0, 4)) {
        rc = answer_bad_refresh(rs);
        goto out;
    }
    if ((rc = kd_db_query(db, "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", 1,
                          p1, NULL)) != KD_OK)
        goto out;
    if ((rc = refresh_new(refresh, new_hash)) != KD_OK)
        goto out;
    if ((rc = insert_refresh(rq, db, new_hash, fam)) != KD_OK)
        goto out;
    if ((rc = kd_jwt_issue(rq->cfg, user, fam, kd_now_ms() / 1000, &access)) != KD_OK)
        goto out;
    if ((rc = kd_db_commit(db)) != KD_OK)
        goto out;
    rc = respond_tokens(rq, rs, access, refresh);
out:
    if (access != NULL) {
        explicit_bzero(access, strlen(access));
        free(access);
    }
    explicit_bzero(refresh, sizeof(refresh));
    kd_dbres_free(res);
    return rc;
}

enum kd_err
kd_auth_logout(struct kd_req *rq, struct kd_resp *rs)
{
    char hash[65], fam[KD_UUID_STRLEN + 1], user[KD_UUID_STRLEN + 1];
    struct kd_dbres *res = NULL;
    struct kd_db *db;
    enum kd_err rc;

    if ((rc = read_refresh(rq, rs, hash)) != KD_OK)
        goto out;
    if ((rc = kd_app_db(rq->app, &db)) != KD_OK)
        goto out;
    if ((rc = kd_db_begin(db)) != KD_OK)
        goto out;
    const char *p1[] = {hash};
    /* Any token of the family ends it, used ones too: logging out with a
     * stale token must not leave the session open. */
    if ((rc = kd_db_query(db,
                          "SELECT f.id, f.user_id FROM refresh_tokens rt "
                          "JOIN token_families f ON f.id = rt.family_id "
                          "WHERE rt.token_hash = $1 FOR UPDATE OF f",
                          1, p1, &res)) != KD_OK)
        goto out;
    if (kd_dbres_rows(res) != 1) {
        rc = answer_bad_refresh(rs);
        goto out;
    }
    if ((rc = kd_snprintf(fam, sizeof(fam), "%s", kd_dbres_get(res, 0, 0))) != KD_OK ||
        (rc = kd_snprintf(user, sizeof(user), "%s", kd_dbres_get(res, 0, 1))) != KD_OK)
        goto out;
    if ((rc = revoke_family(rq, db, fam, user, "logout")) != KD_OK ||
        (rc = kd_db_commit(db)) != KD_OK)
        goto out;
    rc = kd_resp_empty(rs, 204);
out:
    kd_dbres_free(res);
    return rc;
}
