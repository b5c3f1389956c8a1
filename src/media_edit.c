/* media_edit.c: running an edit job (kd_media_edit).
 *
 * One pass: read -> decode -> filter graph -> encode -> mux, for every
 * input, layer and audio track at once. The spec is checked first for what
 * this version does not do yet, so that such a job fails at once with a
 * message naming the operation instead of producing something else. Then
 * every file is opened safely (a "feed": one demuxer, its decoders and the
 * buffer sources they fill), the plan (muxer, codecs, target size, rate
 * and formats) is fixed, the one graph is built node by node, and frames
 * flow until every sink has ended.
 *
 * Which file to read next is the graph's decision: the sink that is
 * furthest behind is asked for a frame (avfilter_graph_request_oldest), and
 * the buffer source that failed most often to deliver one names the feed to
 * read a packet from. So a concatenation reads its inputs one after the
 * other, an overlay reads its layer alongside the main picture, and nothing
 * is buffered beyond what the filters hold. Decoders are opened when a feed
 * is first read and freed when it ends: fifty inputs never decode at once.
 *
 * Cancellation is polled every few frames and at least every 100 ms of work
 * (and from inside I/O by the interrupt callbacks); progress is the output
 * timeline's position against the expected duration, never decreasing.
 *
 * Subtitles, thumbnails and the remux fast path are parts of their own
 * (media_parts.h): the remux is decided before anything else is built;
 * burned subtitles are a node over the video after the layers before them;
 * soft subtitles are a stream added before the header; thumbnails take the
 * final video frames on their way to the encoder.
 *
 * Needs from part B (media_parts.h): nothing more at present. */
#include "media_int.h"
#include "media_parts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/bsf.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>

#include "log.h"
#include "util.h"

#define CANCEL_EVERY_N     16   /* frames or packets between polls ... */
#define CANCEL_EVERY_MS    100  /* ... or this much time, whichever first */
#define MAX_DECODE_ERRORS  100  /* damaged packets skipped before giving up */
#define SEEK_CHECK_PACKETS 1000 /* read after a seek to see where it landed */
#define SEEK_ATTEMPTS      6    /* targets moved back 1+2+...+32 s, then the start */
/* Packets read without the graph asking any source for more: past this the
 * graph is stuck (our bug), and reading on would only fill memory. */
#define MAX_BLIND_READS 100000
#define DEFAULT_FPS     25
/* How far (output seconds) a copied stream may run ahead of the decoded
 * one: the muxer interleaves what lies within. */
#define COPY_AHEAD_S 0.5

/* One stream of a feed on its way into the graph. */
struct side {
    bool is_video;
    bool is_used; /* decoded into the graph */
    int idx;      /* stream index in the file */
    AVStream *st;
    AVCodecContext *dec; /* from the feed's first read to its end */
    AVFilterContext *src;
    int64_t offset;   /* the file's start time, in st's time base */
    int64_t shift;    /* added to every timestamp: the loops played before */
    int64_t next_pts; /* for frames without a timestamp */
    int64_t end_pts;  /* end of the last frame pushed (shifted) */
    bool is_closed;   /* nothing more goes into the graph */
    bool has_pushed;
    /* what the source was configured with: frames are brought to it */
    int width, height, format, sample_rate;
    AVChannelLayout ch_layout;
    /* converters for frames that differ (a size or format change midway) */
    struct SwsContext *sws;
    struct SwrContext *swr;
    int swr_format, swr_rate; /* what swr converts from */
    AVChannelLayout swr_layout;
    AVFrame *conv; /* the converted frame */
    bool has_warned_change;
};

enum feed_role { FEED_INPUT, FEED_LAYER, FEED_AUDIO };

/* One opened file. */
struct feed {
    enum feed_role role;
    char name[40]; /* "inputs[3]", "layers[1]", "audio" for messages */
    const char *path;
    struct kd_media_input *in;
    struct side v, a;
    struct kd_media_span span; /* what is cut from the file (inputs) */
    double dur_s;              /* its length on the output (inputs); NAN: unknown */
    double key_s;              /* copied picture: the keyframe its slice starts at; NAN */
    bool is_started;           /* decoders opened, seeked */
    bool is_done;              /* read to its end, decoders freed */
    bool is_loop;              /* read again from the start at its end */
    int64_t loop_start_pts;    /* the audio side's end_pts when this pass began */
    int n_decode_errors;
};

/* One stream of the output: a sink into an encoder. */
struct osink {
    bool is_video;
    bool is_active;
    AVFilterContext *sink;
    int64_t last_pts; /* video's last, sound's next */
    bool is_eof;
    int64_t n_frames;
    double end_s; /* output timeline: end of the last frame out */
};

/* A stream of the output copied from the inputs packet by packet (codec
 * "copy") while the other stream is decoded, filtered and encoded. Each
 * input is opened once more for it, in turn; its slice is laid on the
 * output timeline where the decoded stream puts the same input. */
struct copier {
    bool is_video;
    bool is_active;
    bool is_done;
    size_t cur;                /* the input being copied */
    struct kd_media_input *in; /* its own demuxer of that input */
    int idx;                   /* the stream copied from it */
    AVBSFContext *bsf;         /* ADTS AAC into a global-header container */
    double base_s;             /* output time where cur's slice starts */
    double seg_start_s;        /* cur's slice, in its own seconds */
    double seg_end_s;          /* INFINITY: to its end */
    bool is_started;           /* the first keyframe was met (picture) */
    int64_t last_dts;          /* in the output stream's time base */
    double pos_s;              /* output time reached */
    int64_t n_packets;
    AVCodecContext *dec; /* decodes the copied picture for thumbnails */
};

struct run {
    struct kd_edit *e;
    struct feed *feeds; /* inputs, then layers (by index), then the track */
    size_t n_feeds;
    struct feed *track; /* the audio track's feed, or NULL */
    struct kd_media_graph gr;
    struct kd_media_plan plan;
    struct kd_media_output *out;
    struct kd_subs **subs; /* per layer; set for subtitle layers */
    struct kd_thumbs *thumbs;
    struct osink ov, oa;
    struct copier cv, ca; /* copied picture / sound */
    bool has_base_audio;  /* the inputs' sound (or silence) is in the output */
    AVRational vfr_tb;    /* frame durations when the output keeps the timing */
    AVPacket *pkt;
    AVFrame *frame;    /* decoded */
    AVFrame *filtered; /* out of a sink */
    double total_s;    /* the output's length; NAN when unknown */
    double last_fraction;
    int64_t last_poll_ms;
    unsigned n_since_poll;
    bool is_cancelled;
};

static void
event(struct run *r, const char *name, const char *detail)
{
    if (r->e->event != NULL)
        r->e->event(r->e->ud, name, detail);
}

/* Everything this version does not do, named for the user. */
static enum kd_err
check_spec(struct kd_edit *e)
{
    const struct kd_jobspec *spec = e->spec;

    if (spec == NULL || spec->n_inputs == 0 || e->input_paths == NULL || e->out_path == NULL ||
        e->lim == NULL || (spec->has_audio && e->audio_path == NULL)) {
        kd_media_seterr(e->err, "internal error (an incomplete edit request)");
        return KD_EINTERNAL;
    }
    for (size_t i = 0; i < spec->n_inputs; i++) {
        if (e->input_paths[i] == NULL) {
            kd_media_seterr(e->err, "internal error (an incomplete edit request)");
            return KD_EINTERNAL;
        }
    }
    if (spec->type[0] != '\0' && strcmp(spec->type, "edit") != 0) {
        kd_media_seterr(e->err, "only edit jobs are supported");
        return KD_EUNSUPPORTED;
    }
    if (spec->n_inputs > (size_t)e->lim->max_inputs) {
        kd_media_seterr(e->err, "at most %lld inputs", (long long)e->lim->max_inputs);
        return KD_EINVAL;
    }
    for (size_t i = 0; i < spec->n_layers; i++) {
        switch (spec->layers[i].type) {
        case KD_LAYER_TEXT:
            break;
        case KD_LAYER_VIDEO:
        case KD_LAYER_IMAGE:
        case KD_LAYER_SUBTITLES:
            if (e->layer_paths == NULL || e->layer_paths[i] == NULL) {
                kd_media_seterr(e->err, "internal error (an incomplete edit request)");
                return KD_EINTERNAL;
            }
            break;
        default:
            kd_media_seterr(e->err, "layers[%zu]: this layer type is not supported", i);
            return KD_EUNSUPPORTED;
        }
    }
    return KD_OK;
}

static enum kd_err
cancelled(struct run *r)
{
    kd_media_seterr(r->e->err, "cancelled");
    return KD_ECANCELED;
}

/* True once the job is to stop. Polls cancelled() every CANCEL_EVERY_N
 * calls or CANCEL_EVERY_MS, whichever comes first; an interrupt callback
 * that saw it first counts too. */
static bool
poll_cancel(struct run *r)
{
    int64_t now;

    if (r->is_cancelled)
        return true;
    if (r->out != NULL && r->out->guard.is_cancelled) {
        r->is_cancelled = true;
        return true;
    }
    for (size_t i = 0; i < r->n_feeds; i++) {
        if (r->feeds[i].in != NULL && r->feeds[i].in->guard.is_cancelled) {
            r->is_cancelled = true;
            return true;
        }
    }
    now = kd_mono_ms();
    if (++r->n_since_poll < CANCEL_EVERY_N && now - r->last_poll_ms < CANCEL_EVERY_MS)
        return false;
    r->n_since_poll = 0;
    r->last_poll_ms = now;
    if (r->e->cancelled != NULL && r->e->cancelled(r->e->ud))
        r->is_cancelled = true;
    return r->is_cancelled;
}

/* Progress below 1: 1 is reported once the file is complete. */
static void
report(struct run *r)
{
    double t = r->plan.has_video ? (r->cv.is_active ? r->cv.pos_s : r->ov.end_s)
                                 : (r->ca.is_active ? r->ca.pos_s : r->oa.end_s);
    double f;

    if (r->e->progress == NULL)
        return;
    if (!isnan(r->total_s) && r->total_s > 0)
        f = t / r->total_s;
    else if (r->n_feeds > 0 && r->feeds[0].in != NULL && r->feeds[0].in->size > 0)
        f = (double)avio_tell(r->feeds[0].in->pb) / (double)r->feeds[0].in->size;
    else
        return;
    if (f > 0.99)
        f = 0.99;
    if (!(f >= r->last_fraction + 0.001))
        return;
    r->last_fraction = f;
    r->e->progress(r->e->ud, f);
}

/* Encoders and muxers need timestamps that only grow; a damaged input can
 * make them step back. A video frame that does is dropped (as players do);
 * sound is moved to follow on from the previous frame. Also records where
 * the output's timeline has reached. Returns false to drop f. */
