/* media_output.c: codecs, encoders and the muxer of an edit's output.
 *
 * The plan (muxer, codecs, audio format) is decided from the spec and the
 * encoders' capabilities before the graph is built, because the graph must
 * end in exactly what the encoders take. The encoders are opened after the
 * graph is configured, from what its sinks deliver. */
#include "media_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <libavfilter/buffersink.h>
#include <libavutil/opt.h>

#include "log.h"
#include "util.h"

/* Quality when the spec gives neither crf nor bitrate: libvpx would
 * otherwise fall back to a fixed low bitrate. */
#define VP9_DEFAULT_CRF       32
#define AUDIO_DEFAULT_BITRATE 128000

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
    case KD_CONT_MP3:
        return "mp3";
    case KD_CONT_M4A:
        return "ipod"; /* the m4a muxer's name in libavformat */
    case KD_CONT_WAV:
        return "wav";
    case KD_CONT_MP4:
    default:
        return "mp4";
    }
}

static const char *
container_label(enum kd_container c)
{
    switch (c) {
    case KD_CONT_MOV:
        return "mov";
    case KD_CONT_MKV:
        return "mkv";
    case KD_CONT_WEBM:
        return "webm";
    case KD_CONT_MP3:
        return "mp3";
    case KD_CONT_M4A:
        return "m4a";
    case KD_CONT_WAV:
        return "wav";
    case KD_CONT_MP4:
    default:
        return "mp4";
    }
}

static bool
is_audio_only(enum kd_container c)
{
    return c == KD_CONT_MP3 || c == KD_CONT_M4A || c == KD_CONT_WAV;
}

static bool
is_iso(enum kd_container c)
{
    return c == KD_CONT_MP4 || c == KD_CONT_MOV || c == KD_CONT_M4A;
}

/* An omitted codec keeps the first input's when the container usually
 * holds it (doc/jobspec.md: mp4 and mov take h264 or hevc with aac or mp3;
 * mkv any of the encoders'); otherwise, or without such an input, it is
 * the container's usual one (webm, mp3, m4a and wav have only that). */
static enum kd_vcodec
video_like_input(enum kd_container c, enum AVCodecID in)
{
    bool iso = c == KD_CONT_MP4 || c == KD_CONT_MOV;

    if (!iso && c != KD_CONT_MKV)
        return KD_VCODEC_AUTO;
    switch (in) {
    case AV_CODEC_ID_H264:
        return KD_VCODEC_H264;
    case AV_CODEC_ID_HEVC:
        return KD_VCODEC_HEVC;
    case AV_CODEC_ID_VP9:
        return iso ? KD_VCODEC_AUTO : KD_VCODEC_VP9;
    default:
        return KD_VCODEC_AUTO;
    }
}

static enum kd_acodec
audio_like_input(enum kd_container c, enum AVCodecID in)
{
    bool iso = c == KD_CONT_MP4 || c == KD_CONT_MOV;

    if (!iso && c != KD_CONT_MKV)
        return KD_ACODEC_AUTO;
    switch (in) {
    case AV_CODEC_ID_AAC:
        return KD_ACODEC_AAC;
    case AV_CODEC_ID_MP3:
        return KD_ACODEC_MP3;
    case AV_CODEC_ID_OPUS:
        return iso ? KD_ACODEC_AUTO : KD_ACODEC_OPUS;
    default:
        return KD_ACODEC_AUTO;
    }
}

/* The encoder for a codec of the spec, and its name for messages. */
static const char *
video_encoder(enum kd_vcodec v, enum kd_container c, const char **label)
{
    if (v == KD_VCODEC_AUTO)
        v = c == KD_CONT_WEBM ? KD_VCODEC_VP9 : KD_VCODEC_H264;
    switch (v) {
    case KD_VCODEC_HEVC:
        *label = "hevc";
        return "libx265";
    case KD_VCODEC_VP9:
        *label = "vp9";
        return "libvpx-vp9";
    case KD_VCODEC_H264:
    default:
        *label = "h264";
        return "libx264";
    }
}

