/* jobspec_test.c: the POST /jobs spec parser against ../shared/API.md.
 *
 * Bodies are written with single quotes for readability; load() turns them
 * into double quotes before parsing them the way the API does
 * (kd_json_parse). Each invalid body of the table carries exactly one
 * mistake, and the test asserts that exactly that one field is reported. */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobspec.h"
#include "json.h"
#include "util.h"

#define U1 "0b0f8c1e-8d4b-4a57-9a55-3c4f2f1b9d01"
#define U2 "0b0f8c1e-8d4b-4a57-9a55-3c4f2f1b9d02"
#define U3 "0b0f8c1e-8d4b-4a57-9a55-3c4f2f1b9d03"
#define U4 "0b0f8c1e-8d4b-4a57-9a55-3c4f2f1b9d04"
#define U5 "0b0f8c1e-8d4b-4a57-9a55-3c4f2f1b9d05"
#define U6 "0b0f8c1e-8d4b-4a57-9a55-3c4f2f1b9d06"

#define IN1   "'inputs':[{'media_id':'" U1 "'}]"
#define IN2   "'inputs':[{'media_id':'" U1 "'},{'media_id':'" U2 "'}]"
#define TEXT0 "{'type':'text','text':'hi'}"

/* The defaults of src/config.c. */
static const struct kd_limits lim_default = {
    .body_max_bytes = 1048576,
    .upload_max_bytes = 5368709120LL,
    .max_inputs = 50,
    .max_layers = 20,
    .max_text_bytes = 4096,
    .max_width = 7680,
    .max_height = 4320,
    .max_pixels = 33177600,
    .max_duration_s = 14400,
    .max_streams = 16,
    .max_metadata_bytes = 4096,
};

/* Tight limits, so that each one is easy to cross. */
static const struct kd_limits lim_small = {
    .body_max_bytes = 1048576,
    .upload_max_bytes = 1048576,
    .max_inputs = 2,
    .max_layers = 1,
    .max_text_bytes = 8,
    .max_width = 640,
    .max_height = 480,
    .max_pixels = 640 * 360,
    .max_duration_s = 60,
    .max_streams = 4,
    .max_metadata_bytes = 16,
};

/* ---- allocation-failure injection (see jobspec.mk: ld --wrap) ----
 *
 * While armed, every allocation is counted and the fail_at-th one fails;
 * each allocation that succeeds is remembered until it is freed, so that
 * whatever is still remembered after the parse and the frees is a leak.
 * Pointers allocated outside the window are simply not remembered. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_vasprintf(char **strp, const char *fmt, va_list ap);

#define TRACK_MAX 8192
static bool armed;
static size_t alloc_count, fail_at;
static bool injected;
static void *tracked[TRACK_MAX];
static size_t n_tracked;

static bool
inject(void)
{
    if (!armed)
        return false;
    alloc_count++;
    if (alloc_count == fail_at) {
        injected = true;
        return true;
    }
    return false;
}

static void
track(void *p)
{
    if (!armed || p == NULL)
        return;
    if (n_tracked == TRACK_MAX)
        abort(); /* the test's own limit, not the code's */
    tracked[n_tracked++] = p;
}

static void
untrack(void *p)
{
    for (size_t i = 0; i < n_tracked; i++) {
        if (tracked[i] == p) {
            tracked[i] = tracked[--n_tracked];
            return;
        }
    }
}

void *
__wrap_malloc(size_t n)
{
    void *p;

    if (inject())
        return NULL;
    p = __real_malloc(n);
    track(p);
    return p;
}

void *
__wrap_calloc(size_t n, size_t size)
{
    void *p;

    if (inject())
        return NULL;
    p = __real_calloc(n, size);
    track(p);
    return p;
}

void *
__wrap_realloc(void *p, size_t n)
{
    void *q;

    if (inject())
        return NULL;
    q = __real_realloc(p, n);
    if (q != NULL) {
        untrack(p);
        track(q);
    }
    return q;
}

void
__wrap_free(void *p)
{
    if (p != NULL)
        untrack(p);
    __real_free(p);
}

char *
__wrap_strdup(const char *s)
{
    char *p;

    if (inject())
        return NULL;
    p = __real_strdup(s);
    track(p);
    return p;
}

char *
__wrap_strndup(const char *s, size_t n)
{
    char *p;

    if (inject())
        return NULL;
    p = __real_strndup(s, n);
    track(p);
    return p;
}

int
__wrap_vasprintf(char **strp, const char *fmt, va_list ap)
{
    int n;

    if (inject())
        return -1;
    n = __real_vasprintf(strp, fmt, ap);
    if (n >= 0)
        track(*strp);
    return n;
}

/* jansson allocates through these, hence through the wrappers above. */
static void *
json_alloc(size_t n)
{
    return malloc(n);
}

static void
json_release(void *p)
{
    free(p);
}

static void
arm(size_t n)
{
    alloc_count = 0;
    fail_at = n;
    injected = false;
    n_tracked = 0;
    armed = true;
}

static void
disarm(void)
{
    armed = false;
}

/* ---- helpers ---- */

static json_t *
load(const char *src)
{
    size_t len = strlen(src);
    char *text = strdup(src);
    char why[160];
    json_t *v = NULL;

    ck_assert_ptr_nonnull(text);
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\'')
            text[i] = '"';
    ck_assert_msg(kd_json_parse(text, len, &v, why, sizeof(why)) == KD_OK, "bad test JSON: %s: %s",
                  why, text);
    free(text);
    return v;
}

static bool
has_error(const struct kd_problem *pb, const char *field)
{
    for (size_t i = 0; i < pb->n; i++)
        if (strcmp(pb->errors[i].field, field) == 0)
            return true;
    return false;
}

/* All errors on one line, for failure messages. */
static const char *
errors_text(const struct kd_problem *pb)
{
    static char buf[4096];
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < pb->n && used < sizeof(buf); i++) {
        int w = snprintf(buf + used, sizeof(buf) - used, "[%s: %s] ", pb->errors[i].field,
                         pb->errors[i].message);

        if (w < 0)
            break;
        used += (size_t)w;
    }
    return buf;
}

/* Parses src that must be valid; the caller frees the spec. */
static struct kd_jobspec *
parse_ok(const char *src, const struct kd_limits *lim)
{
    json_t *body = load(src);
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct kd_jobspec *spec = NULL;
    enum kd_err rc = kd_jobspec_parse(body, lim, &spec, &pb);

    ck_assert_msg(rc == KD_OK, "rc %s for %s: %s", kd_err_name(rc), src, errors_text(&pb));
    ck_assert_ptr_nonnull(spec);
    ck_assert_uint_eq(pb.n, 0);
    json_decref(body);
    return spec;
}

/* Parses src that must be invalid; fills pb. */
static void
parse_bad(const char *src, const struct kd_limits *lim, struct kd_problem *pb)
{
    json_t *body = load(src);
    struct kd_jobspec *spec = (struct kd_jobspec *)&spec; /* must stay untouched */
    struct kd_jobspec *const sentinel = spec;
    enum kd_err rc = kd_jobspec_parse(body, lim, &spec, pb);

    ck_assert_msg(rc == KD_EINVAL, "rc %s for %s", kd_err_name(rc), src);
    ck_assert_ptr_eq(spec, sentinel);
    json_decref(body);
}

#define ck_assert_double_near(a, b) ck_assert_double_eq_tol((a), (b), 1e-9)

static void
assert_rgba(struct kd_rgba c, unsigned r, unsigned g, unsigned b, unsigned a)
{
    ck_assert_uint_eq(c.r, r);
    ck_assert_uint_eq(c.g, g);
    ck_assert_uint_eq(c.b, b);
    ck_assert_uint_eq(c.a, a);
}

/* ---- the example of API.md ---- */

