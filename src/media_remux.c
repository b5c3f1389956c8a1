/* media_remux.c: the fast path, when nothing needs decoding: inputs are cut
 * and joined by copying their packets into the new container.
 *
 * Packets are never changed, only re-timed: each input's segment starts at
 * a keyframe and is laid after the previous one, so timestamps stay
 * continuous. An ADTS AAC stream (raw .aac, MPEG-TS) goes through
 * aac_adtstoasc for containers with global headers; nothing else needs a
 * bitstream filter among the codecs the spec can copy (the mp4 muxer
 * turns Annex B H.264 into length-prefixed itself). */
#include "media_parts.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/bsf.h>
#include <libavutil/mathematics.h>

#include "log.h"
#include "util.h"

/* How often (wall time) cancellation is polled between packets. */
#define CANCEL_POLL_MS 100

static const char *
muxer_name(enum kd_container c)
{
    switch (c) {
    case KD_CONT_MOV:
        return "mov";
    case KD_CONT_MKV:
        return "matroska";
    case KD_CONT_WEBM:
        return "webm";
    default:
        return "mp4";
    }
}

static bool
is_iso(enum kd_container c)
{
    return c == KD_CONT_MP4 || c == KD_CONT_MOV;
}

static enum AVCodecID
wanted_vcodec(const struct kd_output *o)
{
    switch (o->video_codec) {
    case KD_VCODEC_H264:
        return AV_CODEC_ID_H264;
    case KD_VCODEC_HEVC:
        return AV_CODEC_ID_HEVC;
    case KD_VCODEC_VP9:
        return AV_CODEC_ID_VP9;
    case KD_VCODEC_AUTO:
        return o->container == KD_CONT_WEBM ? AV_CODEC_ID_VP9 : AV_CODEC_ID_H264;
    default:
        return AV_CODEC_ID_NONE; /* copy: whatever the input has */
    }
}

static enum AVCodecID
wanted_acodec(const struct kd_output *o)
{
    switch (o->audio_codec) {
    case KD_ACODEC_AAC:
        return AV_CODEC_ID_AAC;
    case KD_ACODEC_MP3:
        return AV_CODEC_ID_MP3;
    case KD_ACODEC_OPUS:
        return AV_CODEC_ID_OPUS;
    case KD_ACODEC_AUTO:
        return o->container == KD_CONT_WEBM ? AV_CODEC_ID_OPUS : AV_CODEC_ID_AAC;
    default:
        return AV_CODEC_ID_NONE;
    }
}

static bool
same_extradata(const AVCodecParameters *a, const AVCodecParameters *b)
{
    return a->extradata_size == b->extradata_size &&
           (a->extradata_size == 0 ||
            memcmp(a->extradata, b->extradata, (size_t)a->extradata_size) == 0);
}

static bool
same_video(const AVCodecParameters *a, const AVCodecParameters *b)
{
    return a->codec_id == b->codec_id && a->profile == b->profile && a->level == b->level &&
           a->width == b->width && a->height == b->height && a->format == b->format &&
           a->field_order == b->field_order && same_extradata(a, b);
}

static bool
same_audio(const AVCodecParameters *a, const AVCodecParameters *b)
{
    return a->codec_id == b->codec_id && a->profile == b->profile &&
           a->sample_rate == b->sample_rate &&
           av_channel_layout_compare(&a->ch_layout, &b->ch_layout) == 0 && same_extradata(a, b);
}

bool
kd_remux_same_params(const AVCodecParameters *a, const AVCodecParameters *b)
{
    if (a->codec_type != b->codec_type)
        return false;
    return a->codec_type == AVMEDIA_TYPE_VIDEO ? same_video(a, b) : same_audio(a, b);
}

/* Time t (seconds from the input's start) in stream st's time base. */
static int64_t
input_ts(const struct kd_media_input *in, const AVStream *st, double t)
{
    int64_t us = (in->start_time == AV_NOPTS_VALUE ? 0 : in->start_time) +
                 (int64_t)llround(t * AV_TIME_BASE);

    return av_rescale_q(us, AV_TIME_BASE_Q, st->time_base);
}