static const char *
audio_encoder(enum kd_acodec a, enum kd_container c, const char **label)
{
    if (c == KD_CONT_WAV) {
        *label = "pcm";
        return "pcm_s16le";
    }
    if (a == KD_ACODEC_AUTO)
        a = c == KD_CONT_WEBM ? KD_ACODEC_OPUS : c == KD_CONT_MP3 ? KD_ACODEC_MP3 : KD_ACODEC_AAC;
    switch (a) {
    case KD_ACODEC_MP3:
        *label = "mp3";
        return "libmp3lame";
    case KD_ACODEC_OPUS:
        *label = "opus";
        return "libopus";
    case KD_ACODEC_AAC:
    default:
        *label = "aac";
        return "aac";
    }
}

/* The input's rate if the encoder takes it, else the nearest one above,
 * else the highest. */
static int
pick_rate(const AVCodec *c, int in_rate)
{
    int above = 0, highest = 0;

    if (c->supported_samplerates == NULL)
        return in_rate > 0 ? in_rate : 48000;
    for (const int *r = c->supported_samplerates; *r != 0; r++) {
        if (*r == in_rate)
            return *r;
        if (*r > in_rate && (above == 0 || *r < above))
            above = *r;
        if (*r > highest)
            highest = *r;
    }
    return above > 0 ? above : highest > 0 ? highest : 48000;
}

static enum AVSampleFormat
pick_sample_fmt(const AVCodec *c, enum AVSampleFormat in_fmt)
{
    if (c->sample_fmts == NULL)
        return in_fmt != AV_SAMPLE_FMT_NONE ? in_fmt : AV_SAMPLE_FMT_FLTP;
    for (const enum AVSampleFormat *f = c->sample_fmts; *f != AV_SAMPLE_FMT_NONE; f++)
        if (*f == in_fmt)
            return *f;
    return c->sample_fmts[0];
}

/* The input's layout if the encoder takes it; else stereo (or mono for a
 * mono input) when offered; else the encoder's first. */
