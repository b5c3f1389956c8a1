/* jobspec.c: strict validation of the POST /jobs edit spec (see jobspec.h).
 *
 * The body is walked once. Every problem is recorded with its field path and
 * the walk goes on, so that one 422 lists all of them. Checks that tie fields
 * together (end after start, codec against container) run only when each
 * field involved was valid by itself, so one mistake is reported once.
 *
 * Everything here is untrusted input: no user text is ever echoed into a
 * message (only into a field path, cut short, when it is an unknown key), and
 * every number is range-checked before it is stored, so that the worker can
 * build filter options from the struct without re-validating. */
#include "jobspec.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "util.h"

#define FIELD_LEN 128 /* a field path; an unknown key is cut to fit */
#define MSG_LEN   256

#define FONT_MAX              64
#define DEFAULT_FONT          "DejaVu Sans"
#define TEXT_SIZE_MIN         4
#define TEXT_SIZE_MAX         512
#define MARGIN_MAX            1000
#define BORDER_WIDTH_MAX      50
#define BORDER_WIDTH_DEFAULT  2
#define OUTLINE_MAX           20
#define TRANSITION_MAX_S      5.0
#define VOLUME_MAX            4.0
#define FPS_MIN               1.0
#define FPS_MAX               120.0
#define CRF_MAX               51
#define CRF_MAX_VP9           63
#define AUDIO_BITRATE_MIN     8000
#define AUDIO_BITRATE_MAX     512000
#define AUDIO_BITRATE_DEFAULT 128000
#define VIDEO_BITRATE_MIN     100000
#define VIDEO_BITRATE_MAX     100000000
#define THUMB_COUNT_MAX       20
#define THUMB_WIDTH_MIN       16
#define THUMB_WIDTH_MAX       1920
#define THUMB_WIDTH_DEFAULT   320
#define PRIORITY_DEFAULT      5
#define RUN_AT_MAX_LEN        64
#define WEBHOOK_MAX           2048
#define HOST_MAX              253 /* RFC 1035 section 2.3.4, as text */

/* What a getter found. */
enum got {
    GOT_NONE, /* absent or null */
    GOT_OK,
    GOT_BAD, /* present and wrong; already reported */
};

/* The output fields the body set itself: defaults never conflict, only what
 * the user asked for can. */
struct given {
    bool video_codec, audio_codec, width, height, fit, fps, crf, preset;
    bool video_bitrate, audio_bitrate, faststart;
};

struct ctx {
    const struct kd_limits *lim;
    struct kd_problem *pb;
    size_t n_bad;        /* field errors found so far */
    size_t pb_first;     /* pb->errors from here on are this parse's */
    enum kd_err rc;      /* KD_OK, or the first hard failure (KD_ENOMEM) */
    struct given out;    /* output fields set by the body */
    bool container_ok;   /* output.container usable by the cross-checks */
    bool vcodec_ok;      /* output.video_codec likewise */
    bool acodec_ok;      /* output.audio_codec likewise */
    size_t inputs_given; /* elements of a valid inputs array */
    bool thumbs_given;   /* a thumbnails object, valid or not */
};

static const char *const position_names[] = {
    [KD_POS_TOP_LEFT] = "top-left",
    [KD_POS_TOP] = "top",
    [KD_POS_TOP_RIGHT] = "top-right",
    [KD_POS_LEFT] = "left",
    [KD_POS_CENTER] = "center",
    [KD_POS_RIGHT] = "right",
    [KD_POS_BOTTOM_LEFT] = "bottom-left",
    [KD_POS_BOTTOM] = "bottom",
    [KD_POS_BOTTOM_RIGHT] = "bottom-right",
};

static const char *const container_names[] = {
    [KD_CONT_MP4] = "mp4", [KD_CONT_MOV] = "mov", [KD_CONT_MKV] = "mkv", [KD_CONT_WEBM] = "webm",
    [KD_CONT_MP3] = "mp3", [KD_CONT_M4A] = "m4a", [KD_CONT_WAV] = "wav",
};

static const char *const container_mimes[] = {
    [KD_CONT_MP4] = "video/mp4",        [KD_CONT_MOV] = "video/quicktime",
    [KD_CONT_MKV] = "video/x-matroska", [KD_CONT_WEBM] = "video/webm",
    [KD_CONT_MP3] = "audio/mpeg",       [KD_CONT_M4A] = "audio/mp4",
    [KD_CONT_WAV] = "audio/wav",
};

/* Index 0 is AUTO, which the body cannot name: the enum tables start at 1. */
static const char *const vcodec_names[] = {"h264", "hevc", "vp9", "copy"};
static const char *const acodec_names[] = {"aac", "mp3", "opus", "copy"};
static const char *const fit_names[] = {
    [KD_FIT_CONTAIN] = "contain", [KD_FIT_COVER] = "cover", [KD_FIT_STRETCH] = "stretch"};
static const char *const layer_type_names[] = {[KD_LAYER_TEXT] = "text",
                                               [KD_LAYER_VIDEO] = "video",
                                               [KD_LAYER_IMAGE] = "image",
                                               [KD_LAYER_SUBTITLES] = "subtitles"};
static const char *const sub_mode_names[] = {[KD_SUB_BURN] = "burn", [KD_SUB_SOFT] = "soft"};
static const char *const audio_mode_names[] = {
    [KD_AUDIO_REPLACE] = "replace", [KD_AUDIO_MIX] = "mix"};
/* The x264/x265 speed presets, fastest first. */
static const char *const preset_names[] = {
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
};
static const char *const job_type_names[] = {"edit"};
static const char *const transition_type_names[] = {"fade"};

/* ---- reporting ---- */

/* path = base.key, or base alone when key is NULL, or key alone at the top. */
static void
make_path(char out[FIELD_LEN], const char *base, const char *key)
{
    enum kd_err rc;

    if (key == NULL)
        rc = kd_snprintf(out, FIELD_LEN, "%s", base);
    else if (base[0] == '\0')
        rc = kd_snprintf(out, FIELD_LEN, "%s", key);
    else
        rc = kd_snprintf(out, FIELD_LEN, "%s.%s", base, key);
    /* Our own names always fit (unknown keys are cut before they get here);
     * should one not, the parent's path is still a correct, coarser answer. */
    if (rc != KD_OK && kd_snprintf(out, FIELD_LEN, "%s", base) != KD_OK)
        out[0] = '\0';
}

static void
make_index_path(char out[FIELD_LEN], const char *base, size_t i)
{
    if (kd_snprintf(out, FIELD_LEN, "%s[%zu]", base, i) != KD_OK &&
        kd_snprintf(out, FIELD_LEN, "%s", base) != KD_OK)
        out[0] = '\0';
}