static bool
keep_monotonic(struct run *r, struct osink *s, AVFrame *f)
{
    AVRational tb = av_buffersink_get_time_base(s->sink);
    double t, dur = 0;

    if (s->is_video) {
        AVRational fr = av_buffersink_get_frame_rate(s->sink);

        if (f->pts == AV_NOPTS_VALUE || (s->last_pts != AV_NOPTS_VALUE && f->pts <= s->last_pts))
            return false;
        s->last_pts = f->pts;
        if (fr.num > 0 && fr.den > 0)
            dur = av_q2d(av_inv_q(fr));
        else if (f->pkt_duration > 0 && r->vfr_tb.num > 0)
            dur = (double)f->pkt_duration * av_q2d(r->vfr_tb);
    } else {
        /* Into the encoder's time base (1/sample rate), where the next
         * frame's start is known exactly. */
        AVRational etb = r->out->aenc->time_base;

        f->pts = f->pts != AV_NOPTS_VALUE ? av_rescale_q(f->pts, tb, etb) : s->last_pts;
        if (f->pts == AV_NOPTS_VALUE || (s->last_pts != AV_NOPTS_VALUE && f->pts < s->last_pts))
            f->pts = s->last_pts != AV_NOPTS_VALUE ? s->last_pts : 0;
        s->last_pts = f->pts + f->nb_samples;
        tb = etb;
        dur = (double)f->nb_samples / f->sample_rate;
    }
    t = (double)f->pts * av_q2d(tb);
    if (t + dur > s->end_s)
        s->end_s = t + dur;
    return true;
}

/* Moves every frame the sink has ready into the encoder, without asking
 * the graph for more; at the sink's end flushes the encoder. */
static enum kd_err
drain_sink(struct run *r, struct osink *s, bool *got)
{
    AVFrame *f = r->filtered;
    enum kd_err rc;
    int ret;

    while (s->is_active && !s->is_eof) {
        if (poll_cancel(r))
            return cancelled(r);
        ret = av_buffersink_get_frame_flags(s->sink, f, AV_BUFFERSINK_FLAG_NO_REQUEST);
        if (ret == AVERROR(EAGAIN))
            return KD_OK;
        *got = true;
        if (ret == AVERROR_EOF) {
            s->is_eof = true;
            return kd_media_output_encode(r->out, s->is_video, NULL, r->e->err);
        }
        if (ret < 0)
            return kd_media_averr(NULL, ret, KD_EINTERNAL, r->e->err, "filtering failed");
        if (!keep_monotonic(r, s, f)) {
            av_frame_unref(f);
            continue;
        }
        s->n_frames++;
        if (s->is_video && r->thumbs != NULL &&
            (rc = kd_thumbs_push(r->thumbs, f, av_buffersink_get_time_base(s->sink), r->e->err)) !=
                KD_OK) {
            av_frame_unref(f);
            return rc;
        }
        rc = kd_media_output_encode(r->out, s->is_video, f, r->e->err);
        av_frame_unref(f);
        if (rc != KD_OK)
            return rc;
        report(r);
    }
    return KD_OK;
}

static enum kd_err
drain_all(struct run *r, bool *got)
{
    enum kd_err rc;

    if ((rc = drain_sink(r, &r->ov, got)) != KD_OK)
        return rc;
    return drain_sink(r, &r->oa, got);
}

/* No more frames into this stream's chain. */
static enum kd_err
close_src(struct run *r, struct side *s)
{
    int ret;

    if (s->is_closed || s->src == NULL)
        return KD_OK;
    s->is_closed = true;
    if ((ret = av_buffersrc_add_frame_flags(s->src, NULL, 0)) < 0 && ret != AVERROR_EOF)
        return kd_media_averr(NULL, ret, KD_EINTERNAL, r->e->err, "filtering failed");
    return KD_OK;
}

static void
side_free_converters(struct side *s)
{
    sws_freeContext(s->sws);
    s->sws = NULL;
    swr_free(&s->swr);
    av_channel_layout_uninit(&s->swr_layout);
    av_frame_free(&s->conv);
}

static void
warn_change(struct run *r, struct feed *fd, struct side *s)
{
    char msg[128];

    if (s->has_warned_change)
        return;
    s->has_warned_change = true;
    (void)snprintf(msg, sizeof(msg),
                   "%s: the %s format changes in the middle of the file; "
                   "it was converted",
                   fd->name, s->is_video ? "picture" : "sound");
    event(r, "warning", msg);
    kd_log(KD_LOG_INFO, "media: %s", msg);
}

/* A picture of another size or format than the source was built with (a
 * recording whose resolution changed): scaled into the first size keeping
 * its aspect, centred on black, as the fit of the whole input would. */
static enum kd_err
convert_picture(struct run *r, struct feed *fd, struct side *s, AVFrame *f, AVFrame **out)
{
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(s->format);
    uint8_t *dst[4];
    ptrdiff_t lines[4];
    int w, h, x, y, ret;
    enum kd_err rc = KD_OK;

    if (d == NULL || f->width <= 0 || f->height <= 0 ||
        (int64_t)f->width * f->height > r->e->lim->max_pixels) {
        kd_media_seterr(r->e->err, "%s: a picture of an unusable size in the middle of the file",
                        fd->name);
        return KD_EMEDIA;
    }
    /* The largest size of the frame's aspect that fits the first one. */
    if ((int64_t)f->width * s->height > (int64_t)f->height * s->width) {
        w = s->width;
        h = (int)av_rescale(f->height, s->width, f->width);
    } else {
        h = s->height;
        w = (int)av_rescale(f->width, s->height, f->height);
    }
    w = FFMAX(w & ~((1 << d->log2_chroma_w) - 1), 1 << d->log2_chroma_w);
    h = FFMAX(h & ~((1 << d->log2_chroma_h) - 1), 1 << d->log2_chroma_h);
    x = ((s->width - w) / 2) & ~((1 << d->log2_chroma_w) - 1);
    y = ((s->height - h) / 2) & ~((1 << d->log2_chroma_h) - 1);
    s->sws = sws_getCachedContext(s->sws, f->width, f->height, f->format, w, h, s->format,
                                  SWS_BICUBIC, NULL, NULL, NULL);
    if (s->sws == NULL) {
        kd_media_seterr(r->e->err, "%s: the picture format changes to one kadr cannot convert",
                        fd->name);
        return KD_EMEDIA;
    }
    if (s->conv == NULL && (s->conv = av_frame_alloc()) == NULL)
        return KD_ENOMEM;
    av_frame_unref(s->conv);
    s->conv->width = s->width;
    s->conv->height = s->height;
    s->conv->format = s->format;
    if ((ret = av_frame_get_buffer(s->conv, 0)) < 0)
        return kd_media_averr(NULL, ret, KD_ENOMEM, r->e->err, "converting a picture");
    for (int i = 0; i < 4; i++)
        lines[i] = s->conv->linesize[i];
    if ((ret = av_image_fill_black(s->conv->data, lines, s->format, f->color_range, s->width,
                                   s->height)) < 0)
        return kd_media_averr(NULL, ret, KD_EINTERNAL, r->e->err, "converting a picture");
    for (int i = 0; i < 4; i++) {
        /* The box's corner in every plane (chroma planes are smaller). */
        bool is_chroma = (i == 1 || i == 2) && !(d->flags & AV_PIX_FMT_FLAG_RGB);
        int px = is_chroma ? x >> d->log2_chroma_w : x, py = is_chroma ? y >> d->log2_chroma_h : y;
        int step = d->comp[0].step > 0 ? d->comp[0].step : 1;

        dst[i] = NULL;
        if (s->conv->data[i] == NULL)
            continue;
        /* Packed formats hold every component in plane 0, step bytes apart. */
        for (int c = 0; c < d->nb_components; c++)
            if (d->comp[c].plane == i)
                step = d->comp[c].step;
        dst[i] = s->conv->data[i] + (ptrdiff_t)py * s->conv->linesize[i] + (ptrdiff_t)px * step;
    }
    sws_scale(s->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst,
              s->conv->linesize);
    if ((ret = av_frame_copy_props(s->conv, f)) < 0)
        return kd_media_averr(NULL, ret, KD_ENOMEM, r->e->err, "converting a picture");
    *out = s->conv;
    return rc;
}

/* Sound of another rate, sample format or layout than the source was built
 * with: resampled to it. */
static enum kd_err
convert_sound(struct run *r, struct feed *fd, struct side *s, AVFrame *f, AVFrame **out)
{
    int ret;

    if (s->swr == NULL || s->swr_format != f->format || s->swr_rate != f->sample_rate ||
        av_channel_layout_compare(&s->swr_layout, &f->ch_layout) != 0) {
        swr_free(&s->swr);
        av_channel_layout_uninit(&s->swr_layout);
        if (f->sample_rate <= 0 || f->sample_rate > 384000 || f->ch_layout.nb_channels <= 0 ||
            f->ch_layout.nb_channels > 32 ||
            (ret = swr_alloc_set_opts2(&s->swr, &s->ch_layout, s->format, s->sample_rate,
                                       &f->ch_layout, f->format, f->sample_rate, 0, NULL)) < 0 ||
            (ret = swr_init(s->swr)) < 0) {
            swr_free(&s->swr);
            kd_media_seterr(r->e->err, "%s: the sound format changes to one kadr cannot convert",
                            fd->name);
            return KD_EMEDIA;
        }
        if (av_channel_layout_copy(&s->swr_layout, &f->ch_layout) < 0)
            return KD_ENOMEM;
        s->swr_format = f->format;
        s->swr_rate = f->sample_rate;
    }
    if (s->conv == NULL && (s->conv = av_frame_alloc()) == NULL)
        return KD_ENOMEM;
    av_frame_unref(s->conv);
    s->conv->format = s->format;
    s->conv->sample_rate = s->sample_rate;
    if (av_channel_layout_copy(&s->conv->ch_layout, &s->ch_layout) < 0)
        return KD_ENOMEM;
    if ((ret = swr_convert_frame(s->swr, s->conv, f)) < 0)
        return kd_media_averr(NULL, ret, KD_EMEDIA, r->e->err, "converting the sound");
    s->conv->pts = f->pts;
    s->conv->best_effort_timestamp = f->best_effort_timestamp;
    *out = s->conv;
    return KD_OK;
}

/* Frames must reach the source in the parameters it was built with (the
 * filters after it assume one size and format per link). A stream that
 * changes midway (a TS or mkv recording whose resolution or sound format
 * changed) is converted back, frame by frame. *out is f, or the converted
 * frame (owned by s). */