static const char example[] =
    "{"
    "  'type': 'edit',"
    "  'inputs': ["
    "    {'media_id': '" U1 "', 'start': 2.0, 'end': 12.5},"
    "    {'media_id': '" U2 "'}"
    "  ],"
    "  'transition': {'type': 'fade', 'duration': 0.5},"
    "  'layers': ["
    "    {'type': 'text', 'text': 'Привет, мир', 'font': 'DejaVu Sans', 'size': 48,"
    "     'color': '#FFFFFF', 'background': '#00000080', 'position': 'bottom',"
    "     'margin': 24, 'start': 0, 'end': 5},"
    "    {'type': 'video', 'media_id': '" U3 "', 'position': 'top-right', 'width': 0.3,"
    "     'margin': 16, 'start': 2, 'end': null, 'border': {'width': 4, 'color': '#FFFFFF'}},"
    "    {'type': 'image', 'media_id': '" U4 "', 'position': 'top-left', 'width': 0.15,"
    "     'opacity': 0.8},"
    "    {'type': 'subtitles', 'media_id': '" U5 "', 'mode': 'burn',"
    "     'style': {'font': 'DejaVu Sans', 'size': 28, 'color': '#FFFFFF', 'outline': 2}}"
    "  ],"
    "  'audio': {'media_id': '" U6 "', 'mode': 'mix', 'volume': 0.3, 'original_volume': 1.0,"
    "            'offset': 0.0, 'loop': true, 'fade_out': 1.0},"
    "  'output': {'container': 'mp4', 'video_codec': 'h264', 'audio_codec': 'aac',"
    "             'width': 1280, 'height': 720, 'fit': 'contain', 'fps': 30,"
    "             'crf': 23, 'preset': 'veryfast', 'audio_bitrate': '128k'},"
    "  'thumbnails': {'count': 5, 'width': 320},"
    "  'priority': 5,"
    "  'run_at': null,"
    "  'webhook_url': 'https://example.org/hook',"
    "  'metadata': {'any': 'json, at most 4 KiB'}"
    "}";

START_TEST(test_example)
{
    struct kd_jobspec *s = parse_ok(example, &lim_default);
    const struct kd_layer *l;
    const struct kd_output *o = &s->output;

    ck_assert_str_eq(s->type, "edit");
    ck_assert_uint_eq(s->n_inputs, 2);
    ck_assert_str_eq(s->inputs[0].media_id, U1);
    ck_assert_double_near(s->inputs[0].start_s, 2.0);
    ck_assert_double_near(s->inputs[0].end_s, 12.5);
    ck_assert_str_eq(s->inputs[1].media_id, U2);
    ck_assert_double_near(s->inputs[1].start_s, 0);
    ck_assert(isnan(s->inputs[1].end_s));
    ck_assert(s->has_transition);
    ck_assert_double_near(s->transition_s, 0.5);

    ck_assert_uint_eq(s->n_layers, 4);
    l = &s->layers[0];
    ck_assert_int_eq(l->type, KD_LAYER_TEXT);
    ck_assert_str_eq(l->text, "Привет, мир");
    ck_assert_str_eq(l->font, "DejaVu Sans");
    ck_assert_int_eq(l->size, 48);
    assert_rgba(l->color, 255, 255, 255, 255);
    ck_assert(l->has_background);
    assert_rgba(l->background, 0, 0, 0, 0x80);
    ck_assert_int_eq(l->position, KD_POS_BOTTOM);
    ck_assert_int_eq(l->margin, 24);
    ck_assert_double_near(l->start_s, 0);
    ck_assert_double_near(l->end_s, 5);

    l = &s->layers[1];
    ck_assert_int_eq(l->type, KD_LAYER_VIDEO);
    ck_assert_str_eq(l->media_id, U3);
    ck_assert_int_eq(l->position, KD_POS_TOP_RIGHT);
    ck_assert_double_near(l->width, 0.3);
    ck_assert_int_eq(l->margin, 16);
    ck_assert_double_near(l->start_s, 2);
    ck_assert(isnan(l->end_s));
    ck_assert(l->has_border);
    ck_assert_int_eq(l->border_width, 4);
    assert_rgba(l->border_color, 255, 255, 255, 255);
    ck_assert_ptr_null(l->text);

    l = &s->layers[2];
    ck_assert_int_eq(l->type, KD_LAYER_IMAGE);
    ck_assert_str_eq(l->media_id, U4);
    ck_assert_int_eq(l->position, KD_POS_TOP_LEFT);
    ck_assert_double_near(l->width, 0.15);
    ck_assert_double_near(l->opacity, 0.8);
    ck_assert_int_eq(l->margin, 16);
    ck_assert_double_near(l->start_s, 0);
    ck_assert(isnan(l->end_s));
    ck_assert(!l->has_border);

    l = &s->layers[3];
    ck_assert_int_eq(l->type, KD_LAYER_SUBTITLES);
    ck_assert_str_eq(l->media_id, U5);
    ck_assert_int_eq(l->sub_mode, KD_SUB_BURN);
    ck_assert(l->has_style);
    ck_assert_str_eq(l->style_font, "DejaVu Sans");
    ck_assert_int_eq(l->style_size, 28);
    ck_assert(l->has_style_color);
    assert_rgba(l->style_color, 255, 255, 255, 255);
    ck_assert_int_eq(l->style_outline, 2);

    ck_assert(s->has_audio);
    ck_assert_str_eq(s->audio.media_id, U6);
    ck_assert_int_eq(s->audio.mode, KD_AUDIO_MIX);
    ck_assert_double_near(s->audio.volume, 0.3);
    ck_assert_double_near(s->audio.original_volume, 1.0);
    ck_assert_double_near(s->audio.offset_s, 0);
    ck_assert(s->audio.loop);
    ck_assert_double_near(s->audio.fade_out_s, 1.0);

    ck_assert_int_eq(o->container, KD_CONT_MP4);
    ck_assert_int_eq(o->video_codec, KD_VCODEC_H264);
    ck_assert_int_eq(o->audio_codec, KD_ACODEC_AAC);
    ck_assert_int_eq(o->width, 1280);
    ck_assert_int_eq(o->height, 720);
    ck_assert_int_eq(o->fit, KD_FIT_CONTAIN);
    ck_assert_double_near(o->fps, 30);
    ck_assert_int_eq(o->crf, 23);
    ck_assert_str_eq(o->preset, "veryfast");
    ck_assert_int_eq(o->audio_bitrate, 128000);
    ck_assert_int_eq(o->video_bitrate, 0);
    ck_assert(o->faststart);

    ck_assert_int_eq(s->thumbnails.count, 5);
    ck_assert_int_eq(s->thumbnails.width, 320);
    ck_assert_int_eq(s->priority, 5);
    ck_assert(!s->has_run_at);
    ck_assert_str_eq(s->webhook_url, "https://example.org/hook");
    ck_assert_ptr_nonnull(s->metadata);
    ck_assert(json_is_object(s->metadata));
    ck_assert_str_eq(json_string_value(json_object_get(s->metadata, "any")), "json, at most 4 KiB");
    kd_jobspec_free(s);
}
END_TEST

