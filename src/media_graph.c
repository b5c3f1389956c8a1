/* media_graph.c: the one filter graph of an edit, built node by node.
 *
 * No graph description string is ever parsed: each node is allocated with
 * avfilter_graph_alloc_filter, given its options as values (avfilter_init_dict)
 * and linked with avfilter_link. User text therefore reaches drawtext as the
 * value of its "text" option and cannot be read as filter syntax; every
 * expression (positions, time windows, timestamps) is printed here from
 * numbers.
 *
 * Shape of the graph: each input contributes a source per stream and a
 * chain that puts it on the output's timeline and format (trim, timestamps
 * from 0, rate, rotation, size, pixel or sample format). Layers are drawn
 * over the video tail; sinks end the tails. Joining many inputs (concat,
 * transitions) slots in between the input chains and the layers. */
#include "media_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>

#include "log.h"
#include "util.h"

/* Box padding of a text background, as a share of the font size. */
#define TEXT_BOX_PAD_DIV 4
#define FONT_FAMILY_MAX  128

enum kd_err
kd_media_graph_init(struct kd_media_graph *gr)
{
    memset(gr, 0, sizeof(*gr));
    if ((gr->g = avfilter_graph_alloc()) == NULL)
        return KD_ENOMEM;
    /* One thread unless the caller asks for slice threads. */
    gr->g->nb_threads = 1;
    return KD_OK;
}

void
kd_media_graph_clear(struct kd_media_graph *gr)
{
    avfilter_graph_free(&gr->g);
    gr->n_nodes = 0;
}

/* Allocates a node named after its filter and a counter. */
static enum kd_err
alloc_node(struct kd_media_graph *gr, const char *name, AVFilterContext **out,
           char err[KD_MEDIA_ERRLEN])
{
    const AVFilter *flt = avfilter_get_by_name(name);
    char inst[48];

    if (flt == NULL) {
        kd_log(KD_LOG_ERROR, "media: libavfilter has no %s filter", name);
        kd_media_seterr(err, "internal error (the %s filter is missing)", name);
        return KD_EINTERNAL;
    }
    (void)snprintf(inst, sizeof(inst), "n%u_%s", gr->n_nodes++, name);
    if ((*out = avfilter_graph_alloc_filter(gr->g, flt, inst)) == NULL) {
        kd_media_seterr(err, "out of memory");
        return KD_ENOMEM;
    }
    return KD_OK;
}

static enum kd_err
link_tail(struct kd_media_pad *tail, AVFilterContext *f, char err[KD_MEDIA_ERRLEN])
{
    int ret;

    if (tail->f != NULL && (ret = avfilter_link(tail->f, tail->idx, f, 0)) < 0)
        return kd_media_averr(NULL, ret, KD_EINTERNAL, err, "internal error (linking filters)");
    tail->f = f;
    tail->idx = 0;
    return KD_OK;
}

enum kd_err
kd_media_graph_node(struct kd_media_graph *gr, const char *name, const char *const *kv,
                    AVFilterContext **out, char err[KD_MEDIA_ERRLEN])
{
    AVFilterContext *f = NULL;
    AVDictionary *opts = NULL;
    enum kd_err rc;
    int ret;

    if ((rc = alloc_node(gr, name, &f, err)) != KD_OK)
        goto out;
    for (size_t i = 0; kv != NULL && kv[i] != NULL; i += 2) {
        if (av_dict_set(&opts, kv[i], kv[i + 1], 0) < 0) {
            kd_media_seterr(err, "out of memory");
            rc = KD_ENOMEM;
            goto out;
        }
    }
    if ((ret = avfilter_init_dict(f, &opts)) < 0) {
        kd_log(KD_LOG_ERROR, "media: the %s filter refused its options", name);
        rc = kd_media_averr(NULL, ret, KD_EINTERNAL, err, "internal error (setting up a filter)");
        goto out;
    }
    /* Every option we pass must be one the filter knows: a leftover is our
     * bug, and silently ignoring it could drop e.g. expansion=none. */
    if (av_dict_count(opts) > 0) {
        kd_log(KD_LOG_ERROR, "media: the %s filter has no option %s", name,
               av_dict_get(opts, "", NULL, AV_DICT_IGNORE_SUFFIX)->key);
        kd_media_seterr(err, "internal error (an unknown filter option)");
        rc = KD_EINTERNAL;
        goto out;
    }
    *out = f;
out:
    /* A node that failed stays in the graph, which frees it. */
    av_dict_free(&opts);
    return rc;
}

enum kd_err
kd_media_graph_link(struct kd_media_pad from, AVFilterContext *to, unsigned in,
                    char err[KD_MEDIA_ERRLEN])
{
    int ret;

    if ((ret = avfilter_link(from.f, from.idx, to, in)) < 0)
        return kd_media_averr(NULL, ret, KD_EINTERNAL, err, "internal error (linking filters)");
    return KD_OK;
}

enum kd_err
kd_media_graph_append(struct kd_media_graph *gr, const char *name, const char *const *kv,
                      struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN])
{
    AVFilterContext *f = NULL;
    enum kd_err rc;

    if ((rc = kd_media_graph_node(gr, name, kv, &f, err)) != KD_OK)
        return rc;
    return link_tail(tail, f, err);
}