static enum kd_err
conform_frame(struct run *r, struct feed *fd, struct side *s, AVFrame *f, AVFrame **out)
{
    *out = f;
    if (s->is_video) {
        if (f->width == s->width && f->height == s->height && f->format == s->format)
            return KD_OK;
        warn_change(r, fd, s);
        return convert_picture(r, fd, s, f, out);
    }
    if (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC) {
        int n = f->ch_layout.nb_channels;
        av_channel_layout_uninit(&f->ch_layout);
        av_channel_layout_default(&f->ch_layout, n);
    }
    if (f->sample_rate == s->sample_rate && f->format == s->format &&
        av_channel_layout_compare(&f->ch_layout, &s->ch_layout) == 0)
        return KD_OK;
    warn_change(r, fd, s);
    return convert_sound(r, fd, s, f, out);
}

/* A decoded frame: onto the feed's timeline, into the graph. */
static enum kd_err
push_frame(struct run *r, struct feed *fd, struct side *s, AVFrame *f)
{
    int64_t pts, dur;
    double t;
    enum kd_err rc;
    int ret;

    if ((rc = conform_frame(r, fd, s, f, &f)) != KD_OK)
        return rc;
    if (!s->is_video && f->nb_samples == 0)
        return KD_OK; /* the resampler kept them for the next frame */
    pts = f->best_effort_timestamp;

    if (pts == AV_NOPTS_VALUE)
        pts = f->pts != AV_NOPTS_VALUE ? f->pts : s->next_pts;
    if (pts == AV_NOPTS_VALUE && fd->in->kind == KD_MEDIA_KIND_IMAGE)
        pts = s->offset; /* a still picture: it starts its layer's window */
    if (pts == AV_NOPTS_VALUE)
        return KD_OK; /* nowhere to place it on the timeline */
    if (s->is_video)
        dur = f->pkt_duration > 0 ? f->pkt_duration : 0;
    else
        dur = av_rescale_q(f->nb_samples, (AVRational){1, f->sample_rate}, s->st->time_base);
    s->next_pts = pts + dur;
    t = (double)(pts - s->offset) * av_q2d(s->st->time_base);
    /* The header's duration was checked; the packets may still run on. */
    if (t > (double)r->e->lim->max_duration_s + 1.0) {
        kd_media_seterr(r->e->err, "%s: the file runs longer than the limit of %lld s", fd->name,
                        (long long)r->e->lim->max_duration_s);
        return KD_EMEDIA;
    }
    if (!isnan(fd->span.end_s) && t >= fd->span.end_s)
        return close_src(r, s);
    f->pts = pts - s->offset + s->shift;
    if (f->pts + dur > s->end_pts || !s->has_pushed)
        s->end_pts = f->pts + dur;
    s->has_pushed = true;
    /* The source takes the frame's references and leaves it empty. */
    ret = av_buffersrc_add_frame_flags(s->src, f, 0);
    if (ret == AVERROR_EOF) {
        s->is_closed = true; /* what follows in the graph wants no more */
        return KD_OK;
    }
    if (ret < 0)
        return kd_media_averr(NULL, ret, KD_EINTERNAL, r->e->err, "filtering failed");
    return KD_OK;
}

/* Damaged packets are skipped (as players do) up to a limit. */
static enum kd_err
decode_error(struct run *r, struct feed *fd, int ret)
{
    char msg[96];

    if (ret == AVERROR(ENOMEM))
        return kd_media_averr(NULL, ret, KD_ENOMEM, r->e->err, "decoding");
    if (fd->n_decode_errors++ == 0) {
        (void)snprintf(msg, sizeof(msg), "%s has damaged packets; they were skipped", fd->name);
        event(r, "warning", msg);
    }
    if (fd->n_decode_errors > MAX_DECODE_ERRORS) {
        kd_media_seterr(r->e->err, "%s is too damaged to decode", fd->name);
        return KD_EMEDIA;
    }
    return KD_OK;
}

/* Sends pkt (NULL: end of stream) to the decoder and pushes what comes out. */
static enum kd_err
decode(struct run *r, struct feed *fd, struct side *s, const AVPacket *pkt)
{
    enum kd_err rc;
    int ret;

    if (s->is_closed || s->dec == NULL)
        return KD_OK;
    ret = avcodec_send_packet(s->dec, pkt);
    if (ret < 0 && ret != AVERROR_EOF && (rc = decode_error(r, fd, ret)) != KD_OK)
        return rc;
    while (!s->is_closed) {
        ret = avcodec_receive_frame(s->dec, r->frame);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            break;
        if (ret < 0) {
            if ((rc = decode_error(r, fd, ret)) != KD_OK)
                return rc;
            break;
        }
        rc = push_frame(r, fd, s, r->frame);
        av_frame_unref(r->frame);
        if (rc != KD_OK)
            return rc;
        if (poll_cancel(r))
            return cancelled(r);
    }
    return KD_OK;
}

/* Picks the picture and sound streams a feed contributes. Frames must
 * later match what is recorded here. */