static void __attribute__((format(printf, 4, 5)))
fail(struct ctx *c, const char *base, const char *key, const char *fmt, ...)
{
    char path[FIELD_LEN], msg[MSG_LEN];
    va_list ap;
    int n;

    c->n_bad++;
    if (c->rc != KD_OK)
        return;
    make_path(path, base, key);
    /* One error per field: a value that is wrong by itself is not reported
     * again by a rule that ties it to another field. */
    for (size_t i = c->pb_first; i < c->pb->n; i++)
        if (strcmp(c->pb->errors[i].field, path) == 0)
            return;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Messages are ours and short; a cut one (n >= size) is still readable. */
    if (n < 0) {
        c->rc = KD_EINTERNAL;
        return;
    }
    if (kd_problem_add(c->pb, path, "%s", msg) != KD_OK)
        c->rc = KD_ENOMEM;
}

/* "a, b or c" into out, for "must be one of" messages. */
static void
join_names(const char *const *names, size_t n, char *out, size_t size)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *sep = i == 0 ? "" : (i + 1 == n ? " or " : ", ");

        /* On overflow the list stops at the last name that fitted. */
        if (kd_snprintf(out + used, size - used, "%s%s", sep, names[i]) != KD_OK) {
            out[used] = '\0';
            return;
        }
        used += strlen(out + used);
    }
}

/* Rejects every key of obj not in allowed (NULL-terminated). */
static void
check_keys(struct ctx *c, const json_t *obj, const char *base, const char *const *allowed)
{
    char shown[KD_JSON_KEY_SHOWN];
    const char *key;
    void *it = NULL;

    while ((key = kd_json_next_unknown(obj, allowed, &it)) != NULL) {
        kd_json_key_shown(key, shown);
        fail(c, base, shown, "unknown field");
    }
}

/* ---- typed getters: GOT_NONE for absent or null, GOT_BAD once reported ---- */

static const json_t *
member(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    return v == NULL || json_is_null(v) ? NULL : v;
}

static enum got
get_real(struct ctx *c, const json_t *obj, const char *base, const char *key, double lo,
         bool lo_open, double hi, double *out)
{
    const json_t *v = member(obj, key);
    double d;

    if (v == NULL)
        return GOT_NONE;
    if (!json_is_number(v)) {
        fail(c, base, key, "must be a number");
        return GOT_BAD;
    }
    d = json_number_value(v);
    /* jansson's parser never yields NaN or infinities, but a body built in
     * code could, and they would slip through every range check below. */
    if (!isfinite(d)) {
        fail(c, base, key, "must be a finite number");
        return GOT_BAD;
    }
    if ((lo_open ? d <= lo : d < lo) || d > hi) {
        if (lo_open)
            fail(c, base, key, "must be greater than %g and at most %g", lo, hi);
        else
            fail(c, base, key, "must be between %g and %g", lo, hi);
        return GOT_BAD;
    }
    *out = d;
    return GOT_OK;
}

static enum got
get_int(struct ctx *c, const json_t *obj, const char *base, const char *key, int64_t lo, int64_t hi,
        int64_t *out)
{
    const json_t *v = member(obj, key);
    int64_t i;

    if (v == NULL)
        return GOT_NONE;
    if (!json_is_integer(v)) {
        fail(c, base, key, "must be an integer");
        return GOT_BAD;
    }
    i = (int64_t)json_integer_value(v);
    if (i < lo || i > hi) {
        fail(c, base, key, "must be between %lld and %lld", (long long)lo, (long long)hi);
        return GOT_BAD;
    }
    *out = i;
    return GOT_OK;
}

/* get_int for the int fields of the struct; the ranges all fit an int. */
static enum got
get_small_int(struct ctx *c, const json_t *obj, const char *base, const char *key, int lo, int hi,
              int *out)
{
    int64_t v;
    enum got g = get_int(c, obj, base, key, lo, hi, &v);

    if (g == GOT_OK)
        *out = (int)v;
    return g;
}

static enum got
get_bool(struct ctx *c, const json_t *obj, const char *base, const char *key, bool *out)
{
    const json_t *v = member(obj, key);

    if (v == NULL)
        return GOT_NONE;
    if (!json_is_boolean(v)) {
        fail(c, base, key, "must be true or false");
        return GOT_BAD;
    }
    *out = json_is_true(v);
    return GOT_OK;
}

static enum got
get_string(struct ctx *c, const json_t *obj, const char *base, const char *key, const char **out,
           size_t *len)
{
    const json_t *v = member(obj, key);

    if (v == NULL)
        return GOT_NONE;
    if (!json_is_string(v)) {
        fail(c, base, key, "must be a string");
        return GOT_BAD;
    }
    *out = json_string_value(v);
    *len = json_string_length(v);
    return GOT_OK;
}

/* A string that must be one of names; *out is its index. */
static enum got
get_enum(struct ctx *c, const json_t *obj, const char *base, const char *key,
         const char *const *names, size_t n, int *out)
{
    const char *s;
    size_t len;
    char list[MSG_LEN];
    enum got g = get_string(c, obj, base, key, &s, &len);

    if (g != GOT_OK)
        return g;
    for (size_t i = 0; i < n; i++) {
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) {
            *out = (int)i;
            return GOT_OK;
        }
    }
    if (n == 1) {
        fail(c, base, key, "must be \"%s\"", names[0]);
        return GOT_BAD;
    }
    join_names(names, n, list, sizeof(list));
    fail(c, base, key, "must be one of %s", list);
    return GOT_BAD;
}

/* An object member that must itself be an object (or an array). */
static enum got
get_object(struct ctx *c, const json_t *obj, const char *base, const char *key, const json_t **out)
{
    const json_t *v = member(obj, key);

    if (v == NULL)
        return GOT_NONE;
    if (!json_is_object(v)) {
        fail(c, base, key, "must be an object");
        return GOT_BAD;
    }
    *out = v;
    return GOT_OK;
}

static enum got
get_array(struct ctx *c, const json_t *obj, const char *base, const char *key, const json_t **out)
{
    const json_t *v = member(obj, key);

    if (v == NULL)
        return GOT_NONE;
    if (!json_is_array(v)) {
        fail(c, base, key, "must be an array");
        return GOT_BAD;
    }
    *out = v;
    return GOT_OK;
}

/* A required UUID, stored in lowercase so that ids compare as text. */
static enum got
get_media_id(struct ctx *c, const json_t *obj, const char *base, char out[KD_UUID_STRLEN + 1])
{
    const char *s;
    size_t len;
    enum got g = get_string(c, obj, base, "media_id", &s, &len);

    if (g == GOT_NONE) {
        fail(c, base, "media_id", "is required");
        return GOT_BAD;
    }
    if (g != GOT_OK)
        return g;
    if (len != KD_UUID_STRLEN || !kd_uuid_valid(s)) {
        fail(c, base, "media_id", "must be a media id (a UUID)");
        return GOT_BAD;
    }
    for (size_t i = 0; i <= KD_UUID_STRLEN; i++)
        out[i] = (s[i] >= 'A' && s[i] <= 'F') ? (char)(s[i] - 'A' + 'a') : s[i];
    return GOT_OK;
}

