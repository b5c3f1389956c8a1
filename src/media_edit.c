/* media_edit.c: running an edit job (kd_media_edit).
 *
 * One pass: read -> decode -> filter graph -> encode -> mux. The spec is
 * checked first for what this version does not do yet, so that such a job
 * fails at once with a message naming the operation instead of producing
 * something else. Then the input is opened safely, the plan (muxer, codecs,
 * target size and formats) is fixed, the graph is built node by node, and
 * frames flow until the trimmed range is done.
 *
 * Cancellation is polled every few frames and at least every 100 ms of work
 * (and from inside I/O by the interrupt callbacks); progress is the output
 * timeline's position against the expected duration, never decreasing. */
#include "media_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>

#include "log.h"
#include "util.h"

#define CANCEL_EVERY_N 16     /* frames or packets between polls ... */
#define CANCEL_EVERY_MS 100   /* ... or this much time, whichever first */
#define MAX_DECODE_ERRORS 100 /* damaged packets skipped before giving up */
#define SEEK_CHECK_PACKETS 1000 /* read after a seek to see where it landed */
#define SEEK_ATTEMPTS 6       /* targets moved back 1+2+...+32 s, then the start */

/* One stream of the input on its way through the graph to the encoder. */
struct side {
    bool is_video;
    bool is_active;               /* the output has this stream */
    int idx;                      /* stream index in the input */
    AVStream *st;
    AVCodecContext *dec;
    AVFilterContext *src, *sink;
    int64_t offset;               /* the input's start time, in st's time base */
    int64_t next_pts;             /* for frames without a timestamp */
    int64_t last_pts;             /* out of the sink: video's last, sound's next */
    bool is_src_closed;           /* nothing more goes into the graph */
    bool is_sink_eof;             /* the graph gave its last frame */
    int64_t n_frames_out;
    double end_s;                 /* output timeline: end of the last frame out */
    /* what the source was configured with: frames must keep to it */
    int width, height, format, sample_rate;
    AVChannelLayout ch_layout;
};

struct run {
    struct kd_edit *e;
    struct kd_media_input *in;
    struct kd_media_graph gr;
    struct kd_media_plan plan;
    struct kd_media_output *out;
    struct side v, a;
    AVPacket *pkt;
    AVFrame *frame;               /* decoded */
    AVFrame *filtered;            /* out of a sink */
    struct kd_media_span span;
    double expected_s;            /* output duration; NAN when unknown */
    double last_fraction;
    int64_t last_poll_ms;
    unsigned n_since_poll;
    bool is_cancelled;
    int n_decode_errors;
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

