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
        json_object_foreach((json_t *)v, key, child)
            if (!depth_ok(child, depth + 1))
                return false;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, child)
            if (!depth_ok(child, depth + 1))
                return false;
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