static int
hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* "#RRGGBB" (opaque) or "#RRGGBBAA". */
static enum got
get_color(struct ctx *c, const json_t *obj, const char *base, const char *key, struct kd_rgba *out)
{
    const char *s;
    size_t len;
    uint8_t b[4] = {0, 0, 0, 255};
    enum got g = get_string(c, obj, base, key, &s, &len);

    if (g != GOT_OK)
        return g;
    if ((len != 7 && len != 9) || s[0] != '#')
        goto bad;
    for (size_t i = 0; i < (len - 1) / 2; i++) {
        int hi = hex_value(s[1 + 2 * i]), lo = hex_value(s[2 + 2 * i]);

        if (hi < 0 || lo < 0)
            goto bad;
        b[i] = (uint8_t)(hi * 16 + lo);
    }
    out->r = b[0];
    out->g = b[1];
    out->b = b[2];
    out->a = b[3];
    return GOT_OK;
bad:
    fail(c, base, key, "must be a color \"#RRGGBB\" or \"#RRGGBBAA\"");
    return GOT_BAD;
}

static bool
font_char_ok(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == ' ' || ch == '-' || ch == '_' || ch == '.';
}

/* A fontconfig family name. The charset is narrow on purpose: the name ends
 * up in a fontconfig pattern, where ':', ',', '=' and '\\' have meaning. */
static enum got
get_font(struct ctx *c, const json_t *obj, const char *base, const char *key, char **out)
{
    const char *s;
    size_t len;
    char *copy;
    enum got g = get_string(c, obj, base, key, &s, &len);

    if (g != GOT_OK)
        return g;
    if (len == 0 || len > FONT_MAX) {
        fail(c, base, key, "must be 1 to %d characters", FONT_MAX);
        return GOT_BAD;
    }
    for (size_t i = 0; i < len; i++) {
        if (!font_char_ok(s[i])) {
            fail(c, base, key, "may hold only letters, digits, spaces, '-', '_' and '.' (ASCII)");
            return GOT_BAD;
        }
    }
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
          (s[0] >= '0' && s[0] <= '9'))) {
        fail(c, base, key, "must start with a letter or a digit");
        return GOT_BAD;
    }
    if ((copy = strndup(s, len)) == NULL) {
        c->rc = KD_ENOMEM;
        return GOT_BAD;
    }
    free(*out);
    *out = copy;
    return GOT_OK;
}

/* A time window: start >= 0 (default 0), end > start or null (default NAN).
 * Both are capped at the longest allowed duration: nothing can start later,
 * and it keeps absurd values out of the worker's arithmetic. Returns false
 * when something was wrong. */
static bool
get_window(struct ctx *c, const json_t *obj, const char *base, double *start_s, double *end_s)
{
    double max_s = (double)c->lim->max_duration_s;
    enum got gs, ge;

    *start_s = 0;
    *end_s = NAN;
    gs = get_real(c, obj, base, "start", 0, false, max_s, start_s);
    ge = get_real(c, obj, base, "end", 0, true, max_s, end_s);
    if (gs == GOT_BAD || ge == GOT_BAD)
        return false;
    if (ge == GOT_OK && *end_s <= *start_s) {
        fail(c, base, "end", "must be greater than start");
        return false;
    }
    return true;
}

/* ---- sections ---- */

static void
parse_input(struct ctx *c, const json_t *v, const char *base, struct kd_input *in)
{
    static const char *const keys[] = {"media_id", "start", "end", NULL};
    size_t bad_before = c->n_bad;

    in->start_s = 0;
    in->end_s = NAN;
    if (!json_is_object(v)) {
        fail(c, base, NULL, "must be an object");
        return;
    }
    check_keys(c, v, base, keys);
    (void)get_media_id(c, v, base, in->media_id);
    (void)get_window(c, v, base, &in->start_s, &in->end_s);
    /* A bad input takes no part in the cross-checks (transition length). */
    if (c->n_bad != bad_before)
        in->end_s = NAN;
}

static void
parse_inputs(struct ctx *c, const json_t *body, struct kd_jobspec *spec)
{
    const json_t *arr = NULL, *v;
    size_t n, i;
    enum got g = get_array(c, body, "", "inputs", &arr);

    if (g == GOT_NONE)
        fail(c, "", "inputs", "is required");
    if (g != GOT_OK)
        return;
    n = json_array_size(arr);
    if (n == 0) {
        fail(c, "", "inputs", "must hold at least one input");
        return;
    }
    if ((int64_t)n > c->lim->max_inputs)
        fail(c, "", "inputs", "must hold at most %lld inputs", (long long)c->lim->max_inputs);
    else
        c->inputs_given = n;
    /* Elements are validated even past the limit: the user gets every error
     * at once. n is bounded by the body size cap. */
    if ((spec->inputs = calloc(n, sizeof(*spec->inputs))) == NULL) {
        c->rc = KD_ENOMEM;
        return;
    }
    spec->n_inputs = n;
    json_array_foreach(arr, i, v)
    {
        char path[FIELD_LEN];

        make_index_path(path, "inputs", i);
        parse_input(c, v, path, &spec->inputs[i]);
    }
}

static void
parse_transition(struct ctx *c, const json_t *body, struct kd_jobspec *spec)
{
    static const char *const keys[] = {"type", "duration", NULL};
    const json_t *t = NULL;
    int type;
    enum got gd;

    if (get_object(c, body, "", "transition", &t) != GOT_OK)
        return;
    check_keys(c, t, "transition", keys);
    (void)get_enum(c, t, "transition", "type", transition_type_names,
                   KD_ARRAY_LEN(transition_type_names), &type);
    gd = get_real(c, t, "transition", "duration", 0, true, TRANSITION_MAX_S, &spec->transition_s);
    if (gd == GOT_NONE)
        fail(c, "transition", "duration", "is required");
    spec->has_transition = true;
    if (c->inputs_given == 1)
        fail(c, "transition", NULL, "needs at least two inputs");
    if (gd != GOT_OK)
        return;
    /* A fade overlaps the end of one input with the start of the next; an
     * input cut shorter than the fade cannot take part in one. Without an end
     * the length is known only once the input is probed. */
    for (size_t i = 0; i < spec->n_inputs && c->inputs_given > 1; i++) {
        const struct kd_input *in = &spec->inputs[i];

        if (!isnan(in->end_s) && in->end_s - in->start_s < spec->transition_s) {
            fail(c, "transition", "duration",
                 "must not be longer than any input (inputs[%zu] is %g s after trimming)", i,
                 in->end_s - in->start_s);
            break;
        }
    }
}