/* Printers for option values: numbers only, in the C locale's format. */
static void
fmt_seconds(char buf[32], double s)
{
    (void)snprintf(buf, 32, "%.6f", s);
}

static void
fmt_int(char buf[32], long long v)
{
    (void)snprintf(buf, 32, "%lld", v);
}

void
kd_media_display_size(const AVStream *st, int *w, int *h)
{
    const AVCodecParameters *par = st->codecpar;
    AVRational sar = par->sample_aspect_ratio;
    int64_t dw = par->width;
    int rot = kd_media_stream_rotation(st);

    if (sar.num <= 0 || sar.den <= 0)
        sar = st->sample_aspect_ratio;
    /* A pixel shape outside 1:4..4:1 is nonsense from the file: ignore it. */
    if (sar.num > 0 && sar.den > 0 && sar.num != sar.den && av_q2d(sar) >= 0.25 &&
        av_q2d(sar) <= 4.0)
        dw = av_rescale(dw, sar.num, sar.den);
    if (rot == 90 || rot == 270) {
        *w = par->height;
        *h = (int)dw;
    } else {
        *w = (int)dw;
        *h = par->height;
    }
}

/* Turns the picture upright as the file's display matrix asks. */
static enum kd_err
add_rotation(struct kd_media_graph *gr, int rot, struct kd_media_pad *tail,
             char err[KD_MEDIA_ERRLEN])
{
    enum kd_err rc = KD_OK;

    if (rot == 90)
        rc = kd_media_graph_append(gr, "transpose", (const char *[]){"dir", "clock", NULL}, tail,
                                   err);
    else if (rot == 270)
        rc = kd_media_graph_append(gr, "transpose", (const char *[]){"dir", "cclock", NULL}, tail,
                                   err);
    else if (rot == 180) {
        if ((rc = kd_media_graph_append(gr, "hflip", NULL, tail, err)) == KD_OK)
            rc = kd_media_graph_append(gr, "vflip", NULL, tail, err);
    }
    return rc;
}

/* Brings the picture to vt's size: square pixels first, then the fit. */
static enum kd_err
add_fit(struct kd_media_graph *gr, const AVStream *st, const struct kd_media_vtarget *vt,
        struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN])
{
    AVRational sar = st->codecpar->sample_aspect_ratio;
    char w[32], h[32];
    enum kd_err rc;

    fmt_int(w, vt->width);
    fmt_int(h, vt->height);
    if (sar.num > 0 && sar.den > 0 && sar.num != sar.den && av_q2d(sar) >= 0.25 &&
        av_q2d(sar) <= 4.0) {
        rc = kd_media_graph_append(
            gr, "scale", (const char *[]){"w", "trunc(iw*sar/2)*2", "h", "ih", NULL}, tail, err);
        if (rc != KD_OK)
            return rc;
    }
    if ((rc = kd_media_graph_append(gr, "setsar", (const char *[]){"sar", "1", NULL}, tail, err)) !=
        KD_OK)
        return rc;
    switch (vt->fit) {
    case KD_FIT_COVER:
        rc = kd_media_graph_append(
            gr, "scale",
            (const char *[]){"w", w, "h", h, "force_original_aspect_ratio", "increase", NULL}, tail,
            err);
        if (rc == KD_OK)
            rc = kd_media_graph_append(gr, "crop", (const char *[]){"w", w, "h", h, NULL}, tail,
                                       err);
        break;
    case KD_FIT_STRETCH:
        rc = kd_media_graph_append(gr, "scale", (const char *[]){"w", w, "h", h, NULL}, tail, err);
        break;
    case KD_FIT_CONTAIN:
    default:
        rc = kd_media_graph_append(gr, "scale",
                                   (const char *[]){"w", w, "h", h, "force_original_aspect_ratio",
                                                    "decrease", "force_divisible_by", "2", NULL},
                                   tail, err);
        if (rc == KD_OK)
            rc = kd_media_graph_append(gr, "pad",
                                       (const char *[]){"w", w, "h", h, "x", "(ow-iw)/2", "y",
                                                        "(oh-ih)/2", "color", "black", NULL},
                                       tail, err);
        break;
    }
    if (rc != KD_OK)
        return rc;
    return kd_media_graph_append(gr, "setsar", (const char *[]){"sar", "1", NULL}, tail, err);
}

/* trim + timestamps from 0: the slice becomes the output's timeline. The
 * shift is the slice's start, not the first kept frame's, so that picture
 * and sound keep their sync. */
static enum kd_err
add_span(struct kd_media_graph *gr, bool is_video, const struct kd_media_span *span,
         struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN])
{
    char start[32], end[32], expr[64];
    enum kd_err rc;

    fmt_seconds(start, span->start_s);
    fmt_seconds(end, span->end_s);
    (void)snprintf(expr, sizeof(expr), "PTS-%.6f/TB", span->start_s);
    rc = kd_media_graph_append(gr, is_video ? "trim" : "atrim",
                               isnan(span->end_s)
                                   ? (const char *[]){"start", start, NULL}
                                   : (const char *[]){"start", start, "end", end, NULL},
                               tail, err);
    if (rc != KD_OK)
        return rc;
    return kd_media_graph_append(gr, is_video ? "setpts" : "asetpts",
                                 (const char *[]){"expr", expr, NULL}, tail, err);
}