/* Seeks to the keyframe at or before start_s and reads the first video
 * packet: its pts is where the segment really starts. */
static enum kd_err
first_key(struct kd_media_input *in, double start_s, int64_t *key_pts, char err[KD_MEDIA_ERRLEN])
{
    const AVStream *st = in->fmt->streams[in->video_idx];
    AVPacket *pkt = av_packet_alloc();
    enum kd_err rc = KD_OK;
    int ret;

    if (pkt == NULL)
        return KD_ENOMEM;
    ret = av_seek_frame(in->fmt, in->video_idx, input_ts(in, st, start_s), AVSEEK_FLAG_BACKWARD);
    if (ret < 0) {
        rc = kd_media_averr(&in->guard, ret, KD_EMEDIA, err, "seeking in an input");
        goto out;
    }
    for (;;) {
        if ((ret = av_read_frame(in->fmt, pkt)) < 0) {
            rc = kd_media_averr(&in->guard, ret, KD_EMEDIA, err, "an input has no picture there");
            goto out;
        }
        if (pkt->stream_index == in->video_idx)
            break;
        av_packet_unref(pkt);
    }
    if (!(pkt->flags & AV_PKT_FLAG_KEY) || pkt->pts == AV_NOPTS_VALUE) {
        /* A seek that lands off a keyframe: cannot copy from here. */
        rc = KD_EAGAIN;
        goto out;
    }
    *key_pts = pkt->pts;
out:
    av_packet_free(&pkt);
    return rc;
}

enum kd_err
kd_remux_key_before(struct kd_media_input *in, double start_s, double *key_s,
                    char err[KD_MEDIA_ERRLEN])
{
    const AVStream *st = in->fmt->streams[in->video_idx];
    int64_t key_pts = 0;
    enum kd_err rc;

    if (start_s <= 0) {
        *key_s = 0;
        return KD_OK;
    }
    if ((rc = first_key(in, start_s, &key_pts, err)) == KD_EAGAIN) {
        kd_media_seterr(err, "the video cannot be cut there without decoding");
        rc = KD_EMEDIA;
    }
    if (rc != KD_OK)
        return rc;
    *key_s = (double)key_pts * av_q2d(st->time_base) -
             (in->start_time == AV_NOPTS_VALUE ? 0.0 : (double)in->start_time / AV_TIME_BASE);
    if (*key_s < 0)
        *key_s = 0;
    return KD_OK;
}

/* Half a frame of the video stream, in its time base (for "on a keyframe"). */
static int64_t
half_frame(const AVStream *st)
{
    AVRational fr = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;

    if (fr.num <= 0 || fr.den <= 0)
        fr = (AVRational){25, 1};
    return av_rescale_q(1, av_inv_q(fr), st->time_base) / 2;
}

/* Is there a keyframe at t (seconds), within half a frame? */
static enum kd_err
key_at(struct kd_media_input *in, double t, bool *yes, char err[KD_MEDIA_ERRLEN])
{
    const AVStream *st = in->fmt->streams[in->video_idx];
    int64_t want = input_ts(in, st, t), got = 0;
    enum kd_err rc;

    /* Seek a little past t, so a keyframe exactly at t is the one found. */
    rc = first_key(in, t + av_q2d(st->time_base) * (double)half_frame(st), &got, err);
    if (rc == KD_EAGAIN) {
        *yes = false;
        return KD_OK;
    }
    if (rc != KD_OK)
        return rc;
    *yes = llabs(got - want) <= half_frame(st);
    return KD_OK;
}

static bool
only_soft_subtitles(const struct kd_jobspec *spec)
{
    for (size_t i = 0; i < spec->n_layers; i++)
        if (spec->layers[i].type != KD_LAYER_SUBTITLES || spec->layers[i].sub_mode != KD_SUB_SOFT)
            return false;
    return true;
}