static void
parse_text_layer(struct ctx *c, const json_t *v, const char *base, struct kd_layer *l)
{
    const char *s;
    size_t len;
    enum got g;

    g = get_string(c, v, base, "text", &s, &len);
    if (g == GOT_NONE)
        fail(c, base, "text", "is required");
    if (g == GOT_OK) {
        bool ok = true;

        if (len == 0) {
            fail(c, base, "text", "must not be empty");
            ok = false;
        } else if ((int64_t)len > c->lim->max_text_bytes) {
            fail(c, base, "text", "must be at most %lld bytes of UTF-8",
                 (long long)c->lim->max_text_bytes);
            ok = false;
        } else if (!kd_utf8_valid(s, len)) {
            fail(c, base, "text", "must be valid UTF-8");
            ok = false;
        } else {
            /* Line breaks and tabs lay text out; other control characters
             * (NUL above all) have no glyph and no business in a caption. */
            for (size_t i = 0; i < len && ok; i++) {
                unsigned char ch = (unsigned char)s[i];

                if ((ch < 0x20 && ch != '\n' && ch != '\r' && ch != '\t') || ch == 0x7f) {
                    fail(c, base, "text",
                         "must not contain control characters other than tab and newlines");
                    ok = false;
                }
            }
        }
        if (ok && (l->text = strndup(s, len)) == NULL)
            c->rc = KD_ENOMEM;
    }
    if ((l->font = strdup(DEFAULT_FONT)) == NULL) {
        c->rc = KD_ENOMEM;
        return;
    }
    (void)get_font(c, v, base, "font", &l->font);
    (void)get_small_int(c, v, base, "size", TEXT_SIZE_MIN, TEXT_SIZE_MAX, &l->size);
    (void)get_color(c, v, base, "color", &l->color);
    if (get_color(c, v, base, "background", &l->background) == GOT_OK)
        l->has_background = true;
}

static void
parse_border(struct ctx *c, const json_t *v, const char *base, struct kd_layer *l)
{
    static const char *const keys[] = {"width", "color", NULL};
    const json_t *b = NULL;
    char path[FIELD_LEN];

    if (get_object(c, v, base, "border", &b) != GOT_OK)
        return;
    make_path(path, base, "border");
    check_keys(c, b, path, keys);
    l->has_border = true;
    (void)get_small_int(c, b, path, "width", 0, BORDER_WIDTH_MAX, &l->border_width);
    (void)get_color(c, b, path, "color", &l->border_color);
}

static void
parse_style(struct ctx *c, const json_t *v, const char *base, struct kd_layer *l)
{
    static const char *const keys[] = {"font", "size", "color", "outline", NULL};
    const json_t *st = NULL;
    char path[FIELD_LEN];

    if (get_object(c, v, base, "style", &st) != GOT_OK)
        return;
    make_path(path, base, "style");
    check_keys(c, st, path, keys);
    l->has_style = true;
    (void)get_font(c, st, path, "font", &l->style_font);
    (void)get_small_int(c, st, path, "size", TEXT_SIZE_MIN, TEXT_SIZE_MAX, &l->style_size);
    if (get_color(c, st, path, "color", &l->style_color) == GOT_OK)
        l->has_style_color = true;
    (void)get_small_int(c, st, path, "outline", 0, OUTLINE_MAX, &l->style_outline);
}

static void
parse_layer(struct ctx *c, const json_t *v, const char *base, struct kd_layer *l)
{
    static const char *const text_keys[] = {"type",  "text",       "font",     "size",
                                            "color", "background", "position", "margin",
                                            "start", "end",        NULL};
    static const char *const video_keys[] = {"type",  "media_id", "position", "width", "margin",
                                             "start", "end",      "border",   NULL};
    static const char *const image_keys[] = {"type",   "media_id", "position", "width", "opacity",
                                             "margin", "start",    "end",      NULL};
    static const char *const sub_keys[] = {"type",  "media_id", "mode", "style",
                                           "start", "end",      NULL};
    static const char *const *const keys_of[] = {[KD_LAYER_TEXT] = text_keys,
                                                 [KD_LAYER_VIDEO] = video_keys,
                                                 [KD_LAYER_IMAGE] = image_keys,
                                                 [KD_LAYER_SUBTITLES] = sub_keys};
    static const struct kd_rgba white = {255, 255, 255, 255};
    int type, e;
    enum got g;

    if (!json_is_object(v)) {
        fail(c, base, NULL, "must be an object");
        return;
    }
    g = get_enum(c, v, base, "type", layer_type_names, KD_ARRAY_LEN(layer_type_names), &type);
    if (g == GOT_NONE)
        fail(c, base, "type", "is required");
    /* Without a type, which other keys belong here is unknown. */
    if (g != GOT_OK)
        return;
    l->type = (enum kd_layer_type)type;
    check_keys(c, v, base, keys_of[type]);

    /* Defaults first, then what the body says. */
    l->margin = 16;
    l->opacity = 1.0;
    l->style_outline = -1;
    l->border_width = BORDER_WIDTH_DEFAULT;
    l->border_color = white;
    switch (l->type) {
    case KD_LAYER_TEXT:
        l->position = KD_POS_BOTTOM;
        l->margin = 24;
        l->size = 48;
        l->color = white;
        break;
    case KD_LAYER_VIDEO:
        l->position = KD_POS_TOP_RIGHT;
        l->width = 0.3;
        break;
    case KD_LAYER_IMAGE:
        l->position = KD_POS_TOP_LEFT;
        l->width = 0.15;
        break;
    case KD_LAYER_SUBTITLES:
        /* Subtitle placement comes from the file (ASS) or the renderer. */
        l->position = KD_POS_BOTTOM;
        l->margin = 0;
        l->sub_mode = KD_SUB_BURN;
        break;
    }
    (void)get_window(c, v, base, &l->start_s, &l->end_s);
    if (l->type != KD_LAYER_SUBTITLES) {
        if (get_enum(c, v, base, "position", position_names, KD_ARRAY_LEN(position_names), &e) ==
            GOT_OK)
            l->position = (enum kd_position)e;
        (void)get_small_int(c, v, base, "margin", 0, MARGIN_MAX, &l->margin);
    }
    if (l->type != KD_LAYER_TEXT)
        (void)get_media_id(c, v, base, l->media_id);
    switch (l->type) {
    case KD_LAYER_TEXT:
        parse_text_layer(c, v, base, l);
        break;
    case KD_LAYER_VIDEO:
        (void)get_real(c, v, base, "width", 0, true, 1, &l->width);
        parse_border(c, v, base, l);
        break;
    case KD_LAYER_IMAGE:
        (void)get_real(c, v, base, "width", 0, true, 1, &l->width);
        (void)get_real(c, v, base, "opacity", 0, false, 1, &l->opacity);
        break;
    case KD_LAYER_SUBTITLES:
        if (get_enum(c, v, base, "mode", sub_mode_names, KD_ARRAY_LEN(sub_mode_names), &e) ==
            GOT_OK)
            l->sub_mode = (enum kd_sub_mode)e;
        parse_style(c, v, base, l);
        break;
    }
}

