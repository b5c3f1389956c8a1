/* json.h: JSON helpers over jansson.
 *
 * jansson's json_t is kadr's JSON value type across modules (the one library
 * type other modules see); this module adds strict, capped parsing and typed
 * getters that report field paths. */
#ifndef KD_JSON_H
#define KD_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define KD_JSON_MAX_DEPTH 32

/* Parses text of len bytes: must be valid UTF-8, one value, no duplicate
 * object keys, nesting at most KD_JSON_MAX_DEPTH. KD_EINVAL with a reason in
 * why (may be NULL) otherwise. The caller owns *out. */
KD_MUST_CHECK enum kd_err kd_json_parse(const char *text, size_t len, json_t **out, char *why,
                                        size_t why_len);
/* Compact serialisation (keys in insertion order); caller frees. NULL on ENOMEM. */
char *kd_json_dump(const json_t *v);
/* Object member getters: NULL when absent or of another type. Borrowed. */
const char *kd_json_str(const json_t *obj, const char *key);
/* Sets obj[key] to a string, or null when s is NULL. */
KD_MUST_CHECK enum kd_err kd_json_set_str(json_t *obj, const char *key, const char *s);
/* Sets obj[key] by stealing v (NULL v means ENOMEM and sets nothing). */
KD_MUST_CHECK enum kd_err kd_json_set_new(json_t *obj, const char *key, json_t *v);

/* Objects from clients: every member must be one the endpoint knows.
 * The next member of obj, from *iter (NULL to start), whose name is not in
 * allowed (NULL-terminated); NULL when none is left. Borrowed. */
const char *kd_json_next_unknown(const json_t *obj, const char *const *allowed, void **iter);

/* Room for a member name as kd_json_key_shown writes it. */
#define KD_JSON_KEY_SHOWN 44
/* A client's member name, fit to quote in an error's field path: at most
 * 40 bytes, cut on a UTF-8 boundary with "..." after it. The parser
 * checked the encoding; the response's JSON escaping handles the rest. */
void kd_json_key_shown(const char *key, char out[KD_JSON_KEY_SHOWN]);

#endif