static enum kd_err
pick_layout(const AVCodec *c, const AVCodecParameters *apar, AVChannelLayout *out)
{
    AVChannelLayout in = {0}, want = {0};
    enum kd_err rc = KD_OK;

    if (apar->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
        av_channel_layout_default(&in, apar->ch_layout.nb_channels);
    else if (av_channel_layout_copy(&in, &apar->ch_layout) < 0) {
        rc = KD_ENOMEM;
        goto out;
    }
    if (c->ch_layouts == NULL) {
        *out = in;
        in = (AVChannelLayout){0};
        goto out;
    }
    for (const AVChannelLayout *l = c->ch_layouts; l->nb_channels != 0; l++) {
        if (av_channel_layout_compare(l, &in) == 0) {
            *out = in;
            in = (AVChannelLayout){0};
            goto out;
        }
    }
    av_channel_layout_default(&want, in.nb_channels == 1 ? 1 : 2);
    for (const AVChannelLayout *l = c->ch_layouts; l->nb_channels != 0; l++) {
        if (av_channel_layout_compare(l, &want) == 0) {
            *out = want;
            goto out;
        }
    }
    if (av_channel_layout_copy(out, &c->ch_layouts[0]) < 0)
        rc = KD_ENOMEM;
out:
    av_channel_layout_uninit(&in);
    return rc;
}

/* Whether the muxer can hold the codec; a muxer that cannot tell is trusted
 * and avformat_write_header has the last word. */
static bool
muxer_takes(const AVOutputFormat *ofmt, enum AVCodecID id)
{
    return avformat_query_codec(ofmt, id, FF_COMPLIANCE_NORMAL) != 0;
}

enum kd_err
kd_media_plan_codecs(const struct kd_output *out, bool in_video, bool in_audio,
                     const AVCodecParameters *apar, enum AVCodecID first_vcodec,
                     enum AVCodecID first_acodec, struct kd_media_plan *plan,
                     char err[KD_MEDIA_ERRLEN])
{
    const char *name, *label = "";
    enum kd_vcodec vcodec = out->video_codec;
    enum kd_acodec acodec = out->audio_codec;
    enum kd_err rc = KD_OK;

    if (vcodec == KD_VCODEC_AUTO)
        vcodec = video_like_input(out->container, first_vcodec);
    if (acodec == KD_ACODEC_AUTO)
        acodec = audio_like_input(out->container, first_acodec);

    memset(plan, 0, sizeof(*plan));
    plan->vt.pix_fmt = AV_PIX_FMT_YUV420P;
    plan->vt.fit = out->fit;
    plan->at.sample_fmt = AV_SAMPLE_FMT_NONE;
    if ((plan->ofmt = av_guess_format(muxer_name(out->container), NULL, NULL)) == NULL) {
        kd_media_seterr(err, "the %s container is not available", container_label(out->container));
        rc = KD_EUNSUPPORTED;
        goto out;
    }
    plan->has_video = in_video && !is_audio_only(out->container);
    plan->has_audio = in_audio;
    if (!plan->has_video && !plan->has_audio) {
        kd_media_seterr(err, "the input has no sound to put in a%s %s file",
                        out->container == KD_CONT_M4A ? "n" : "", container_label(out->container));
        rc = KD_EMEDIA;
        goto out;
    }
    plan->is_video_copied = plan->has_video && out->video_codec == KD_VCODEC_COPY;
    plan->is_audio_copied = plan->has_audio && out->audio_codec == KD_ACODEC_COPY;
    if (plan->has_video && !plan->is_video_copied) {
        name = video_encoder(vcodec, out->container, &label);
        if ((plan->vcodec = avcodec_find_encoder_by_name(name)) == NULL) {
            kd_media_seterr(err, "the %s encoder is not available", label);
            rc = KD_EUNSUPPORTED;
            goto out;
        }
        if (!muxer_takes(plan->ofmt, plan->vcodec->id)) {
            kd_media_seterr(err, "%s video cannot be stored in %s", label,
                            container_label(out->container));
            rc = KD_EINVAL;
            goto out;
        }
    }
    if (plan->has_audio && !plan->is_audio_copied) {
        if (out->container == KD_CONT_WAV && out->audio_codec != KD_ACODEC_AUTO) {
            kd_media_seterr(err, "wav holds PCM sound only: leave audio_codec out");
            rc = KD_EINVAL;
            goto out;
        }
        name = audio_encoder(acodec, out->container, &label);
        if ((plan->acodec = avcodec_find_encoder_by_name(name)) == NULL) {
            kd_media_seterr(err, "the %s encoder is not available", label);
            rc = KD_EUNSUPPORTED;
            goto out;
        }
        if (!muxer_takes(plan->ofmt, plan->acodec->id)) {
            kd_media_seterr(err, "%s audio cannot be stored in %s", label,
                            container_label(out->container));
            rc = KD_EINVAL;
            goto out;
        }
        plan->at.sample_fmt = pick_sample_fmt(plan->acodec, (enum AVSampleFormat)apar->format);
        plan->at.sample_rate = pick_rate(plan->acodec, apar->sample_rate);
        if ((rc = pick_layout(plan->acodec, apar, &plan->at.ch_layout)) != KD_OK)
            goto out;
    }
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    return rc;
}

void
kd_media_plan_clear(struct kd_media_plan *plan)
{
    av_channel_layout_uninit(&plan->at.ch_layout);
}

/* libvpx has no presets: the x264 names map to its speed settings. */
static void
vp9_speed(const char *preset, const char **deadline, const char **cpu_used)
{
    static const struct {
        const char *preset, *deadline, *cpu_used;
    } map[] = {
        {"ultrafast", "realtime", "8"}, {"superfast", "realtime", "7"},
        {"veryfast", "realtime", "6"},  {"faster", "good", "5"},
        {"fast", "good", "4"},          {"medium", "good", "3"},
        {"slow", "good", "2"},          {"slower", "good", "1"},
        {"veryslow", "good", "0"},
    };

    *deadline = "good";
    *cpu_used = "3";
    for (size_t i = 0; i < KD_ARRAY_LEN(map); i++) {
        if (strcmp(preset, map[i].preset) == 0) {
            *deadline = map[i].deadline;
            *cpu_used = map[i].cpu_used;
        }
    }
}

static enum kd_err
dict_set(AVDictionary **d, const char *k, const char *v)
{
    return av_dict_set(d, k, v, 0) < 0 ? KD_ENOMEM : KD_OK;
}

/* The private options of the video encoder from the spec. */
static enum kd_err
video_options(const AVCodec *codec, const struct kd_output *spec, int threads, AVDictionary **opts)
{
    char num[64];
    enum kd_err rc = KD_OK;

    if (strcmp(codec->name, "libvpx-vp9") == 0) {
        const char *deadline, *cpu_used;
        int crf = spec->crf >= 0 ? spec->crf : VP9_DEFAULT_CRF;

        vp9_speed(spec->preset, &deadline, &cpu_used);
        (void)snprintf(num, sizeof(num), "%d", crf);
        if ((rc = dict_set(opts, "deadline", deadline)) != KD_OK ||
            (rc = dict_set(opts, "cpu-used", cpu_used)) != KD_OK ||
            (rc = dict_set(opts, "row-mt", "1")) != KD_OK ||
            (rc = dict_set(opts, "crf", num)) != KD_OK)
            return rc;
        return KD_OK;
    }
    /* libx264 and libx265 share preset and crf. */
    if (spec->preset[0] != '\0' && (rc = dict_set(opts, "preset", spec->preset)) != KD_OK)
        return rc;
    if (spec->crf >= 0) {
        (void)snprintf(num, sizeof(num), "%d", spec->crf);
        if ((rc = dict_set(opts, "crf", num)) != KD_OK)
            return rc;
    }
    if (strcmp(codec->name, "libx265") == 0) {
        /* x265 prints to stderr itself unless told not to; its thread pool
         * ignores AVCodecContext.thread_count. */
        if (threads > 0)
            (void)snprintf(num, sizeof(num), "log-level=error:pools=%d", threads);
        else
            (void)snprintf(num, sizeof(num), "log-level=error");
        if ((rc = dict_set(opts, "x265-params", num)) != KD_OK)
            return rc;
    }
    return rc;
}

/* Opens enc with opts; an option the encoder did not take is our bug. */
static enum kd_err
open_encoder(AVCodecContext *enc, const AVCodec *codec, AVDictionary **opts,
             char err[KD_MEDIA_ERRLEN])
{
    int ret;

    if ((ret = avcodec_open2(enc, codec, opts)) < 0) {
        kd_log(KD_LOG_ERROR, "media: the %s encoder did not open", codec->name);
        return kd_media_averr(NULL, ret, KD_EINTERNAL, err, "the encoder could not be opened");
    }
    if (av_dict_count(*opts) > 0) {
        kd_log(KD_LOG_ERROR, "media: the %s encoder has no option %s", codec->name,
               av_dict_get(*opts, "", NULL, AV_DICT_IGNORE_SUFFIX)->key);
        kd_media_seterr(err, "internal error (an unknown encoder option)");
        return KD_EINTERNAL;
    }
    return KD_OK;
}

static enum kd_err
add_stream(struct kd_media_output *o, AVCodecContext *enc, AVStream **out,
           char err[KD_MEDIA_ERRLEN])
{
    AVStream *st;
    int ret;

    if ((st = avformat_new_stream(o->fmt, NULL)) == NULL)
        return KD_ENOMEM;
    if ((ret = avcodec_parameters_from_context(st->codecpar, enc)) < 0)
        return kd_media_averr(NULL, ret, KD_EINTERNAL, err, "internal error (stream)");
    st->time_base = enc->time_base;
    *out = st;
    return KD_OK;
}

static enum kd_err
open_video(struct kd_media_output *o, const struct kd_output *spec,
           const struct kd_media_plan *plan, AVFilterContext *sink, int threads,
           char err[KD_MEDIA_ERRLEN])
{
    AVCodecContext *enc;
    AVDictionary *opts = NULL;
    AVRational fr = av_buffersink_get_frame_rate(sink);
    enum kd_err rc;

    if ((enc = o->venc = avcodec_alloc_context3(plan->vcodec)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    enc->width = av_buffersink_get_w(sink);
    enc->height = av_buffersink_get_h(sink);
    enc->pix_fmt = av_buffersink_get_format(sink);
    enc->sample_aspect_ratio = av_buffersink_get_sample_aspect_ratio(sink);
    enc->time_base = av_buffersink_get_time_base(sink);
    if (fr.num > 0 && fr.den > 0)
        enc->framerate = fr;
    enc->thread_count = threads;
    if (spec->video_bitrate > 0)
        enc->bit_rate = spec->video_bitrate;
    if (o->fmt->oformat->flags & AVFMT_GLOBALHEADER)
        enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if ((rc = video_options(plan->vcodec, spec, threads, &opts)) != KD_OK)
        goto out;
    if ((rc = open_encoder(enc, plan->vcodec, &opts, err)) != KD_OK)
        goto out;
    if ((rc = add_stream(o, enc, &o->vst, err)) != KD_OK)
        goto out;
    /* Apple players want HEVC tagged hvc1 (parameter sets in the sample
     * description) rather than libavformat's default hev1. */
    if (plan->vcodec->id == AV_CODEC_ID_HEVC && is_iso(spec->container))
        o->vst->codecpar->codec_tag = MKTAG('h', 'v', 'c', '1');
out:
    av_dict_free(&opts);
    return rc;
}

static enum kd_err
open_audio(struct kd_media_output *o, const struct kd_output *spec,
           const struct kd_media_plan *plan, AVFilterContext *sink, int threads,
           char err[KD_MEDIA_ERRLEN])
{
    AVCodecContext *enc;
    AVDictionary *opts = NULL;
    enum kd_err rc;
    int ret;

    if ((enc = o->aenc = avcodec_alloc_context3(plan->acodec)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    enc->sample_fmt = av_buffersink_get_format(sink);
    enc->sample_rate = av_buffersink_get_sample_rate(sink);
    if ((ret = av_buffersink_get_ch_layout(sink, &enc->ch_layout)) < 0) {
        rc = kd_media_averr(NULL, ret, KD_EINTERNAL, err, "internal error (channel layout)");
        goto out;
    }
    enc->time_base = (AVRational){1, enc->sample_rate};
    enc->thread_count = threads;
    if (plan->acodec->id != AV_CODEC_ID_PCM_S16LE)
        enc->bit_rate = spec->audio_bitrate > 0 ? spec->audio_bitrate : AUDIO_DEFAULT_BITRATE;
    if (o->fmt->oformat->flags & AVFMT_GLOBALHEADER)
        enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if ((rc = open_encoder(enc, plan->acodec, &opts, err)) != KD_OK)
        goto out;
    /* Encoders with a fixed frame size get frames of exactly that size. */
    if (enc->frame_size > 0 && !(plan->acodec->capabilities & AV_CODEC_CAP_VARIABLE_FRAME_SIZE))
        av_buffersink_set_frame_size(sink, (unsigned)enc->frame_size);
    rc = add_stream(o, enc, &o->ast, err);
out:
    av_dict_free(&opts);
    return rc;
}

/* A stream whose packets are copied: the input's parameters, timing, and
 * what players need besides the bytes (display matrix, language,
 * disposition). */
static enum kd_err
add_copy(struct kd_media_output *o, const struct kd_media_copy *c, AVStream **out,
         char err[KD_MEDIA_ERRLEN])
{
    const AVStream *ist = c->st;
    AVStream *st;
    int ret;

    if (!muxer_takes(o->fmt->oformat, c->par->codec_id)) {
        kd_media_seterr(err, "the input's %s cannot be copied into this container",
                        avcodec_get_name(c->par->codec_id));
        return KD_EINVAL;
    }
    if ((st = avformat_new_stream(o->fmt, NULL)) == NULL)
        return KD_ENOMEM;
    if ((ret = avcodec_parameters_copy(st->codecpar, c->par)) < 0)
        return kd_media_averr(NULL, ret, KD_ENOMEM, err, "output stream");
    st->codecpar->codec_tag = 0;
    st->time_base = ist->time_base;
    st->sample_aspect_ratio = ist->sample_aspect_ratio;
    st->avg_frame_rate = ist->avg_frame_rate;
    st->disposition = ist->disposition;
    if (av_dict_copy(&st->metadata, ist->metadata, 0) < 0)
        return KD_ENOMEM;
    for (int i = 0; i < ist->nb_side_data; i++) {
        const AVPacketSideData *sd = &ist->side_data[i];
        uint8_t *dst = av_stream_new_side_data(st, sd->type, sd->size);

        if (dst == NULL)
            return KD_ENOMEM;
        memcpy(dst, sd->data, sd->size);
    }
    *out = st;
    return KD_OK;
}

enum kd_err
kd_media_output_open(const char *path, const struct kd_output *spec,
                     const struct kd_media_plan *plan, AVFilterContext *vsink,
                     AVFilterContext *asink, const struct kd_media_copy *vcopy,
                     const struct kd_media_copy *acopy, int threads,
                     kd_media_cancelled_fn *cancelled, void *ud, struct kd_media_output **out,
                     char err[KD_MEDIA_ERRLEN])
{
    struct kd_media_output *o = NULL;
    char url[4096 + 8];
    enum kd_err rc;
    int ret;

    if (kd_snprintf(url, sizeof(url), "file:%s", path) != KD_OK) {
        kd_media_seterr(err, "the output path is too long");
        rc = KD_EINVAL;
        goto out;
    }
    if ((o = calloc(1, sizeof(*o))) == NULL || (o->pkt = av_packet_alloc()) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    kd_media_guard_init(&o->guard, 0, cancelled, ud);
    ret = avformat_alloc_output_context2(&o->fmt, plan->ofmt, NULL, url);
    if (ret < 0) {
        rc = kd_media_averr(NULL, ret, KD_EINTERNAL, err, "internal error (muxer)");
        goto out;
    }
    o->fmt->interrupt_callback.callback = kd_media_guard_check;
    o->fmt->interrupt_callback.opaque = &o->guard;
    /* The faststart pass reopens the output through io_open: file only. */
    if ((o->fmt->protocol_whitelist = av_strdup("file")) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    rc = KD_OK;
    if (plan->is_video_copied && vcopy != NULL)
        rc = add_copy(o, vcopy, &o->vst, err);
    else if (plan->has_video)
        rc = open_video(o, spec, plan, vsink, threads, err);
    if (rc != KD_OK)
        goto out;
    if (plan->is_audio_copied && acopy != NULL)
        rc = add_copy(o, acopy, &o->ast, err);
    else if (plan->has_audio)
        rc = open_audio(o, spec, plan, asink, threads, err);
    if (rc != KD_OK)
        goto out;
    *out = o;
    o = NULL;
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    kd_media_output_close(o);
    return rc;
}

/* A write failure: the disk, the file size limit, or cancellation. */
static enum kd_err
write_err(struct kd_media_output *o, int ret, char err[KD_MEDIA_ERRLEN])
{
    if (ret == AVERROR(EFBIG)) {
        kd_media_seterr(err, "the output is larger than the file size limit");
        return KD_ELIMIT;
    }
    return kd_media_averr(&o->guard, ret, KD_EIO, err, "writing the output failed");
}

enum kd_err
kd_media_output_start(struct kd_media_output *o, const struct kd_output *spec,
                      char err[KD_MEDIA_ERRLEN])
{
    AVDictionary *io_opts = NULL, *opts = NULL;
    enum kd_err rc = KD_OK;
    int ret;

    if (av_dict_set(&io_opts, "protocol_whitelist", "file", 0) < 0 ||
        (spec->faststart && is_iso(spec->container) &&
         av_dict_set(&opts, "movflags", "+faststart", 0) < 0)) {
        rc = KD_ENOMEM;
        goto out;
    }
    ret = avio_open2(&o->fmt->pb, o->fmt->url, AVIO_FLAG_WRITE, &o->fmt->interrupt_callback,
                     &io_opts);
    if (ret < 0) {
        rc = kd_media_averr(&o->guard, ret, KD_EIO, err, "the output could not be created");
        goto out;
    }
    if ((ret = avformat_write_header(o->fmt, &opts)) < 0) {
        rc = write_err(o, ret, err);
        goto out;
    }
    o->is_header_written = true;
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    av_dict_free(&io_opts);
    av_dict_free(&opts);
    return rc;
}

enum kd_err
kd_media_output_encode(struct kd_media_output *o, bool is_video, AVFrame *frame,
                       char err[KD_MEDIA_ERRLEN])
{
    AVCodecContext *enc = is_video ? o->venc : o->aenc;
    AVStream *st = is_video ? o->vst : o->ast;
    int ret;

    if (frame != NULL && is_video)
        frame->pict_type = AV_PICTURE_TYPE_NONE; /* let the encoder place keyframes */
    ret = avcodec_send_frame(enc, frame);
    if (ret < 0 && ret != AVERROR_EOF)
        return kd_media_averr(&o->guard, ret, KD_EINTERNAL, err, "encoding failed");
    for (;;) {
        ret = avcodec_receive_packet(enc, o->pkt);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            return KD_OK;
        if (ret < 0)
            return kd_media_averr(&o->guard, ret, KD_EINTERNAL, err, "encoding failed");
        o->pkt->stream_index = st->index;
        av_packet_rescale_ts(o->pkt, enc->time_base, st->time_base);
        /* The muxer takes the packet's reference, even on failure. */
        if ((ret = av_interleaved_write_frame(o->fmt, o->pkt)) == AVERROR(EINVAL)) {
            /* The muxer refuses timestamps: they came from the input. */
            kd_media_seterr(err, "the input's timing is too damaged to write");
            return KD_EMEDIA;
        }
        if (ret < 0)
            return write_err(o, ret, err);
    }
}

enum kd_err
kd_media_output_write(struct kd_media_output *o, bool is_video, AVPacket *pkt,
                      char err[KD_MEDIA_ERRLEN])
{
    int ret;

    pkt->stream_index = (is_video ? o->vst : o->ast)->index;
    /* The muxer takes the packet's reference, even on failure. */
    if ((ret = av_interleaved_write_frame(o->fmt, pkt)) == AVERROR(EINVAL)) {
        kd_media_seterr(err, "the input's timing is too damaged to write");
        return KD_EMEDIA;
    }
    if (ret < 0)
        return write_err(o, ret, err);
    return KD_OK;
}

enum kd_err
kd_media_output_finish(struct kd_media_output *o, char err[KD_MEDIA_ERRLEN])
{
    int ret;

    if ((ret = av_write_trailer(o->fmt)) < 0)
        return write_err(o, ret, err);
    if ((ret = avio_closep(&o->fmt->pb)) < 0)
        return write_err(o, ret, err);
    return KD_OK;
}

void
kd_media_output_close(struct kd_media_output *o)
{
    if (o == NULL)
        return;
    avcodec_free_context(&o->venc);
    avcodec_free_context(&o->aenc);
    if (o->fmt != NULL) {
        if (o->fmt->pb != NULL)
            avio_closep(&o->fmt->pb);
        avformat_free_context(o->fmt);
    }
    av_packet_free(&o->pkt);
    free(o);
}