/* A buffer source for a picture stream, from its parameters. */
static enum kd_err
video_source(struct kd_media_graph *gr, const AVStream *st, AVFilterContext **src,
             struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN])
{
    const AVCodecParameters *cp = st->codecpar;
    AVBufferSrcParameters *par = NULL;
    AVFilterContext *f = NULL;
    enum kd_err rc;
    int ret;

    if ((rc = alloc_node(gr, "buffer", &f, err)) != KD_OK)
        goto out;
    if ((par = av_buffersrc_parameters_alloc()) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    par->format = cp->format;
    par->width = cp->width;
    par->height = cp->height;
    par->time_base = st->time_base;
    par->sample_aspect_ratio = cp->sample_aspect_ratio;
    par->frame_rate = av_guess_frame_rate(NULL, (AVStream *)st, NULL);
    if ((ret = av_buffersrc_parameters_set(f, par)) < 0 ||
        (ret = avfilter_init_dict(f, NULL)) < 0) {
        rc = kd_media_averr(NULL, ret, KD_EINTERNAL, err, "internal error (video source)");
        goto out;
    }
    tail->f = NULL;
    if ((rc = link_tail(tail, f, err)) != KD_OK)
        goto out;
    *src = f;
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    av_free(par);
    return rc;
}

/* An abuffer source for a sound stream. Decoders may leave the channel
 * order unspecified; frames are given the same default layout before they
 * are pushed (media_edit.c). */
static enum kd_err
audio_source(struct kd_media_graph *gr, const AVStream *st, AVFilterContext **src,
             struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN])
{
    const AVCodecParameters *cp = st->codecpar;
    AVBufferSrcParameters *par = NULL;
    AVFilterContext *f = NULL;
    enum kd_err rc;
    int ret;

    if ((rc = alloc_node(gr, "abuffer", &f, err)) != KD_OK)
        goto out;
    if ((par = av_buffersrc_parameters_alloc()) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    par->format = cp->format;
    par->sample_rate = cp->sample_rate;
    par->time_base = st->time_base;
    if (cp->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
        av_channel_layout_default(&par->ch_layout, cp->ch_layout.nb_channels);
    else if (av_channel_layout_copy(&par->ch_layout, &cp->ch_layout) < 0) {
        rc = KD_ENOMEM;
        goto out;
    }
    if ((ret = av_buffersrc_parameters_set(f, par)) < 0 ||
        (ret = avfilter_init_dict(f, NULL)) < 0) {
        rc = kd_media_averr(NULL, ret, KD_EINTERNAL, err, "internal error (audio source)");
        goto out;
    }
    tail->f = NULL;
    if ((rc = link_tail(tail, f, err)) != KD_OK)
        goto out;
    *src = f;
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    if (par != NULL)
        av_channel_layout_uninit(&par->ch_layout);
    av_free(par);
    return rc;
}

static void
fmt_rate(char buf[64], AVRational r)
{
    (void)snprintf(buf, 64, "%d/%d", r.num, r.den);
}

enum kd_err
kd_media_graph_input_video(struct kd_media_graph *gr, const AVStream *st,
                           const struct kd_media_span *span, const struct kd_media_vtarget *vt,
                           AVFilterContext **src, struct kd_media_pad *tail,
                           char err[KD_MEDIA_ERRLEN])
{
    struct kd_media_pad t = {NULL, 0};
    AVFilterContext *f = NULL;
    char rate[64];
    enum kd_err rc;

    if ((rc = video_source(gr, st, &f, &t, err)) != KD_OK)
        return rc;
    if ((rc = add_span(gr, true, span, &t, err)) != KD_OK)
        return rc;
    if (vt->fps.num > 0 && vt->fps.den > 0) {
        fmt_rate(rate, vt->fps);
        if ((rc = kd_media_graph_append(gr, "fps", (const char *[]){"fps", rate, NULL}, &t, err)) !=
            KD_OK)
            return rc;
    }
    if ((rc = add_rotation(gr, kd_media_stream_rotation(st), &t, err)) != KD_OK)
        return rc;
    if ((rc = add_fit(gr, st, vt, &t, err)) != KD_OK)
        return rc;
    rc = kd_media_graph_append(gr, "format",
                               (const char *[]){"pix_fmts", av_get_pix_fmt_name(vt->pix_fmt), NULL},
                               &t, err);
    if (rc != KD_OK)
        return rc;
    *src = f;
    *tail = t;
    return KD_OK;
}

enum kd_err
kd_media_graph_input_still(struct kd_media_graph *gr, const AVStream *st, double dur_s,
                           const struct kd_media_vtarget *vt, AVFilterContext **src,
                           struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN])
{
    struct kd_media_pad t = {NULL, 0};
    AVFilterContext *f = NULL;
    AVRational fps = vt->fps.num > 0 && vt->fps.den > 0 ? vt->fps : (AVRational){25, 1};
    char rate[64], dur[32];
    enum kd_err rc;

    if ((rc = video_source(gr, st, &f, &t, err)) != KD_OK)
        return rc;
    fmt_rate(rate, fps);
    fmt_seconds(dur, dur_s);
    /* The frame starts the timeline, tpad repeats it for the length (at
     * the source's rate), fps brings that to the output's rate, and trim
     * cuts what a rounding left over. */
    if ((rc = kd_media_graph_append(gr, "setpts", (const char *[]){"expr", "0", NULL}, &t, err)) !=
            KD_OK ||
        (rc = kd_media_graph_append(
             gr, "tpad", (const char *[]){"stop_mode", "clone", "stop_duration", dur, NULL}, &t,
             err)) != KD_OK ||
        (rc = kd_media_graph_append(gr, "fps", (const char *[]){"fps", rate, NULL}, &t, err)) !=
            KD_OK ||
        (rc = kd_media_graph_append(gr, "trim", (const char *[]){"duration", dur, NULL}, &t,
                                    err)) != KD_OK)
        return rc;
    if ((rc = add_rotation(gr, kd_media_stream_rotation(st), &t, err)) != KD_OK)
        return rc;
    if ((rc = add_fit(gr, st, vt, &t, err)) != KD_OK)
        return rc;
    rc = kd_media_graph_append(gr, "format",
                               (const char *[]){"pix_fmts", av_get_pix_fmt_name(vt->pix_fmt), NULL},
                               &t, err);
    if (rc != KD_OK)
        return rc;
    *src = f;
    *tail = t;
    return KD_OK;
}

enum kd_err
kd_media_graph_aformat(struct kd_media_graph *gr, const struct kd_media_atarget *at,
                       struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN])
{
    char rate[32], layout[128];

    fmt_int(rate, at->sample_rate);
    if (av_channel_layout_describe(&at->ch_layout, layout, sizeof(layout)) < 0) {
        kd_media_seterr(err, "internal error (channel layout)");
        return KD_EINTERNAL;
    }
    return kd_media_graph_append(
        gr, "aformat",
        (const char *[]){"sample_fmts", av_get_sample_fmt_name(at->sample_fmt), "sample_rates",
                         rate, "channel_layouts", layout, NULL},
        tail, err);
}

