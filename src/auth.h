/* auth.h: who is calling: an API key ("kadr_...") or a JWT access token
 * (jwt.h); kd_auth_bearer dispatches on the token's form. */
#ifndef KD_AUTH_H
#define KD_AUTH_H

#include <stdbool.h>

#include "config.h"
#include "db.h"
#include "err.h"

#define KD_APIKEY_PREFIX "kadr_"
/* "kadr_" + 43 base62 characters (256 bits) */
#define KD_APIKEY_MAXLEN 64

enum kd_auth_via { KD_AUTH_APIKEY = 1, KD_AUTH_JWT = 2 };

struct kd_principal {
    char user_id[37];
    char plan[32];
    bool is_admin;
    enum kd_auth_via via;
    char credential_id[37]; /* the API key's id, or the token's session (family) */
};

/* Authenticates the value of an Authorization header ("Bearer <token>").
 * KD_EINVAL: missing or malformed; KD_ENOTFOUND: unknown, revoked or expired
 * (both answer 401); KD_EUNAVAIL: the database is down. */
KD_MUST_CHECK enum kd_err kd_auth_bearer(struct kd_db *db, const struct kd_config *cfg,
                                         const char *authorization, struct kd_principal *out);

/* A new API key: key (shown once), its display prefix and its hash. */
KD_MUST_CHECK enum kd_err kd_apikey_generate(char key[KD_APIKEY_MAXLEN + 1], char prefix[16],
                                             char hash_hex[65]);
/* The stored form of a key: hex SHA-256 (keys carry 256 random bits, so a
 * fast hash is enough; the lookup is by the hash). */
void kd_apikey_hash(const char *key, char hash_hex[65]);

/* Creates an API key for user_id and returns it (once) in key. */
KD_MUST_CHECK enum kd_err kd_apikey_create(struct kd_db *db, const char *user_id,
                                           const char *name, char key[KD_APIKEY_MAXLEN + 1],
                                           char id[37]);

#endif