static void
parse_layers(struct ctx *c, const json_t *body, struct kd_jobspec *spec)
{
    const json_t *arr = NULL, *v;
    size_t n, i;

    if (get_array(c, body, "", "layers", &arr) != GOT_OK)
        return;
    n = json_array_size(arr);
    if ((int64_t)n > c->lim->max_layers)
        fail(c, "", "layers", "must hold at most %lld layers", (long long)c->lim->max_layers);
    if (n == 0)
        return;
    if ((spec->layers = calloc(n, sizeof(*spec->layers))) == NULL) {
        c->rc = KD_ENOMEM;
        return;
    }
    spec->n_layers = n;
    json_array_foreach(arr, i, v)
    {
        char path[FIELD_LEN];

        make_index_path(path, "layers", i);
        spec->layers[i].end_s = NAN;
        parse_layer(c, v, path, &spec->layers[i]);
    }
}

static void
parse_audio(struct ctx *c, const json_t *body, struct kd_jobspec *spec)
{
    static const char *const keys[] = {"media_id", "mode", "volume",   "original_volume",
                                       "offset",   "loop", "fade_out", NULL};
    struct kd_audio *a = &spec->audio;
    const json_t *o = NULL;
    double max_s = (double)c->lim->max_duration_s;
    int mode = KD_AUDIO_MIX;
    enum got gm;

    if (get_object(c, body, "", "audio", &o) != GOT_OK)
        return;
    check_keys(c, o, "audio", keys);
    spec->has_audio = true;
    a->mode = KD_AUDIO_MIX;
    a->volume = 1.0;
    a->original_volume = 1.0;
    (void)get_media_id(c, o, "audio", a->media_id);
    gm = get_enum(c, o, "audio", "mode", audio_mode_names, KD_ARRAY_LEN(audio_mode_names), &mode);
    a->mode = (enum kd_audio_mode)mode;
    (void)get_real(c, o, "audio", "volume", 0, false, VOLUME_MAX, &a->volume);
    if (get_real(c, o, "audio", "original_volume", 0, false, VOLUME_MAX, &a->original_volume) ==
            GOT_OK &&
        gm == GOT_OK && a->mode == KD_AUDIO_REPLACE)
        fail(c, "audio", "original_volume", "only applies when mode is mix");
    (void)get_real(c, o, "audio", "offset", 0, false, max_s, &a->offset_s);
    (void)get_bool(c, o, "audio", "loop", &a->loop);
    (void)get_real(c, o, "audio", "fade_out", 0, false, max_s, &a->fade_out_s);
}

/* A range bound in the notation the user writes ("512k", "100M"). */
static void
bitrate_text(int64_t b, char *out, size_t size)
{
    enum kd_err rc;

    if (b % 1000000 == 0)
        rc = kd_snprintf(out, size, "%lldM", (long long)(b / 1000000));
    else if (b % 1000 == 0)
        rc = kd_snprintf(out, size, "%lldk", (long long)(b / 1000));
    else
        rc = kd_snprintf(out, size, "%lld", (long long)b);
    if (rc != KD_OK)
        out[0] = '\0';
}

/* Bits per second from 128000, "128k" or "2M" (SI multiples). */
static enum got
get_bitrate(struct ctx *c, const json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    const json_t *v = member(obj, key);
    int64_t b;

    if (v == NULL)
        return GOT_NONE;
    if (json_is_integer(v)) {
        b = (int64_t)json_integer_value(v);
    } else if (!json_is_string(v) ||
               kd_parse_size(json_string_value(v), true, INT64_MAX, &b) != KD_OK) {
        fail(c, "output", key,
             "must be bits per second: an integer, or a string such as \"128k\" or \"2M\"");
        return GOT_BAD;
    }
    if (b < lo || b > hi) {
        char lo_text[24], hi_text[24];

        bitrate_text(lo, lo_text, sizeof(lo_text));
        bitrate_text(hi, hi_text, sizeof(hi_text));
        fail(c, "output", key, "must be between %s and %s", lo_text, hi_text);
        return GOT_BAD;
    }
    *out = b;
    return GOT_OK;
}

static bool
is_vp9(const struct kd_output *o)
{
    return o->video_codec == KD_VCODEC_VP9 ||
           (o->video_codec == KD_VCODEC_AUTO && o->container == KD_CONT_WEBM);
}

/* Which codecs each container takes. What is accepted is what the worker's
 * muxers write and common players read; mkv takes everything. */
static void
check_codecs(struct ctx *c, const struct kd_output *o)
{
    const char *cont = kd_container_name(o->container);
    enum kd_vcodec v = o->video_codec;
    enum kd_acodec a = o->audio_codec;

    if (c->vcodec_ok && c->out.video_codec) {
        if (o->container == KD_CONT_WEBM && v != KD_VCODEC_VP9)
            fail(c, "output", "video_codec", "must be vp9 for webm");
        else if ((o->container == KD_CONT_MP4 || o->container == KD_CONT_MOV) && v == KD_VCODEC_VP9)
            fail(c, "output", "video_codec", "must be h264, hevc or copy for %s", cont);
    }
    if (!c->acodec_ok || !c->out.audio_codec)
        return;
    switch (o->container) {
    case KD_CONT_WEBM:
        if (a != KD_ACODEC_OPUS)
            fail(c, "output", "audio_codec", "must be opus for webm");
        break;
    case KD_CONT_MP4:
    case KD_CONT_MOV:
        if (a == KD_ACODEC_OPUS)
            fail(c, "output", "audio_codec", "must be aac, mp3 or copy for %s", cont);
        break;
    case KD_CONT_MP3:
        if (a != KD_ACODEC_MP3)
            fail(c, "output", "audio_codec", "must be mp3 for mp3");
        break;
    case KD_CONT_M4A:
        if (a != KD_ACODEC_AAC)
            fail(c, "output", "audio_codec", "must be aac for m4a");
        break;
    case KD_CONT_WAV:
        fail(c, "output", "audio_codec", "must be left out for wav (PCM is written)");
        break;
    case KD_CONT_MKV:
        break;
    }
}

