/* password.c: scrypt password hashes. See password.h. */
#include "password.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "log.h"
#include "util.h"

#define SALT_LEN 16
#define HASH_LEN 32
/* The most memory one verification may take: 128 * r * N bytes. */
#define SCRYPT_MEM_MAX (512ULL * 1024 * 1024)

static enum kd_err
scrypt(const char *password, const unsigned char *salt, int64_t log2n, int64_t r, int64_t p,
       unsigned char out[HASH_LEN])
{
    uint64_t n = UINT64_C(1) << log2n;
    uint64_t mem = 128 * (uint64_t)r * n;

    if (log2n < 1 || log2n > 30 || r < 1 || p < 1 || mem > SCRYPT_MEM_MAX)
        return KD_EINVAL;
    /* maxmem: the V array plus the B blocks, with room to spare. */
    if (EVP_PBE_scrypt(password, strlen(password), salt, SALT_LEN, n, (uint64_t)r, (uint64_t)p,
                       mem + 128 * (uint64_t)r * (uint64_t)p + 1024 * 1024, out, HASH_LEN) != 1) {
        kd_log(KD_LOG_ERROR, "password: EVP_PBE_scrypt failed");
        return KD_EINTERNAL;
    }
    return KD_OK;
}

enum kd_err
kd_password_hash(const struct kd_config *cfg, const char *password, char out[KD_PASSWORD_HASH_MAX])
{
    unsigned char salt[SALT_LEN], hash[HASH_LEN];
    char salt_hex[2 * SALT_LEN + 1], hash_hex[2 * HASH_LEN + 1];
    enum kd_err rc;

    if ((rc = kd_random_bytes(salt, sizeof(salt))) != KD_OK)
        goto out;
    if ((rc = scrypt(password, salt, cfg->password_scrypt_log2n, cfg->password_scrypt_r,
                     cfg->password_scrypt_p, hash)) != KD_OK)
        goto out;
    kd_hex_encode(salt, sizeof(salt), salt_hex);
    kd_hex_encode(hash, sizeof(hash), hash_hex);
    rc = kd_snprintf(out, KD_PASSWORD_HASH_MAX,
                     "$scrypt$ln=%" PRId64 ",r=%" PRId64 ",p=%" PRId64 "$%s$%s",
                     cfg->password_scrypt_log2n, cfg->password_scrypt_r, cfg->password_scrypt_p,
                     salt_hex, hash_hex);
out:
    explicit_bzero(hash, sizeof(hash));
    return rc;
}

static bool
hex_decode(const char *s, size_t len, unsigned char *out)
{
    for (size_t i = 0; i < len; i++) {
        int v = 0;

        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + k];

            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= c - '0';
            else if (c >= 'a' && c <= 'f')
                v |= c - 'a' + 10;
            else
                return false;
        }
        out[i] = (unsigned char)v;
    }
    return true;
}

/* Reads "$scrypt$ln=N,r=R,p=P$salt$hash" with the parameters inside the
 * configured key ranges (see config.c). */
static bool
parse_stored(const char *stored, int64_t *log2n, int64_t *r, int64_t *p,
             unsigned char salt[SALT_LEN], unsigned char hash[HASH_LEN])
{
    char ln_s[8], r_s[8], p_s[8], salt_s[2 * SALT_LEN + 1], hash_s[2 * HASH_LEN + 1];
    int end = 0;

    if (strlen(stored) >= KD_PASSWORD_HASH_MAX)
        return false;
    if (sscanf(stored, "$scrypt$ln=%7[0-9],r=%7[0-9],p=%7[0-9]$%32[0-9a-f]$%64[0-9a-f]%n", ln_s,
               r_s, p_s, salt_s, hash_s, &end) != 5 ||
        stored[end] != '\0' || strlen(salt_s) != 2 * SALT_LEN || strlen(hash_s) != 2 * HASH_LEN)
        return false;
    if (kd_parse_i64(ln_s, 10, 20, log2n) != KD_OK || kd_parse_i64(r_s, 1, 32, r) != KD_OK ||
        kd_parse_i64(p_s, 1, 16, p) != KD_OK)
        return false;
    return hex_decode(salt_s, SALT_LEN, salt) && hex_decode(hash_s, HASH_LEN, hash);
}

enum kd_err
kd_password_verify(const struct kd_config *cfg, const char *password, const char *stored)
{
    static const unsigned char dummy_salt[SALT_LEN] = "kadr-dummy-salt";
    unsigned char salt[SALT_LEN], want[HASH_LEN], got[HASH_LEN];
    int64_t log2n, r, p;
    enum kd_err rc;

    if (stored == NULL || !parse_stored(stored, &log2n, &r, &p, salt, want)) {
        /* The same work as a real check, then a refusal. */
        rc = scrypt(password, dummy_salt, cfg->password_scrypt_log2n, cfg->password_scrypt_r,
                    cfg->password_scrypt_p, got);
        if (rc == KD_OK)
            rc = KD_EINVAL;
        goto out;
    }
    if ((rc = scrypt(password, salt, log2n, r, p, got)) != KD_OK)
        goto out;
    rc = CRYPTO_memcmp(got, want, HASH_LEN) == 0 ? KD_OK : KD_EINVAL;
out:
    explicit_bzero(got, sizeof(got));
    return rc;
}

bool
kd_password_needs_rehash(const struct kd_config *cfg, const char *stored)
{
    unsigned char salt[SALT_LEN], hash[HASH_LEN];
    int64_t log2n, r, p;
    bool differs;

    if (stored == NULL || !parse_stored(stored, &log2n, &r, &p, salt, hash))
        return false;
    differs = log2n != cfg->password_scrypt_log2n || r != cfg->password_scrypt_r ||
              p != cfg->password_scrypt_p;
    explicit_bzero(hash, sizeof(hash));
    return differs;
}