/* The checks that need no file. NULL: nothing in the spec forces a decode. */
static const char *
spec_needs_decode(const struct kd_jobspec *spec)
{
    const struct kd_output *o = &spec->output;
    bool copy = o->video_codec == KD_VCODEC_COPY;

    if (kd_container_is_audio_only(o->container))
        return "audio-only output";
    if (!only_soft_subtitles(spec))
        return "layers drawn on the picture";
    if (spec->has_audio)
        return "an audio track to mix or replace";
    if (spec->has_transition)
        return "a transition";
    if (spec->thumbnails.count > 0)
        return "thumbnails";
    if (copy)
        return NULL;
    if (o->width != 0 || o->height != 0 || o->fps != 0)
        return "a new size or frame rate";
    if (o->crf >= 0 || o->preset[0] != '\0' || o->video_bitrate != 0)
        return "encoder settings";
    return NULL;
}

struct kd_remux_inputs {
    struct kd_media_input **in;
    size_t n;
};

static void
inputs_close(struct kd_remux_inputs *ins)
{
    for (size_t i = 0; ins->in != NULL && i < ins->n; i++)
        kd_media_input_close(ins->in[i]);
    free(ins->in);
    ins->in = NULL;
    ins->n = 0;
}

static enum kd_err
inputs_open(const struct kd_edit *e, struct kd_remux_inputs *ins, char err[KD_MEDIA_ERRLEN])
{
    enum kd_err rc = KD_OK;

    if ((ins->in = calloc(e->spec->n_inputs, sizeof(*ins->in))) == NULL)
        return KD_ENOMEM;
    for (size_t i = 0; i < e->spec->n_inputs; i++) {
        if ((rc = kd_media_input_open(e->store, e->input_paths[i], e->lim, KD_MEDIA_OPEN_TIMEOUT_MS,
                                      e->cancelled, e->ud, &ins->in[i], err)) != KD_OK)
            break;
        ins->n = i + 1;
    }
    return rc;
}

/* The index of the first input without a moving picture (sound only, or
 * a still image shown for a while), or -1. */
static long
input_without_picture(const struct kd_remux_inputs *ins)
{
    for (size_t i = 0; i < ins->n; i++)
        if (ins->in[i]->video_idx < 0 || ins->in[i]->kind == KD_MEDIA_KIND_IMAGE)
            return (long)i;
    return -1;
}

/* Returns NULL when the opened inputs can be copied, else why not;
 * *mismatch says the reason is differing parameters. */
static const char *
inputs_need_decode(const struct kd_edit *e, const struct kd_remux_inputs *ins, bool *mismatch)
{
    const struct kd_output *o = &e->spec->output;
    const AVOutputFormat *ofmt = av_guess_format(muxer_name(o->container), NULL, NULL);
    const AVCodecParameters *v0 = ins->in[0]->fmt->streams[ins->in[0]->video_idx]->codecpar;
    const AVCodecParameters *a0 = ins->in[0]->audio_idx >= 0
                                      ? ins->in[0]->fmt->streams[ins->in[0]->audio_idx]->codecpar
                                      : NULL;
    enum AVCodecID vwant = wanted_vcodec(o);
    /* With the video copied, "auto" audio is copied too. */
    enum AVCodecID awant = o->video_codec == KD_VCODEC_COPY && o->audio_codec == KD_ACODEC_AUTO
                               ? AV_CODEC_ID_NONE
                               : wanted_acodec(o);

    *mismatch = false;
    for (size_t i = 1; i < ins->n; i++) {
        const struct kd_media_input *in = ins->in[i];

        if (!same_video(v0, in->fmt->streams[in->video_idx]->codecpar) ||
            (a0 == NULL) != (in->audio_idx < 0) ||
            (a0 != NULL && !same_audio(a0, in->fmt->streams[in->audio_idx]->codecpar))) {
            *mismatch = true;
            return "inputs with different codec parameters";
        }
    }
    if (vwant != AV_CODEC_ID_NONE && vwant != v0->codec_id)
        return "a different video codec";
    if (a0 != NULL && awant != AV_CODEC_ID_NONE && awant != a0->codec_id)
        return "a different audio codec";
    if (ofmt == NULL || avformat_query_codec(ofmt, v0->codec_id, FF_COMPLIANCE_NORMAL) != 1 ||
        (a0 != NULL && avformat_query_codec(ofmt, a0->codec_id, FF_COMPLIANCE_NORMAL) != 1)) {
        *mismatch = true;
        return "codecs the container cannot hold";
    }
    return NULL;
}