/* Checks that need several output fields, once each was valid by itself. */
static void
check_output(struct ctx *c, struct kd_output *o, bool size_ok, bool crf_ok)
{
    const char *cont = kd_container_name(o->container);
    const struct given *gv = &c->out;

    if (c->container_ok && kd_container_is_audio_only(o->container)) {
        static const char *const video_fields[] = {
            "video_codec", "width", "height", "fit", "fps", "crf", "preset", "video_bitrate"};
        const bool set[] = {gv->video_codec, gv->width, gv->height, gv->fit,
                            gv->fps,         gv->crf,   gv->preset, gv->video_bitrate};

        for (size_t i = 0; i < KD_ARRAY_LEN(video_fields); i++)
            if (set[i])
                fail(c, "output", video_fields[i], "has no meaning for the audio-only container %s",
                     cont);
    } else {
        if (gv->width != gv->height)
            fail(c, "output", gv->width ? "height" : "width", "is required when output.%s is given",
                 gv->width ? "width" : "height");
        else if (gv->width && size_ok && (int64_t)o->width * o->height > c->lim->max_pixels)
            fail(c, "output", "height", "width x height must be at most %lld pixels",
                 (long long)c->lim->max_pixels);
        if (c->vcodec_ok && o->video_codec == KD_VCODEC_COPY) {
            /* copy passes the coded pictures through: nothing may change them. */
            static const char *const changing[] = {"width", "height", "fit",          "fps",
                                                   "crf",   "preset", "video_bitrate"};
            const bool set[] = {gv->width, gv->height, gv->fit,          gv->fps,
                                gv->crf,   gv->preset, gv->video_bitrate};

            for (size_t i = 0; i < KD_ARRAY_LEN(changing); i++)
                if (set[i])
                    fail(c, "output", changing[i], "cannot be used with video_codec copy");
        } else if (c->vcodec_ok && c->container_ok) {
            if (gv->crf && crf_ok && !is_vp9(o) && o->crf > CRF_MAX)
                fail(c, "output", "crf", "must be between 0 and %d (0 to %d for vp9)", CRF_MAX,
                     CRF_MAX_VP9);
            /* libvpx has no x264-style presets. */
            if (gv->preset && is_vp9(o))
                fail(c, "output", "preset", "has no meaning for vp9");
        }
        if (gv->crf && gv->video_bitrate)
            fail(c, "output", "video_bitrate", "cannot be used together with crf");
    }
    if (c->container_ok)
        check_codecs(c, o);
    if (gv->audio_bitrate && c->container_ok && o->container == KD_CONT_WAV)
        fail(c, "output", "audio_bitrate", "has no meaning for wav (PCM is uncompressed)");
    else if (gv->audio_bitrate && c->acodec_ok && o->audio_codec == KD_ACODEC_COPY)
        fail(c, "output", "audio_bitrate", "cannot be used with audio_codec copy");
    if (gv->faststart && c->container_ok && o->container != KD_CONT_MP4 &&
        o->container != KD_CONT_MOV && o->container != KD_CONT_M4A)
        fail(c, "output", "faststart", "applies only to mp4, mov and m4a");
}

static void
parse_output(struct ctx *c, const json_t *body, struct kd_jobspec *spec)
{
    static const char *const keys[] = {
        "container", "video_codec", "audio_codec",   "width",         "height",    "fit", "fps",
        "crf",       "preset",      "audio_bitrate", "video_bitrate", "faststart", NULL};
    struct kd_output *o = &spec->output;
    struct given *gv = &c->out;
    const json_t *obj = NULL;
    int e;
    bool size_ok = true, crf_ok;
    enum got g;

    o->container = KD_CONT_MP4;
    o->video_codec = KD_VCODEC_AUTO;
    o->audio_codec = KD_ACODEC_AUTO;
    o->fit = KD_FIT_CONTAIN;
    o->crf = -1;
    o->audio_bitrate = AUDIO_BITRATE_DEFAULT;
    c->container_ok = c->vcodec_ok = c->acodec_ok = true;
    if (get_object(c, body, "", "output", &obj) == GOT_OK) {
        check_keys(c, obj, "output", keys);
        g = get_enum(c, obj, "output", "container", container_names, KD_ARRAY_LEN(container_names),
                     &e);
        if (g == GOT_OK)
            o->container = (enum kd_container)e;
        c->container_ok = g != GOT_BAD;
        g = get_enum(c, obj, "output", "video_codec", vcodec_names, KD_ARRAY_LEN(vcodec_names), &e);
        if (g == GOT_OK)
            o->video_codec = (enum kd_vcodec)(e + 1);
        gv->video_codec = g != GOT_NONE;
        c->vcodec_ok = g != GOT_BAD;
        g = get_enum(c, obj, "output", "audio_codec", acodec_names, KD_ARRAY_LEN(acodec_names), &e);
        if (g == GOT_OK)
            o->audio_codec = (enum kd_acodec)(e + 1);
        gv->audio_codec = g != GOT_NONE;
        c->acodec_ok = g != GOT_BAD;

        /* Even sizes: 4:2:0 chroma is subsampled by two in both directions. */
        g = get_small_int(c, obj, "output", "width", 16, (int)c->lim->max_width, &o->width);
        if (g == GOT_OK && o->width % 2 != 0) {
            fail(c, "output", "width", "must be an even number");
            g = GOT_BAD;
        }
        gv->width = g != GOT_NONE;
        size_ok = g != GOT_BAD;
        g = get_small_int(c, obj, "output", "height", 16, (int)c->lim->max_height, &o->height);
        if (g == GOT_OK && o->height % 2 != 0) {
            fail(c, "output", "height", "must be an even number");
            g = GOT_BAD;
        }
        gv->height = g != GOT_NONE;
        size_ok = size_ok && g != GOT_BAD;

        g = get_enum(c, obj, "output", "fit", fit_names, KD_ARRAY_LEN(fit_names), &e);
        if (g == GOT_OK)
            o->fit = (enum kd_fit)e;
        gv->fit = g != GOT_NONE;
        gv->fps = get_real(c, obj, "output", "fps", FPS_MIN, false, FPS_MAX, &o->fps) != GOT_NONE;
        g = get_small_int(c, obj, "output", "crf", 0, CRF_MAX_VP9, &o->crf);
        gv->crf = g != GOT_NONE;
        crf_ok = g == GOT_OK;
        g = get_enum(c, obj, "output", "preset", preset_names, KD_ARRAY_LEN(preset_names), &e);
        if (g == GOT_OK)
            memcpy(o->preset, preset_names[e], strlen(preset_names[e]) + 1);
        gv->preset = g != GOT_NONE;
        gv->video_bitrate = get_bitrate(c, obj, "video_bitrate", VIDEO_BITRATE_MIN,
                                        VIDEO_BITRATE_MAX, &o->video_bitrate) != GOT_NONE;
        gv->audio_bitrate = get_bitrate(c, obj, "audio_bitrate", AUDIO_BITRATE_MIN,
                                        AUDIO_BITRATE_MAX, &o->audio_bitrate) != GOT_NONE;
        gv->faststart = get_bool(c, obj, "output", "faststart", &o->faststart) != GOT_NONE;
        check_output(c, o, size_ok, crf_ok);
    }
    /* Defaults that depend on the container. */
    if (!gv->faststart)
        o->faststart = o->container == KD_CONT_MP4 || o->container == KD_CONT_MOV ||
                       o->container == KD_CONT_M4A;
    if (o->container == KD_CONT_WAV || o->audio_codec == KD_ACODEC_COPY)
        o->audio_bitrate = 0; /* nothing is encoded with a bitrate */
}

