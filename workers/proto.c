#include "proto.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "util.h"

static const char *const job_codes[] = {
    "invalid_input",  "invalid_media", "unsupported", "forbidden_input",
    "limit_exceeded", "timeout",       "cancelled",   "internal",
};

static const char *const media_kinds[] = {"video", "audio", "image", "subtitle", "other"};

bool
kd_proto_code_valid(const char *code)
{
    for (size_t i = 0; code != NULL && i < KD_ARRAY_LEN(job_codes); i++)
        if (strcmp(code, job_codes[i]) == 0)
            return true;
    return false;
}

/* A copy of s cut to at most max bytes without splitting a UTF-8 sequence
 * (the strings went through the JSON parser, so they are valid UTF-8). */
static char *
dup_capped(const char *s, size_t max)
{
    size_t len = strlen(s);
    char *copy;

    if (len > max) {
        len = max;
        while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
            len--;
    }
    if ((copy = malloc(len + 1)) == NULL)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

void
kd_proto_msg_clear(struct kd_proto_msg *m)
{
    if (m == NULL)
        return;
    free(m->detail);
    free(m->message);
    free(m->upload_id);
    json_decref(m->payload);
    memset(m, 0, sizeof(*m));
}

static enum kd_err
decode_result(json_t *obj, struct kd_proto_msg *m, char *why, size_t why_len)
{
    json_t *ok = json_object_get(obj, "ok");
    const char *code, *message;

    if (!json_is_boolean(ok)) {
        snprintf(why, why_len, "\"ok\" is not a boolean");
        return KD_EINVAL;
    }
    m->type = KD_PROTO_RESULT;
    m->ok = json_is_true(ok);
    if (m->ok) {
        m->payload = json_incref(obj);
        return KD_OK;
    }
    code = kd_json_str(obj, "error");
    message = kd_json_str(obj, "message");
    m->unavailable = json_is_true(json_object_get(obj, "unavailable"));
    /* The child names the code, but only codes of the contract reach users. */
    snprintf(m->error, sizeof(m->error), "%s", kd_proto_code_valid(code) ? code : "internal");
    if ((m->message = dup_capped(message != NULL ? message : "", KD_PROTO_TEXT_MAX)) == NULL)
        return KD_ENOMEM;
    return KD_OK;
}

enum kd_err
kd_proto_decode(const char *line, size_t len, struct kd_proto_msg *out, char *why, size_t why_len)
{
    struct kd_proto_msg m = {0};
    char jwhy[160];
    json_t *obj = NULL, *v;
    const char *s;
    enum kd_err rc;

    if (why_len > 0)
        why[0] = '\0';
    if ((rc = kd_json_parse(line, len, &obj, jwhy, sizeof(jwhy))) != KD_OK) {
        snprintf(why, why_len, "not JSON: %s", jwhy);
        goto out;
    }
    rc = KD_EINVAL;
    if (!json_is_object(obj)) {
        snprintf(why, why_len, "not a JSON object");
        goto out;
    }
    if ((v = json_object_get(obj, "progress")) != NULL) {
        double f = json_number_value(v);

        if (!json_is_number(v) || !isfinite(f) || f < 0 || f > 1) {
            snprintf(why, why_len, "progress out of 0..1");
            goto out;
        }
        m.type = KD_PROTO_PROGRESS;
        m.progress = f;
    } else if ((s = kd_json_str(obj, "event")) != NULL) {
        const char *detail = kd_json_str(obj, "detail");

        if (kd_snprintf(m.event, sizeof(m.event), "%s", s) != KD_OK || s[0] == '\0') {
            snprintf(why, why_len, "bad event name");
            goto out;
        }
        m.type = KD_PROTO_EVENT;
        if ((m.detail = dup_capped(detail != NULL ? detail : "", KD_PROTO_TEXT_MAX)) == NULL) {
            rc = KD_ENOMEM;
            goto out;
        }
    } else if ((v = json_object_get(obj, "store")) != NULL) {
        json_t *id = json_object_get(obj, "upload_id");

        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= KD_PROTO_MAX_FILES) {
            snprintf(why, why_len, "store index out of range");
            goto out;
        }
        m.type = KD_PROTO_STORE;
        m.store_index = (int)json_integer_value(v);
        if (id != NULL) {
            const char *t = json_string_value(id);

            /* the parent hands it to the store's abort, which checks its
             * alphabet; here only its shape */
            if (t == NULL || t[0] == '\0' || strlen(t) > KD_PROTO_UPLOAD_ID_MAX) {
                snprintf(why, why_len, "bad upload_id");
                goto out;
            }
            if ((m.upload_id = strdup(t)) == NULL) {
                rc = KD_ENOMEM;
                goto out;
            }
        }
    } else if (json_object_get(obj, "ok") != NULL) {
        if ((rc = decode_result(obj, &m, why, why_len)) != KD_OK)
            goto out;
    } else {
        snprintf(why, why_len, "unknown message");
        goto out;
    }
    *out = m;
    memset(&m, 0, sizeof(m));
    rc = KD_OK;
out:
    kd_proto_msg_clear(&m);
    json_decref(obj);
    return rc;
}