enum kd_err
kd_media_graph_input_audio(struct kd_media_graph *gr, const AVStream *st,
                           const struct kd_media_span *span, const struct kd_media_atarget *at,
                           AVFilterContext **src, struct kd_media_pad *tail,
                           char err[KD_MEDIA_ERRLEN])
{
    struct kd_media_pad t = {NULL, 0};
    AVFilterContext *f = NULL;
    enum kd_err rc;

    if ((rc = audio_source(gr, st, &f, &t, err)) != KD_OK)
        return rc;
    if (span != NULL && (rc = add_span(gr, false, span, &t, err)) != KD_OK)
        return rc;
    if ((rc = kd_media_graph_append(gr, "aresample", NULL, &t, err)) != KD_OK)
        return rc;
    if ((rc = kd_media_graph_aformat(gr, at, &t, err)) != KD_OK)
        return rc;
    *src = f;
    *tail = t;
    return KD_OK;
}

enum kd_err
kd_media_graph_black(struct kd_media_graph *gr, const struct kd_media_vtarget *vt, double dur_s,
                     struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN])
{
    struct kd_media_pad t = {NULL, 0};
    char size[64], rate[64], dur[32];
    enum kd_err rc;

    (void)snprintf(size, sizeof(size), "%dx%d", vt->width, vt->height);
    fmt_rate(rate, vt->fps);
    fmt_seconds(dur, dur_s);
    if ((rc = kd_media_graph_append(
             gr, "color",
             (const char *[]){"color", "black", "size", size, "rate", rate, "duration", dur, NULL},
             &t, err)) != KD_OK)
        return rc;
    if ((rc = kd_media_graph_append(
             gr, "format", (const char *[]){"pix_fmts", av_get_pix_fmt_name(vt->pix_fmt), NULL}, &t,
             err)) != KD_OK)
        return rc;
    *tail = t;
    return KD_OK;
}

enum kd_err
kd_media_graph_silence(struct kd_media_graph *gr, const struct kd_media_atarget *at, double dur_s,
                       struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN])
{
    struct kd_media_pad t = {NULL, 0};
    char rate[32], layout[128], dur[32];
    enum kd_err rc;

    fmt_int(rate, at->sample_rate);
    fmt_seconds(dur, dur_s);
    if (av_channel_layout_describe(&at->ch_layout, layout, sizeof(layout)) < 0) {
        kd_media_seterr(err, "internal error (channel layout)");
        return KD_EINTERNAL;
    }
    if ((rc = kd_media_graph_append(
             gr, "anullsrc", (const char *[]){"channel_layout", layout, "sample_rate", rate, NULL},
             &t, err)) != KD_OK)
        return rc;
    if ((rc = kd_media_graph_append(gr, "atrim", (const char *[]){"duration", dur, NULL}, &t,
                                    err)) != KD_OK)
        return rc;
    if ((rc = kd_media_graph_aformat(gr, at, &t, err)) != KD_OK)
        return rc;
    *tail = t;
    return KD_OK;
}

/* Chains of two-input fades: each joins what came before with the next
 * input. xfade needs the offset of the fade on its first input's timeline;
 * acrossfade fades the end of its first input into the next by itself. */