static void
parse_thumbnails(struct ctx *c, const json_t *body, struct kd_jobspec *spec)
{
    static const char *const keys[] = {"count", "width", NULL};
    const json_t *t = NULL;
    enum got g;

    if (get_object(c, body, "", "thumbnails", &t) != GOT_OK)
        return;
    check_keys(c, t, "thumbnails", keys);
    c->thumbs_given = true;
    if (get_small_int(c, t, "thumbnails", "count", 1, THUMB_COUNT_MAX, &spec->thumbnails.count) ==
        GOT_NONE)
        fail(c, "thumbnails", "count", "is required");
    spec->thumbnails.width = THUMB_WIDTH_DEFAULT;
    g = get_small_int(c, t, "thumbnails", "width", THUMB_WIDTH_MIN, THUMB_WIDTH_MAX,
                      &spec->thumbnails.width);
    if (g == GOT_OK && spec->thumbnails.width % 2 != 0) {
        fail(c, "thumbnails", "width", "must be an even number");
        spec->thumbnails.width = THUMB_WIDTH_DEFAULT;
    }
}

static bool
digits(const char *s, size_t n, int *out)
{
    int v = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool
is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), valid for every year we accept. */
static int64_t
days_from_civil(int y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* RFC 3339 section 5.6 date-time, with "T"/"Z" in either case (5.6, NOTE),
 * any fraction (cut to milliseconds) and a numeric offset or Z. A leap second
 * (:60) lands on the next second, as POSIX time has none. */
static bool
parse_rfc3339(const char *s, size_t len, int64_t *out_ms)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, ms = 0, oh = 0, om = 0, sign = 0;
    size_t i = 19;
    int64_t t;

    if (len < 20 || len > RUN_AT_MAX_LEN)
        return false;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
        return false;
    if (s[i] == '.') {
        size_t nd = 0;

        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, nd++)
            if (nd < 3)
                ms = ms * 10 + (s[i] - '0');
        if (nd == 0)
            return false;
        for (; nd < 3; nd++)
            ms *= 10;
    }
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        sign = s[i] == '+' ? 1 : -1;
        if (len - i < 6 || !digits(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
            !digits(s + i + 4, 2, &om))
            return false;
        i += 6;
    } else {
        return false;
    }
    if (i != len)
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && is_leap(y)) || h > 23 ||
        mi > 59 || sec > 60 || oh > 23 || om > 59)
        return false;
    t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    t -= sign * (oh * 3600 + om * 60);
    *out_ms = t * 1000 + ms;
    return true;
}

static void
parse_run_at(struct ctx *c, const json_t *body, struct kd_jobspec *spec)
{
    const char *s;
    size_t len;
    int64_t ms;

    if (get_string(c, body, "", "run_at", &s, &len) != GOT_OK)
        return;
    if (!parse_rfc3339(s, len, &ms)) {
        fail(c, "", "run_at", "must be an RFC 3339 date-time such as \"2026-01-31T18:00:00Z\"");
        return;
    }
    if (ms < 0) {
        fail(c, "", "run_at", "must not be before 1970");
        return;
    }
    spec->has_run_at = true;
    spec->run_at_ms = ms;
}

static bool
host_char_ok(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.';
}

/* Checks an http(s) URL as far as text can tell: scheme, a host, a port in
 * range, nothing a request line or a header could be split with. Whether the
 * host may be reached (private addresses) is decided when the webhook is
 * sent, after name resolution. NULL when fine, else why not. */
static const char *
webhook_problem(const char *s, size_t len)
{
    size_t i, end, host_end;

    if (len > WEBHOOK_MAX)
        return "must be at most 2048 bytes";
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch <= 0x20 || ch >= 0x7f)
            return "must not contain spaces, control or non-ASCII characters (percent-encode "
                   "them)";
    }
    if (len >= 8 && strncasecmp(s, "https://", 8) == 0)
        i = 8;
    else if (len >= 7 && strncasecmp(s, "http://", 7) == 0)
        i = 7;
    else
        return "must be an http:// or https:// URL";
    for (end = i; end < len && s[end] != '/' && s[end] != '?' && s[end] != '#'; end++)
        if (s[end] == '@')
            return "must not contain credentials";
    if (end == i)
        return "must name a host";
    if (s[i] == '[') {
        /* An IPv6 literal (RFC 3986 section 3.2.2), without zone id. */
        for (host_end = i + 1; host_end < end && s[host_end] != ']'; host_end++) {
            char ch = s[host_end];

            if (!(hex_value(ch) >= 0 || ch == ':' || ch == '.'))
                return "must name a valid host";
        }
        if (host_end == end || host_end == i + 1)
            return "must name a valid host";
        host_end++;
    } else {
        for (host_end = i; host_end < end && s[host_end] != ':'; host_end++)
            if (!host_char_ok(s[host_end]))
                return "must name a valid host";
        if (host_end == i || host_end - i > HOST_MAX || s[i] == '.' || s[i] == '-')
            return "must name a valid host";
    }
    if (host_end < end) {
        int port = 0;

        if (s[host_end] != ':' || end - host_end - 1 < 1 || end - host_end - 1 > 5 ||
            !digits(s + host_end + 1, end - host_end - 1, &port) || port < 1 || port > 65535)
            return "must have a port between 1 and 65535";
    }
    return NULL;
}

static void
parse_webhook(struct ctx *c, const json_t *body, struct kd_jobspec *spec)
{
    const char *s, *why;
    size_t len;

    if (get_string(c, body, "", "webhook_url", &s, &len) != GOT_OK)
        return;
    if ((why = webhook_problem(s, len)) != NULL) {
        fail(c, "", "webhook_url", "%s", why);
        return;
    }
    if ((spec->webhook_url = strndup(s, len)) == NULL)
        c->rc = KD_ENOMEM;
}

static void
parse_metadata(struct ctx *c, const json_t *body, struct kd_jobspec *spec)
{
    const json_t *m = NULL;
    size_t size;

    if (get_object(c, body, "", "metadata", &m) != GOT_OK)
        return;
    /* Measured as stored: compact JSON. A valid object dumps to at least
     * "{}", so 0 can only mean that jansson ran out of memory. */
    if ((size = json_dumpb(m, NULL, 0, JSON_COMPACT)) == 0) {
        c->rc = KD_ENOMEM;
        return;
    }
    if ((int64_t)size > c->lim->max_metadata_bytes) {
        fail(c, "", "metadata", "must be at most %lld bytes as compact JSON",
             (long long)c->lim->max_metadata_bytes);
        return;
    }
    /* A copy, not a reference: the body stays the caller's to change or free. */
    if ((spec->metadata = json_deep_copy(m)) == NULL)
        c->rc = KD_ENOMEM;
}