START_TEST(test_media_refs)
{
    struct kd_jobspec *s = parse_ok(example, &lim_default);
    struct kd_media_ref *refs = NULL;
    size_t n = 0;
    static const struct {
        const char *id, *field;
    } want[] = {
        {U1, "inputs[0].media_id"}, {U2, "inputs[1].media_id"}, {U3, "layers[1].media_id"},
        {U4, "layers[2].media_id"}, {U5, "layers[3].media_id"}, {U6, "audio.media_id"},
    };

    ck_assert_int_eq(kd_jobspec_media_refs(s, &refs, &n), KD_OK);
    ck_assert_uint_eq(n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(refs[i].media_id, want[i].id);
        ck_assert_str_eq(refs[i].field, want[i].field);
    }
    free(refs);
    kd_jobspec_free(s);

    s = parse_ok("{" IN1 "}", &lim_default);
    ck_assert_int_eq(kd_jobspec_media_refs(s, &refs, &n), KD_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(refs[0].field, "inputs[0].media_id");
    free(refs);
    kd_jobspec_free(s);
}
END_TEST

/* ---- defaults ---- */

START_TEST(test_defaults)
{
    struct kd_jobspec *s = parse_ok("{" IN1 "}", &lim_default);
    const struct kd_output *o = &s->output;

    ck_assert_str_eq(s->type, "edit");
    ck_assert_uint_eq(s->n_inputs, 1);
    ck_assert_double_near(s->inputs[0].start_s, 0);
    ck_assert(isnan(s->inputs[0].end_s));
    ck_assert(!s->has_transition);
    ck_assert_uint_eq(s->n_layers, 0);
    ck_assert_ptr_null(s->layers);
    ck_assert(!s->has_audio);
    ck_assert_int_eq(o->container, KD_CONT_MP4);
    ck_assert_int_eq(o->video_codec, KD_VCODEC_AUTO);
    ck_assert_int_eq(o->audio_codec, KD_ACODEC_AUTO);
    ck_assert_int_eq(o->width, 0);
    ck_assert_int_eq(o->height, 0);
    ck_assert_int_eq(o->fit, KD_FIT_CONTAIN);
    ck_assert_double_near(o->fps, 0);
    ck_assert_int_eq(o->crf, -1);
    ck_assert_str_eq(o->preset, "");
    ck_assert_int_eq(o->video_bitrate, 0);
    ck_assert_int_eq(o->audio_bitrate, 128000);
    ck_assert(o->faststart);
    ck_assert_int_eq(s->thumbnails.count, 0);
    ck_assert_int_eq(s->priority, 5);
    ck_assert(!s->has_run_at);
    ck_assert_ptr_null(s->webhook_url);
    ck_assert_ptr_null(s->metadata);
    kd_jobspec_free(s);
}
END_TEST

START_TEST(test_layer_defaults)
{
    struct kd_jobspec *s = parse_ok(
        "{" IN1 ",'layers':[{'type':'text','text':'a'},{'type':'video','media_id':'" U2 "'},"
        "{'type':'image','media_id':'" U3 "'},{'type':'subtitles','media_id':'" U4 "'}],"
        "'audio':{'media_id':'" U5 "'},'thumbnails':{'count':1}}",
        &lim_default);
    const struct kd_layer *l = s->layers;

    ck_assert_uint_eq(s->n_layers, 4);
    ck_assert_str_eq(l[0].font, "DejaVu Sans");
    ck_assert_int_eq(l[0].size, 48);
    assert_rgba(l[0].color, 255, 255, 255, 255);
    ck_assert(!l[0].has_background);
    ck_assert_int_eq(l[0].position, KD_POS_BOTTOM);
    ck_assert_int_eq(l[0].margin, 24);
    ck_assert_double_near(l[0].start_s, 0);
    ck_assert(isnan(l[0].end_s));

    ck_assert_int_eq(l[1].position, KD_POS_TOP_RIGHT);
    ck_assert_double_near(l[1].width, 0.3);
    ck_assert_int_eq(l[1].margin, 16);
    ck_assert(!l[1].has_border);

    ck_assert_int_eq(l[2].position, KD_POS_TOP_LEFT);
    ck_assert_double_near(l[2].width, 0.15);
    ck_assert_double_near(l[2].opacity, 1.0);
    ck_assert_int_eq(l[2].margin, 16);

    ck_assert_int_eq(l[3].sub_mode, KD_SUB_BURN);
    ck_assert(!l[3].has_style);
    ck_assert_ptr_null(l[3].style_font);
    ck_assert_int_eq(l[3].style_size, 0);
    ck_assert(!l[3].has_style_color);
    ck_assert_int_eq(l[3].style_outline, -1);

    ck_assert_int_eq(s->audio.mode, KD_AUDIO_MIX);
    ck_assert_double_near(s->audio.volume, 1.0);
    ck_assert_double_near(s->audio.original_volume, 1.0);
    ck_assert_double_near(s->audio.offset_s, 0);
    ck_assert(!s->audio.loop);
    ck_assert_double_near(s->audio.fade_out_s, 0);

    ck_assert_int_eq(s->thumbnails.count, 1);
    ck_assert_int_eq(s->thumbnails.width, 320);
    kd_jobspec_free(s);

    /* A border object alone gets the default width and color. */
    s = parse_ok("{" IN1 ",'layers':[{'type':'video','media_id':'" U2 "','border':{}}]}",
                 &lim_default);
    ck_assert(s->layers[0].has_border);
    ck_assert_int_eq(s->layers[0].border_width, 2);
    assert_rgba(s->layers[0].border_color, 255, 255, 255, 255);
    kd_jobspec_free(s);
}
END_TEST

/* null for an optional field is the same as leaving it out. */
START_TEST(test_nulls_are_absent)
{
    struct kd_jobspec *s =
        parse_ok("{'type':null,'inputs':[{'media_id':'" U1 "','start':null,'end':null}],"
                 "'transition':null,'layers':null,'audio':null,'output':null,'thumbnails':null,"
                 "'priority':null,'run_at':null,'webhook_url':null,'metadata':null,"
                 "'max_attempts':null}",
                 &lim_default);

    ck_assert_str_eq(s->type, "edit");
    ck_assert_double_near(s->inputs[0].start_s, 0);
    ck_assert(isnan(s->inputs[0].end_s));
    ck_assert(!s->has_transition);
    ck_assert_uint_eq(s->n_layers, 0);
    ck_assert(!s->has_audio);
    ck_assert_int_eq(s->output.container, KD_CONT_MP4);
    ck_assert_int_eq(s->thumbnails.count, 0);
    ck_assert_int_eq(s->priority, 5);
    ck_assert_int_eq(s->max_attempts, 0);
    ck_assert(!s->has_run_at);
    ck_assert_ptr_null(s->webhook_url);
    ck_assert_ptr_null(s->metadata);
    kd_jobspec_free(s);

    s = parse_ok("{" IN1 ",'output':{'container':null,'crf':null,'width':null,'height':null},"
                 "'layers':[{'type':'text','text':'x','font':null,'background':null,"
                 "'end':null}]}",
                 &lim_default);
    ck_assert_int_eq(s->output.crf, -1);
    ck_assert_str_eq(s->layers[0].font, "DejaVu Sans");
    ck_assert(!s->layers[0].has_background);
    kd_jobspec_free(s);
}
END_TEST

/* ---- valid variants ---- */

START_TEST(test_output_variants)
{
    struct kd_jobspec *s;

    /* webm picks vp9/opus; crf goes to 63 there. */
    s = parse_ok("{" IN1 ",'output':{'container':'webm','crf':63}}", &lim_default);
    ck_assert_int_eq(s->output.container, KD_CONT_WEBM);
    ck_assert_int_eq(s->output.video_codec, KD_VCODEC_AUTO);
    ck_assert_int_eq(s->output.crf, 63);
    ck_assert(!s->output.faststart);
    kd_jobspec_free(s);
    s = parse_ok("{" IN1 ",'output':{'container':'webm','video_codec':'vp9',"
                 "'audio_codec':'opus','video_bitrate':'2M'}}",
                 &lim_default);
    ck_assert_int_eq(s->output.video_codec, KD_VCODEC_VP9);
    ck_assert_int_eq(s->output.audio_codec, KD_ACODEC_OPUS);
    ck_assert_int_eq(s->output.video_bitrate, 2000000);
    kd_jobspec_free(s);
    /* mkv takes anything. */
    s = parse_ok("{" IN1 ",'output':{'container':'mkv','video_codec':'hevc','audio_codec':"
                 "'opus','fit':'cover','fps':29.97,'preset':'slow','video_bitrate':2500000}}",
                 &lim_default);
    ck_assert_int_eq(s->output.video_codec, KD_VCODEC_HEVC);
    ck_assert_int_eq(s->output.fit, KD_FIT_COVER);
    ck_assert_double_near(s->output.fps, 29.97);
    ck_assert_str_eq(s->output.preset, "slow");
    ck_assert_int_eq(s->output.video_bitrate, 2500000);
    kd_jobspec_free(s);
    s = parse_ok("{" IN1 ",'output':{'container':'mkv','video_codec':'vp9','crf':40}}",
                 &lim_default);
    ck_assert_int_eq(s->output.crf, 40);
    kd_jobspec_free(s);
    /* mov with hevc and mp3 audio, 8k audio bitrate is the floor. */
    s = parse_ok("{" IN1 ",'output':{'container':'mov','video_codec':'hevc','audio_codec':'mp3',"
                 "'audio_bitrate':'8k','faststart':false,'width':16,'height':16}}",
                 &lim_default);
    ck_assert_int_eq(s->output.container, KD_CONT_MOV);
    ck_assert_int_eq(s->output.audio_bitrate, 8000);
    ck_assert(!s->output.faststart);
    kd_jobspec_free(s);
    /* Audio-only containers. */
    s = parse_ok("{" IN2 ",'transition':{'duration':1},'output':{'container':'mp3',"
                 "'audio_codec':'mp3','audio_bitrate':'320k'},'audio':{'media_id':'" U3 "'}}",
                 &lim_default);
    ck_assert_int_eq(s->output.audio_bitrate, 320000);
    ck_assert(kd_container_is_audio_only(s->output.container));
    kd_jobspec_free(s);
    s = parse_ok("{" IN1 ",'output':{'container':'m4a','audio_codec':'aac','faststart':true}}",
                 &lim_default);
    ck_assert(s->output.faststart);
    kd_jobspec_free(s);
    s = parse_ok("{" IN1 ",'output':{'container':'wav'}}", &lim_default);
    ck_assert_int_eq(s->output.audio_bitrate, 0);
    ck_assert(!s->output.faststart);
    kd_jobspec_free(s);
    /* copy: remux; soft subtitles and trims do not need decoding. */
    s = parse_ok("{'inputs':[{'media_id':'" U1 "','start':1,'end':2}],'layers':[{'type':"
                 "'subtitles','media_id':'" U2 "','mode':'soft'}],'output':{'video_codec':"
                 "'copy','audio_codec':'copy'}}",
                 &lim_default);
    ck_assert_int_eq(s->output.video_codec, KD_VCODEC_COPY);
    ck_assert_int_eq(s->output.audio_codec, KD_ACODEC_COPY);
    ck_assert_int_eq(s->output.audio_bitrate, 0);
    ck_assert_int_eq(s->layers[0].sub_mode, KD_SUB_SOFT);
    kd_jobspec_free(s);
    /* One stream copied while the other is decoded: all run (media_test). */
    s = parse_ok("{" IN1 ",'audio':{'media_id':'" U2 "'},'output':{'video_codec':'copy'}}",
                 &lim_default);
    kd_jobspec_free(s);
    s = parse_ok("{" IN1 ",'output':{'video_codec':'copy','audio_codec':'aac'},'thumbnails':"
                 "{'count':2}}",
                 &lim_default);
    kd_jobspec_free(s);
    s = parse_ok("{" IN2 ",'layers':[" TEXT0 "],'output':{'audio_codec':'copy','width':640,"
                 "'height':360}}",
                 &lim_default);
    kd_jobspec_free(s);
    /* Size limits are inclusive. */
    s = parse_ok("{" IN1 ",'output':{'width':640,'height':360,'audio_bitrate':512000,"
                 "'video_bitrate':'100M'}}",
                 &lim_small);
    ck_assert_int_eq(s->output.width, 640);
    ck_assert_int_eq(s->output.video_bitrate, 100000000);
    kd_jobspec_free(s);
}
END_TEST

START_TEST(test_run_at)
{
    static const struct {
        const char *text;
        int64_t ms;
    } cases[] = {
        {"2026-01-31T18:00:00Z", 1769882400000LL},
        {"2026-01-31t18:00:00z", 1769882400000LL},
        {"2026-01-31T20:30:00.250+02:30", 1769882400250LL},
        {"2026-01-31T18:00:00.1234567Z", 1769882400123LL},
        {"2024-02-29T23:59:59.999-05:00", 1709269199999LL},
        {"1970-01-01T00:00:00Z", 0},
        {"9999-12-31T23:59:59Z", 253402300799000LL},
        {"2016-12-31T23:59:60Z", 1483228800000LL}, /* a leap second: the next second */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char src[256];
        struct kd_jobspec *s;

        snprintf(src, sizeof(src), "{" IN1 ",'run_at':'%s'}", cases[i].text);
        s = parse_ok(src, &lim_default);
        ck_assert(s->has_run_at);
        ck_assert_msg(s->run_at_ms == cases[i].ms, "%s: %lld", cases[i].text,
                      (long long)s->run_at_ms);
        kd_jobspec_free(s);
    }
}
END_TEST

START_TEST(test_valid_misc)
{
    struct kd_jobspec *s;

    /* Upper-case ids are accepted and stored in lower case. */
    s = parse_ok("{'inputs':[{'media_id':'0B0F8C1E-8D4B-4A57-9A55-3C4F2F1B9D0A'}]}", &lim_default);
    ck_assert_str_eq(s->inputs[0].media_id, "0b0f8c1e-8d4b-4a57-9a55-3c4f2f1b9d0a");
    kd_jobspec_free(s);
    /* Webhook URLs with ports, IPv6 literals, query strings. */
    s = parse_ok("{" IN1 ",'webhook_url':'HTTP://hooks.example.org:8443/a/b?x=1&y=%20#f'}",
                 &lim_default);
    ck_assert_str_eq(s->webhook_url, "HTTP://hooks.example.org:8443/a/b?x=1&y=%20#f");
    kd_jobspec_free(s);
    s = parse_ok("{" IN1 ",'webhook_url':'http://[2001:db8::1]:8080'}", &lim_default);
    kd_jobspec_free(s);
    /* Integers are accepted where reals are expected; limits inclusive. */
    s = parse_ok(
        "{'inputs':[{'media_id':'" U1 "','start':0,'end':60}],'transition':null,"
        "'layers':[{'type':'text','text':'12345678','size':512,'margin':1000,"
        "'color':'#aabbcc','background':'#AABBCC00','font':'Noto Sans-CJK_JP.1',"
        "'position':'center'}],'audio':{'media_id':'" U2 "','mode':'replace',"
        "'volume':4,'offset':60,'fade_out':0,'loop':false},'priority':10,'max_attempts':10,"
        "'thumbnails':{'count':20,'width':16}}",
        &lim_small);
    ck_assert_double_near(s->inputs[0].end_s, 60);
    ck_assert_int_eq(s->layers[0].size, 512);
    assert_rgba(s->layers[0].color, 0xaa, 0xbb, 0xcc, 255);
    assert_rgba(s->layers[0].background, 0xaa, 0xbb, 0xcc, 0);
    ck_assert_str_eq(s->layers[0].font, "Noto Sans-CJK_JP.1");
    ck_assert_int_eq(s->layers[0].position, KD_POS_CENTER);
    ck_assert_int_eq(s->audio.mode, KD_AUDIO_REPLACE);
    ck_assert_double_near(s->audio.volume, 4);
    ck_assert_int_eq(s->priority, 10);
    ck_assert_int_eq(s->max_attempts, 10);
    ck_assert_int_eq(s->thumbnails.count, 20);
    ck_assert_int_eq(s->thumbnails.width, 16);
    kd_jobspec_free(s);
    /* Every position name. */
    for (int p = KD_POS_TOP_LEFT; p <= KD_POS_BOTTOM_RIGHT; p++) {
        char src[256];

        snprintf(src, sizeof(src),
                 "{" IN1 ",'layers':[{'type':'image','media_id':'" U2 "','position':'%s'}]}",
                 kd_position_name((enum kd_position)p));
        s = parse_ok(src, &lim_default);
        ck_assert_int_eq(s->layers[0].position, p);
        kd_jobspec_free(s);
    }
    /* Text with newlines, tabs and any script. */
    s = parse_ok("{" IN1 ",'layers':[{'type':'text','text':'line 1\\nline\\t2 — 日本 🎬'}]}",
                 &lim_default);
    ck_assert_str_eq(s->layers[0].text, "line 1\nline\t2 — 日本 🎬");
    kd_jobspec_free(s);
}
END_TEST

/* The spec keeps its own copy of metadata. */
START_TEST(test_metadata_owned)
{
    json_t *body = load("{" IN1 ",'metadata':{'a':[1,2,{'b':null}],'c':'d'}}");
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct kd_jobspec *s = NULL;
    char *dumped;

    ck_assert_int_eq(kd_jobspec_parse(body, &lim_default, &s, &pb), KD_OK);
    /* Changing the body afterwards does not reach the spec... */
    ck_assert_int_eq(json_object_set_new(json_object_get(body, "metadata"), "e", json_true()), 0);
    ck_assert_ptr_null(json_object_get(s->metadata, "e"));
    json_decref(body); /* ...nor does freeing it */
    dumped = json_dumps(s->metadata, JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_str_eq(dumped, "{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}");
    free(dumped);
    kd_jobspec_free(s);

    /* The size limit is on compact JSON, inclusive: {"k":"123456789"} is 17 bytes. */
    body = load("{" IN1 ",'metadata':{'k':'123456789'}}");
    {
        struct kd_limits lim = lim_default;

        lim.max_metadata_bytes = 17;
        ck_assert_int_eq(kd_jobspec_parse(body, &lim, &s, &pb), KD_OK);
        kd_jobspec_free(s);
        lim.max_metadata_bytes = 16;
        s = NULL;
        ck_assert_int_eq(kd_jobspec_parse(body, &lim, &s, &pb), KD_EINVAL);
        ck_assert(has_error(&pb, "metadata"));
        ck_assert_ptr_null(s);
    }
    kd_problem_clear(&pb);
    json_decref(body);
}
END_TEST

/* ---- invalid bodies: each with exactly one mistake at one path ---- */

struct bad_case {
    const char *body;
    const char *field;
    const struct kd_limits *lim; /* NULL: the defaults */
};

static const struct bad_case bad_cases[] = {
    /* the body */
    {"[]", ""},
    {"{}", "inputs"},
    {"{" IN1 ",'foo':1}", "foo"},
    {"{" IN1 ",'type':'concat'}", "type"},
    {"{" IN1 ",'type':5}", "type"},
    /* inputs */
    {"{'inputs':[]}", "inputs"},
    {"{'inputs':{}}", "inputs"},
    {"{'inputs':'" U1 "'}", "inputs"},
    {"{'inputs':[{'media_id':'" U1 "'},{'media_id':'" U1 "'},{'media_id':'" U1 "'}]}", "inputs",
     &lim_small},
    {"{'inputs':[5]}", "inputs[0]"},
    {"{'inputs':[{}]}", "inputs[0].media_id"},
    {"{'inputs':[{'media_id':'abc'}]}", "inputs[0].media_id"},
    {"{'inputs':[{'media_id':'" U1 "x'}]}", "inputs[0].media_id"},
    {"{'inputs':[{'media_id':'0b0f8c1e-8d4b-4a57-9a55_3c4f2f1b9d01'}]}", "inputs[0].media_id"},
    {"{'inputs':[{'media_id':42}]}", "inputs[0].media_id"},
    {"{'inputs':[{'media_id':'" U1 "','start':-1}]}", "inputs[0].start"},
    {"{'inputs':[{'media_id':'" U1 "','start':'1'}]}", "inputs[0].start"},
    {"{'inputs':[{'media_id':'" U1 "','start':true}]}", "inputs[0].start"},
    {"{'inputs':[{'media_id':'" U1 "','start':14400.5}]}", "inputs[0].start"},
    {"{'inputs':[{'media_id':'" U1 "','start':5,'end':5}]}", "inputs[0].end"},
    {"{'inputs':[{'media_id':'" U1 "','start':5,'end':4.9}]}", "inputs[0].end"},
    {"{'inputs':[{'media_id':'" U1 "','end':0}]}", "inputs[0].end"},
    {"{'inputs':[{'media_id':'" U1 "','end':61}]}", "inputs[0].end", &lim_small},
    {"{'inputs':[{'media_id':'" U1 "','speed':2}]}", "inputs[0].speed"},
    {"{'inputs':[{'media_id':'" U1 "'},{'media_id':'" U2 "','start':-3}]}", "inputs[1].start"},
    /* transition */
    {"{" IN1 ",'transition':{'type':'fade','duration':0.5}}", "transition"},
    {"{" IN2 ",'transition':'fade'}", "transition"},
    {"{" IN2 ",'transition':{'type':'wipe','duration':0.5}}", "transition.type"},
    {"{" IN2 ",'transition':{'duration':0}}", "transition.duration"},
    {"{" IN2 ",'transition':{'duration':5.01}}", "transition.duration"},
    {"{" IN2 ",'transition':{'type':'fade'}}", "transition.duration"},
    {"{" IN2 ",'transition':{'duration':1,'curve':'linear'}}", "transition.curve"},
    {"{'inputs':[{'media_id':'" U1 "','start':1,'end':1.25},{'media_id':'" U2 "'}],"
     "'transition':{'duration':0.5}}",
     "transition.duration"},
    /* A bad input is reported once, not again through the transition. */
    {"{'inputs':[{'media_id':'" U1 "','start':-1,'end':0.25},{'media_id':'" U2 "'}],"
     "'transition':{'duration':0.5}}",
     "inputs[0].start"},
    /* layers */
    {"{" IN1 ",'layers':{}}", "layers"},
    {"{" IN1 ",'layers':[" TEXT0 "," TEXT0 "]}", "layers", &lim_small},
    {"{" IN1 ",'layers':['text']}", "layers[0]"},
    {"{" IN1 ",'layers':[{'text':'hi'}]}", "layers[0].type"},
    {"{" IN1 ",'layers':[{'type':'shape'}]}", "layers[0].type"},
    {"{" IN1 ",'layers':[{'type':'text'}]}", "layers[0].text"},
    {"{" IN1 ",'layers':[{'type':'text','text':''}]}", "layers[0].text"},
    {"{" IN1 ",'layers':[{'type':'text','text':7}]}", "layers[0].text"},
    {"{" IN1 ",'layers':[{'type':'text','text':'123456789'}]}", "layers[0].text", &lim_small},
    {"{" IN1 ",'layers':[{'type':'text','text':'ab\\u0001c'}]}", "layers[0].text"},
    {"{" IN1 ",'layers':[{'type':'text','text':'ab\\u007fc'}]}", "layers[0].text"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','font':'Sans:bold'}]}", "layers[0].font"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','font':''}]}", "layers[0].font"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','font':' Sans'}]}", "layers[0].font"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','font':'Шрифт'}]}", "layers[0].font"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','font':"
     "'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'}]}",
     "layers[0].font"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','size':3}]}", "layers[0].size"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','size':513}]}", "layers[0].size"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','size':48.5}]}", "layers[0].size"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','color':'#FFF'}]}", "layers[0].color"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','color':'FFFFFF'}]}", "layers[0].color"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','color':'#FFFFFF8'}]}", "layers[0].color"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','color':'white'}]}", "layers[0].color"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','background':'#GG0000'}]}",
     "layers[0].background"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','position':'middle'}]}", "layers[0].position"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','margin':-1}]}", "layers[0].margin"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','margin':1001}]}", "layers[0].margin"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','start':-1}]}", "layers[0].start"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','start':3,'end':2}]}", "layers[0].end"},
    {"{" IN1 ",'layers':[{'type':'text','text':'a','media_id':'" U2 "'}]}", "layers[0].media_id"},
    {"{" IN1 ",'layers':[" TEXT0 "," TEXT0 ",{'type':'text','text':'a','position':'up'}]}",
     "layers[2].position"},
    {"{" IN1 ",'layers':[{'type':'video'}]}", "layers[0].media_id"},
    {"{" IN1 ",'layers':[{'type':'video','media_id':'" U2 "','width':0}]}", "layers[0].width"},
    {"{" IN1 ",'layers':[{'type':'video','media_id':'" U2 "','width':1.5}]}", "layers[0].width"},
    {"{" IN1 ",'layers':[{'type':'video','media_id':'" U2 "','opacity':0.5}]}",
     "layers[0].opacity"},
    {"{" IN1 ",'layers':[{'type':'video','media_id':'" U2 "','border':{'width':51}}]}",
     "layers[0].border.width"},
    {"{" IN1 ",'layers':[{'type':'video','media_id':'" U2 "','border':{'color':'#12345'}}]}",
     "layers[0].border.color"},
    {"{" IN1 ",'layers':[{'type':'video','media_id':'" U2 "','border':{'style':'dashed'}}]}",
     "layers[0].border.style"},
    {"{" IN1 ",'layers':[{'type':'video','media_id':'" U2 "','border':4}]}", "layers[0].border"},
    {"{" IN1 ",'layers':[{'type':'image','media_id':'" U2 "','opacity':1.2}]}",
     "layers[0].opacity"},
    {"{" IN1 ",'layers':[{'type':'image','media_id':'" U2 "','border':{}}]}", "layers[0].border"},
    {"{" IN1 ",'layers':[{'type':'subtitles','media_id':'" U2 "','mode':'hard'}]}",
     "layers[0].mode"},
    {"{" IN1 ",'layers':[{'type':'subtitles','media_id':'" U2 "','position':'top'}]}",
     "layers[0].position"},
    {"{" IN1 ",'layers':[{'type':'subtitles','media_id':'" U2 "','style':{'outline':21}}]}",
     "layers[0].style.outline"},
    {"{" IN1 ",'layers':[{'type':'subtitles','media_id':'" U2 "','style':{'font':'a,b'}}]}",
     "layers[0].style.font"},
    {"{" IN1 ",'layers':[{'type':'subtitles','media_id':'" U2 "','style':{'size':2}}]}",
     "layers[0].style.size"},
    {"{" IN1 ",'layers':[{'type':'subtitles','media_id':'" U2 "','style':{'color':'#1'}}]}",
     "layers[0].style.color"},
    {"{" IN1 ",'layers':[{'type':'subtitles','media_id':'" U2 "','style':{'bold':true}}]}",
     "layers[0].style.bold"},
    /* audio */
    {"{" IN1 ",'audio':'" U2 "'}", "audio"},
    {"{" IN1 ",'audio':{'volume':1}}", "audio.media_id"},
    {"{" IN1 ",'audio':{'media_id':'" U2 "','mode':'overlay'}}", "audio.mode"},
    {"{" IN1 ",'audio':{'media_id':'" U2 "','volume':4.5}}", "audio.volume"},
    {"{" IN1 ",'audio':{'media_id':'" U2 "','volume':-0.1}}", "audio.volume"},
    {"{" IN1 ",'audio':{'media_id':'" U2 "','original_volume':5}}", "audio.original_volume"},
    {"{" IN1 ",'audio':{'media_id':'" U2 "','mode':'replace','original_volume':1}}",
     "audio.original_volume"},
    {"{" IN1 ",'audio':{'media_id':'" U2 "','offset':-1}}", "audio.offset"},
    {"{" IN1 ",'audio':{'media_id':'" U2 "','loop':'yes'}}", "audio.loop"},
    {"{" IN1 ",'audio':{'media_id':'" U2 "','loop':1}}", "audio.loop"},
    {"{" IN1 ",'audio':{'media_id':'" U2 "','fade_out':-1}}", "audio.fade_out"},
    {"{" IN1 ",'audio':{'media_id':'" U2 "','pan':0}}", "audio.pan"},
    /* output: values */
    {"{" IN1 ",'output':'mp4'}", "output"},
    {"{" IN1 ",'output':{'container':'avi'}}", "output.container"},
    {"{" IN1 ",'output':{'container':'MP4'}}", "output.container"},
    {"{" IN1 ",'output':{'video_codec':'av1'}}", "output.video_codec"},
    {"{" IN1 ",'output':{'audio_codec':'flac'}}", "output.audio_codec"},
    {"{" IN1 ",'output':{'bitrate':'1M'}}", "output.bitrate"},
    {"{" IN1 ",'output':{'width':641,'height':480}}", "output.width"},
    {"{" IN1 ",'output':{'width':640,'height':481}}", "output.height"},
    {"{" IN1 ",'output':{'width':14,'height':480}}", "output.width"},
    {"{" IN1 ",'output':{'width':7682,'height':480}}", "output.width"},
    {"{" IN1 ",'output':{'width':642,'height':360}}", "output.width", &lim_small},
    {"{" IN1 ",'output':{'width':'640','height':360}}", "output.width"},
    {"{" IN1 ",'output':{'width':640}}", "output.height"},
    {"{" IN1 ",'output':{'height':360}}", "output.width"},
    {"{" IN1 ",'output':{'width':640,'height':480}}", "output.height", &lim_small},
    {"{" IN1 ",'output':{'fit':'fill'}}", "output.fit"},
    {"{" IN1 ",'output':{'fps':0}}", "output.fps"},
    {"{" IN1 ",'output':{'fps':120.5}}", "output.fps"},
    {"{" IN1 ",'output':{'crf':52}}", "output.crf"},
    {"{" IN1 ",'output':{'video_codec':'hevc','crf':52}}", "output.crf"},
    {"{" IN1 ",'output':{'container':'webm','crf':64}}", "output.crf"},
    {"{" IN1 ",'output':{'crf':-1}}", "output.crf"},
    {"{" IN1 ",'output':{'crf':23.5}}", "output.crf"},
    {"{" IN1 ",'output':{'preset':'placebo'}}", "output.preset"},
    {"{" IN1 ",'output':{'container':'webm','preset':'fast'}}", "output.preset"},
    {"{" IN1 ",'output':{'audio_bitrate':'7k'}}", "output.audio_bitrate"},
    {"{" IN1 ",'output':{'audio_bitrate':'513k'}}", "output.audio_bitrate"},
    {"{" IN1 ",'output':{'audio_bitrate':'128kbps'}}", "output.audio_bitrate"},
    {"{" IN1 ",'output':{'audio_bitrate':'1.5k'}}", "output.audio_bitrate"},
    {"{" IN1 ",'output':{'audio_bitrate':128000.5}}", "output.audio_bitrate"},
    {"{" IN1 ",'output':{'audio_bitrate':-128000}}", "output.audio_bitrate"},
    {"{" IN1 ",'output':{'video_bitrate':'50k'}}", "output.video_bitrate"},
    {"{" IN1 ",'output':{'video_bitrate':'101M'}}", "output.video_bitrate"},
    {"{" IN1 ",'output':{'video_bitrate':'1M','crf':20}}", "output.video_bitrate"},
    {"{" IN1 ",'output':{'faststart':'yes'}}", "output.faststart"},
    {"{" IN1 ",'output':{'container':'mkv','faststart':true}}", "output.faststart"},
    /* output: container and codec compatibility */
    {"{" IN1 ",'output':{'container':'webm','video_codec':'h264'}}", "output.video_codec"},
    {"{" IN1 ",'output':{'container':'webm','video_codec':'copy'}}", "output.video_codec"},
    {"{" IN1 ",'output':{'container':'webm','audio_codec':'aac'}}", "output.audio_codec"},
    {"{" IN1 ",'output':{'container':'mp4','video_codec':'vp9'}}", "output.video_codec"},
    {"{" IN1 ",'output':{'container':'mov','audio_codec':'opus'}}", "output.audio_codec"},
    {"{" IN1 ",'output':{'container':'mp3','audio_codec':'aac'}}", "output.audio_codec"},
    {"{" IN1 ",'output':{'container':'mp3','audio_codec':'copy'}}", "output.audio_codec"},
    {"{" IN1 ",'output':{'container':'mp3','width':640}}", "output.width"},
    {"{" IN1 ",'output':{'container':'mp3','video_codec':'h264'}}", "output.video_codec"},
    /* Wrong by itself and also out of place: reported once. */
    {"{" IN1 ",'output':{'container':'mp3','video_bitrate':'1k'}}", "output.video_bitrate"},
    {"{" IN1 ",'output':{'video_codec':'copy','fps':500}}", "output.fps"},
    {"{" IN1 ",'output':{'container':'wav','fps':25}}", "output.fps"},
    {"{" IN1 ",'output':{'container':'m4a','crf':20}}", "output.crf"},
    {"{" IN1 ",'output':{'container':'mp3'},'layers':[" TEXT0 "]}", "layers"},
    {"{" IN1 ",'output':{'container':'mp3'},'thumbnails':{'count':1}}", "thumbnails"},
    {"{" IN1 ",'output':{'container':'m4a','audio_codec':'mp3'}}", "output.audio_codec"},
    {"{" IN1 ",'output':{'container':'wav','audio_codec':'aac'}}", "output.audio_codec"},
    {"{" IN1 ",'output':{'container':'wav','audio_bitrate':'128k'}}", "output.audio_bitrate"},
    {"{" IN1 ",'output':{'video_codec':'copy','fps':25}}", "output.fps"},
    {"{" IN1 ",'output':{'video_codec':'copy','crf':20}}", "output.crf"},
    {"{" IN1 ",'output':{'video_codec':'copy'},'layers':[" TEXT0 "]}", "output.video_codec"},
    {"{" IN1 ",'output':{'video_codec':'copy'},'layers':[{'type':'subtitles','media_id':'" U2
     "'}]}",
     "output.video_codec"},
    {"{" IN2 ",'output':{'video_codec':'copy'},'transition':{'duration':1}}", "transition"},
    {"{" IN2 ",'output':{'audio_codec':'copy'},'transition':{'duration':1}}", "output.audio_codec"},
    {"{" IN1 ",'output':{'audio_codec':'copy'},'audio':{'media_id':'" U2 "'}}",
     "output.audio_codec"},
    {"{" IN1 ",'output':{'audio_codec':'copy','audio_bitrate':'96k'}}", "output.audio_bitrate"},
    /* thumbnails */
    {"{" IN1 ",'thumbnails':5}", "thumbnails"},
    {"{" IN1 ",'thumbnails':{}}", "thumbnails.count"},
    {"{" IN1 ",'thumbnails':{'count':0}}", "thumbnails.count"},
    {"{" IN1 ",'thumbnails':{'count':21}}", "thumbnails.count"},
    {"{" IN1 ",'thumbnails':{'count':2,'width':321}}", "thumbnails.width"},
    {"{" IN1 ",'thumbnails':{'count':2,'width':14}}", "thumbnails.width"},
    {"{" IN1 ",'thumbnails':{'count':2,'width':1922}}", "thumbnails.width"},
    {"{" IN1 ",'thumbnails':{'count':2,'format':'png'}}", "thumbnails.format"},
    /* priority */
    {"{" IN1 ",'priority':0}", "priority"},
    {"{" IN1 ",'priority':11}", "priority"},
    {"{" IN1 ",'priority':5.5}", "priority"},
    {"{" IN1 ",'priority':'5'}", "priority"},
    /* max_attempts */
    {"{" IN1 ",'max_attempts':0}", "max_attempts"},
    {"{" IN1 ",'max_attempts':11}", "max_attempts"},
    {"{" IN1 ",'max_attempts':2.5}", "max_attempts"},
    {"{" IN1 ",'max_attempts':'3'}", "max_attempts"},
    /* run_at */
    {"{" IN1 ",'run_at':'tomorrow'}", "run_at"},
    {"{" IN1 ",'run_at':1769882400}", "run_at"},
    {"{" IN1 ",'run_at':'2026-02-30T00:00:00Z'}", "run_at"},
    {"{" IN1 ",'run_at':'2023-02-29T00:00:00Z'}", "run_at"},
    {"{" IN1 ",'run_at':'2026-13-01T00:00:00Z'}", "run_at"},
    {"{" IN1 ",'run_at':'2026-01-31T24:00:00Z'}", "run_at"},
    {"{" IN1 ",'run_at':'2026-01-31T12:60:00Z'}", "run_at"},
    {"{" IN1 ",'run_at':'2026-01-31T12:00:00'}", "run_at"},
    {"{" IN1 ",'run_at':'2026-01-31 12:00:00Z'}", "run_at"},
    {"{" IN1 ",'run_at':'2026-01-31T12:00:00.Z'}", "run_at"},
    {"{" IN1 ",'run_at':'2026-01-31T12:00:00+2:00'}", "run_at"},
    {"{" IN1 ",'run_at':'2026-01-31T12:00:00+02:60'}", "run_at"},
    {"{" IN1 ",'run_at':'2026-01-31T12:00:00Zjunk'}", "run_at"},
    {"{" IN1 ",'run_at':'2026-01-31'}", "run_at"},
    {"{" IN1 ",'run_at':'1969-12-31T23:59:59Z'}", "run_at"},
    {"{" IN1 ",'run_at':'1970-01-01T00:30:00+01:00'}", "run_at"},
    /* webhook_url */
    {"{" IN1 ",'webhook_url':5}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'ftp://example.org/'}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'javascript:alert(1)'}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'example.org/hook'}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'https://'}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'https:///path'}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'https://exa mple.org/'}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'https://example.org/\\r\\nX-Evil: 1'}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'https://exämple.org/'}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'https://user:pw@example.org/'}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'https://example.org:0/'}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'https://example.org:65536/'}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'https://example.org:/'}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'https://example.org:80:81/'}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'https://exa_mple.org/'}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'https://[zz::1]/'}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'https://[::1/'}", "webhook_url"},
    {"{" IN1 ",'webhook_url':'https://-example.org/'}", "webhook_url"},
    /* metadata */
    {"{" IN1 ",'metadata':[1]}", "metadata"},
    {"{" IN1 ",'metadata':'x'}", "metadata"},
    {"{" IN1 ",'metadata':{'key':'0123456789'}}", "metadata", &lim_small},
};