/* Every trim of the implicit path must start (and end) on a keyframe. */
static enum kd_err
trims_on_keys(const struct kd_edit *e, const struct kd_remux_inputs *ins, bool *ok,
              char err[KD_MEDIA_ERRLEN])
{
    enum kd_err rc;

    *ok = true;
    for (size_t i = 0; i < ins->n && *ok; i++) {
        const struct kd_input *t = &e->spec->inputs[i];
        struct kd_media_input *in = ins->in[i];

        if (t->start_s > 0 && (rc = key_at(in, t->start_s, ok, err)) != KD_OK)
            return rc;
        if (*ok && !isnan(t->end_s) &&
            (isnan(in->duration_s) || t->end_s < in->duration_s - 0.001) &&
            (rc = key_at(in, t->end_s, ok, err)) != KD_OK)
            return rc;
    }
    return KD_OK;
}

void
kd_remux_inputs_free(struct kd_remux_inputs *ins)
{
    if (ins == NULL)
        return;
    inputs_close(ins);
    free(ins);
}

enum kd_err
kd_remux_possible(const struct kd_edit *e, bool *possible, struct kd_remux_inputs **keep,
                  char why[KD_MEDIA_ERRLEN])
{
    const struct kd_output *o = &e->spec->output;
    bool copy = o->video_codec == KD_VCODEC_COPY, mismatch = false, keys = true;
    struct kd_remux_inputs ins = {0};
    const char *reason;
    long bad;
    enum kd_err rc = KD_OK;

    if ((reason = spec_needs_decode(e->spec)) != NULL) {
        kd_media_seterr(why, "%s", reason);
        *possible = false;
        goto out;
    }
    if ((rc = inputs_open(e, &ins, why)) != KD_OK)
        goto out;
    /* Sound-only inputs (an mp3) and still images are for the decode
     * path: it makes the output sound only, puts black under the sound,
     * or shows the image for its time. */
    if ((bad = input_without_picture(&ins)) >= 0) {
        if (copy) {
            kd_media_seterr(why,
                            "video_codec copy needs a video in every input; inputs[%ld] "
                            "is not one",
                            bad);
            rc = KD_EINVAL;
            goto out;
        }
        kd_media_seterr(why, "an input without video");
        *possible = false;
        goto out;
    }
    reason = inputs_need_decode(e, &ins, &mismatch);
    if (reason != NULL && copy && mismatch) {
        kd_media_seterr(why,
                        "video_codec copy needs inputs with the same codec parameters "
                        "that the container can hold (%s)",
                        reason);
        rc = KD_EINVAL;
        goto out;
    }
    if (reason == NULL && !copy && (rc = trims_on_keys(e, &ins, &keys, why)) != KD_OK)
        goto out;
    if (reason == NULL && !keys)
        reason = "a trim off a keyframe";
    /* Copy with an audio codec change: the decode path copies the
     * picture and encodes the sound. */
    *possible = reason == NULL;
    kd_media_seterr(why, "%s", reason != NULL ? reason : "remux");
    /* The remux reads the same files: opening (and probing) them again
     * would cost as much as copying a short input. */
    if (*possible && keep != NULL) {
        if ((*keep = malloc(sizeof(**keep))) == NULL) {
            rc = KD_ENOMEM;
            goto out;
        }
        **keep = ins;
        ins = (struct kd_remux_inputs){0};
    }
out:
    inputs_close(&ins);
    return rc;
}

/* ---- running it ---- */

struct ostream {
    AVStream *st;
    AVBSFContext *bsf; /* NULL: packets go as they are */
    int64_t last_dts;  /* in st's time base */
};

