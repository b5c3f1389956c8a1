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
#include <string.h>

#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>

#include "log.h"
#include "util.h"

/* Box padding of a text background, as a share of the font size. */
#define TEXT_BOX_PAD_DIV 4
#define FONT_FAMILY_MAX 128

enum kd_err
kd_media_graph_init(struct kd_media_graph *gr)
{
    memset(gr, 0, sizeof(*gr));
    if ((gr->g = avfilter_graph_alloc()) == NULL)
        return KD_ENOMEM;
    /* Filters run in the calling thread: the encoders use the cores. */
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
kd_media_graph_append(struct kd_media_graph *gr, const char *name, const char *const *kv,
                      struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN])
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
    rc = link_tail(tail, f, err);
out:
    /* A node that failed stays in the graph, which frees it. */
    av_dict_free(&opts);
    return rc;
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
kd_media_display_size(const AVStream *st, const AVCodecContext *dec, int *w, int *h)
{
    AVRational sar = dec->sample_aspect_ratio;
    int64_t dw = dec->width;
    int rot = kd_media_stream_rotation(st);

    if (sar.num <= 0 || sar.den <= 0)
        sar = st->sample_aspect_ratio;
    /* A pixel shape outside 1:4..4:1 is nonsense from the file: ignore it. */
    if (sar.num > 0 && sar.den > 0 && sar.num != sar.den && av_q2d(sar) >= 0.25 &&
        av_q2d(sar) <= 4.0)
        dw = av_rescale(dw, sar.num, sar.den);
    if (rot == 90 || rot == 270) {
        *w = dec->height;
        *h = (int)dw;
    } else {
        *w = (int)dw;
        *h = dec->height;
    }
}

/* Turns the picture upright as the file's display matrix asks. */
static enum kd_err
add_rotation(struct kd_media_graph *gr, int rot, struct kd_media_pad *tail,
             char err[KD_MEDIA_ERRLEN])
{
    enum kd_err rc = KD_OK;

    if (rot == 90)
        rc = kd_media_graph_append(gr, "transpose", (const char *[]){ "dir", "clock", NULL },
                                   tail, err);
    else if (rot == 270)
        rc = kd_media_graph_append(gr, "transpose", (const char *[]){ "dir", "cclock", NULL },
                                   tail, err);
    else if (rot == 180) {
        if ((rc = kd_media_graph_append(gr, "hflip", NULL, tail, err)) == KD_OK)
            rc = kd_media_graph_append(gr, "vflip", NULL, tail, err);
    }
    return rc;
}

/* Brings the picture to vt's size: square pixels first, then the fit. */
static enum kd_err
add_fit(struct kd_media_graph *gr, const AVCodecContext *dec, const struct kd_media_vtarget *vt,
        struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN])
{
    AVRational sar = dec->sample_aspect_ratio;
    char w[32], h[32];
    enum kd_err rc;

    fmt_int(w, vt->width);
    fmt_int(h, vt->height);
    if (sar.num > 0 && sar.den > 0 && sar.num != sar.den && av_q2d(sar) >= 0.25 &&
        av_q2d(sar) <= 4.0) {
        rc = kd_media_graph_append(gr, "scale",
                                   (const char *[]){ "w", "trunc(iw*sar/2)*2", "h", "ih", NULL },
                                   tail, err);
        if (rc != KD_OK)
            return rc;
    }
    if ((rc = kd_media_graph_append(gr, "setsar", (const char *[]){ "sar", "1", NULL }, tail,
                                    err)) != KD_OK)
        return rc;
    switch (vt->fit) {
    case KD_FIT_COVER:
        rc = kd_media_graph_append(gr, "scale",
                                   (const char *[]){ "w", w, "h", h, "force_original_aspect_ratio",
                                                     "increase", NULL },
                                   tail, err);
        if (rc == KD_OK)
            rc = kd_media_graph_append(gr, "crop", (const char *[]){ "w", w, "h", h, NULL }, tail,
                                       err);
        break;
    case KD_FIT_STRETCH:
        rc = kd_media_graph_append(gr, "scale", (const char *[]){ "w", w, "h", h, NULL }, tail,
                                   err);
        break;
    case KD_FIT_CONTAIN:
    default:
        rc = kd_media_graph_append(gr, "scale",
                                   (const char *[]){ "w", w, "h", h, "force_original_aspect_ratio",
                                                     "decrease", "force_divisible_by", "2", NULL },
                                   tail, err);
        if (rc == KD_OK)
            rc = kd_media_graph_append(gr, "pad",
                                       (const char *[]){ "w", w, "h", h, "x", "(ow-iw)/2", "y",
                                                         "(oh-ih)/2", "color", "black", NULL },
                                       tail, err);
        break;
    }
    if (rc != KD_OK)
        return rc;
    return kd_media_graph_append(gr, "setsar", (const char *[]){ "sar", "1", NULL }, tail, err);
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
                                   ? (const char *[]){ "start", start, NULL }
                                   : (const char *[]){ "start", start, "end", end, NULL },
                               tail, err);
    if (rc != KD_OK)
        return rc;
    return kd_media_graph_append(gr, is_video ? "setpts" : "asetpts",
                                 (const char *[]){ "expr", expr, NULL }, tail, err);
}