START_TEST(test_bad_table)
{
    const struct bad_case *bc = &bad_cases[_i];
    struct kd_problem pb = KD_PROBLEM_INIT;

    parse_bad(bc->body, bc->lim != NULL ? bc->lim : &lim_default, &pb);
    ck_assert_msg(pb.n == 1 && strcmp(pb.errors[0].field, bc->field) == 0,
                  "case %d: %s\nwant exactly [%s], got %s", _i, bc->body, bc->field,
                  errors_text(&pb));
    ck_assert(strlen(pb.errors[0].message) > 0);
    kd_problem_clear(&pb);
}
END_TEST

/* Bodies no JSON text can produce: built in code. */
START_TEST(test_bad_built)
{
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct kd_jobspec *s = NULL;
    json_t *body = load("{" IN1 ",'layers':[{'type':'text'}]}");
    json_t *layer = json_array_get(json_object_get(body, "layers"), 0);
    char url[2100];

    /* A NUL inside the text (jansson keeps it with json_stringn). */
    ck_assert_int_eq(json_object_set_new(layer, "text", json_stringn("a\0b", 3)), 0);
    ck_assert_int_eq(kd_jobspec_parse(body, &lim_default, &s, &pb), KD_EINVAL);
    ck_assert_uint_eq(pb.n, 1);
    ck_assert_str_eq(pb.errors[0].field, "layers[0].text");
    kd_problem_clear(&pb);
    json_object_del(body, "layers");

    /* A webhook URL one byte over 2048; exactly 2048 passes. */
    memset(url, 'a', sizeof(url));
    memcpy(url, "https://example.org/", 20);
    url[2048] = '\0';
    ck_assert_int_eq(json_object_set_new(body, "webhook_url", json_string(url)), 0);
    ck_assert_int_eq(kd_jobspec_parse(body, &lim_default, &s, &pb), KD_OK);
    kd_jobspec_free(s);
    s = NULL;
    url[2048] = 'a';
    url[2049] = '\0';
    ck_assert_int_eq(json_object_set_new(body, "webhook_url", json_string(url)), 0);
    ck_assert_int_eq(kd_jobspec_parse(body, &lim_default, &s, &pb), KD_EINVAL);
    ck_assert_uint_eq(pb.n, 1);
    ck_assert_str_eq(pb.errors[0].field, "webhook_url");
    kd_problem_clear(&pb);
    json_decref(body);

    /* NULL and non-object bodies. */
    ck_assert_int_eq(kd_jobspec_parse(NULL, &lim_default, &s, &pb), KD_EINVAL);
    ck_assert_str_eq(pb.errors[0].field, "");
    kd_problem_clear(&pb);
    body = json_string("x");
    ck_assert_int_eq(kd_jobspec_parse(body, &lim_default, &s, &pb), KD_EINVAL);
    ck_assert_ptr_null(s);
    kd_problem_clear(&pb);
    json_decref(body);
}
END_TEST