static bool
is_lower_hex(const char *s, size_t len)
{
    if (strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

enum kd_err
kd_proto_file_get(const json_t *obj, const char *key, struct kd_proto_file *out)
{
    const json_t *f = key != NULL ? json_object_get(obj, key) : obj;
    const char *kind, *sha;
    json_t *probe;
    bool kind_ok = false;

    if (!json_is_object(f))
        return KD_EINVAL;
    kind = kd_json_str(f, "kind");
    sha = kd_json_str(f, "sha256");
    probe = json_object_get(f, "probe");
    for (size_t i = 0; kind != NULL && i < KD_ARRAY_LEN(media_kinds); i++)
        kind_ok = kind_ok || strcmp(kind, media_kinds[i]) == 0;
    if (!kind_ok || sha == NULL || !is_lower_hex(sha, 64) || !json_is_object(probe))
        return KD_EINVAL;
    snprintf(out->kind, sizeof(out->kind), "%s", kind);
    snprintf(out->sha256, sizeof(out->sha256), "%s", sha);
    out->probe = probe;
    return KD_OK;
}

enum kd_err
kd_proto_output_name(const char *ext, char *out, size_t out_len)
{
    return kd_snprintf(out, out_len, "out.%s", ext);
}

enum kd_err
kd_proto_thumb_name(size_t n, char *out, size_t out_len)
{
    return kd_snprintf(out, out_len, "thumb-%zu.jpg", n);
}

/* --- child side ------------------------------------------------------ */

enum kd_err
kd_proto_send(int fd, const json_t *obj)
{
    char *text = kd_json_dump(obj);
    size_t len, off = 0;
    enum kd_err rc = KD_OK;

    if (text == NULL)
        return KD_ENOMEM;
    len = strlen(text);
    /* The newline replaces the NUL, so the line goes out in one write
     * (a pipe keeps writes up to PIPE_BUF whole; longer ones loop). */
    text[len++] = '\n';
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = KD_EIO;
            break;
        }
        off += (size_t)n;
    }
    free(text);
    return rc;
}

enum kd_err
kd_proto_send_progress(int fd, double fraction)
{
    json_t *o;
    enum kd_err rc;

    if (!isfinite(fraction) || fraction < 0)
        fraction = 0;
    if (fraction > 1)
        fraction = 1;
    if ((o = json_pack("{s:f}", "progress", fraction)) == NULL)
        return KD_ENOMEM;
    rc = kd_proto_send(fd, o);
    json_decref(o);
    return rc;
}

/* json_string refuses invalid UTF-8; library messages are not promised to
 * be UTF-8, so those become a placeholder rather than a lost line. */
static json_t *
text_value(const char *s)
{
    json_t *v = json_string(s != NULL ? s : "");

    return v != NULL ? v : json_string("(message not UTF-8)");
}