static enum kd_err
join_fades(struct kd_media_graph *gr, size_t n, struct kd_media_pad *tails, bool is_video,
           const double *dur_s, double trans_s, char err[KD_MEDIA_ERRLEN])
{
    struct kd_media_pad cur = tails[0];
    char d[32], off[32];
    double at = 0;
    enum kd_err rc;

    fmt_seconds(d, trans_s);
    for (size_t k = 1; k < n; k++) {
        AVFilterContext *f = NULL;

        at += dur_s[k - 1] - trans_s;
        fmt_seconds(off, at);
        if (is_video)
            rc = kd_media_graph_node(
                gr, "xfade",
                (const char *[]){"transition", "fade", "duration", d, "offset", off, NULL}, &f,
                err);
        else
            rc = kd_media_graph_node(gr, "acrossfade", (const char *[]){"duration", d, NULL}, &f,
                                     err);
        if (rc != KD_OK)
            return rc;
        if ((rc = kd_media_graph_link(cur, f, 0, err)) != KD_OK ||
            (rc = kd_media_graph_link(tails[k], f, 1, err)) != KD_OK)
            return rc;
        cur = (struct kd_media_pad){f, 0};
    }
    tails[0] = cur;
    return KD_OK;
}

enum kd_err
kd_media_graph_join(struct kd_media_graph *gr, size_t n, struct kd_media_pad *vtails,
                    struct kd_media_pad *atails, const double *dur_s, double trans_s,
                    AVRational fps, int sample_rate, char err[KD_MEDIA_ERRLEN])
{
    AVFilterContext *f = NULL;
    char num[32], rate[64], tb[64];
    unsigned pad = 0;
    enum kd_err rc;

    if (n <= 1 || (vtails == NULL && atails == NULL))
        return KD_OK; /* nothing to join (a replacing track into sound only) */
    if (trans_s > 0) {
        if (vtails != NULL && (rc = join_fades(gr, n, vtails, true, dur_s, trans_s, err)) != KD_OK)
            return rc;
        if (atails != NULL && (rc = join_fades(gr, n, atails, false, dur_s, trans_s, err)) != KD_OK)
            return rc;
        return KD_OK;
    }
    fmt_int(num, (long long)n);
    if ((rc = kd_media_graph_node(gr, "concat",
                                  (const char *[]){"n", num, "v", vtails != NULL ? "1" : "0", "a",
                                                   atails != NULL ? "1" : "0", NULL},
                                  &f, err)) != KD_OK)
        return rc;
    /* Segments in order, each with its picture then its sound. */
    for (size_t k = 0; k < n; k++) {
        if (vtails != NULL && (rc = kd_media_graph_link(vtails[k], f, pad++, err)) != KD_OK)
            return rc;
        if (atails != NULL && (rc = kd_media_graph_link(atails[k], f, pad++, err)) != KD_OK)
            return rc;
    }
    /* concat counts time in microseconds: back to the output's units. */
    if (vtails != NULL) {
        vtails[0] = (struct kd_media_pad){f, 0};
        fmt_rate(rate, fps);
        if ((rc = kd_media_graph_append(gr, "fps", (const char *[]){"fps", rate, NULL}, &vtails[0],
                                        err)) != KD_OK)
            return rc;
    }
    if (atails != NULL) {
        atails[0] = (struct kd_media_pad){f, vtails != NULL ? 1 : 0};
        (void)snprintf(tb, sizeof(tb), "1/%d", sample_rate);
        if ((rc = kd_media_graph_append(gr, "asettb", (const char *[]){"expr", tb, NULL},
                                        &atails[0], err)) != KD_OK)
            return rc;
    }
    return KD_OK;
}

/* x and y expressions of a layer's position (W, H: the picture; w, h: the
 * layer). */
static void
overlay_xy(enum kd_position pos, int margin, char x[64], char y[64])
{
    switch (pos) {
    case KD_POS_TOP_LEFT:
    case KD_POS_LEFT:
    case KD_POS_BOTTOM_LEFT:
        (void)snprintf(x, 64, "%d", margin);
        break;
    case KD_POS_TOP_RIGHT:
    case KD_POS_RIGHT:
    case KD_POS_BOTTOM_RIGHT:
        (void)snprintf(x, 64, "W-w-%d", margin);
        break;
    default:
        (void)snprintf(x, 64, "(W-w)/2");
        break;
    }
    switch (pos) {
    case KD_POS_TOP_LEFT:
    case KD_POS_TOP:
    case KD_POS_TOP_RIGHT:
        (void)snprintf(y, 64, "%d", margin);
        break;
    case KD_POS_BOTTOM_LEFT:
    case KD_POS_BOTTOM:
    case KD_POS_BOTTOM_RIGHT:
        (void)snprintf(y, 64, "H-h-%d", margin);
        break;
    default:
        (void)snprintf(y, 64, "(H-h)/2");
        break;
    }
}

/* The window [start, end) on the output timeline, as an enable expression;
 * false when the layer is shown all along. */