/* One body with many mistakes: each is reported, once, at its own path. */
START_TEST(test_many_errors)
{
    static const char *const want[] = {
        "inputs[0].start",
        "inputs[1].media_id",
        "layers[0].position",
        "layers[1].text",
        "output.crf",
        "output.container",
        "audio.volume",
        "thumbnails.count",
        "metadata",
        "priority",
        "run_at",
        "webhook_url",
        "bogus",
        "transition.duration",
    };
    struct kd_problem pb = KD_PROBLEM_INIT;

    parse_bad("{'inputs':[{'media_id':'" U1 "','start':-2},{'media_id':'nope'}],"
              "'transition':{'duration':9},"
              "'layers':[{'type':'text','text':'a','position':'nowhere'},{'type':'text'}],"
              "'output':{'crf':99,'container':'avi'},"
              "'audio':{'media_id':'" U2 "','volume':7},"
              "'thumbnails':{'count':100},"
              "'metadata':[],'priority':0,'run_at':'soon','webhook_url':'gopher://x',"
              "'bogus':true}",
              &lim_default, &pb);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(has_error(&pb, want[i]), "missing %s in %s", want[i], errors_text(&pb));
    ck_assert_msg(pb.n == sizeof(want) / sizeof(want[0]), "extra errors: %s", errors_text(&pb));
    kd_problem_clear(&pb);
}
END_TEST

