/* password.h: password hashing with scrypt (RFC 7914) through OpenSSL's
 * EVP_PBE_scrypt: memory-hard, so that a stolen users table costs an
 * attacker memory as well as time per guess.
 *
 * The stored form carries its parameters and salt:
 *   $scrypt$ln=<log2 N>,r=<r>,p=<p>$<hex salt, 16 bytes>$<hex hash, 32 bytes>
 * so raising the cost in the configuration keeps older hashes verifiable.
 * Parameters come from the configuration (password_scrypt_log2n, _r, _p);
 * a stored hash whose parameters lie outside the configured ranges of those
 * keys is refused rather than computed (a planted row must not cost a GiB). */
#ifndef KD_PASSWORD_H
#define KD_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"

/* The longest password accepted (bytes): hashing cost does not depend on
 * it, but nobody types more and a cap keeps request parsing simple. */
#define KD_PASSWORD_MAX_BYTES 1024
#define KD_PASSWORD_HASH_MAX  160

/* Hashes password with a fresh random salt into out. */
KD_MUST_CHECK enum kd_err kd_password_hash(const struct kd_config *cfg, const char *password,
                                           char out[KD_PASSWORD_HASH_MAX]);

/* Checks password against stored. KD_OK: it matches; KD_EINVAL: it does not
 * or stored is not a hash of ours (both take the full hashing time when
 * stored parses); KD_ENOMEM/KD_EINTERNAL: hashing failed. With stored NULL
 * the password is hashed against a dummy with the configured parameters
 * and KD_EINVAL returned: a login for an unknown account costs the same
 * time as a wrong password. */
KD_MUST_CHECK enum kd_err kd_password_verify(const struct kd_config *cfg, const char *password,
                                             const char *stored);

/* Whether stored was made with other parameters than the configured ones,
 * so that a successful login should store a new hash: after the cost is
 * raised (or lowered), every account moves to it at its next login, and a
 * login then costs the same whether or not the account exists. False for
 * NULL and for text that is not a hash of ours (nothing to upgrade). */
bool kd_password_needs_rehash(const struct kd_config *cfg, const char *stored);

#endif