static enum kd_err
setup_side(struct run *r, struct feed *fd, struct side *s, int idx, bool is_video)
{
    const AVCodecParameters *par;

    s->is_video = is_video;
    s->is_used = true;
    s->idx = idx;
    s->st = fd->in->fmt->streams[idx];
    par = s->st->codecpar;
    s->next_pts = AV_NOPTS_VALUE;
    s->offset = av_rescale_q(fd->in->start_time, AV_TIME_BASE_Q, s->st->time_base);
    if (is_video) {
        s->width = par->width;
        s->height = par->height;
        s->format = par->format;
        if (s->format == AV_PIX_FMT_NONE || s->width <= 0 || s->height <= 0) {
            kd_media_seterr(r->e->err, "%s: the picture format could not be determined", fd->name);
            return KD_EMEDIA;
        }
        return KD_OK;
    }
    s->format = par->format;
    s->sample_rate = par->sample_rate;
    if (s->format == AV_SAMPLE_FMT_NONE || s->sample_rate <= 0 || par->ch_layout.nb_channels <= 0) {
        kd_media_seterr(r->e->err, "%s: the sound format could not be determined", fd->name);
        return KD_EMEDIA;
    }
    if (par->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
        av_channel_layout_default(&s->ch_layout, par->ch_layout.nb_channels);
    else if (av_channel_layout_copy(&s->ch_layout, &par->ch_layout) < 0)
        return KD_ENOMEM;
    return KD_OK;
}

/* Opens one file and checks it is of a kind its place in the spec takes. */
static enum kd_err
open_feed(struct run *r, struct feed *fd)
{
    struct kd_edit *e = r->e;
    enum kd_err rc;
    char msg[KD_MEDIA_ERRLEN];

    fd->v.idx = fd->a.idx = -1;
    fd->dur_s = NAN;
    fd->key_s = NAN;
    fd->span.end_s = NAN;
    rc = kd_media_input_open(e->store, fd->path, e->lim, KD_MEDIA_OPEN_TIMEOUT_MS, e->cancelled,
                             e->ud, &fd->in, msg);
    if (rc != KD_OK) {
        /* Which file failed matters when there are many. */
        if (r->n_feeds > 1 && rc != KD_ECANCELED)
            kd_media_seterr(e->err, "%s: %s", fd->name, msg);
        else
            kd_media_seterr(e->err, "%s", msg);
        return rc;
    }
    if (fd->in->kind == KD_MEDIA_KIND_SUBTITLE) {
        kd_media_seterr(e->err, "%s: a subtitle file cannot be used here", fd->name);
        return KD_EMEDIA;
    }
    if (fd->role == FEED_LAYER && fd->in->video_idx < 0) {
        kd_media_seterr(e->err, "%s: the file has no picture to show", fd->name);
        return KD_EMEDIA;
    }
    if (fd->role == FEED_AUDIO && fd->in->audio_idx < 0) {
        kd_media_seterr(e->err, "%s: the file has no sound", fd->name);
        return KD_EMEDIA;
    }
    return KD_OK;
}

/* The length of a file whose header does not say (a WebM recorded by a
 * browser): a second demuxer of it reads every packet, without decoding,
 * to the end of the last one. Bounded by the duration limit (timestamps
 * past it refuse the file) and the job's cancellation and deadline. */
static enum kd_err
scan_length(struct run *r, struct feed *fd)
{
    struct kd_media_input *in = NULL;
    AVPacket *pkt = NULL;
    double end = NAN, limit = (double)r->e->lim->max_duration_s + 1.0;
    char msg[KD_MEDIA_ERRLEN];
    enum kd_err rc;
    int ret;

    if ((rc = kd_media_input_open(r->e->store, fd->path, r->e->lim, KD_MEDIA_OPEN_TIMEOUT_MS,
                                  r->e->cancelled, r->e->ud, &in, msg)) != KD_OK) {
        kd_media_seterr(r->e->err, "%s: %s", fd->name, msg);
        goto out;
    }
    if ((pkt = av_packet_alloc()) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    for (unsigned k = 0; k < in->fmt->nb_streams; k++)
        if ((int)k != in->video_idx && (int)k != in->audio_idx)
            in->fmt->streams[k]->discard = AVDISCARD_ALL;
    for (;;) {
        const AVStream *st;
        int64_t t;
        double e;

        if (poll_cancel(r)) {
            rc = cancelled(r);
            goto out;
        }
        if ((ret = av_read_frame(in->fmt, pkt)) < 0) {
            /* The end, or damage (what was read counts), or a store that
             * stopped answering (then nothing is known). */
            if ((rc = kd_media_input_store_check(in, r->e->err, fd->name)) != KD_OK)
                goto out;
            break;
        }
        st = in->fmt->streams[pkt->stream_index];
        t = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
        if (t != AV_NOPTS_VALUE) {
            e = (double)(t + (pkt->duration > 0 ? pkt->duration : 0)) * av_q2d(st->time_base) -
                (double)in->start_time / AV_TIME_BASE;
            if (e > limit) {
                av_packet_unref(pkt);
                kd_media_seterr(r->e->err, "%s: the file runs longer than the limit of %lld s",
                                fd->name, (long long)r->e->lim->max_duration_s);
                rc = KD_EMEDIA;
                goto out;
            }
            if (isnan(end) || e > end)
                end = e;
        }
        av_packet_unref(pkt);
    }
    if (in->guard.is_cancelled) {
        rc = cancelled(r);
        goto out;
    }
    if (isnan(end) || end <= 0) {
        kd_media_seterr(r->e->err, "%s: the file's packets carry no usable timestamps", fd->name);
        rc = KD_EMEDIA;
        goto out;
    }
    fd->in->duration_s = end;
    kd_log(KD_LOG_DEBUG, "media: %s: length %.3f s found by reading to the end", fd->name, end);
out:
    av_packet_free(&pkt);
    kd_media_input_close(in);
    return rc;
}

/* An input's slice and its length on the output. A still image has no
 * length of its own: it is shown for end - start, or KD_STILL_DEFAULT_S. */
static enum kd_err
input_span(struct run *r, struct feed *fd, const struct kd_input *ispec)
{
    double dur = fd->in->duration_s, end;

    if (fd->in->kind == KD_MEDIA_KIND_IMAGE) {
        double start = ispec->start_s > 0 ? ispec->start_s : 0.0;

        fd->span.start_s = 0;
        fd->span.end_s = NAN;
        fd->dur_s = isnan(ispec->end_s) ? KD_STILL_DEFAULT_S : ispec->end_s - start;
        if (!(fd->dur_s > 0)) {
            kd_media_seterr(r->e->err, "%s: a still image needs an end after its start", fd->name);
            return KD_EINVAL;
        }
        return KD_OK;
    }

    fd->span.start_s = ispec->start_s > 0 ? ispec->start_s : 0.0;
    /* A copied picture starts at a keyframe: the decoded sound with it. */
    if (!isnan(fd->key_s))
        fd->span.start_s = fd->key_s;
    fd->span.end_s = ispec->end_s;
    if (!isnan(dur) && fd->span.start_s >= dur) {
        kd_media_seterr(r->e->err,
                        "%s.start (%.3f s) is not before the end of the input "
                        "(%.3f s)",
                        fd->name, fd->span.start_s, dur);
        return KD_EINVAL;
    }
    end = fd->span.end_s;
    if (!isnan(dur) && (isnan(end) || end > dur))
        end = dur;
    fd->dur_s = isnan(end) ? NAN : end - fd->span.start_s;
    return KD_OK;
}

static bool
is_picture_layer(const struct kd_layer *l)
{
    return l->type == KD_LAYER_VIDEO || l->type == KD_LAYER_IMAGE;
}

/* With the picture copied, an input's slice starts at the keyframe at or
 * before its start. Found on the feed's demuxer, which is then put back
 * at the file's start. */
static enum kd_err
copy_key(struct run *r, struct feed *fd, const struct kd_input *ispec)
{
    int64_t ts = fd->in->start_time;
    char msg[KD_MEDIA_ERRLEN];
    enum kd_err rc;

    if (ispec->start_s <= 0 || fd->in->video_idx < 0 || fd->in->kind != KD_MEDIA_KIND_VIDEO)
        return KD_OK; /* nothing to find; plan() refuses what cannot be copied */
    if ((rc = kd_remux_key_before(fd->in, ispec->start_s, &fd->key_s, msg)) != KD_OK) {
        kd_media_seterr(r->e->err, "%s: %s", fd->name, msg);
        return rc;
    }
    if (avformat_seek_file(fd->in->fmt, -1, INT64_MIN, ts, ts, 0) < 0) {
        kd_media_seterr(r->e->err, "%s could not seek back to its start", fd->name);
        return KD_EMEDIA;
    }
    return KD_OK;
}

/* The subtitle files, read and cleaned before the graph needs them. */
static enum kd_err
open_subs(struct run *r)
{
    const struct kd_jobspec *spec = r->e->spec;
    enum kd_err rc;

    if (spec->n_layers == 0)
        return KD_OK;
    if ((r->subs = calloc(spec->n_layers, sizeof(*r->subs))) == NULL)
        return KD_ENOMEM;
    for (size_t i = 0; i < spec->n_layers; i++) {
        if (spec->layers[i].type != KD_LAYER_SUBTITLES)
            continue;
        if ((rc = kd_subs_open(r->e->store, r->e->layer_paths[i], r->e->work_dir, (unsigned)i,
                               r->e->lim, r->e->event, r->e->ud, r->e->cancelled, &r->subs[i],
                               r->e->err)) != KD_OK)
            return rc;
    }
    return KD_OK;
}

/* Where a subtitle layer's cues go: its window on the output timeline,
 * which ends with the output (total_s, NAN when unknown): a soft cue past
 * the end would make players run the file on. */
static struct kd_subs_timing
subs_timing(const struct kd_layer *l, double total_s)
{
    double to = l->end_s;

    if (!isnan(total_s) && (isnan(to) || to > total_s))
        to = total_s;
    return (struct kd_subs_timing){
        .shift_s = 0, .from_s = l->start_s > 0 ? l->start_s : 0.0, .to_s = to};
}

static bool
is_soft_subs(const struct kd_layer *l)
{
    return l->type == KD_LAYER_SUBTITLES && l->sub_mode == KD_SUB_SOFT;
}

static enum kd_err
open_feeds(struct run *r)
{
    const struct kd_jobspec *spec = r->e->spec;
    size_t n = spec->n_inputs;
    enum kd_err rc;

    for (size_t i = 0; i < spec->n_layers; i++)
        if (is_picture_layer(&spec->layers[i]))
            n++;
    if (spec->has_audio)
        n++;
    if ((r->feeds = calloc(n, sizeof(*r->feeds))) == NULL)
        return KD_ENOMEM;
    r->n_feeds = n;
    n = 0;
    for (size_t i = 0; i < spec->n_inputs; i++, n++) {
        struct feed *fd = &r->feeds[n];

        fd->role = FEED_INPUT;
        fd->path = r->e->input_paths[i];
        (void)snprintf(fd->name, sizeof(fd->name), "inputs[%zu]", i);
    }
    for (size_t i = 0; i < spec->n_layers; i++) {
        if (!is_picture_layer(&spec->layers[i]))
            continue;
        r->feeds[n].role = FEED_LAYER;
        r->feeds[n].path = r->e->layer_paths[i];
        (void)snprintf(r->feeds[n].name, sizeof(r->feeds[n].name), "layers[%zu]", i);
        n++;
    }
    if (spec->has_audio) {
        r->track = &r->feeds[n];
        r->track->role = FEED_AUDIO;
        r->track->path = r->e->audio_path;
        r->track->is_loop = spec->audio.loop;
        (void)snprintf(r->track->name, sizeof(r->track->name), "audio");
    }
    for (size_t i = 0; i < r->n_feeds; i++) {
        if (poll_cancel(r))
            return cancelled(r);
        if ((rc = open_feed(r, &r->feeds[i])) != KD_OK)
            return rc;
        /* A sound or picture file without a length in its header is
         * measured: the output's length, transitions, thumbnails, layers
         * and progress all depend on it. */
        if (r->feeds[i].role == FEED_INPUT && r->feeds[i].in->kind != KD_MEDIA_KIND_IMAGE &&
            isnan(r->feeds[i].in->duration_s) && (rc = scan_length(r, &r->feeds[i])) != KD_OK)
            return rc;
        if (r->feeds[i].role == FEED_INPUT && spec->output.video_codec == KD_VCODEC_COPY &&
            (rc = copy_key(r, &r->feeds[i], &spec->inputs[i])) != KD_OK)
            return rc;
        if (r->feeds[i].role == FEED_INPUT &&
            (rc = input_span(r, &r->feeds[i], &spec->inputs[i])) != KD_OK)
            return rc;
    }
    return KD_OK;
}

/* The size the picture is brought to: the spec's, or the first picture
 * input's upright square-pixel size (one side derived from the other keeps
 * the aspect), within the limits and even (4:2:0 needs it). The rate is
 * the spec's, or with several inputs the first one's: joined pictures
 * share one rate. */
static void
video_target(struct run *r, const AVStream *st)
{
    const struct kd_output *o = &r->e->spec->output;
    const struct kd_limits *lim = r->e->lim;
    struct kd_media_vtarget *vt = &r->plan.vt;
    int dw, dh;
    double w = o->width, h = o->height, k = 1.0;

    kd_media_display_size(st, &dw, &dh);
    if (dw < 2)
        dw = 2;
    if (dh < 2)
        dh = 2;
    if (w <= 0 && h <= 0) {
        w = dw;
        h = dh;
    } else if (w <= 0) {
        w = round(h * dw / dh);
    } else if (h <= 0) {
        h = round(w * dh / dw);
    }
    if (w > (double)lim->max_width)
        k = fmin(k, (double)lim->max_width / w);
    if (h > (double)lim->max_height)
        k = fmin(k, (double)lim->max_height / h);
    if (w * h > (double)lim->max_pixels)
        k = fmin(k, sqrt((double)lim->max_pixels / (w * h)));
    vt->width = (int)(w * k) & ~1;
    vt->height = (int)(h * k) & ~1;
    if (vt->width < 2)
        vt->width = 2;
    if (vt->height < 2)
        vt->height = 2;
    if (o->fps > 0) {
        vt->fps = av_d2q(o->fps, 1001000);
    } else if (r->e->spec->n_inputs > 1) {
        AVRational fr = av_guess_frame_rate(NULL, (AVStream *)st, NULL);

        if (fr.num <= 0 || fr.den <= 0 || av_q2d(fr) < 1 || av_q2d(fr) > 120)
            fr = (AVRational){DEFAULT_FPS, 1};
        vt->fps = fr;
    } else if (r->feeds[0].in->kind == KD_MEDIA_KIND_IMAGE) {
        vt->fps = (AVRational){DEFAULT_FPS, 1}; /* a still image has no timing */
    } else {
        vt->fps = (AVRational){0, 1}; /* one input keeps its own timing */
        r->vfr_tb = st->time_base;
    }
}

/* The output's length: the inputs' lengths less the transitions' overlaps.
 * Needed when silence, black or an audio track must be cut to it, or fades
 * placed by it. */
static enum kd_err
total_length(struct run *r, bool is_needed)
{
    const struct kd_jobspec *spec = r->e->spec;
    double total = 0, trans = spec->n_inputs > 1 && spec->has_transition ? spec->transition_s : 0;

    for (size_t i = 0; i < spec->n_inputs; i++) {
        const struct feed *fd = &r->feeds[i];

        if (isnan(fd->dur_s)) {
            if (is_needed) {
                kd_media_seterr(r->e->err,
                                "%s: the length of the file is unknown; give it an "
                                "end",
                                fd->name);
                return KD_EMEDIA;
            }
            r->total_s = NAN;
            return KD_OK;
        }
        if (trans > 0 && fd->dur_s <= trans) {
            kd_media_seterr(r->e->err,
                            "%s lasts %.3f s after trimming, not longer than the "
                            "transition (%.3f s)",
                            fd->name, fd->dur_s, trans);
            return KD_EINVAL;
        }
        total += fd->dur_s;
    }
    r->total_s = total - trans * (double)(spec->n_inputs - 1);
    return KD_OK;
}

static bool
has_drawn_layers(const struct kd_jobspec *spec)
{
    for (size_t i = 0; i < spec->n_layers; i++)
        if (!is_soft_subs(&spec->layers[i]))
            return true;
    return false;
}

static bool
has_picture_layers(const struct kd_jobspec *spec)
{
    for (size_t i = 0; i < spec->n_layers; i++)
        if (is_picture_layer(&spec->layers[i]))
            return true;
    return false;
}

/* Whether the output's picture / sound goes through the graph (not copied). */
static bool
dec_video(const struct run *r)
{
    return r->plan.has_video && !r->plan.is_video_copied;
}

static bool
dec_audio(const struct run *r)
{
    return r->plan.has_audio && !r->plan.is_audio_copied;
}

/* Copying needs the stream in every input, with the same parameters (one
 * stream of the output holds them all). Returns -1 when so, else the
 * index of the first input that differs; *why says how. */
static long
same_in_every_input(const struct run *r, bool is_video, const char **why)
{
    const AVCodecParameters *first = NULL;
    const char *unused;

    if (why == NULL)
        why = &unused;
    for (size_t i = 0; i < r->e->spec->n_inputs; i++) {
        const struct kd_media_input *in = r->feeds[i].in;
        int idx = is_video ? in->video_idx : in->audio_idx;
        const AVCodecParameters *par;

        if (idx < 0 || (is_video && in->kind != KD_MEDIA_KIND_VIDEO)) {
            *why = is_video ? "has no video to copy" : "has no sound to copy";
            return (long)i;
        }
        par = in->fmt->streams[idx]->codecpar;
        if (first == NULL)
            first = par;
        else if (!kd_remux_same_params(first, par)) {
            *why = "has other codec parameters than inputs[0]";
            return (long)i;
        }
    }
    return -1;
}

/* The copied streams of the plan: every input must offer them alike. */
static enum kd_err
plan_copies(struct run *r)
{
    struct copier *cs[2] = {&r->cv, &r->ca};
    bool copied[2] = {r->plan.is_video_copied, r->plan.is_audio_copied};

    for (size_t k = 0; k < 2; k++) {
        const char *why = "";
        long bad;

        if (!copied[k])
            continue;
        if ((bad = same_in_every_input(r, k == 0, &why)) >= 0) {
            kd_media_seterr(r->e->err, "%s_codec copy: inputs[%ld] %s", k == 0 ? "video" : "audio",
                            bad, why);
            return KD_EINVAL;
        }
        cs[k]->is_video = k == 0;
        cs[k]->is_active = true;
        cs[k]->last_dts = AV_NOPTS_VALUE;
    }
    return KD_OK;
}

/* Decides what the output holds and what every feed contributes. */
static enum kd_err
plan(struct run *r)
{
    const struct kd_jobspec *spec = r->e->spec;
    const AVStream *vref = NULL;
    const AVCodecParameters *aref = NULL, *afirst = NULL;
    struct kd_output out;
    bool any_video = false, any_audio = false, gaps = false, replace;
    enum kd_err rc;

    for (size_t i = 0; i < spec->n_inputs; i++) {
        struct kd_media_input *in = r->feeds[i].in;

        if (in->video_idx >= 0 && vref == NULL)
            vref = in->fmt->streams[in->video_idx];
        if (in->audio_idx >= 0 && aref == NULL)
            aref = in->fmt->streams[in->audio_idx]->codecpar;
        any_video |= in->video_idx >= 0;
        any_audio |= in->audio_idx >= 0;
    }
    replace = spec->has_audio && spec->audio.mode == KD_AUDIO_REPLACE;
    afirst = aref;
    if (aref == NULL && r->track != NULL)
        aref = r->track->in->fmt->streams[r->track->in->audio_idx]->codecpar;
    if (replace && r->track != NULL)
        aref = r->track->in->fmt->streams[r->track->in->audio_idx]->codecpar;
    out = spec->output;
    /* With the picture copied, sound left to its default is copied too
     * (as the remux does) when every input has the same. */
    if (out.video_codec == KD_VCODEC_COPY && out.audio_codec == KD_ACODEC_AUTO &&
        !spec->has_audio && same_in_every_input(r, false, NULL) < 0)
        out.audio_codec = KD_ACODEC_COPY;
    /* Omitted codecs follow the first input's picture and sound (the
     * added track's when no input has sound). */
    if (afirst == NULL)
        afirst = aref;
    if ((rc = kd_media_plan_codecs(&out, any_video, aref != NULL, aref,
                                   vref != NULL ? vref->codecpar->codec_id : AV_CODEC_ID_NONE,
                                   afirst != NULL ? afirst->codec_id : AV_CODEC_ID_NONE, &r->plan,
                                   r->e->err)) != KD_OK)
        return rc;
    if ((rc = plan_copies(r)) != KD_OK)
        return rc;
    /* The spec check refuses these; a caller that skipped it gets told. */
    if (r->plan.is_video_copied && (has_drawn_layers(spec) || spec->has_transition)) {
        kd_media_seterr(r->e->err, "a copied picture cannot have layers drawn on it or fades");
        return KD_EINVAL;
    }
    if (has_drawn_layers(spec) && !r->plan.has_video) {
        if (any_video) {
            kd_media_seterr(r->e->err, "layers cannot be drawn into an audio-only output");
            return KD_EINVAL;
        }
        kd_media_seterr(r->e->err, "the input has no picture to draw layers on");
        return KD_EMEDIA;
    }
    r->has_base_audio = dec_audio(r) && any_audio && !replace;
    r->ov.is_video = true;
    r->ov.is_active = dec_video(r);
    r->oa.is_active = dec_audio(r);
    r->ov.last_pts = r->oa.last_pts = AV_NOPTS_VALUE;
    if (dec_video(r))
        video_target(r, vref);
    for (size_t i = 0; i < r->n_feeds; i++) {
        struct feed *fd = &r->feeds[i];
        struct kd_media_input *in = fd->in;
        bool use_v = false, use_a = false;

        switch (fd->role) {
        case FEED_INPUT:
            use_v = dec_video(r) && in->video_idx >= 0;
            use_a = r->has_base_audio && in->audio_idx >= 0;
            gaps |= (dec_video(r) && !use_v) || (r->has_base_audio && !use_a);
            break;
        case FEED_LAYER:
            use_v = true; /* its own sound is ignored */
            break;
        case FEED_AUDIO:
            use_a = true;
            break;
        }
        if (use_v && (rc = setup_side(r, fd, &fd->v, in->video_idx, true)) != KD_OK)
            return rc;
        if (use_a && (rc = setup_side(r, fd, &fd->a, in->audio_idx, false)) != KD_OK)
            return rc;
        /* The demuxer need not hand us packets nobody decodes. */
        for (unsigned k = 0; k < in->fmt->nb_streams; k++)
            if (!((use_v && (int)k == fd->v.idx) || (use_a && (int)k == fd->a.idx)))
                in->fmt->streams[k]->discard = AVDISCARD_ALL;
    }
    return total_length(r, gaps || r->track != NULL || spec->thumbnails.count > 0 ||
                               has_picture_layers(spec) || r->cv.is_active || r->ca.is_active ||
                               (spec->n_inputs > 1 && spec->has_transition));
}

/* Makes a chain last exactly len_s: xfade places each fade at an offset
 * computed from the declared lengths, and ends the whole output if its
 * first input stops before that offset. A picture that ends early holds
 * its last frame, sound that ends early is followed by silence, and
 * anything beyond is cut. */
static enum kd_err
exact_length(struct run *r, bool is_video, double len_s, struct kd_media_pad *tail)
{
    char len[32];
    enum kd_err rc;

    (void)snprintf(len, sizeof(len), "%.6f", len_s);
    if (is_video)
        rc = kd_media_graph_append(
            &r->gr, "tpad", (const char *[]){"stop_mode", "clone", "stop_duration", len, NULL},
            tail, r->e->err);
    else
        rc = kd_media_graph_append(&r->gr, "apad", (const char *[]){"whole_dur", len, NULL}, tail,
                                   r->e->err);
    if (rc != KD_OK)
        return rc;
    return kd_media_graph_append(&r->gr, is_video ? "trim" : "atrim",
                                 (const char *[]){"duration", len, NULL}, tail, r->e->err);
}

/* Each input contributes its chains (or black and silence in their place),
 * they are joined, the layers are drawn in order, the track is added, and
 * the sinks end the tails. */
static enum kd_err
build_graph(struct run *r)
{
    const struct kd_jobspec *spec = r->e->spec;
    size_t n = spec->n_inputs, li = spec->n_inputs;
    struct kd_media_pad *vt = NULL, *at = NULL, vtail = {NULL, 0}, atail = {NULL, 0};
    double *durs = NULL;
    double trans = n > 1 && spec->has_transition ? spec->transition_s : 0;
    enum kd_err rc;

    if ((rc = kd_media_graph_init(&r->gr)) != KD_OK)
        goto out;
    /* Slice threads for the filters that have them (overlay, xfade, the
     * colour conversions), as many as the job's threads: what the ffmpeg
     * command line does. */
    r->gr.g->nb_threads = r->e->threads > 0 ? r->e->threads : 0;
    if ((vt = calloc(n, sizeof(*vt))) == NULL || (at = calloc(n, sizeof(*at))) == NULL ||
        (durs = calloc(n, sizeof(*durs))) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct feed *fd = &r->feeds[i];

        durs[i] = fd->dur_s;
        if (dec_video(r)) {
            if (fd->v.is_used && fd->in->kind == KD_MEDIA_KIND_IMAGE)
                rc = kd_media_graph_input_still(&r->gr, fd->v.st, fd->dur_s, &r->plan.vt,
                                                &fd->v.src, &vt[i], r->e->err);
            else if (fd->v.is_used)
                rc = kd_media_graph_input_video(&r->gr, fd->v.st, &fd->span, &r->plan.vt,
                                                &fd->v.src, &vt[i], r->e->err);
            else
                rc = kd_media_graph_black(&r->gr, &r->plan.vt, fd->dur_s, &vt[i], r->e->err);
            if (rc != KD_OK)
                goto out;
            if (trans > 0 && fd->v.is_used &&
                (rc = exact_length(r, true, fd->dur_s, &vt[i])) != KD_OK)
                goto out;
        }
        if (r->has_base_audio) {
            if (fd->a.is_used)
                rc = kd_media_graph_input_audio(&r->gr, fd->a.st, &fd->span, &r->plan.at,
                                                &fd->a.src, &at[i], r->e->err);
            else
                rc = kd_media_graph_silence(&r->gr, &r->plan.at, fd->dur_s, &at[i], r->e->err);
            if (rc != KD_OK)
                goto out;
            if (trans > 0 && fd->a.is_used &&
                (rc = exact_length(r, false, fd->dur_s, &at[i])) != KD_OK)
                goto out;
        }
    }
    if ((rc = kd_media_graph_join(&r->gr, n, dec_video(r) ? vt : NULL,
                                  r->has_base_audio ? at : NULL, durs, trans, r->plan.vt.fps,
                                  r->plan.at.sample_rate, r->e->err)) != KD_OK)
        goto out;
    vtail = vt[0];
    atail = r->has_base_audio ? at[0] : (struct kd_media_pad){NULL, 0};
    for (size_t i = 0; i < spec->n_layers; i++) {
        const struct kd_layer *l = &spec->layers[i];

        if (l->type != KD_LAYER_SUBTITLES && !isnan(r->total_s) && l->start_s >= r->total_s) {
            /* Nothing of it would show; its file is not read. */
            char msg[128];

            (void)snprintf(msg, sizeof(msg),
                           "layers[%zu] starts at %.3f s, not before the end of the output "
                           "(%.3f s); it was left out",
                           i, l->start_s, r->total_s);
            event(r, "warning", msg);
            if (is_picture_layer(l))
                r->feeds[li++].v.is_used = false;
            continue;
        }
        if (l->type == KD_LAYER_TEXT) {
            rc = kd_media_graph_text(&r->gr, l, r->e->lim, &vtail, r->e->err);
        } else if (l->type == KD_LAYER_SUBTITLES) {
            struct kd_subs_timing t = subs_timing(l, r->total_s);

            if (is_soft_subs(l))
                continue; /* a stream of the output, not a node */
            rc = kd_subs_burn_node(r->subs[i], l, &t, r->plan.vt.width, r->plan.vt.height, &r->gr,
                                   &vtail, r->e->err);
        } else {
            struct feed *fd = &r->feeds[li++];

            rc = kd_media_graph_overlay(&r->gr, l, fd->v.st, r->plan.vt.width, r->total_s,
                                        &fd->v.src, &vtail, r->e->err);
        }
        if (rc != KD_OK)
            goto out;
    }
    if (r->track != NULL && dec_audio(r) &&
        (rc = kd_media_graph_audio_track(&r->gr, &spec->audio, r->track->a.st, &r->plan.at,
                                         r->total_s, &atail, &r->track->a.src, &atail,
                                         r->e->err)) != KD_OK)
        goto out;
    if (dec_video(r)) {
        /* Overlays may hand on a format with alpha: the encoder's, exactly. */
        if ((rc = kd_media_graph_append(
                 &r->gr, "format",
                 (const char *[]){"pix_fmts", av_get_pix_fmt_name(r->plan.vt.pix_fmt), NULL},
                 &vtail, r->e->err)) != KD_OK ||
            (rc = kd_media_graph_sink(&r->gr, true, &vtail, &r->ov.sink, r->e->err)) != KD_OK)
            goto out;
    }
    if (dec_audio(r) &&
        (rc = kd_media_graph_sink(&r->gr, false, &atail, &r->oa.sink, r->e->err)) != KD_OK)
        goto out;
    rc = kd_media_graph_config(&r->gr, r->e->err);
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(r->e->err, "out of memory");
    free(vt);
    free(at);
    free(durs);
    return rc;
}

/* Seconds on the file's timeline of a packet of side s. */
static double
packet_s(const struct side *s, const AVPacket *pkt)
{
    int64_t t = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;

    if (t == AV_NOPTS_VALUE)
        return NAN;
    return (double)(t - s->offset) * av_q2d(s->st->time_base);
}

/* Whether reading from the current position reaches every used stream
 * no later than start_s: the first video keyframe and the first audio
 * packet must be at or before it. Reads a bounded number of packets. */
static enum kd_err
lands_before(struct run *r, struct feed *fd, bool *ok)
{
    bool need_v = fd->v.is_used, need_a = fd->a.is_used;
    double slack = 0.001;
    enum kd_err rc = KD_OK;
    int ret;

    *ok = true;
    for (int n = 0; (need_v || need_a) && n < SEEK_CHECK_PACKETS; n++) {
        if (poll_cancel(r)) {
            rc = cancelled(r);
            goto out;
        }
        if ((ret = av_read_frame(fd->in->fmt, r->pkt)) < 0) {
            if ((rc = kd_media_input_store_check(fd->in, r->e->err, fd->name)) != KD_OK)
                goto out;
            break;
        }
        if (need_v && r->pkt->stream_index == fd->v.idx && (r->pkt->flags & AV_PKT_FLAG_KEY)) {
            double t = packet_s(&fd->v, r->pkt);
            need_v = false;
            if (!isnan(t) && t > fd->span.start_s + slack)
                *ok = false;
        } else if (need_a && r->pkt->stream_index == fd->a.idx) {
            double t = packet_s(&fd->a, r->pkt);
            need_a = false;
            if (!isnan(t) && t > fd->span.start_s + slack)
                *ok = false;
        }
        av_packet_unref(r->pkt);
    }
    /* A stream not met at all: the landing is past its last keyframe (or
     * it ends before the span; then the start of the file settles it). */
    if (need_v || need_a)
        *ok = false;
out:
    av_packet_unref(r->pkt);
    return rc;
}

/* Starts reading at the keyframe before the span; the trims drop the rest.
 * Demuxers without an index (MPEG-TS, some AVI) may land after the
 * keyframe they were asked for, which would lose the start of the span:
 * each landing is checked and the target moved back (1 s, 2 s, 4 s, ...)
 * until it holds, ending at the file's start. */
static enum kd_err
seek_to_span(struct run *r, struct feed *fd)
{
    double back = 0, target;
    bool ok = false;
    enum kd_err rc;
    int ret;

    if (fd->span.start_s <= 0)
        return KD_OK;
    for (int attempt = 0; !ok; attempt++) {
        int64_t ts;

        target = fd->span.start_s - back;
        if (target <= 0 || attempt >= SEEK_ATTEMPTS) {
            ts = fd->in->start_time;
            if ((ret = avformat_seek_file(fd->in->fmt, -1, INT64_MIN, ts, ts, 0)) < 0) {
                kd_media_seterr(r->e->err, "%s could not seek back to its start", fd->name);
                return KD_EMEDIA;
            }
            return KD_OK; /* read from the start: slow but exact */
        }
        ts = fd->in->start_time + (int64_t)(target * AV_TIME_BASE);
        if ((ret = avformat_seek_file(fd->in->fmt, -1, INT64_MIN, ts, ts, 0)) < 0) {
            if (attempt > 0) {
                kd_media_seterr(r->e->err, "%s could not seek back", fd->name);
                return KD_EMEDIA;
            }
            kd_log(KD_LOG_INFO, "media: %s cannot seek; reading from its start", fd->name);
            return KD_OK; /* still at the start: nothing was read yet */
        }
        if ((rc = lands_before(r, fd, &ok)) != KD_OK)
            return rc;
        /* Seeking is deterministic: the same target lands in the same
         * place again, now to be read for real. */
        if (ok && (ret = avformat_seek_file(fd->in->fmt, -1, INT64_MIN, ts, ts, 0)) < 0) {
            kd_media_seterr(r->e->err, "%s could not be read again after seeking", fd->name);
            return KD_EMEDIA;
        }
        back = back > 0 ? back * 2 : 1.0;
    }
    return KD_OK;
}

/* The first read of a feed: its decoders, and the start of its slice. */
static enum kd_err
start_feed(struct run *r, struct feed *fd)
{
    struct side *sides[2] = {&fd->v, &fd->a};
    enum kd_err rc;

    fd->is_started = true;
    for (size_t i = 0; i < KD_ARRAY_LEN(sides); i++) {
        if (!sides[i]->is_used)
            continue;
        if ((rc = kd_media_decoder_open(fd->in, sides[i]->idx, r->e->lim, r->e->threads,
                                        &sides[i]->dec, r->e->err)) != KD_OK)
            return rc;
    }
    return fd->role == FEED_INPUT ? seek_to_span(r, fd) : KD_OK;
}

/* A feed that has given everything: its memory goes back. */
static enum kd_err
finish_feed(struct run *r, struct feed *fd)
{
    enum kd_err rc;

    if ((rc = close_src(r, &fd->v)) != KD_OK || (rc = close_src(r, &fd->a)) != KD_OK)
        return rc;
    fd->is_done = true;
    avcodec_free_context(&fd->v.dec);
    avcodec_free_context(&fd->a.dec);
    side_free_converters(&fd->v);
    side_free_converters(&fd->a);
    kd_media_input_close(fd->in);
    fd->in = NULL;
    return KD_OK;
}

/* The end of the file: the decoders' last frames, then either the start
 * again (a looping track that gave sound in this pass) or the end. */
static enum kd_err
end_of_file(struct run *r, struct feed *fd)
{
    enum kd_err rc;
    int64_t ts;

    if ((rc = decode(r, fd, &fd->v, NULL)) != KD_OK || (rc = decode(r, fd, &fd->a, NULL)) != KD_OK)
        return rc;
    if (fd->is_loop && !fd->a.is_closed && fd->a.has_pushed && fd->a.end_pts > fd->loop_start_pts) {
        ts = fd->in->start_time;
        if (avformat_seek_file(fd->in->fmt, -1, INT64_MIN, ts, ts, 0) >= 0) {
            avcodec_flush_buffers(fd->a.dec);
            fd->a.shift = fd->a.end_pts;
            fd->loop_start_pts = fd->a.end_pts;
            fd->a.next_pts = AV_NOPTS_VALUE;
            return KD_OK;
        }
        event(r, "warning", "the audio track could not be looped");
    }
    return finish_feed(r, fd);
}

/* Reads and decodes one packet of fd. */
static enum kd_err
read_feed(struct run *r, struct feed *fd)
{
    struct side *s = NULL;
    char msg[96];
    enum kd_err rc;
    int ret;

    if (!fd->is_started && (rc = start_feed(r, fd)) != KD_OK)
        return rc;
    ret = av_read_frame(fd->in->fmt, r->pkt);
    if (ret < 0) {
        if (fd->in->guard.is_cancelled)
            return cancelled(r);
        /* A store that stopped answering is not the file's end: going on
         * would cut the output short without a word. */
        if ((rc = kd_media_input_store_check(fd->in, r->e->err, fd->name)) != KD_OK)
            return rc;
        if (ret != AVERROR_EOF) {
            /* A damaged tail ends the file, as in players. */
            (void)snprintf(msg, sizeof(msg), "%s ends with damaged data; it was cut there",
                           fd->name);
            event(r, "warning", msg);
        }
        return end_of_file(r, fd);
    }
    if (fd->v.is_used && r->pkt->stream_index == fd->v.idx)
        s = &fd->v;
    else if (fd->a.is_used && r->pkt->stream_index == fd->a.idx)
        s = &fd->a;
    rc = s != NULL ? decode(r, fd, s, r->pkt) : KD_OK;
    av_packet_unref(r->pkt);
    if (rc != KD_OK)
        return rc;
    if ((!fd->v.is_used || fd->v.is_closed) && (!fd->a.is_used || fd->a.is_closed))
        return finish_feed(r, fd);
    return KD_OK;
}

static unsigned
failed_requests(const struct side *s)
{
    if (!s->is_used || s->is_closed || s->src == NULL)
        return 0;
    return av_buffersrc_get_nb_failed_requests(s->src);
}

/* The feed the graph is waiting for: the one whose source was asked most
 * often in vain. When none was asked, the first that is still open (a
 * source may wait behind a filter that has not asked yet). */
static struct feed *
pick_feed(struct run *r, bool *is_blind)
{
    struct feed *best = NULL, *first = NULL;
    unsigned most = 0;

    for (size_t i = 0; i < r->n_feeds; i++) {
        struct feed *fd = &r->feeds[i];
        unsigned n;

        if (fd->is_done)
            continue;
        n = failed_requests(&fd->v);
        if (failed_requests(&fd->a) > n)
            n = failed_requests(&fd->a);
        if (n > most) {
            most = n;
            best = fd;
        }
        if (first == NULL &&
            ((fd->v.is_used && !fd->v.is_closed) || (fd->a.is_used && !fd->a.is_closed)))
            first = fd;
    }
    *is_blind = best == NULL;
    return best != NULL ? best : first;
}

static bool
is_all_eof(const struct run *r)
{
    return (!r->ov.is_active || r->ov.is_eof) && (!r->oa.is_active || r->oa.is_eof);
}

/* ---- copied streams ---- */

static void
copier_close_input(struct copier *c)
{
    avcodec_free_context(&c->dec);
    kd_media_input_close(c->in);
    c->in = NULL;
}

static void
copier_free(struct copier *c)
{
    copier_close_input(c);
    av_bsf_free(&c->bsf);
}

/* Copied pictures decoded for thumbnails (pkt NULL: the end of an input),
 * placed on the output timeline. */
static enum kd_err
copier_thumbs(struct run *r, struct copier *c, const AVPacket *pkt)
{
    const AVStream *st = c->in->fmt->streams[c->idx];
    double start = (double)c->in->start_time / AV_TIME_BASE;
    enum kd_err rc;
    int ret;

    if (c->dec == NULL || r->thumbs == NULL)
        return KD_OK;
    if ((ret = avcodec_send_packet(c->dec, pkt)) < 0 && ret != AVERROR_EOF &&
        ret != AVERROR(EAGAIN))
        return KD_OK; /* a damaged packet: copied as it is, no thumbnail */
    while ((ret = avcodec_receive_frame(c->dec, r->frame)) >= 0) {
        int64_t ts = r->frame->best_effort_timestamp;

        if (ts != AV_NOPTS_VALUE) {
            double t = (double)ts * av_q2d(st->time_base) - start - c->seg_start_s + c->base_s;

            r->frame->pts = llround(t * AV_TIME_BASE);
            rc = t >= c->base_s - 0.001
                     ? kd_thumbs_push(r->thumbs, r->frame, AV_TIME_BASE_Q, r->e->err)
                     : KD_OK;
            if (rc != KD_OK) {
                av_frame_unref(r->frame);
                return rc;
            }
        }
        av_frame_unref(r->frame);
    }
    return KD_OK;
}

/* Opens the next input for copying, at its slice. */
static enum kd_err
copier_open(struct run *r, struct copier *c)
{
    struct feed *fd = &r->feeds[c->cur];
    char msg[KD_MEDIA_ERRLEN];
    enum kd_err rc;
    int64_t ts;

    if ((rc = kd_media_input_open(r->e->store, fd->path, r->e->lim, KD_MEDIA_OPEN_TIMEOUT_MS,
                                  r->e->cancelled, r->e->ud, &c->in, msg)) != KD_OK) {
        kd_media_seterr(r->e->err, "%s: %s", fd->name, msg);
        return rc;
    }
    c->idx = c->is_video ? c->in->video_idx : c->in->audio_idx;
    if (c->idx < 0) {
        kd_media_seterr(r->e->err, "%s changed while the job ran", fd->name);
        return KD_EMEDIA;
    }
    for (unsigned k = 0; k < c->in->fmt->nb_streams; k++)
        if ((int)k != c->idx)
            c->in->fmt->streams[k]->discard = AVDISCARD_ALL;
    c->seg_start_s = fd->span.start_s;
    c->seg_end_s = isnan(fd->span.end_s) ? INFINITY : fd->span.end_s;
    c->is_started = false;
    if (c->seg_start_s > 0) {
        const AVStream *st = c->in->fmt->streams[c->idx];

        /* The picture's slice starts on a keyframe (found the same way
         * before); sound lands before and is sorted by the slice. */
        ts = av_rescale_q(c->in->start_time + llround(c->seg_start_s * AV_TIME_BASE),
                          AV_TIME_BASE_Q, st->time_base);
        if (av_seek_frame(c->in->fmt, c->idx, ts, AVSEEK_FLAG_BACKWARD) < 0) {
            kd_media_seterr(r->e->err, "%s could not seek to its start", fd->name);
            return KD_EMEDIA;
        }
    }
    if (c->is_video && r->thumbs != NULL) {
        /* The copied picture keeps the first input's display matrix, so
         * the thumbnails are turned the way players show it (the call is
         * a no-op once the first thumbnail exists). */
        if (c->cur == 0)
            kd_thumbs_set_rotation(r->thumbs,
                                   kd_media_stream_rotation(c->in->fmt->streams[c->idx]));
        return kd_media_decoder_open(c->in, c->idx, r->e->lim, r->e->threads, &c->dec, r->e->err);
    }
    return KD_OK;
}

/* The end of one input's slice: the next starts where it was to end. */
static enum kd_err
copier_next(struct run *r, struct copier *c)
{
    enum kd_err rc;

    if ((rc = copier_thumbs(r, c, NULL)) != KD_OK)
        return rc;
    copier_close_input(c);
    c->base_s += r->feeds[c->cur].dur_s;
    if (++c->cur >= r->e->spec->n_inputs) {
        c->is_done = true;
        if (c->n_packets == 0) {
            kd_media_seterr(r->e->err, "the chosen range of the input holds no %s",
                            c->is_video ? "picture" : "sound");
            return KD_EMEDIA;
        }
    }
    return KD_OK;
}

/* Whether a packet (seconds from the file's start) belongs to the slice;
 * *is_end when it and everything after lies beyond it. */
static bool
copier_keeps(struct copier *c, const AVPacket *pkt, double t, double dt, double dur, bool *is_end)
{
    *is_end = false;
    if (!c->is_video) {
        /* Sound packets mostly inside the slice are kept; at the very
         * start also the encoder's priming packets before 0 (the muxer
         * records them as skipped), as a plain copy does. */
        if (t + dur / 2 >= c->seg_end_s) {
            *is_end = true;
            return false;
        }
        return t + dur / 2 >= c->seg_start_s || (c->cur == 0 && c->seg_start_s <= 0);
    }
    if (!c->is_started) {
        if (!(pkt->flags & AV_PKT_FLAG_KEY))
            return false;
        c->is_started = true;
    }
    /* Decoding order: once a packet is decoded past the end, all are. */
    if (dt >= c->seg_end_s) {
        *is_end = true;
        return false;
    }
    return t < c->seg_end_s;
}

/* Copies one packet of c, retimed onto the output timeline. */
static enum kd_err
copy_step(struct run *r, struct copier *c)
{
    AVPacket *pkt = r->pkt;
    const AVStream *st;
    AVStream *ost = c->is_video ? r->out->vst : r->out->ast;
    double start, t, dt, dur;
    int64_t shift;
    bool is_end = false;
    enum kd_err rc = KD_OK;
    int ret;

    if (c->in == NULL && (rc = copier_open(r, c)) != KD_OK)
        return rc;
    if ((ret = av_read_frame(c->in->fmt, pkt)) < 0) {
        if (c->in->guard.is_cancelled)
            return cancelled(r);
        /* A store that stopped answering is not the file's end. */
        if ((rc = kd_media_input_store_check(c->in, r->e->err, r->feeds[c->cur].name)) != KD_OK)
            return rc;
        return copier_next(r, c);
    }
    st = c->in->fmt->streams[c->idx];
    if (pkt->stream_index != c->idx || (pkt->pts == AV_NOPTS_VALUE && pkt->dts == AV_NOPTS_VALUE))
        goto out;
    if (pkt->pts == AV_NOPTS_VALUE)
        pkt->pts = pkt->dts;
    if (pkt->dts == AV_NOPTS_VALUE)
        pkt->dts = pkt->pts;
    start = (double)c->in->start_time / AV_TIME_BASE;
    t = (double)pkt->pts * av_q2d(st->time_base) - start;
    dt = (double)pkt->dts * av_q2d(st->time_base) - start;
    dur = (double)pkt->duration * av_q2d(st->time_base);
    if (!copier_keeps(c, pkt, t, dt, dur, &is_end)) {
        av_packet_unref(pkt);
        return is_end ? copier_next(r, c) : KD_OK;
    }
    if ((rc = copier_thumbs(r, c, pkt)) != KD_OK)
        goto out;
    /* The slice's start moves to where this input begins on the output. */
    shift = av_rescale_q(c->in->start_time, AV_TIME_BASE_Q, st->time_base) +
            llround((c->seg_start_s - c->base_s) / av_q2d(st->time_base));
    pkt->pts -= shift;
    pkt->dts -= shift;
    av_packet_rescale_ts(pkt, st->time_base, ost->time_base);
    if (c->last_dts != AV_NOPTS_VALUE && pkt->dts <= c->last_dts) {
        pkt->dts = c->last_dts + 1;
        if (pkt->pts < pkt->dts)
            pkt->pts = pkt->dts;
    }
    c->last_dts = pkt->dts;
    if (c->base_s + t - c->seg_start_s + dur > c->pos_s)
        c->pos_s = c->base_s + t - c->seg_start_s + dur;
    c->n_packets++;
    if (c->bsf != NULL) {
        if ((ret = av_bsf_send_packet(c->bsf, pkt)) < 0) {
            rc = kd_media_averr(NULL, ret, KD_EMEDIA, r->e->err, "copying the sound");
            goto out;
        }
        while ((ret = av_bsf_receive_packet(c->bsf, pkt)) >= 0)
            if ((rc = kd_media_output_write(r->out, c->is_video, pkt, r->e->err)) != KD_OK)
                goto out;
        if (ret != AVERROR(EAGAIN) && ret != AVERROR_EOF)
            rc = kd_media_averr(NULL, ret, KD_EMEDIA, r->e->err, "copying the sound");
        goto out;
    }
    rc = kd_media_output_write(r->out, c->is_video, pkt, r->e->err);
out:
    av_packet_unref(pkt);
    if (rc == KD_OK)
        report(r);
    return rc;
}

/* The output stream of a copier, from the first input's stream: ADTS AAC
 * (raw .aac, MPEG-TS) gets its configuration out of band for containers
 * that want it once. */
static enum kd_err
copier_param(struct run *r, struct copier *c, struct kd_media_copy *cp)
{
    const struct kd_media_input *in = r->feeds[0].in;
    const AVStream *st = in->fmt->streams[c->is_video ? in->video_idx : in->audio_idx];
    const AVBitStreamFilter *f;
    int ret;

    cp->st = st;
    cp->par = st->codecpar;
    if (c->is_video || st->codecpar->codec_id != AV_CODEC_ID_AAC ||
        st->codecpar->extradata_size > 0 || !(r->plan.ofmt->flags & AVFMT_GLOBALHEADER))
        return KD_OK;
    if ((f = av_bsf_get_by_name("aac_adtstoasc")) == NULL || (ret = av_bsf_alloc(f, &c->bsf)) < 0 ||
        (ret = avcodec_parameters_copy(c->bsf->par_in, st->codecpar)) < 0 ||
        (c->bsf->time_base_in = st->time_base, ret = av_bsf_init(c->bsf)) < 0) {
        kd_media_seterr(r->e->err, "internal error (aac_adtstoasc)");
        return KD_EINTERNAL;
    }
    cp->par = c->bsf->par_out;
    return KD_OK;
}

/* The copier to advance now: the one furthest behind, unless it is ahead
 * of the decoded streams still running. NULL: none. */
static struct copier *
copier_due(struct run *r)
{
    struct copier *c = NULL;
    double graph = INFINITY;

    if (r->cv.is_active && !r->cv.is_done)
        c = &r->cv;
    if (r->ca.is_active && !r->ca.is_done && (c == NULL || r->ca.pos_s < c->pos_s))
        c = &r->ca;
    if (c == NULL)
        return NULL;
    if (r->ov.is_active && !r->ov.is_eof)
        graph = r->ov.end_s;
    if (r->oa.is_active && !r->oa.is_eof && r->oa.end_s < graph)
        graph = r->oa.end_s;
    return c->pos_s <= graph + COPY_AHEAD_S ? c : NULL;
}

/* The main loop: drain the sinks, ask the graph for the oldest stream,
 * read the file it waits for; then flush the encoders. Copied streams are
 * advanced alongside, never far ahead of the decoded ones. */
static enum kd_err
transcode(struct run *r)
{
    struct osink *sinks[2] = {&r->ov, &r->oa};
    long blind = 0;
    enum kd_err rc;
    int ret;

    for (;;) {
        struct feed *fd;
        struct copier *c;
        bool got = false, is_blind;

        if (poll_cancel(r))
            return cancelled(r);
        if ((rc = drain_all(r, &got)) != KD_OK)
            return rc;
        if ((c = copier_due(r)) != NULL) {
            if ((rc = copy_step(r, c)) != KD_OK)
                return rc;
            continue;
        }
        if (is_all_eof(r))
            break;
        ret = avfilter_graph_request_oldest(r->gr.g);
        if (ret >= 0 || (ret == AVERROR_EOF && got))
            continue;
        if (ret == AVERROR_EOF) {
            /* Every sink has ended: the next drain reads their ends. */
            if ((rc = drain_all(r, &got)) != KD_OK)
                return rc;
            if (!is_all_eof(r))
                break;
            continue;
        }
        if (ret != AVERROR(EAGAIN))
            return kd_media_averr(NULL, ret, KD_EINTERNAL, r->e->err, "filtering failed");
        if ((fd = pick_feed(r, &is_blind)) == NULL)
            break;
        blind = is_blind ? blind + 1 : 0;
        if (blind > MAX_BLIND_READS) {
            kd_media_seterr(r->e->err, "internal error (the filter graph stopped asking for "
                                       "input)");
            return KD_EINTERNAL;
        }
        if ((rc = read_feed(r, fd)) != KD_OK)
            return rc;
    }
    for (size_t i = 0; i < KD_ARRAY_LEN(sinks); i++) {
        if (sinks[i]->is_active && !sinks[i]->is_eof) {
            kd_media_seterr(r->e->err, "internal error (the filter graph did not finish)");
            return KD_EINTERNAL;
        }
        if (sinks[i]->is_active && sinks[i]->n_frames == 0) {
            kd_media_seterr(r->e->err, "the chosen range of the input holds no %s",
                            sinks[i]->is_video ? "picture" : "sound");
            return KD_EMEDIA;
        }
    }
    return KD_OK;
}

static const char *
generic_message(enum kd_err rc)
{
    switch (rc) {
    case KD_ENOMEM:
        return "out of memory";
    case KD_ECANCELED:
        return "cancelled";
    case KD_EMEDIA:
        return "the input could not be processed";
    default:
        return "internal error";
    }
}

static void
free_feeds(struct run *r)
{
    for (size_t i = 0; i < r->n_feeds; i++) {
        struct feed *fd = &r->feeds[i];

        avcodec_free_context(&fd->v.dec);
        avcodec_free_context(&fd->a.dec);
        side_free_converters(&fd->v);
        side_free_converters(&fd->a);
        av_channel_layout_uninit(&fd->a.ch_layout);
        kd_media_input_close(fd->in);
    }
    free(r->feeds);
    r->feeds = NULL;
    r->n_feeds = 0;
}

/* Copies packets instead of decoding when the spec allows it; codec copy
 * has no other way. */
static enum kd_err
try_remux(struct run *r, bool *is_remuxed)
{
    const struct kd_output *o = &r->e->spec->output;
    struct kd_remux_inputs *opened = NULL;
    char why[KD_MEDIA_ERRLEN] = "";
    bool possible = false;
    enum kd_err rc;

    *is_remuxed = false;
    if ((rc = kd_remux_possible(r->e, &possible, &opened, why)) != KD_OK) {
        kd_media_seterr(r->e->err, "%s", why);
        return rc;
    }
    if (!possible) {
        /* A copied stream beside a decoded one is the decode path's. */
        kd_log(KD_LOG_DEBUG, "media: %s: %s",
               o->video_codec == KD_VCODEC_COPY || o->audio_codec == KD_ACODEC_COPY
                   ? "copying one stream, decoding the other"
                   : "re-encoding",
               why);
        return KD_OK;
    }
    *is_remuxed = true;
    return kd_remux_run(r->e, opened);
}

/* Soft subtitle streams: added before the header (is_after false), their
 * cues written right after it. */
static enum kd_err
soft_subs(struct run *r, bool is_after)
{
    const struct kd_jobspec *spec = r->e->spec;
    enum kd_err rc;

    for (size_t i = 0; i < spec->n_layers; i++) {
        struct kd_subs_timing t = subs_timing(&spec->layers[i], r->total_s);

        if (!is_soft_subs(&spec->layers[i]))
            continue;
        if (is_after)
            rc = kd_subs_soft_write(r->subs[i], r->out->fmt, &t, r->e->err);
        else
            rc = kd_subs_soft_add(r->subs[i], r->out->fmt, spec->output.container, r->e->err);
        if (rc != KD_OK)
            return rc;
    }
    return KD_OK;
}

static enum kd_err
new_thumbs(struct run *r)
{
    const struct kd_thumbnails *th = &r->e->spec->thumbnails;

    if (!r->plan.has_video) {
        kd_media_seterr(r->e->err, "thumbnails need an output with a picture");
        return KD_EINVAL;
    }
    if (isnan(r->total_s) || r->total_s <= 0) {
        kd_media_seterr(r->e->err, "thumbnails need inputs of a known length; give them an end");
        return KD_EMEDIA;
    }
    return kd_thumbs_new(r->e->work_dir, th->count, th->width > 0 ? th->width : 320, r->total_s,
                         &r->thumbs, r->e->err);
}

enum kd_err
kd_media_edit(struct kd_edit *e)
{
    struct run r;
    struct kd_media_copy vcopy = {0}, acopy = {0};
    bool is_remuxed = false;
    enum kd_err rc;

    memset(&r, 0, sizeof(r));
    r.e = e;
    r.total_s = NAN;
    e->err[0] = '\0';
    e->duration_s = 0;
    e->thumb_paths = NULL;
    e->n_thumbs = 0;
    kd_media_setup();
    r.last_poll_ms = kd_mono_ms();

    if ((rc = check_spec(e)) != KD_OK)
        goto out;
    if ((rc = try_remux(&r, &is_remuxed)) != KD_OK || is_remuxed)
        goto out;
    if ((rc = open_subs(&r)) != KD_OK)
        goto out;
    if ((rc = open_feeds(&r)) != KD_OK)
        goto out;
    if ((rc = plan(&r)) != KD_OK)
        goto out;
    if ((rc = build_graph(&r)) != KD_OK)
        goto out;
    if ((r.pkt = av_packet_alloc()) == NULL || (r.frame = av_frame_alloc()) == NULL ||
        (r.filtered = av_frame_alloc()) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if ((r.cv.is_active && (rc = copier_param(&r, &r.cv, &vcopy)) != KD_OK) ||
        (r.ca.is_active && (rc = copier_param(&r, &r.ca, &acopy)) != KD_OK))
        goto out;
    if ((rc = kd_media_output_open(e->out_path, &e->spec->output, &r.plan, r.ov.sink, r.oa.sink,
                                   r.cv.is_active ? &vcopy : NULL, r.ca.is_active ? &acopy : NULL,
                                   e->threads, e->cancelled, e->ud, &r.out, e->err)) != KD_OK)
        goto out;
    if ((rc = soft_subs(&r, false)) != KD_OK)
        goto out;
    if ((rc = kd_media_output_start(r.out, &e->spec->output, e->err)) != KD_OK)
        goto out;
    if ((rc = soft_subs(&r, true)) != KD_OK)
        goto out;
    if (e->spec->thumbnails.count > 0 && (rc = new_thumbs(&r)) != KD_OK)
        goto out;
    if ((rc = transcode(&r)) != KD_OK)
        goto out;
    if ((rc = kd_media_output_finish(r.out, e->err)) != KD_OK)
        goto out;
    if (r.thumbs != NULL &&
        (rc = kd_thumbs_finish(r.thumbs, &e->thumb_paths, &e->n_thumbs, e->err)) != KD_OK)
        goto out;
    e->duration_s = fmax(fmax(r.ov.end_s, r.oa.end_s), fmax(r.cv.pos_s, r.ca.pos_s));
    if (e->progress != NULL)
        e->progress(e->ud, 1.0);
out:
    if (rc != KD_OK && e->err[0] == '\0')
        kd_media_seterr(e->err, "%s", generic_message(rc));
    if (rc != KD_OK)
        kd_log(rc == KD_EINTERNAL ? KD_LOG_ERROR : KD_LOG_INFO, "media: edit failed: %s (%s)",
               e->err, kd_err_name(rc));
    av_frame_free(&r.filtered);
    av_frame_free(&r.frame);
    av_packet_free(&r.pkt);
    kd_media_output_close(r.out);
    kd_media_graph_clear(&r.gr);
    copier_free(&r.cv);
    copier_free(&r.ca);
    free_feeds(&r);
    kd_thumbs_free(r.thumbs);
    for (size_t i = 0; r.subs != NULL && i < e->spec->n_layers; i++)
        kd_subs_free(r.subs[i]);
    free(r.subs);
    kd_media_plan_clear(&r.plan);
    return rc;
}

void
kd_edit_clear(struct kd_edit *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n_thumbs; i++)
        free(e->thumb_paths[i]);
    free(e->thumb_paths);
    e->thumb_paths = NULL;
    e->n_thumbs = 0;
}