/* Past KD_PROBLEM_MAX_ERRORS errors are counted, not stored. */
START_TEST(test_error_cap)
{
    json_t *body = load("{" IN1 "}");
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct kd_jobspec *s = NULL;

    for (int i = 0; i < 100; i++) {
        char key[16];

        snprintf(key, sizeof(key), "x%d", i);
        ck_assert_int_eq(json_object_set_new(body, key, json_true()), 0);
    }
    ck_assert_int_eq(kd_jobspec_parse(body, &lim_default, &s, &pb), KD_EINVAL);
    ck_assert_uint_eq(pb.n, KD_PROBLEM_MAX_ERRORS);
    ck_assert_uint_eq(pb.dropped, 100 - KD_PROBLEM_MAX_ERRORS);
    kd_problem_clear(&pb);
    json_decref(body);
}
END_TEST

/* An unknown key goes into the path cut short, still valid UTF-8. */
START_TEST(test_unknown_key_cut)
{
    json_t *body = load("{" IN1 "}");
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct kd_jobspec *s = NULL;
    char key[128] = "a";
    const char *field;

    for (size_t i = 0; i < 30; i++)
        memcpy(key + 1 + 2 * i, "ж", 3); /* two bytes and the NUL */
    ck_assert_int_eq(json_object_set_new(body, key, json_true()), 0);
    ck_assert_int_eq(kd_jobspec_parse(body, &lim_default, &s, &pb), KD_EINVAL);
    ck_assert_uint_eq(pb.n, 1);
    field = pb.errors[0].field;
    ck_assert(kd_utf8_valid(field, strlen(field)));
    ck_assert_uint_eq(strlen(field), 39 + 3); /* 'a' + 19 two-byte letters + "..." */
    ck_assert_int_eq(strncmp(field, key, 39), 0);
    ck_assert_str_eq(field + 39, "...");
    ck_assert_str_eq(pb.errors[0].message, "unknown field");
    kd_problem_clear(&pb);
    json_decref(body);
}
END_TEST

