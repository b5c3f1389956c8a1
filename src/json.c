#include "json.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

/* jansson stops at its own compiled-in depth (2048); ours is far lower, so a
 * deeply nested body is refused before any handler walks it. */
static bool
depth_ok(const json_t *v, int depth)
{
    const char *key;
    json_t *child;
    size_t i;

    if (depth > KD_JSON_MAX_DEPTH)
        return false;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, child) if (!depth_ok(child, depth + 1)) return false;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, child) if (!depth_ok(child, depth + 1)) return false;
    }
    return true;
}

enum kd_err
kd_json_parse(const char *text, size_t len, json_t **out, char *why, size_t why_len)
{
    json_error_t jerr;
    json_t *v = NULL;
    enum kd_err rc = KD_EINVAL;

    if (why != NULL && why_len > 0)
        why[0] = '\0';
    if (!kd_utf8_valid(text, len)) {
        if (why != NULL)
            snprintf(why, why_len, "the body is not valid UTF-8");
        goto out;
    }
    v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (v == NULL) {
        if (why != NULL)
            snprintf(why, why_len, "%s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        goto out;
    }
    if (!depth_ok(v, 1)) {
        if (why != NULL)
            snprintf(why, why_len, "nesting deeper than %d levels", KD_JSON_MAX_DEPTH);
        goto out;
    }
    *out = v;
    v = NULL;
    rc = KD_OK;
out:
    json_decref(v);
    return rc;
}

char *
kd_json_dump(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
}

const char *
kd_json_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

enum kd_err
kd_json_set_str(json_t *obj, const char *key, const char *s)
{
    return kd_json_set_new(obj, key, s != NULL ? json_string(s) : json_null());
}

enum kd_err
kd_json_set_new(json_t *obj, const char *key, json_t *v)
{
    if (v == NULL)
        return KD_ENOMEM;
    return json_object_set_new(obj, key, v) == 0 ? KD_OK : KD_ENOMEM;
}

const char *
kd_json_next_unknown(const json_t *obj, const char *const *allowed, void **iter)
{
    void *it = *iter == NULL ? json_object_iter((json_t *)obj)
                             : json_object_iter_next((json_t *)obj, *iter);

    for (; it != NULL; it = json_object_iter_next((json_t *)obj, it)) {
        const char *key = json_object_iter_key(it);
        bool known = false;

        for (size_t i = 0; allowed[i] != NULL && !known; i++)
            known = strcmp(key, allowed[i]) == 0;
        if (!known) {
            *iter = it;
            return key;
        }
    }
    *iter = NULL;
    return NULL;
}

void
kd_json_key_shown(const char *key, char out[KD_JSON_KEY_SHOWN])
{
    size_t len = strlen(key), max = KD_JSON_KEY_SHOWN - 4;

    if (len <= max) {
        memcpy(out, key, len + 1);
        return;
    }
    /* Back to the first byte of a character: the path goes out as JSON
     * text, which must stay valid UTF-8. */
    len = max;
    while (len > 0 && ((unsigned char)key[len] & 0xc0) == 0x80)
        len--;
    memcpy(out, key, len);
    memcpy(out + len, "...", 4);
}