static bool
window_expr(const struct kd_layer *layer, char buf[96])
{
    double start = layer->start_s > 0 ? layer->start_s : 0.0;

    if (!isnan(layer->end_s)) {
        (void)snprintf(buf, 96, "gte(t,%.6f)*lt(t,%.6f)", start, layer->end_s);
        return true;
    }
    if (start > 0) {
        (void)snprintf(buf, 96, "gte(t,%.6f)", start);
        return true;
    }
    return false;
}

static void
fmt_color(char buf[32], struct kd_rgba c)
{
    (void)snprintf(buf, 32, "0x%02X%02X%02X%02X", c.r, c.g, c.b, c.a);
}

enum kd_err
kd_media_graph_overlay(struct kd_media_graph *gr, const struct kd_layer *layer, const AVStream *st,
                       int out_w, double total_s, AVFilterContext **src, struct kd_media_pad *tail,
                       char err[KD_MEDIA_ERRLEN])
{
    struct kd_media_pad t = {NULL, 0};
    AVFilterContext *ov = NULL, *f = NULL;
    bool is_image = layer->type == KD_LAYER_IMAGE;
    double frac = layer->width > 0 ? layer->width : is_image ? 0.15 : 0.3;
    double start = layer->start_s > 0 ? layer->start_s : 0.0;
    double end = layer->end_s;
    int lw = (int)lround(out_w * frac) & ~1;
    int margin = layer->margin >= 0 ? layer->margin : 16;
    char w[32], expr[96], x[64], y[64], enable[96], num[32], color[32];
    const char *kv[16];
    size_t n = 0;
    enum kd_err rc;

    if (lw < 2)
        lw = 2;
    if ((rc = video_source(gr, st, &f, &t, err)) != KD_OK)
        return rc;
    if ((rc = add_rotation(gr, kd_media_stream_rotation(st), &t, err)) != KD_OK)
        return rc;
    /* Only the part of the layer its window can show is decoded on. The
     * window ends with the output too: overlay runs on while its layer
     * has frames, so a long layer would make the output longer. */
    if (!isnan(total_s) && (isnan(end) || end > total_s))
        end = total_s;
    if (!isnan(end)) {
        fmt_seconds(num, end > start ? end - start : 0.0);
        if ((rc = kd_media_graph_append(gr, "trim", (const char *[]){"end", num, NULL}, &t, err)) !=
            KD_OK)
            return rc;
    }
    (void)snprintf(expr, sizeof(expr), "PTS-STARTPTS+%.6f/TB", start);
    if ((rc = kd_media_graph_append(gr, "setpts", (const char *[]){"expr", expr, NULL}, &t, err)) !=
        KD_OK)
        return rc;
    fmt_int(w, lw);
    if ((rc = kd_media_graph_append(gr, "scale", (const char *[]){"w", w, "h", "-2", NULL}, &t,
                                    err)) != KD_OK)
        return rc;
    if ((rc = kd_media_graph_append(gr, "setsar", (const char *[]){"sar", "1", NULL}, &t, err)) !=
        KD_OK)
        return rc;
    /* A format with alpha: scale converts once, and the image's
     * transparency, a border's alpha and the opacity all live in it. */
    if ((rc = kd_media_graph_append(
             gr, "format", (const char *[]){"pix_fmts", is_image ? "rgba" : "yuva420p", NULL}, &t,
             err)) != KD_OK)
        return rc;
    if (layer->type == KD_LAYER_VIDEO && layer->has_border && layer->border_width > 0) {
        char pw[64], ph[64], off[32];

        (void)snprintf(pw, sizeof(pw), "iw+%d", 2 * layer->border_width);
        (void)snprintf(ph, sizeof(ph), "ih+%d", 2 * layer->border_width);
        fmt_int(off, layer->border_width);
        fmt_color(color, layer->border_color);
        if ((rc = kd_media_graph_append(
                 gr, "pad",
                 (const char *[]){"w", pw, "h", ph, "x", off, "y", off, "color", color, NULL}, &t,
                 err)) != KD_OK)
            return rc;
    }
    if (is_image && layer->opacity < 1.0) {
        (void)snprintf(num, sizeof(num), "%.4f", layer->opacity > 0 ? layer->opacity : 0.0);
        if ((rc = kd_media_graph_append(gr, "colorchannelmixer", (const char *[]){"aa", num, NULL},
                                        &t, err)) != KD_OK)
            return rc;
    }
    overlay_xy(layer->position, margin, x, y);
    kv[n++] = "x";
    kv[n++] = x;
    kv[n++] = "y";
    kv[n++] = y;
    /* A layer shorter than its window (an image is one frame) holds its
     * last frame to the window's end. */
    kv[n++] = "eof_action";
    kv[n++] = "repeat";
    if (window_expr(layer, enable)) {
        kv[n++] = "enable";
        kv[n++] = enable;
    }
    kv[n] = NULL;
    if ((rc = kd_media_graph_node(gr, "overlay", kv, &ov, err)) != KD_OK)
        return rc;
    if ((rc = kd_media_graph_link(*tail, ov, 0, err)) != KD_OK ||
        (rc = kd_media_graph_link(t, ov, 1, err)) != KD_OK)
        return rc;
    *src = f;
    *tail = (struct kd_media_pad){ov, 0};
    return KD_OK;
}