START_TEST(test_names)
{
    static const struct {
        enum kd_container c;
        const char *name, *mime;
        bool audio_only;
    } conts[] = {
        {KD_CONT_MP4, "mp4", "video/mp4", false},
        {KD_CONT_MOV, "mov", "video/quicktime", false},
        {KD_CONT_MKV, "mkv", "video/x-matroska", false},
        {KD_CONT_WEBM, "webm", "video/webm", false},
        {KD_CONT_MP3, "mp3", "audio/mpeg", true},
        {KD_CONT_M4A, "m4a", "audio/mp4", true},
        {KD_CONT_WAV, "wav", "audio/wav", true},
    };
    static const char *const positions[] = {
        "top-left", "top",         "top-right", "left",         "center",
        "right",    "bottom-left", "bottom",    "bottom-right",
    };

    for (size_t i = 0; i < sizeof(conts) / sizeof(conts[0]); i++) {
        ck_assert_str_eq(kd_container_name(conts[i].c), conts[i].name);
        ck_assert_str_eq(kd_container_mime(conts[i].c), conts[i].mime);
        ck_assert(kd_container_is_audio_only(conts[i].c) == conts[i].audio_only);
    }
    for (int p = 0; p < 9; p++)
        ck_assert_str_eq(kd_position_name((enum kd_position)p), positions[p]);
    ck_assert_str_eq(kd_container_name((enum kd_container)99), "unknown");
    ck_assert_str_eq(kd_position_name((enum kd_position)99), "unknown");
}
END_TEST