/* Rules between sections, once each section was read. */
static void
check_across(struct ctx *c, const struct kd_jobspec *spec)
{
    const struct kd_output *o = &spec->output;

    if (c->container_ok && kd_container_is_audio_only(o->container)) {
        if (spec->n_layers > 0)
            fail(c, "", "layers", "must be left out for the audio-only container %s",
                 kd_container_name(o->container));
        if (c->thumbs_given)
            fail(c, "", "thumbnails", "must be left out for the audio-only container %s",
                 kd_container_name(o->container));
        return;
    }
    if (c->vcodec_ok && o->video_codec == KD_VCODEC_COPY) {
        for (size_t i = 0; i < spec->n_layers; i++) {
            const struct kd_layer *l = &spec->layers[i];

            if (l->type != KD_LAYER_SUBTITLES || l->sub_mode == KD_SUB_BURN) {
                fail(c, "output", "video_codec", "cannot be copy: layers[%zu] draws on the picture",
                     i);
                break;
            }
        }
        if (spec->has_transition)
            fail(c, "", "transition", "cannot be used with output.video_codec copy");
    }
    if (c->acodec_ok && o->audio_codec == KD_ACODEC_COPY && spec->has_audio)
        fail(c, "output", "audio_codec", "cannot be copy when an audio track is added");
    /* A cross-fade mixes the sound of two inputs: nothing to copy. */
    else if (c->acodec_ok && o->audio_codec == KD_ACODEC_COPY && spec->has_transition &&
             spec->n_inputs > 1)
        fail(c, "output", "audio_codec",
             "cannot be copy with a transition (it cross-fades the "
             "sound)");
}

/* ---- the API ---- */

enum kd_err
kd_jobspec_parse(const json_t *body, const struct kd_limits *lim, struct kd_jobspec **out,
                 struct kd_problem *pb)
{
    static const char *const keys[] = {
        "type",     "inputs", "transition",  "layers",   "audio",        "output", "thumbnails",
        "priority", "run_at", "webhook_url", "metadata", "max_attempts", NULL};
    struct ctx c = {.lim = lim, .pb = pb, .pb_first = pb->n, .rc = KD_OK};
    struct kd_jobspec *spec = NULL;
    enum kd_err rc;
    int e;

    if ((spec = calloc(1, sizeof(*spec))) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    memcpy(spec->type, "edit", sizeof("edit"));
    spec->priority = PRIORITY_DEFAULT;
    if (body == NULL || !json_is_object(body)) {
        fail(&c, "", NULL, "the body must be a JSON object");
        rc = c.rc != KD_OK ? c.rc : KD_EINVAL;
        goto out;
    }
    check_keys(&c, body, "", keys);
    (void)get_enum(&c, body, "", "type", job_type_names, KD_ARRAY_LEN(job_type_names), &e);
    parse_inputs(&c, body, spec);
    if (c.rc == KD_OK)
        parse_transition(&c, body, spec);
    if (c.rc == KD_OK)
        parse_layers(&c, body, spec);
    if (c.rc == KD_OK)
        parse_audio(&c, body, spec);
    if (c.rc == KD_OK)
        parse_output(&c, body, spec);
    if (c.rc == KD_OK)
        parse_thumbnails(&c, body, spec);
    if (c.rc == KD_OK)
        (void)get_small_int(&c, body, "", "priority", 1, 10, &spec->priority);
    if (c.rc == KD_OK)
        (void)get_small_int(&c, body, "", "max_attempts", 1, 10, &spec->max_attempts);
    if (c.rc == KD_OK)
        parse_run_at(&c, body, spec);
    if (c.rc == KD_OK)
        parse_webhook(&c, body, spec);
    if (c.rc == KD_OK)
        parse_metadata(&c, body, spec);
    if (c.rc == KD_OK)
        check_across(&c, spec);
    if (c.rc != KD_OK) {
        rc = c.rc;
        goto out;
    }
    if (c.n_bad > 0) {
        rc = KD_EINVAL;
        goto out;
    }
    *out = spec;
    spec = NULL;
    rc = KD_OK;
out:
    kd_jobspec_free(spec);
    return rc;
}

void
kd_jobspec_free(struct kd_jobspec *spec)
{
    if (spec == NULL)
        return;
    for (size_t i = 0; i < spec->n_layers; i++) {
        free(spec->layers[i].text);
        free(spec->layers[i].font);
        free(spec->layers[i].style_font);
    }
    free(spec->layers);
    free(spec->inputs);
    free(spec->webhook_url);
    json_decref(spec->metadata);
    free(spec);
}

enum kd_err
kd_jobspec_media_refs(const struct kd_jobspec *spec, struct kd_media_ref **refs, size_t *n)
{
    struct kd_media_ref *r = NULL;
    size_t count = spec->n_inputs + (spec->has_audio ? 1 : 0), k = 0;
    enum kd_err rc;

    for (size_t i = 0; i < spec->n_layers; i++)
        if (spec->layers[i].type != KD_LAYER_TEXT)
            count++;
    /* One spare element: calloc(0) may answer NULL, which is not ENOMEM. */
    if ((r = calloc(count + 1, sizeof(*r))) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < spec->n_inputs; i++, k++) {
        r[k].media_id = spec->inputs[i].media_id;
        if ((rc = kd_snprintf(r[k].field, sizeof(r[k].field), "inputs[%zu].media_id", i)) != KD_OK)
            goto out;
    }
    for (size_t i = 0; i < spec->n_layers; i++) {
        if (spec->layers[i].type == KD_LAYER_TEXT)
            continue;
        r[k].media_id = spec->layers[i].media_id;
        if ((rc = kd_snprintf(r[k].field, sizeof(r[k].field), "layers[%zu].media_id", i)) != KD_OK)
            goto out;
        k++;
    }
    if (spec->has_audio) {
        r[k].media_id = spec->audio.media_id;
        if ((rc = kd_snprintf(r[k].field, sizeof(r[k].field), "audio.media_id")) != KD_OK)
            goto out;
        k++;
    }
    *refs = r;
    *n = k;
    r = NULL;
    rc = KD_OK;
out:
    free(r);
    return rc;
}

const char *
kd_container_name(enum kd_container c)
{
    return (unsigned)c < KD_ARRAY_LEN(container_names) ? container_names[c] : "unknown";
}

const char *
kd_container_mime(enum kd_container c)
{
    return (unsigned)c < KD_ARRAY_LEN(container_mimes) ? container_mimes[c]
                                                       : "application/octet-stream";
}

bool
kd_container_is_audio_only(enum kd_container c)
{
    return c == KD_CONT_MP3 || c == KD_CONT_M4A || c == KD_CONT_WAV;
}

const char *
kd_position_name(enum kd_position p)
{
    return (unsigned)p < KD_ARRAY_LEN(position_names) ? position_names[p] : "unknown";
}