enum kd_err
kd_media_graph_audio_track(struct kd_media_graph *gr, const struct kd_audio *audio,
                           const AVStream *st, const struct kd_media_atarget *at, double total_s,
                           struct kd_media_pad *base, AVFilterContext **src,
                           struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN])
{
    struct kd_media_pad t = {NULL, 0};
    AVFilterContext *mix = NULL, *f = NULL;
    bool is_mix = base != NULL && base->f != NULL;
    char num[32], end[32], st_s[32];
    enum kd_err rc;

    if ((rc = kd_media_graph_input_audio(gr, st, NULL, at, &f, &t, err)) != KD_OK)
        return rc;
    if (audio->volume != 1.0) {
        (void)snprintf(num, sizeof(num), "%.6f", audio->volume);
        if ((rc = kd_media_graph_append(gr, "volume", (const char *[]){"volume", num, NULL}, &t,
                                        err)) != KD_OK)
            return rc;
    }
    if (audio->offset_s > 0) {
        (void)snprintf(num, sizeof(num), "%.3f", audio->offset_s * 1000.0);
        if ((rc = kd_media_graph_append(gr, "adelay",
                                        (const char *[]){"delays", num, "all", "1", NULL}, &t,
                                        err)) != KD_OK)
            return rc;
    }
    /* From here the track's timeline is the output's, counted in samples. */
    if ((rc = kd_media_graph_append(gr, "asetpts", (const char *[]){"expr", "N/SR/TB", NULL}, &t,
                                    err)) != KD_OK)
        return rc;
    fmt_seconds(end, total_s);
    /* Alone, the track fills the whole output, silent where it has ended. */
    if (!is_mix && (rc = kd_media_graph_append(gr, "apad", (const char *[]){"whole_dur", end, NULL},
                                               &t, err)) != KD_OK)
        return rc;
    if ((rc = kd_media_graph_append(gr, "atrim", (const char *[]){"end", end, NULL}, &t, err)) !=
        KD_OK)
        return rc;
    if (audio->fade_out_s > 0) {
        fmt_seconds(st_s, total_s > audio->fade_out_s ? total_s - audio->fade_out_s : 0.0);
        fmt_seconds(num, audio->fade_out_s < total_s ? audio->fade_out_s : total_s);
        if ((rc = kd_media_graph_append(
                 gr, "afade",
                 (const char *[]){"type", "out", "start_time", st_s, "duration", num, NULL}, &t,
                 err)) != KD_OK)
            return rc;
    }
    if (is_mix) {
        struct kd_media_pad b = *base;

        if (audio->original_volume != 1.0) {
            (void)snprintf(num, sizeof(num), "%.6f", audio->original_volume);
            if ((rc = kd_media_graph_append(gr, "volume", (const char *[]){"volume", num, NULL}, &b,
                                            err)) != KD_OK)
                return rc;
        }
        /* Plain sums: amix would otherwise halve both. The original sets
         * the length. */
        if ((rc = kd_media_graph_node(
                 gr, "amix",
                 (const char *[]){"inputs", "2", "duration", "first", "normalize", "0", NULL}, &mix,
                 err)) != KD_OK)
            return rc;
        if ((rc = kd_media_graph_link(b, mix, 0, err)) != KD_OK ||
            (rc = kd_media_graph_link(t, mix, 1, err)) != KD_OK)
            return rc;
        t = (struct kd_media_pad){mix, 0};
    }
    if ((rc = kd_media_graph_aformat(gr, at, &t, err)) != KD_OK)
        return rc;
    *src = f;
    *tail = t;
    return KD_OK;
}

/* A fontconfig pattern naming only a family: the characters fontconfig
 * treats as syntax (size, properties, lists) are escaped, so that a font
 * name like "X:file=/etc/passwd" stays a (missing) family name. */
static enum kd_err
font_pattern(const char *family, char out[FONT_FAMILY_MAX * 2 + 1], char err[KD_MEDIA_ERRLEN])
{
    size_t len = strlen(family), o = 0;

    if (len == 0 || len > FONT_FAMILY_MAX || !kd_utf8_valid(family, len)) {
        kd_media_seterr(err, "the font name must be 1 to %d bytes of UTF-8", FONT_FAMILY_MAX);
        return KD_EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)family[i];

        if (c < 0x20 || c == 0x7f) {
            kd_media_seterr(err, "the font name holds a control character");
            return KD_EINVAL;
        }
        if (c == '\\' || c == '-' || c == ':' || c == ',' || c == '=')
            out[o++] = '\\';
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return KD_OK;
}

/* drawtext breaks a line at \r as well as at \n, so "\r\n" (Windows) drew
 * an empty line between every two: every line ending becomes one \n.
 * Returns a copy the caller frees, or NULL without memory. */
static char *
text_lines(const char *text, size_t len)
{
    char *out = malloc(len + 1);
    size_t o = 0;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '\r') {
            out[o++] = text[i];
            continue;
        }
        out[o++] = '\n';
        if (i + 1 < len && text[i + 1] == '\n')
            i++;
    }
    out[o] = '\0';
    return out;
}