enum kd_err
kd_proto_send_event(int fd, const char *event, const char *detail)
{
    json_t *o;
    enum kd_err rc;

    if ((o = json_pack("{s:s,s:o}", "event", event, "detail", text_value(detail))) == NULL)
        return KD_ENOMEM;
    rc = kd_proto_send(fd, o);
    json_decref(o);
    return rc;
}

enum kd_err
kd_proto_send_error(int fd, const char *code, const char *message)
{
    json_t *o;
    enum kd_err rc;

    o = json_pack("{s:b,s:s,s:o}", "ok", 0, "error", code, "message", text_value(message));
    if (o == NULL)
        return KD_ENOMEM;
    rc = kd_proto_send(fd, o);
    json_decref(o);
    return rc;
}

enum kd_err
kd_proto_send_unavailable(int fd, const char *message)
{
    json_t *o;
    enum kd_err rc;

    o = json_pack("{s:b,s:s,s:o,s:b}", "ok", 0, "error", "internal", "message", text_value(message),
                  "unavailable", 1);
    if (o == NULL)
        return KD_ENOMEM;
    rc = kd_proto_send(fd, o);
    json_decref(o);
    return rc;
}

enum kd_err
kd_proto_send_store(int fd, int index, const char *upload_id)
{
    json_t *o;
    enum kd_err rc;

    if (upload_id != NULL)
        o = json_pack("{s:i,s:s}", "store", index, "upload_id", upload_id);
    else
        o = json_pack("{s:i}", "store", index);
    if (o == NULL)
        return KD_ENOMEM;
    rc = kd_proto_send(fd, o);
    json_decref(o);
    return rc;
}

/* --- parent side: lines ---------------------------------------------- */

void
kd_linereader_init(struct kd_linereader *lr, size_t cap)
{
    memset(lr, 0, sizeof(*lr));
    lr->cap = cap;
}

void
kd_linereader_clear(struct kd_linereader *lr)
{
    free(lr->data);
    kd_linereader_init(lr, lr->cap);
}

size_t
kd_linereader_pending(const struct kd_linereader *lr)
{
    return lr->len - lr->start;
}

enum kd_err
kd_linereader_push(struct kd_linereader *lr, const void *p, size_t n)
{
    size_t need, held;

    /* Drop what was handed out before growing. */
    if (lr->start > 0) {
        memmove(lr->data, lr->data + lr->start, lr->len - lr->start);
        lr->len -= lr->start;
        lr->start = 0;
    }
    held = lr->len;
    /* Only an unfinished line counts against the cap: many short lines may
     * arrive in one read. */
    if (!kd_add_size(held, n, &need) || !kd_add_size(need, 1, &need))
        return KD_ELIMIT;
    if (need > lr->alloc) {
        size_t a = lr->alloc > 0 ? lr->alloc : 4096;
        char *d;

        while (a < need) {
            if (!kd_mul_size(a, 2, &a))
                return KD_ELIMIT;
        }
        if ((d = realloc(lr->data, a)) == NULL)
            return KD_ENOMEM;
        lr->data = d;
        lr->alloc = a;
    }
    memcpy(lr->data + lr->len, p, n);
    lr->len += n;
    /* The tail after the last newline is the unfinished line. */
    size_t tail = 0;

    while (tail < lr->len && lr->data[lr->len - 1 - tail] != '\n')
        tail++;
    if (tail > lr->cap)
        return KD_ELIMIT;
    return KD_OK;
}

enum kd_err
kd_linereader_next(struct kd_linereader *lr, char **line, size_t *len)
{
    char *nl;
    size_t avail = lr->len - lr->start;

    if (avail == 0 || (nl = memchr(lr->data + lr->start, '\n', avail)) == NULL)
        return KD_EAGAIN;
    *nl = '\0';
    *line = lr->data + lr->start;
    *len = (size_t)(nl - *line);
    lr->start += *len + 1;
    if (*len > lr->cap)
        return KD_ELIMIT;
    return KD_OK;
}