struct run {
    struct kd_edit *e;
    AVFormatContext *out;
    struct kd_media_guard guard;
    struct ostream v, a;
    AVPacket *pkt;
    struct kd_subs **subs; /* one per layer, soft subtitles only */
    double total_s;        /* expected output length */
    bool is_total_unknown; /* an input's length is not known */
    double done_s;         /* output time of inputs finished */
    double reported;       /* progress never goes back */
    int64_t last_poll_ms;
};

static bool
run_cancelled(struct run *r)
{
    int64_t now = kd_mono_ms();

    if (r->e->cancelled == NULL || now - r->last_poll_ms < CANCEL_POLL_MS)
        return r->guard.is_cancelled;
    r->last_poll_ms = now;
    if (r->e->cancelled(r->e->ud))
        r->guard.is_cancelled = true;
    return r->guard.is_cancelled;
}

static void
report(struct run *r, double at_s)
{
    double f = r->total_s > 0 ? at_s / r->total_s : 0;

    if (f > 1)
        f = 1;
    if (f > r->reported) {
        r->reported = f;
        if (r->e->progress != NULL)
            r->e->progress(r->e->ud, f);
    }
}

static enum kd_err
add_stream(struct run *r, const AVStream *ist, struct ostream *os, char err[KD_MEDIA_ERRLEN])
{
    const AVCodecParameters *par = ist->codecpar;
    int ret;

    if ((os->st = avformat_new_stream(r->out, NULL)) == NULL)
        return KD_ENOMEM;
    os->last_dts = AV_NOPTS_VALUE;
    /* ADTS AAC carries its config in every packet; mp4/mov/mkv want it once. */
    if (par->codec_id == AV_CODEC_ID_AAC && par->extradata_size == 0 &&
        (r->out->oformat->flags & AVFMT_GLOBALHEADER)) {
        const AVBitStreamFilter *f = av_bsf_get_by_name("aac_adtstoasc");

        if (f == NULL || (ret = av_bsf_alloc(f, &os->bsf)) < 0 ||
            (ret = avcodec_parameters_copy(os->bsf->par_in, par)) < 0 ||
            (os->bsf->time_base_in = ist->time_base, ret = av_bsf_init(os->bsf)) < 0) {
            kd_media_seterr(err, "internal error (aac_adtstoasc)");
            return KD_EINTERNAL;
        }
        par = os->bsf->par_out;
    }
    if ((ret = avcodec_parameters_copy(os->st->codecpar, par)) < 0)
        return kd_media_averr(NULL, ret, KD_ENOMEM, err, "output stream");
    os->st->codecpar->codec_tag = 0;
    os->st->time_base = ist->time_base;
    os->st->sample_aspect_ratio = ist->sample_aspect_ratio;
    os->st->avg_frame_rate = ist->avg_frame_rate;
    /* What players need besides the bytes: the display matrix of a phone
     * video (rotation), the language and handler name, default/forced. */
    os->st->disposition = ist->disposition;
    if (av_dict_copy(&os->st->metadata, ist->metadata, 0) < 0)
        return KD_ENOMEM;
    for (int i = 0; i < ist->nb_side_data; i++) {
        const AVPacketSideData *sd = &ist->side_data[i];
        uint8_t *dst = av_stream_new_side_data(os->st, sd->type, sd->size);

        if (dst == NULL)
            return KD_ENOMEM;
        memcpy(dst, sd->data, sd->size);
    }
    return KD_OK;
}

static enum kd_err
write_err(struct run *r, int ret, char err[KD_MEDIA_ERRLEN])
{
    if (ret == AVERROR(EFBIG)) {
        kd_media_seterr(err, "the output is larger than the file size limit");
        return KD_ELIMIT;
    }
    return kd_media_averr(&r->guard, ret, KD_EIO, err, "writing the output failed");
}