enum kd_err
kd_media_graph_text(struct kd_media_graph *gr, const struct kd_layer *layer,
                    const struct kd_limits *lim, struct kd_media_pad *tail,
                    char err[KD_MEDIA_ERRLEN])
{
    const char *kv[32];
    char *text = NULL;
    size_t n = 0, text_len;
    char font[FONT_FAMILY_MAX * 2 + 1], size[32], color[32], boxcolor[32], pad[32];
    char x[64], y[64], enable[96];
    int fsize = layer->size > 0 ? layer->size : 48;
    int margin = layer->margin >= 0 ? layer->margin : 24;
    int box_pad = 0;
    enum kd_err rc;

    if (layer->text == NULL || (text_len = strlen(layer->text)) == 0 ||
        (int64_t)text_len > lim->max_text_bytes || !kd_utf8_valid(layer->text, text_len)) {
        kd_media_seterr(err, "a text layer needs 1 to %lld bytes of UTF-8 text",
                        (long long)lim->max_text_bytes);
        return KD_EINVAL;
    }
    if ((rc = font_pattern(layer->font != NULL ? layer->font : "DejaVu Sans", font, err)) != KD_OK)
        return rc;
    if ((text = text_lines(layer->text, text_len)) == NULL) {
        kd_media_seterr(err, "out of memory");
        return KD_ENOMEM;
    }
    fmt_int(size, fsize);
    fmt_color(color, layer->color);
    kv[n++] = "text";
    kv[n++] = text; /* a value: drawn as given */
    kv[n++] = "expansion";
    kv[n++] = "none"; /* "%{...}" stays literal */
    kv[n++] = "font";
    kv[n++] = font;
    kv[n++] = "fontsize";
    kv[n++] = size;
    kv[n++] = "fontcolor";
    kv[n++] = color;
    kv[n++] = "fix_bounds";
    kv[n++] = "1"; /* a long line stays inside the picture */
    if (layer->has_background) {
        box_pad = fsize / TEXT_BOX_PAD_DIV > 2 ? fsize / TEXT_BOX_PAD_DIV : 2;
        fmt_color(boxcolor, layer->background);
        fmt_int(pad, box_pad);
        kv[n++] = "box";
        kv[n++] = "1";
        kv[n++] = "boxcolor";
        kv[n++] = boxcolor;
        kv[n++] = "boxborderw";
        kv[n++] = pad;
    }
    /* The margin is measured to the edge of what is drawn, box included. */
    margin += box_pad;
    switch (layer->position) {
    case KD_POS_TOP_LEFT:
    case KD_POS_LEFT:
    case KD_POS_BOTTOM_LEFT:
        (void)snprintf(x, sizeof(x), "%d", margin);
        break;
    case KD_POS_TOP_RIGHT:
    case KD_POS_RIGHT:
    case KD_POS_BOTTOM_RIGHT:
        (void)snprintf(x, sizeof(x), "w-text_w-%d", margin);
        break;
    default:
        (void)snprintf(x, sizeof(x), "(w-text_w)/2");
        break;
    }
    switch (layer->position) {
    case KD_POS_TOP_LEFT:
    case KD_POS_TOP:
    case KD_POS_TOP_RIGHT:
        (void)snprintf(y, sizeof(y), "%d", margin);
        break;
    case KD_POS_BOTTOM_LEFT:
    case KD_POS_BOTTOM:
    case KD_POS_BOTTOM_RIGHT:
        (void)snprintf(y, sizeof(y), "h-text_h-%d", margin);
        break;
    default:
        (void)snprintf(y, sizeof(y), "(h-text_h)/2");
        break;
    }
    kv[n++] = "x";
    kv[n++] = x;
    kv[n++] = "y";
    kv[n++] = y;
    /* The window on the output timeline; [start, end). */
    if (!isnan(layer->end_s)) {
        (void)snprintf(enable, sizeof(enable), "gte(t,%.6f)*lt(t,%.6f)",
                       layer->start_s > 0 ? layer->start_s : 0.0, layer->end_s);
        kv[n++] = "enable";
        kv[n++] = enable;
    } else if (layer->start_s > 0) {
        (void)snprintf(enable, sizeof(enable), "gte(t,%.6f)", layer->start_s);
        kv[n++] = "enable";
        kv[n++] = enable;
    }
    kv[n] = NULL;
    rc = kd_media_graph_append(gr, "drawtext", kv, tail, err);
    free(text); /* the node holds its own copy */
    return rc;
}

enum kd_err
kd_media_graph_sink(struct kd_media_graph *gr, bool is_video, struct kd_media_pad *tail,
                    AVFilterContext **sink, char err[KD_MEDIA_ERRLEN])
{
    enum kd_err rc;

    if ((rc = kd_media_graph_append(gr, is_video ? "buffersink" : "abuffersink", NULL, tail,
                                    err)) != KD_OK)
        return rc;
    *sink = tail->f;
    tail->f = NULL;
    return KD_OK;
}

enum kd_err
kd_media_graph_config(struct kd_media_graph *gr, char err[KD_MEDIA_ERRLEN])
{
    int ret;

    if ((ret = avfilter_graph_config(gr->g, NULL)) < 0)
        return kd_media_averr(NULL, ret, KD_EINTERNAL, err,
                              "internal error (configuring the filter graph)");
    return KD_OK;
}
