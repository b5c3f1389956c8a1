#include "auth.h"

#include <string.h>
#include <strings.h>

#include "jwt.h"
#include "log.h"
#include "util.h"

#define KEY_CHARS 43 /* 43 base62 characters carry just over 256 bits */

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

void
kd_apikey_hash(const char *key, char hash_hex[65])
{
    kd_sha256_hex(key, strlen(key), hash_hex);
}

enum kd_err
kd_apikey_generate(char key[KD_APIKEY_MAXLEN + 1], char prefix[16], char hash_hex[65])
{
    unsigned char rnd[64];
    size_t n = 0, used = sizeof(rnd);
    size_t plen = strlen(KD_APIKEY_PREFIX);
    enum kd_err rc;

    memcpy(key, KD_APIKEY_PREFIX, plen);
    while (n < KEY_CHARS) {
        if (used == sizeof(rnd)) {
            if ((rc = kd_random_bytes(rnd, sizeof(rnd))) != KD_OK)
                return rc;
            used = 0;
        }
        /* Rejection sampling keeps every character uniform: 248 = 4 * 62. */
        unsigned char b = rnd[used++];

        if (b < 248)
            key[plen + n++] = base62[b % 62];
    }
    key[plen + n] = '\0';
    explicit_bzero(rnd, sizeof(rnd));
    snprintf(prefix, 16, "%.*s", (int)plen + 4, key);
    kd_apikey_hash(key, hash_hex);
    return KD_OK;
}

enum kd_err
kd_apikey_create(struct kd_db *db, const char *user_id, const char *name,
                 char key[KD_APIKEY_MAXLEN + 1], char id[37])
{
    char prefix[16], hash[65];
    struct kd_dbres *res = NULL;
    enum kd_err rc;

    if ((rc = kd_apikey_generate(key, prefix, hash)) != KD_OK)
        goto out;
    const char *params[] = {user_id, name != NULL ? name : "", prefix, hash};

    rc = kd_db_query(db,
                     "INSERT INTO api_keys (user_id, name, prefix, key_hash) "
                     "VALUES ($1, $2, $3, $4) RETURNING id",
                     4, params, &res);
    if (rc != KD_OK)
        goto out;
    snprintf(id, 37, "%s", kd_dbres_get(res, 0, 0));
out:
    kd_dbres_free(res);
    if (rc != KD_OK)
        explicit_bzero(key, KD_APIKEY_MAXLEN + 1);
    return rc;
}

static bool
key_well_formed(const char *token)
{
    size_t plen = strlen(KD_APIKEY_PREFIX), len = strlen(token);

    if (len != plen + KEY_CHARS || strncmp(token, KD_APIKEY_PREFIX, plen) != 0)
        return false;
    for (size_t i = plen; i < len; i++)
        if (strchr(base62, token[i]) == NULL || token[i] == '\0')
            return false;
    return true;
}

static enum kd_err
auth_apikey(struct kd_db *db, const char *token, struct kd_principal *out)
{
    char hash[65];
    struct kd_dbres *res = NULL;
    enum kd_err rc;

    if (!key_well_formed(token))
        return KD_ENOTFOUND;
    kd_apikey_hash(token, hash);
    const char *params[] = {hash};

    /* The lookup is by the hash, through a unique index: the comparison
     * happens on digests, which reveal nothing about the key. */
    rc = kd_db_query(db,
                     "SELECT k.id, u.id, u.plan, u.is_admin, "
                     "  k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute' "
                     "FROM api_keys k JOIN users u ON u.id = k.user_id "
                     "WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
                     1, params, &res);
    if (rc != KD_OK)
        goto out;
    if (kd_dbres_rows(res) != 1) {
        rc = KD_ENOTFOUND;
        goto out;
    }
    memset(out, 0, sizeof(*out));
    snprintf(out->credential_id, sizeof(out->credential_id), "%s", kd_dbres_get(res, 0, 0));
    snprintf(out->user_id, sizeof(out->user_id), "%s", kd_dbres_get(res, 0, 1));
    snprintf(out->plan, sizeof(out->plan), "%s", kd_dbres_get(res, 0, 2));
    out->is_admin = kd_dbres_bool(res, 0, 3);
    out->via = KD_AUTH_APIKEY;
    /* last_used_at at minute precision: one write a minute, not one a
     * request; the lookup tells whether one is due, which spares most
     * requests the second round trip. The UPDATE checks again, for
     * concurrent requests. */
    const char *kp[] = {out->credential_id};

    if (kd_dbres_bool(res, 0, 4) &&
        kd_db_query(db,
                    "UPDATE api_keys SET last_used_at = now() WHERE id = $1 AND "
                    "(last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
                    1, kp, NULL) != KD_OK)
        kd_log(KD_LOG_WARN, "auth: could not record the key's last use");
    rc = KD_OK;
out:
    kd_dbres_free(res);
    return rc;
}

/* An access token: the signature and claims (jwt.c), then the user and
 * the session in the database, so that a deleted user or a revoked family
 * (logout, refresh-token reuse, an operator) or a session past
 * refresh_family_max_age_s stops its access tokens at once rather than
 * when they expire. */
static enum kd_err
auth_jwt(struct kd_db *db, const struct kd_config *cfg, const char *token, struct kd_principal *out)
{
    struct kd_jwt_claims c;
    struct kd_dbres *res = NULL;
    enum kd_err rc;

    if (kd_jwt_verify(cfg, token, kd_now_ms() / 1000, &c) != KD_OK)
        return KD_ENOTFOUND;
    /* A session past its maximum age ends its access tokens too. */
    char max_age[24];

    if (kd_snprintf(max_age, sizeof(max_age), "%lld", (long long)cfg->refresh_family_max_age_s) !=
        KD_OK)
        return KD_EINTERNAL;
    const char *params[] = {c.sub, c.sid, max_age};

    rc = kd_db_query(db,
                     "SELECT u.id, u.plan, u.is_admin FROM users u "
                     "JOIN token_families f ON f.user_id = u.id "
                     "WHERE u.id = $1 AND f.id = $2 AND f.revoked_at IS NULL "
                     "  AND f.created_at + $3::bigint * interval '1 second' > now()",
                     3, params, &res);
    if (rc != KD_OK)
        goto out;
    if (kd_dbres_rows(res) != 1) {
        rc = KD_ENOTFOUND;
        goto out;
    }
    memset(out, 0, sizeof(*out));
    snprintf(out->user_id, sizeof(out->user_id), "%s", kd_dbres_get(res, 0, 0));
    snprintf(out->plan, sizeof(out->plan), "%s", kd_dbres_get(res, 0, 1));
    out->is_admin = kd_dbres_bool(res, 0, 2);
    out->via = KD_AUTH_JWT;
    snprintf(out->credential_id, sizeof(out->credential_id), "%s", c.sid);
out:
    kd_dbres_free(res);
    return rc;
}

enum kd_err
kd_auth_bearer(struct kd_db *db, const struct kd_config *cfg, const char *authorization,
               struct kd_principal *out)
{
    const char *token;

    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return KD_EINVAL;
    token = authorization + 7;
    while (*token == ' ')
        token++;
    if (*token == '\0' || strlen(token) > 4096)
        return KD_EINVAL;
    if (strncmp(token, KD_APIKEY_PREFIX, strlen(KD_APIKEY_PREFIX)) == 0)
        return auth_apikey(db, token, out);
    return auth_jwt(db, cfg, token, out);
}