/* Writes pkt (times already in os->st's time base) through os's filter. */
static enum kd_err
put_packet(struct run *r, struct ostream *os, AVPacket *pkt, char err[KD_MEDIA_ERRLEN])
{
    int ret;

    if (os->bsf != NULL) {
        if ((ret = av_bsf_send_packet(os->bsf, pkt)) < 0)
            return kd_media_averr(NULL, ret, KD_EMEDIA, err, "an input's audio");
        while ((ret = av_bsf_receive_packet(os->bsf, pkt)) >= 0) {
            pkt->stream_index = os->st->index;
            if ((ret = av_interleaved_write_frame(r->out, pkt)) < 0)
                return write_err(r, ret, err);
        }
        if (ret != AVERROR(EAGAIN) && ret != AVERROR_EOF)
            return kd_media_averr(NULL, ret, KD_EMEDIA, err, "an input's audio");
        return KD_OK;
    }
    pkt->stream_index = os->st->index;
    if ((ret = av_interleaved_write_frame(r->out, pkt)) < 0)
        return write_err(r, ret, err);
    return KD_OK;
}

/* Copies one input's segment; returns its length in *len_s. */
static enum kd_err
copy_input(struct run *r, struct kd_media_input *in, const struct kd_input *trim, double *len_s,
           char err[KD_MEDIA_ERRLEN])
{
    const AVStream *vst = in->fmt->streams[in->video_idx];
    const AVStream *ast = in->audio_idx >= 0 ? in->fmt->streams[in->audio_idx] : NULL;
    int64_t key_pts = 0, vend = INT64_MAX, max_end_us = 0;
    double seg_start_s, seg_end_s;
    bool v_started = false, v_done = false, a_done = ast == NULL || r->a.st == NULL;
    enum kd_err rc;
    int ret;

    if ((rc = first_key(in, trim->start_s, &key_pts, err)) == KD_EAGAIN) {
        kd_media_seterr(err, "an input cannot be cut there without decoding");
        rc = KD_EMEDIA;
    }
    if (rc != KD_OK)
        return rc;
    seg_start_s = (double)key_pts * av_q2d(vst->time_base);
    if (!isnan(trim->end_s))
        vend = input_ts(in, vst, trim->end_s) - half_frame(vst);
    seg_end_s = isnan(trim->end_s)
                    ? INFINITY
                    : (double)input_ts(in, vst, trim->end_s) * av_q2d(vst->time_base);
    ret = av_seek_frame(in->fmt, in->video_idx, key_pts, AVSEEK_FLAG_BACKWARD);
    if (ret < 0)
        return kd_media_averr(&in->guard, ret, KD_EMEDIA, err, "seeking in an input");
    while (!(v_done && a_done)) {
        struct ostream *os;
        const AVStream *ist;
        double pts_s, dur_s;
        int64_t off;

        if (run_cancelled(r)) {
            kd_media_seterr(err, "cancelled");
            return KD_ECANCELED;
        }
        ret = av_read_frame(in->fmt, r->pkt);
        /* a store that stopped answering is not the input's end */
        if (ret < 0 && (rc = kd_media_input_store_check(in, err, "reading an input")) != KD_OK)
            return rc;
        if (ret == AVERROR_EOF)
            break;
        if (ret < 0)
            return kd_media_averr(&in->guard, ret, KD_EMEDIA, err, "reading an input");
        if (r->pkt->stream_index == in->video_idx && !v_done) {
            os = &r->v;
            ist = vst;
        } else if (ast != NULL && r->pkt->stream_index == in->audio_idx && !a_done) {
            os = &r->a;
            ist = ast;
        } else {
            av_packet_unref(r->pkt);
            continue;
        }
        if (r->pkt->pts == AV_NOPTS_VALUE || r->pkt->dts == AV_NOPTS_VALUE) {
            av_packet_unref(r->pkt);
            kd_media_seterr(err, "an input has packets without timestamps");
            return KD_EMEDIA;
        }
        pts_s = (double)r->pkt->pts * av_q2d(ist->time_base);
        dur_s = (double)r->pkt->duration * av_q2d(ist->time_base);
        if (os == &r->v) {
            /* Everything up to the next keyframe at or past the end: a
             * closed GOP keeps exactly the frames before the end. */
            if (!v_started && !(r->pkt->flags & AV_PKT_FLAG_KEY)) {
                av_packet_unref(r->pkt);
                continue;
            }
            v_started = true;
            if ((r->pkt->flags & AV_PKT_FLAG_KEY) && r->pkt->pts >= vend) {
                v_done = true;
                seg_end_s = fmin(seg_end_s, pts_s);
                av_packet_unref(r->pkt);
                continue;
            }
            if (!isnan(trim->end_s) && pts_s >= seg_end_s) {
                av_packet_unref(r->pkt);
                continue;
            }
        } else {
            /* Audio packets mostly inside the segment are kept. */
            if (pts_s + dur_s / 2 < seg_start_s) {
                av_packet_unref(r->pkt);
                continue;
            }
            if (pts_s + dur_s / 2 >= seg_end_s) {
                a_done = true;
                av_packet_unref(r->pkt);
                continue;
            }
        }
        /* Re-time: segment start -> the output time reached so far. */
        off = av_rescale_q(llround((r->done_s - seg_start_s) * AV_TIME_BASE), AV_TIME_BASE_Q,
                           ist->time_base);
        r->pkt->pts += off;
        r->pkt->dts += off;
        av_packet_rescale_ts(r->pkt, ist->time_base, os->st->time_base);
        if (os->last_dts != AV_NOPTS_VALUE && r->pkt->dts <= os->last_dts) {
            r->pkt->dts = os->last_dts + 1;
            if (r->pkt->pts < r->pkt->dts)
                r->pkt->pts = r->pkt->dts;
        }
        os->last_dts = r->pkt->dts;
        {
            int64_t end_us = llround((pts_s + dur_s - seg_start_s) * AV_TIME_BASE);

            if (end_us > max_end_us)
                max_end_us = end_us;
        }
        report(r, r->done_s + pts_s - seg_start_s);
        if ((rc = put_packet(r, os, r->pkt, err)) != KD_OK) {
            av_packet_unref(r->pkt);
            return rc;
        }
        av_packet_unref(r->pkt);
    }
    *len_s = isfinite(seg_end_s) ? seg_end_s - seg_start_s : (double)max_end_us / AV_TIME_BASE;
    if ((double)max_end_us / AV_TIME_BASE < *len_s)
        *len_s = (double)max_end_us / AV_TIME_BASE;
    return KD_OK;
}