/* ---- allocation failures: fail the Nth allocation for every N ---- */

static void
alloc_failures(const char *src, enum kd_err want)
{
    json_t *body = load(src);
    size_t n;

    for (n = 1;; n++) {
        struct kd_problem pb = KD_PROBLEM_INIT;
        struct kd_jobspec *s = NULL;
        struct kd_media_ref *refs = NULL;
        size_t n_refs = 0;
        enum kd_err rc, rc_refs = KD_OK;

        arm(n);
        rc = kd_jobspec_parse(body, &lim_default, &s, &pb);
        if (rc == KD_OK) {
            rc_refs = kd_jobspec_media_refs(s, &refs, &n_refs);
            free(refs);
        }
        kd_jobspec_free(s);
        kd_problem_clear(&pb);
        disarm();
        ck_assert_msg(n_tracked == 0, "allocation %zu failed: %zu blocks leaked", n, n_tracked);
        if (!injected) {
            ck_assert_int_eq(rc, want);
            ck_assert_int_eq(rc_refs, KD_OK);
            break;
        }
        if (rc == KD_OK) {
            ck_assert_int_eq(rc_refs, KD_ENOMEM);
        } else {
            ck_assert_msg(rc == KD_ENOMEM, "allocation %zu failed: rc %s", n, kd_err_name(rc));
            ck_assert_ptr_null(s);
        }
    }
    ck_assert_uint_gt(n, 5); /* the wrappers did see the parser's allocations */
    json_decref(body);
}

START_TEST(test_alloc_fail_valid)
{
    json_set_alloc_funcs(json_alloc, json_release);
    alloc_failures(example, KD_OK);
}
END_TEST

START_TEST(test_alloc_fail_invalid)
{
    json_set_alloc_funcs(json_alloc, json_release);
    alloc_failures("{'inputs':[{'media_id':'x','start':-1}],'layers':[{'type':'text','text':'a',"
                   "'font':'Sans'},{'type':'text','text':''}],'metadata':{'a':1},"
                   "'webhook_url':'https://x.org','zz':1}",
                   KD_EINVAL);
}
END_TEST

static Suite *
jobspec_suite(void)
{
    Suite *s = suite_create("jobspec");
    TCase *tc = tcase_create("parse");

    tcase_add_test(tc, test_example);
    tcase_add_test(tc, test_media_refs);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_layer_defaults);
    tcase_add_test(tc, test_nulls_are_absent);
    tcase_add_test(tc, test_output_variants);
    tcase_add_test(tc, test_run_at);
    tcase_add_test(tc, test_valid_misc);
    tcase_add_test(tc, test_metadata_owned);
    tcase_add_loop_test(tc, test_bad_table, 0, (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc, test_bad_built);
    tcase_add_test(tc, test_many_errors);
    tcase_add_test(tc, test_error_cap);
    tcase_add_test(tc, test_unknown_key_cut);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_alloc_fail_valid);
    tcase_add_test(tc, test_alloc_fail_invalid);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(jobspec_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