    if (spec == NULL || spec->n_inputs == 0 || e->input_paths == NULL ||
        e->input_paths[0] == NULL || e->out_path == NULL || e->lim == NULL) {
        kd_media_seterr(e->err, "internal error (an incomplete edit request)");
        return KD_EINTERNAL;
    }
    if (spec->type[0] != '\0' && strcmp(spec->type, "edit") != 0) {
        kd_media_seterr(e->err, "only edit jobs are supported");
        return KD_EUNSUPPORTED;
    }
    if (spec->n_inputs > 1) {
        kd_media_seterr(e->err, "joining more than one input is not supported yet");
        return KD_EUNSUPPORTED;
    }
    if (spec->has_transition) {
        kd_media_seterr(e->err, "transitions are not supported yet");
        return KD_EUNSUPPORTED;
    }
    for (size_t i = 0; i < spec->n_layers; i++) {
        switch (spec->layers[i].type) {
        case KD_LAYER_TEXT:
            break;
        case KD_LAYER_VIDEO:
            kd_media_seterr(e->err,
                            "layers[%zu]: picture-in-picture (video) layers are not supported yet",
                            i);
            return KD_EUNSUPPORTED;
        case KD_LAYER_IMAGE:
            kd_media_seterr(e->err, "layers[%zu]: image layers are not supported yet", i);
            return KD_EUNSUPPORTED;
        case KD_LAYER_SUBTITLES:
            kd_media_seterr(e->err, "layers[%zu]: subtitle layers are not supported yet", i);
            return KD_EUNSUPPORTED;
        default:
            kd_media_seterr(e->err, "layers[%zu]: this layer type is not supported", i);
            return KD_EUNSUPPORTED;
        }
    }
    if (spec->has_audio) {
        kd_media_seterr(e->err, "adding or mixing an audio track is not supported yet");
        return KD_EUNSUPPORTED;
    }
    if (spec->thumbnails.count > 0) {
        kd_media_seterr(e->err, "thumbnails are not supported yet");
        return KD_EUNSUPPORTED;
    }
    if (spec->output.video_codec == KD_VCODEC_COPY || spec->output.audio_codec == KD_ACODEC_COPY) {
        kd_media_seterr(e->err, "codec \"copy\" (output without re-encoding) is not supported yet");
        return KD_EUNSUPPORTED;
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
 * calls or CANCEL_EVERY_MS, whichever comes first. */
static bool
poll_cancel(struct run *r)
{
    int64_t now;

    if (r->is_cancelled)
        return true;
    if (r->in->guard.is_cancelled || (r->out != NULL && r->out->guard.is_cancelled)) {
        r->is_cancelled = true;
        return true;
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
    double t = r->plan.has_video ? r->v.end_s : r->a.end_s;
    double f;

    if (r->e->progress == NULL)
        return;
    if (!isnan(r->expected_s) && r->expected_s > 0)
        f = t / r->expected_s;
    else if (r->in->size > 0)
        f = (double)avio_tell(r->in->pb) / (double)r->in->size;
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
keep_monotonic(struct run *r, struct side *s, AVFrame *f)
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
        else if (f->pkt_duration > 0)
            dur = (double)f->pkt_duration * av_q2d(s->st->time_base);
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

/* Moves every frame the sink has ready into the encoder; at the sink's end
 * flushes the encoder. */
static enum kd_err
drain_sink(struct run *r, struct side *s)
{
    AVFrame *f = r->filtered;
    enum kd_err rc;
    int ret;

    while (s->is_active && !s->is_sink_eof) {
        if (poll_cancel(r))
            return cancelled(r);
        ret = av_buffersink_get_frame_flags(s->sink, f, 0);
        if (ret == AVERROR(EAGAIN))
            return KD_OK;
        if (ret == AVERROR_EOF) {
            s->is_sink_eof = true;
            s->is_src_closed = true; /* whatever else comes is past the end */
            return kd_media_output_encode(r->out, s->is_video, NULL, r->e->err);
        }
        if (ret < 0)
            return kd_media_averr(NULL, ret, KD_EINTERNAL, r->e->err, "filtering failed");
        if (!keep_monotonic(r, s, f)) {
            av_frame_unref(f);
            continue;
        }
        s->n_frames_out++;
        rc = kd_media_output_encode(r->out, s->is_video, f, r->e->err);
        av_frame_unref(f);
        if (rc != KD_OK)
            return rc;
        report(r);
    }
    return KD_OK;
}

static enum kd_err
drain_all(struct run *r)
{
    enum kd_err rc;

    if ((rc = drain_sink(r, &r->v)) != KD_OK)
        return rc;
    return drain_sink(r, &r->a);
}

/* No more frames into this stream's chain. */
static enum kd_err
close_src(struct run *r, struct side *s)
{
    int ret;

    if (s->is_src_closed)
        return KD_OK;
    s->is_src_closed = true;
    if ((ret = av_buffersrc_add_frame_flags(s->src, NULL, 0)) < 0)
        return kd_media_averr(NULL, ret, KD_EINTERNAL, r->e->err, "filtering failed");
    return drain_all(r);
}

/* Frames must keep the parameters the source was built with: a stream
 * that changes size or format midway needs a graph rebuild. */
static enum kd_err
check_frame(struct run *r, struct side *s, AVFrame *f)
{
    if (s->is_video) {
        if (f->width != s->width || f->height != s->height || f->format != s->format) {
            kd_media_seterr(r->e->err,
                            "the picture size or format changes in the middle of the input; "
                            "such inputs are not supported yet");
            return KD_EMEDIA;
        }
        return KD_OK;
    }
    if (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC) {
        int n = f->ch_layout.nb_channels;
        av_channel_layout_uninit(&f->ch_layout);
        av_channel_layout_default(&f->ch_layout, n);
    }
    if (f->sample_rate != s->sample_rate || f->format != s->format ||
        av_channel_layout_compare(&f->ch_layout, &s->ch_layout) != 0) {
        kd_media_seterr(r->e->err,
                        "the sound format changes in the middle of the input; "
                        "such inputs are not supported yet");
        return KD_EMEDIA;
    }
    return KD_OK;
}

/* A decoded frame: onto the input's timeline, into the graph. */
static enum kd_err
push_frame(struct run *r, struct side *s, AVFrame *f)
{
    int64_t pts = f->best_effort_timestamp;
    double t;
    enum kd_err rc;
    int ret;

    if (pts == AV_NOPTS_VALUE)
        pts = f->pts != AV_NOPTS_VALUE ? f->pts : s->next_pts;
    if (pts == AV_NOPTS_VALUE)
        return KD_OK; /* nowhere to place it on the timeline */
    if (s->is_video)
        s->next_pts = pts + (f->pkt_duration > 0 ? f->pkt_duration : 0);
    else
        s->next_pts = pts + av_rescale_q(f->nb_samples, (AVRational){ 1, f->sample_rate },
                                         s->st->time_base);
    f->pts = pts - s->offset;
    t = (double)f->pts * av_q2d(s->st->time_base);
    /* The header's duration was checked; the packets may still run on. */
    if (t > (double)r->e->lim->max_duration_s + 1.0) {
        kd_media_seterr(r->e->err, "the input runs longer than the limit of %lld s",
                        (long long)r->e->lim->max_duration_s);
        return KD_EMEDIA;
    }
    if (!isnan(r->span.end_s) && t >= r->span.end_s)
        return close_src(r, s);
    if ((rc = check_frame(r, s, f)) != KD_OK)
        return rc;
    /* The source takes the frame's references and leaves it empty. */
    if ((ret = av_buffersrc_add_frame_flags(s->src, f, 0)) < 0)
        return kd_media_averr(NULL, ret, KD_EINTERNAL, r->e->err, "filtering failed");
    return drain_all(r);
}

/* Damaged packets are skipped (as players do) up to a limit. */
static enum kd_err
decode_error(struct run *r, int ret)
{
    if (ret == AVERROR(ENOMEM))
        return kd_media_averr(NULL, ret, KD_ENOMEM, r->e->err, "decoding");
    if (r->n_decode_errors++ == 0)
        event(r, "warning", "the input has damaged packets; they were skipped");
    if (r->n_decode_errors > MAX_DECODE_ERRORS) {
        kd_media_seterr(r->e->err, "the input is too damaged to decode");
        return KD_EMEDIA;
    }
    return KD_OK;
}

/* Sends pkt (NULL: end of stream) to the decoder and pushes what comes out. */
static enum kd_err
decode(struct run *r, struct side *s, const AVPacket *pkt)
{
    enum kd_err rc;
    int ret;

    if (s->is_src_closed)
        return KD_OK;
    ret = avcodec_send_packet(s->dec, pkt);
    if (ret < 0 && ret != AVERROR_EOF && (rc = decode_error(r, ret)) != KD_OK)
        return rc;
    while (!s->is_src_closed) {
        ret = avcodec_receive_frame(s->dec, r->frame);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            break;
        if (ret < 0) {
            if ((rc = decode_error(r, ret)) != KD_OK)
                return rc;
            break;
        }
        rc = push_frame(r, s, r->frame);
        av_frame_unref(r->frame);
        if (rc != KD_OK)
            return rc;
        if (poll_cancel(r))
            return cancelled(r);
    }
    return KD_OK;
}

/* The size the picture is brought to: the spec's, or the input's upright
 * square-pixel size (one side derived from the other keeps the aspect),
 * within the limits and even (4:2:0 needs it). */
static void
video_target(struct run *r)
{
    const struct kd_output *o = &r->e->spec->output;
    const struct kd_limits *lim = r->e->lim;
    struct kd_media_vtarget *vt = &r->plan.vt;
    int dw, dh;
    double w = o->width, h = o->height, k = 1.0;

    kd_media_display_size(r->v.st, r->v.dec, &dw, &dh);
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
    vt->fps = o->fps > 0 ? av_d2q(o->fps, 1001000) : (AVRational){ 0, 1 };
}

/* The input, its kind, and the span to cut from it. */
static enum kd_err
open_input(struct run *r)
{
    struct kd_edit *e = r->e;
    const struct kd_input *ispec = &e->spec->inputs[0];
    double dur, end;
    enum kd_err rc;

    rc = kd_media_input_open(e->input_paths[0], e->lim, KD_MEDIA_OPEN_TIMEOUT_MS, e->cancelled,
                             e->ud, &r->in, e->err);
    if (rc != KD_OK)
        return rc;
    if (r->in->kind == KD_MEDIA_KIND_IMAGE) {
        kd_media_seterr(e->err, "inputs[0]: still images as inputs are not supported yet");
        return KD_EUNSUPPORTED;
    }
    if (r->in->kind == KD_MEDIA_KIND_SUBTITLE) {
        kd_media_seterr(e->err, "inputs[0]: a subtitle file cannot be an input");
        return KD_EMEDIA;
    }
    r->span.start_s = ispec->start_s > 0 ? ispec->start_s : 0.0;
    r->span.end_s = ispec->end_s;
    dur = r->in->duration_s;
    if (!isnan(dur) && r->span.start_s >= dur) {
        kd_media_seterr(e->err, "inputs[0].start (%.3f s) is not before the end of the input "
                        "(%.3f s)", r->span.start_s, dur);
        return KD_EINVAL;
    }
    end = r->span.end_s;
    if (!isnan(dur) && (isnan(end) || end > dur))
        end = dur;
    r->expected_s = isnan(end) ? NAN : end - r->span.start_s;
    return KD_OK;
}

static enum kd_err
setup_side(struct run *r, struct side *s, int idx, bool is_video)
{
    enum kd_err rc;

    s->is_video = is_video;
    s->idx = idx;
    s->st = r->in->fmt->streams[idx];
    s->next_pts = AV_NOPTS_VALUE;
    s->last_pts = AV_NOPTS_VALUE;
    s->offset = av_rescale_q(r->in->start_time, AV_TIME_BASE_Q, s->st->time_base);
    if ((rc = kd_media_decoder_open(r->in, idx, r->e->lim, r->e->threads, &s->dec, r->e->err)) !=
        KD_OK)
        return rc;
    if (is_video) {
        s->width = s->dec->width;
        s->height = s->dec->height;
        s->format = s->dec->pix_fmt;
        if (s->format == AV_PIX_FMT_NONE || s->width <= 0 || s->height <= 0) {
            kd_media_seterr(r->e->err, "the input's picture format could not be determined");
            return KD_EMEDIA;
        }
    } else {
        s->format = s->dec->sample_fmt;
        s->sample_rate = s->dec->sample_rate;
        if (s->format == AV_SAMPLE_FMT_NONE || s->sample_rate <= 0 ||
            s->dec->ch_layout.nb_channels <= 0) {
            kd_media_seterr(r->e->err, "the input's sound format could not be determined");
            return KD_EMEDIA;
        }
        if (s->dec->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
            av_channel_layout_default(&s->ch_layout, s->dec->ch_layout.nb_channels);
        else if (av_channel_layout_copy(&s->ch_layout, &s->dec->ch_layout) < 0)
            return KD_ENOMEM;
    }
    return KD_OK;
}

/* Decoders, the plan, and which streams the output has. */
static enum kd_err
plan(struct run *r)
{
    const struct kd_jobspec *spec = r->e->spec;
    bool has_text = spec->n_layers > 0;
    enum kd_err rc;

    if (r->in->audio_idx >= 0 && (rc = setup_side(r, &r->a, r->in->audio_idx, false)) != KD_OK)
        return rc;
    if ((rc = kd_media_plan_codecs(&spec->output, r->in->video_idx >= 0, r->in->audio_idx >= 0,
                                   r->a.dec, &r->plan, r->e->err)) != KD_OK)
        return rc;
    if (has_text && !r->plan.has_video) {
        if (r->in->video_idx >= 0) {
            kd_media_seterr(r->e->err, "text layers cannot be drawn into an audio-only output");
            return KD_EINVAL;
        }
        kd_media_seterr(r->e->err, "the input has no picture to draw text on");
        return KD_EMEDIA;
    }
    r->v.is_active = r->plan.has_video;
    r->a.is_active = r->plan.has_audio;
    if (r->plan.has_video) {
        if ((rc = setup_side(r, &r->v, r->in->video_idx, true)) != KD_OK)
            return rc;
        video_target(r);
    }
    /* The demuxer need not hand us packets nobody decodes. */
    for (unsigned i = 0; i < r->in->fmt->nb_streams; i++)
        if (!((r->v.is_active && (int)i == r->v.idx) || (r->a.is_active && (int)i == r->a.idx)))
            r->in->fmt->streams[i]->discard = AVDISCARD_ALL;
    return KD_OK;
}

/* Each input contributes its chains, each layer its nodes, then the sinks. */
static enum kd_err
build_graph(struct run *r)
{
    const struct kd_jobspec *spec = r->e->spec;
    struct kd_media_pad vtail = { NULL, 0 }, atail = { NULL, 0 };
    enum kd_err rc;

    if ((rc = kd_media_graph_init(&r->gr)) != KD_OK) {
        kd_media_seterr(r->e->err, "out of memory");
        return rc;
    }
    if (r->v.is_active) {
        if ((rc = kd_media_graph_input_video(&r->gr, r->v.st, r->v.dec, &r->span, &r->plan.vt,
                                             &r->v.src, &vtail, r->e->err)) != KD_OK)
            return rc;
        for (size_t i = 0; i < spec->n_layers; i++)
            if ((rc = kd_media_graph_text(&r->gr, &spec->layers[i], r->e->lim, &vtail,
                                          r->e->err)) != KD_OK)
                return rc;
        if ((rc = kd_media_graph_sink(&r->gr, true, &vtail, &r->v.sink, r->e->err)) != KD_OK)
            return rc;
    }
    if (r->a.is_active) {
        if ((rc = kd_media_graph_input_audio(&r->gr, r->a.st, r->a.dec, &r->span, &r->plan.at,
                                             &r->a.src, &atail, r->e->err)) != KD_OK)
            return rc;
        if ((rc = kd_media_graph_sink(&r->gr, false, &atail, &r->a.sink, r->e->err)) != KD_OK)
            return rc;
    }
    return kd_media_graph_config(&r->gr, r->e->err);
}

/* Seconds on the input's timeline of a packet of side s. */
static double
packet_s(const struct side *s, const AVPacket *pkt)
{
    int64_t t = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;

    if (t == AV_NOPTS_VALUE)
        return NAN;
    return (double)(t - s->offset) * av_q2d(s->st->time_base);
}

/* Whether reading from the current position reaches every active stream
 * no later than start_s: the first video keyframe and the first audio
 * packet must be at or before it. Reads a bounded number of packets. */
static enum kd_err
lands_before(struct run *r, bool *ok)
{
    bool need_v = r->v.is_active, need_a = r->a.is_active;
    double slack = 0.001;
    enum kd_err rc = KD_OK;
    int ret;

    *ok = true;
    for (int n = 0; (need_v || need_a) && n < SEEK_CHECK_PACKETS; n++) {
        if (poll_cancel(r)) {
            rc = cancelled(r);
            goto out;
        }
        if ((ret = av_read_frame(r->in->fmt, r->pkt)) < 0)
            break;
        if (need_v && r->pkt->stream_index == r->v.idx && (r->pkt->flags & AV_PKT_FLAG_KEY)) {
            double t = packet_s(&r->v, r->pkt);
            need_v = false;
            if (!isnan(t) && t > r->span.start_s + slack)
                *ok = false;
        } else if (need_a && r->pkt->stream_index == r->a.idx) {
            double t = packet_s(&r->a, r->pkt);
            need_a = false;
            if (!isnan(t) && t > r->span.start_s + slack)
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
seek_to_span(struct run *r)
{
    double back = 0, target;
    bool ok = false;
    enum kd_err rc;
    int ret;

    if (r->span.start_s <= 0)
        return KD_OK;
    for (int attempt = 0; !ok; attempt++) {
        int64_t ts;

        target = r->span.start_s - back;
        if (target <= 0 || attempt >= SEEK_ATTEMPTS) {
            ts = r->in->start_time;
            if ((ret = avformat_seek_file(r->in->fmt, -1, INT64_MIN, ts, ts, 0)) < 0) {
                kd_media_seterr(r->e->err, "the input could not seek back to its start");
                return KD_EMEDIA;
            }
            return KD_OK; /* read from the start: slow but exact */
        }
        ts = r->in->start_time + (int64_t)(target * AV_TIME_BASE);
        if ((ret = avformat_seek_file(r->in->fmt, -1, INT64_MIN, ts, ts, 0)) < 0) {
            if (attempt > 0) {
                kd_media_seterr(r->e->err, "the input could not seek back");
                return KD_EMEDIA;
            }
            kd_log(KD_LOG_INFO, "media: the input cannot seek; reading from its start");
            return KD_OK; /* still at the start: nothing was read yet */
        }
        if ((rc = lands_before(r, &ok)) != KD_OK)
            return rc;
        /* Seeking is deterministic: the same target lands in the same
         * place again, now to be read for real. */
        if (ok && (ret = avformat_seek_file(r->in->fmt, -1, INT64_MIN, ts, ts, 0)) < 0) {
            kd_media_seterr(r->e->err, "the input could not be read again after seeking");
            return KD_EMEDIA;
        }
        back = back > 0 ? back * 2 : 1.0;
    }
    return KD_OK;
}

static bool
is_input_done(const struct run *r)
{
    return (!r->v.is_active || r->v.is_src_closed) && (!r->a.is_active || r->a.is_src_closed);
}

/* The main loop, then the flush of decoders, graph and encoders. */
static enum kd_err
transcode(struct run *r)
{
    struct side *sides[2] = { &r->v, &r->a };
    enum kd_err rc;
    int ret;

    while (!is_input_done(r)) {
        struct side *s = NULL;

        if (poll_cancel(r))
            return cancelled(r);
        ret = av_read_frame(r->in->fmt, r->pkt);
        if (ret == AVERROR_EOF)
            break;
        if (ret < 0) {
            if (r->in->guard.is_cancelled)
                return cancelled(r);
            /* A damaged tail ends the input, as in players. */
            event(r, "warning", "the input ends with damaged data; it was cut there");
            break;
        }
        if (r->v.is_active && r->pkt->stream_index == r->v.idx)
            s = &r->v;
        else if (r->a.is_active && r->pkt->stream_index == r->a.idx)
            s = &r->a;
        rc = s != NULL ? decode(r, s, r->pkt) : KD_OK;
        av_packet_unref(r->pkt);
        if (rc != KD_OK)
            return rc;
    }
    for (size_t i = 0; i < KD_ARRAY_LEN(sides); i++) {
        if (!sides[i]->is_active)
            continue;
        if ((rc = decode(r, sides[i], NULL)) != KD_OK)
            return rc;
        if ((rc = close_src(r, sides[i])) != KD_OK)
            return rc;
    }
    if ((rc = drain_all(r)) != KD_OK)
        return rc;
    for (size_t i = 0; i < KD_ARRAY_LEN(sides); i++) {
        if (sides[i]->is_active && !sides[i]->is_sink_eof) {
            kd_media_seterr(r->e->err, "internal error (the filter graph did not finish)");
            return KD_EINTERNAL;
        }
        if (sides[i]->is_active && sides[i]->n_frames_out == 0) {
            kd_media_seterr(r->e->err, "the chosen range of the input holds no %s",
                            sides[i]->is_video ? "picture" : "sound");
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

enum kd_err
kd_media_edit(struct kd_edit *e)
{
    struct run r;
    enum kd_err rc;

    memset(&r, 0, sizeof(r));
    r.e = e;
    r.v.idx = r.a.idx = -1;
    e->err[0] = '\0';
    e->duration_s = 0;
    e->thumb_paths = NULL;
    e->n_thumbs = 0;
    kd_media_setup();
    r.last_poll_ms = kd_mono_ms();

    if ((rc = check_spec(e)) != KD_OK)
        goto out;
    if ((rc = open_input(&r)) != KD_OK)
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
    if ((rc = kd_media_output_open(e->out_path, &e->spec->output, &r.plan, r.v.sink, r.a.sink,
                                   e->threads, e->cancelled, e->ud, &r.out, e->err)) != KD_OK)
        goto out;
    if ((rc = kd_media_output_start(r.out, &e->spec->output, e->err)) != KD_OK)
        goto out;
    if ((rc = seek_to_span(&r)) != KD_OK)
        goto out;
    if ((rc = transcode(&r)) != KD_OK)
        goto out;
    if ((rc = kd_media_output_finish(r.out, e->err)) != KD_OK)
        goto out;
    e->duration_s = fmax(r.v.end_s, r.a.end_s);
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
    avcodec_free_context(&r.v.dec);
    avcodec_free_context(&r.a.dec);
    av_channel_layout_uninit(&r.a.ch_layout);
    kd_media_plan_clear(&r.plan);
    kd_media_input_close(r.in);
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