enum kd_err
kd_media_graph_input_video(struct kd_media_graph *gr, const AVStream *st,
                           const AVCodecContext *dec, const struct kd_media_span *span,
                           const struct kd_media_vtarget *vt, AVFilterContext **src,
                           struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN])
{
    AVBufferSrcParameters *par = NULL;
    AVFilterContext *f = NULL;
    struct kd_media_pad t = { NULL, 0 };
    char rate[64];
    enum kd_err rc;
    int ret;

    if ((rc = alloc_node(gr, "buffer", &f, err)) != KD_OK)
        goto out;
    if ((par = av_buffersrc_parameters_alloc()) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    par->format = dec->pix_fmt;
    par->width = dec->width;
    par->height = dec->height;
    par->time_base = st->time_base;
    par->sample_aspect_ratio = dec->sample_aspect_ratio;
    par->frame_rate = av_guess_frame_rate(NULL, (AVStream *)st, NULL);
    if ((ret = av_buffersrc_parameters_set(f, par)) < 0 ||
        (ret = avfilter_init_dict(f, NULL)) < 0) {
        rc = kd_media_averr(NULL, ret, KD_EINTERNAL, err, "internal error (video source)");
        goto out;
    }
    if ((rc = link_tail(&t, f, err)) != KD_OK)
        goto out;
    if ((rc = add_span(gr, true, span, &t, err)) != KD_OK)
        goto out;
    if (vt->fps.num > 0 && vt->fps.den > 0) {
        (void)snprintf(rate, sizeof(rate), "%d/%d", vt->fps.num, vt->fps.den);
        if ((rc = kd_media_graph_append(gr, "fps", (const char *[]){ "fps", rate, NULL }, &t,
                                        err)) != KD_OK)
            goto out;
    }
    if ((rc = add_rotation(gr, kd_media_stream_rotation(st), &t, err)) != KD_OK)
        goto out;
    if ((rc = add_fit(gr, dec, vt, &t, err)) != KD_OK)
        goto out;
    rc = kd_media_graph_append(gr, "format",
                               (const char *[]){ "pix_fmts", av_get_pix_fmt_name(vt->pix_fmt),
                                                 NULL },
                               &t, err);
    if (rc != KD_OK)
        goto out;
    *src = f;
    *tail = t;
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    av_free(par);
    return rc;
}

enum kd_err
kd_media_graph_input_audio(struct kd_media_graph *gr, const AVStream *st,
                           const AVCodecContext *dec, const struct kd_media_span *span,
                           const struct kd_media_atarget *at, AVFilterContext **src,
                           struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN])
{
    AVBufferSrcParameters *par = NULL;
    AVFilterContext *f = NULL;
    struct kd_media_pad t = { NULL, 0 };
    char rate[32], layout[128];
    enum kd_err rc;
    int ret;

    if ((rc = alloc_node(gr, "abuffer", &f, err)) != KD_OK)
        goto out;
    if ((par = av_buffersrc_parameters_alloc()) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    par->format = dec->sample_fmt;
    par->sample_rate = dec->sample_rate;
    par->time_base = st->time_base;
    /* Decoders may leave the order unspecified; frames are given the same
     * default layout before they are pushed (media_edit.c). */
    if (dec->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
        av_channel_layout_default(&par->ch_layout, dec->ch_layout.nb_channels);
    else if (av_channel_layout_copy(&par->ch_layout, &dec->ch_layout) < 0) {
        rc = KD_ENOMEM;
        goto out;
    }
    if ((ret = av_buffersrc_parameters_set(f, par)) < 0 ||
        (ret = avfilter_init_dict(f, NULL)) < 0) {
        rc = kd_media_averr(NULL, ret, KD_EINTERNAL, err, "internal error (audio source)");
        goto out;
    }
    if ((rc = link_tail(&t, f, err)) != KD_OK)
        goto out;
    if ((rc = add_span(gr, false, span, &t, err)) != KD_OK)
        goto out;
    if ((rc = kd_media_graph_append(gr, "aresample", NULL, &t, err)) != KD_OK)
        goto out;
    fmt_int(rate, at->sample_rate);
    if (av_channel_layout_describe(&at->ch_layout, layout, sizeof(layout)) < 0) {
        kd_media_seterr(err, "internal error (channel layout)");
        rc = KD_EINTERNAL;
        goto out;
    }
    rc = kd_media_graph_append(gr, "aformat",
                               (const char *[]){ "sample_fmts",
                                                 av_get_sample_fmt_name(at->sample_fmt),
                                                 "sample_rates", rate, "channel_layouts", layout,
                                                 NULL },
                               &t, err);
    if (rc != KD_OK)
        goto out;
    *src = f;
    *tail = t;
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    if (par != NULL)
        av_channel_layout_uninit(&par->ch_layout);
    av_free(par);
    return rc;
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

static void
fmt_color(char buf[32], struct kd_rgba c)
{
    (void)snprintf(buf, 32, "0x%02X%02X%02X%02X", c.r, c.g, c.b, c.a);
}

enum kd_err
kd_media_graph_text(struct kd_media_graph *gr, const struct kd_layer *layer,
                    const struct kd_limits *lim, struct kd_media_pad *tail,
                    char err[KD_MEDIA_ERRLEN])
{
    const char *kv[32];
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
    if ((rc = font_pattern(layer->font != NULL ? layer->font : "DejaVu Sans", font, err)) !=
        KD_OK)
        return rc;
    fmt_int(size, fsize);
    fmt_color(color, layer->color);
    kv[n++] = "text";
    kv[n++] = layer->text;     /* a value: drawn as given */
    kv[n++] = "expansion";
    kv[n++] = "none";          /* "%{...}" stays literal */
    kv[n++] = "font";
    kv[n++] = font;
    kv[n++] = "fontsize";
    kv[n++] = size;
    kv[n++] = "fontcolor";
    kv[n++] = color;
    kv[n++] = "fix_bounds";
    kv[n++] = "1";             /* a long line stays inside the picture */
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
    return kd_media_graph_append(gr, "drawtext", kv, tail, err);
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