static double
expected_s(const struct kd_media_input *in, const struct kd_input *t)
{
    double end = isnan(t->end_s) ? in->duration_s : t->end_s;

    if (isnan(end))
        return 0;
    if (!isnan(in->duration_s) && end > in->duration_s)
        end = in->duration_s;
    return end > t->start_s ? end - t->start_s : 0;
}

static enum kd_err
open_output(struct run *r, const struct kd_remux_inputs *ins, char err[KD_MEDIA_ERRLEN])
{
    const struct kd_output *o = &r->e->spec->output;
    const struct kd_media_input *in0 = ins->in[0];
    AVDictionary *io_opts = NULL, *opts = NULL;
    char url[PATH_MAX + 8];
    enum kd_err rc = KD_OK;
    int ret;

    if (kd_snprintf(url, sizeof(url), "file:%s", r->e->out_path) != KD_OK) {
        kd_media_seterr(err, "the output path is too long");
        rc = KD_EINVAL;
        goto out;
    }
    if ((ret = avformat_alloc_output_context2(&r->out, NULL, muxer_name(o->container), url)) < 0) {
        rc = kd_media_averr(NULL, ret, KD_EINTERNAL, err, "internal error (muxer)");
        goto out;
    }
    r->out->interrupt_callback.callback = kd_media_guard_check;
    r->out->interrupt_callback.opaque = &r->guard;
    if ((r->out->protocol_whitelist = av_strdup("file")) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if ((rc = add_stream(r, in0->fmt->streams[in0->video_idx], &r->v, err)) != KD_OK)
        goto out;
    if (in0->audio_idx >= 0 &&
        (rc = add_stream(r, in0->fmt->streams[in0->audio_idx], &r->a, err)) != KD_OK)
        goto out;
    for (size_t i = 0; i < r->e->spec->n_layers; i++)
        if ((rc = kd_subs_soft_add(r->subs[i], r->out, o->container, err)) != KD_OK)
            goto out;
    if (av_dict_set(&io_opts, "protocol_whitelist", "file", 0) < 0 ||
        (o->faststart && is_iso(o->container) &&
         av_dict_set(&opts, "movflags", "+faststart", 0) < 0)) {
        rc = KD_ENOMEM;
        goto out;
    }
    ret = avio_open2(&r->out->pb, r->out->url, AVIO_FLAG_WRITE, &r->out->interrupt_callback,
                     &io_opts);
    if (ret < 0) {
        rc = kd_media_averr(&r->guard, ret, KD_EIO, err, "the output could not be created");
        goto out;
    }
    if ((ret = avformat_write_header(r->out, &opts)) < 0) {
        rc = write_err(r, ret, err);
        goto out;
    }
    for (size_t i = 0; i < r->e->spec->n_layers; i++) {
        const struct kd_layer *l = &r->e->spec->layers[i];
        struct kd_subs_timing t = {.shift_s = 0, .from_s = l->start_s, .to_s = l->end_s};

        /* Cues end with the output (as expected from the trims). */
        if (!r->is_total_unknown && r->total_s > 0 && (isnan(t.to_s) || t.to_s > r->total_s))
            t.to_s = r->total_s;

        if ((rc = kd_subs_soft_write(r->subs[i], r->out, &t, err)) != KD_OK)
            goto out;
    }
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    av_dict_free(&io_opts);
    av_dict_free(&opts);
    return rc;
}

enum kd_err
kd_remux_run(struct kd_edit *e, struct kd_remux_inputs *opened)
{
    struct run r = {.e = e};
    struct kd_remux_inputs ins = {0};
    enum kd_err rc;
    int ret;

    if (opened != NULL) {
        ins = *opened;
        free(opened);
    }

    e->err[0] = '\0';
    kd_media_setup();
    kd_media_guard_init(&r.guard, 0, e->cancelled, e->ud);
    if ((r.pkt = av_packet_alloc()) == NULL ||
        (e->spec->n_layers > 0 && (r.subs = calloc(e->spec->n_layers, sizeof(*r.subs))) == NULL)) {
        rc = KD_ENOMEM;
        goto out;
    }
    if (ins.in == NULL && (rc = inputs_open(e, &ins, e->err)) != KD_OK)
        goto out;
    for (size_t i = 0; i < e->spec->n_layers; i++)
        if ((rc = kd_subs_open(e->store, e->layer_paths[i], e->work_dir, (unsigned)i, e->lim,
                               e->event, e->ud, e->cancelled, &r.subs[i], e->err)) != KD_OK)
            goto out;
    for (size_t i = 0; i < ins.n; i++) {
        r.total_s += expected_s(ins.in[i], &e->spec->inputs[i]);
        if (isnan(ins.in[i]->duration_s) && isnan(e->spec->inputs[i].end_s))
            r.is_total_unknown = true;
    }
    if ((rc = open_output(&r, &ins, e->err)) != KD_OK)
        goto out;
    for (size_t i = 0; i < ins.n; i++) {
        double len_s = 0;

        if ((rc = copy_input(&r, ins.in[i], &e->spec->inputs[i], &len_s, e->err)) != KD_OK)
            goto out;
        r.done_s += len_s;
        report(&r, r.done_s);
    }
    if ((ret = av_interleaved_write_frame(r.out, NULL)) < 0 ||
        (ret = av_write_trailer(r.out)) < 0) {
        rc = write_err(&r, ret, e->err);
        goto out;
    }
    e->duration_s = r.done_s;
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(e->err, "out of memory");
    else if (rc != KD_OK && e->err[0] == '\0')
        kd_media_seterr(e->err, "the remux failed");
    for (size_t i = 0; r.subs != NULL && i < e->spec->n_layers; i++)
        kd_subs_free(r.subs[i]);
    free(r.subs);
    av_bsf_free(&r.v.bsf);
    av_bsf_free(&r.a.bsf);
    if (r.out != NULL) {
        if (r.out->pb != NULL)
            avio_closep(&r.out->pb);
        avformat_free_context(r.out);
    }
    av_packet_free(&r.pkt);
    inputs_close(&ins);
    return rc;
}
