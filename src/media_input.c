/* media_input.c: opening one untrusted media file safely.
 *
 * Every byte of an input is hostile until proven otherwise. The rules,
 * applied in this order so that nothing is allocated from a value before it
 * has been checked:
 *   1. The file is read through our own AVIOContext: protocol "file" only
 *      for a local file, or for an object of a store (S3) our callbacks over
 *      kd_storage_reader, which reads it by ranged requests (no libav*
 *      network protocol is ever enabled); and an interrupt callback that
 *      enforces a deadline and polls the job's cancel flag.
 *   2. The demuxer is detected from the content alone (the name is not
 *      offered to the probe) and must be on a fixed whitelist. Formats that
 *      make the demuxer open other files or URLs (playlists, concat scripts,
 *      manifests) are refused as forbidden; other formats as unsupported.
 *   3. Every nested open a demuxer could attempt (io_open) is refused: no
 *      whitelisted format needs one.
 *   4. Probing is bounded (probesize, analyzeduration, max_streams) and the
 *      stream count, picture sizes, audio parameters and duration are
 *      checked against the limits right after the header is read, before
 *      avformat_find_stream_info decodes anything, and again after it.
 *      Decoders are opened with max_pixels so that no frame larger than the
 *      limit is ever allocated. */
#include "media_int.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/avstring.h>
#include <libavutil/display.h>
#include <libavutil/opt.h>

#include "log.h"
#include "util.h"

/* Demuxers an input may use. Each reads one self-contained file. */
static const char FORMAT_WHITELIST[] =
    "mov,mp4,m4a,3gp,matroska,webm,avi,mpegts,mpeg,flv,mp3,aac,wav,w64,flac,ogg,"
    "image2,png_pipe,jpeg_pipe,webp_pipe,bmp_pipe,gif,srt,webvtt,ass";

/* Demuxers whose whole point is to read other files or URLs: a file that
 * looks like one of these is an attempt to reach something else. */
static const char *const REFERRING_FORMATS[] = {
    "hls", "concat", "dash", "webm_dash_manifest", "imf",
    "sdp", "rtsp",   "rtp",  "avisynth",           "vapoursynth",
};

/* Single-picture formats: the file is an image, not a video. */
static const char *const IMAGE_FORMATS[] = {
    "image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe",
};

static const char *const SUBTITLE_FORMATS[] = {"srt", "webvtt", "ass"};

/* How much of the file the format probe and avformat_find_stream_info may
 * read, and how much of the timeline the latter may analyse. Enough for any
 * sane file; a file that needs more is refused rather than read whole. */
#define PROBE_BYTES     (1 << 20)
#define PROBESIZE_BYTES "5000000"
#define ANALYZE_US      "10000000"

/* Beyond these the "audio" is an attack on the resampler's allocations. */
#define MAX_CHANNELS    32
#define MAX_SAMPLE_RATE 384000

/* cancelled() may be expensive (it may read a pipe): poll it at most this
 * often from inside I/O, which runs thousands of times a second. */
#define CANCEL_POLL_MS 100

/* libav* would print to stderr, which carries our JSON log lines: its
 * messages go through kd_log instead, capped so that a file built to
 * trigger one error per packet cannot flood the log. */
#define AV_LOG_LINES_MAX 200

static atomic_int av_log_lines;

static void
av_log_bridge(void *avcl, int level, const char *fmt, va_list vl)
{
    char line[1024];
    int print_prefix = 1;
    size_t len;
    int n;

    if (level > AV_LOG_WARNING || av_log_get_level() < level)
        return;
    n = atomic_fetch_add(&av_log_lines, 1);
    if (n > AV_LOG_LINES_MAX)
        return;
    if (n == AV_LOG_LINES_MAX) {
        kd_log(KD_LOG_WARN, "libav: further messages suppressed");
        return;
    }
    if (av_log_format_line2(avcl, level, fmt, vl, line, sizeof(line), &print_prefix) < 0)
        return;
    len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    kd_log(level <= AV_LOG_ERROR ? KD_LOG_WARN : KD_LOG_DEBUG, "libav: %s", line);
}

static void
setup_once(void)
{
    av_log_set_level(AV_LOG_WARNING);
    av_log_set_callback(av_log_bridge);
}

void
kd_media_setup(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    (void)pthread_once(&once, setup_once);
}

void
kd_media_seterr(char err[KD_MEDIA_ERRLEN], const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    /* A message cut short is still a message: truncation is not an error. */
    (void)vsnprintf(err, KD_MEDIA_ERRLEN, fmt, ap);
    va_end(ap);
}

void
kd_media_guard_init(struct kd_media_guard *g, int64_t timeout_ms, kd_media_cancelled_fn *cancelled,
                    void *ud)
{
    memset(g, 0, sizeof(*g));
    g->deadline_ms = timeout_ms > 0 ? kd_mono_ms() + timeout_ms : 0;
    g->cancelled = cancelled;
    g->ud = ud;
}

int
kd_media_guard_check(void *opaque)
{
    struct kd_media_guard *g = opaque;
    int64_t now;

    if (g->is_cancelled || g->is_timed_out || g->store_err != KD_OK)
        return 1;
    now = kd_mono_ms();
    if (g->deadline_ms > 0 && now > g->deadline_ms) {
        g->is_timed_out = true;
        return 1;
    }
    if (g->cancelled != NULL && now - g->last_poll_ms >= CANCEL_POLL_MS) {
        g->last_poll_ms = now;
        if (g->cancelled(g->ud)) {
            g->is_cancelled = true;
            return 1;
        }
    }
    return 0;
}

enum kd_err
kd_media_averr(const struct kd_media_guard *g, int averr, enum kd_err otherwise,
               char err[KD_MEDIA_ERRLEN], const char *what)
{
    char reason[AV_ERROR_MAX_STRING_SIZE];

    if (g != NULL && g->is_cancelled) {
        kd_media_seterr(err, "cancelled");
        return KD_ECANCELED;
    }
    if (g != NULL && g->is_timed_out) {
        kd_media_seterr(err, "%s: reading the file took too long", what);
        return KD_EMEDIA;
    }
    if (g != NULL && g->store_err != KD_OK) {
        kd_media_seterr(err, "%s: %s", what, g->store_msg);
        return g->store_err;
    }
    if (averr == AVERROR(ENOMEM)) {
        kd_media_seterr(err, "%s: out of memory", what);
        return KD_ENOMEM;
    }
    if (av_strerror(averr, reason, sizeof(reason)) < 0)
        (void)snprintf(reason, sizeof(reason), "error %d", averr);
    kd_media_seterr(err, "%s: %s", what, reason);
    return otherwise;
}

const char *
kd_media_kind_name(enum kd_media_kind k)
{
    switch (k) {
    case KD_MEDIA_KIND_VIDEO:
        return "video";
    case KD_MEDIA_KIND_AUDIO:
        return "audio";
    case KD_MEDIA_KIND_IMAGE:
        return "image";
    case KD_MEDIA_KIND_SUBTITLE:
        return "subtitle";
    }
    return "other";
}

/* True if name, a demuxer's comma-separated name list, shares an entry with
 * list. */
static bool
name_in(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (av_match_list(name, list[i], ',') > 0)
            return true;
    return false;
}

/* A demuxer that reads only the one file it is given has no use for this;
 * refusing it closes every path to other files (mov references, image
 * sequences, playlists that slipped through). */
static int
refuse_nested_open(AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
                   AVDictionary **options)
{
    struct kd_media_input *in = s->opaque;

    (void)pb;
    (void)url;
    (void)flags;
    (void)options;
    if (in != NULL)
        in->is_nested_refused = true;
    return AVERROR(EPERM);
}

static double
stream_duration_s(const AVStream *st)
{
    if (st->duration == AV_NOPTS_VALUE || st->duration <= 0 || st->time_base.num <= 0 ||
        st->time_base.den <= 0)
        return NAN;
    return (double)st->duration * av_q2d(st->time_base);
}

static double
file_duration_s(const AVFormatContext *fmt)
{
    double d = NAN;

    if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0)
        return (double)fmt->duration / AV_TIME_BASE;
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        double s = stream_duration_s(fmt->streams[i]);
        if (!isnan(s) && (isnan(d) || s > d))
            d = s;
    }
    return d;
}

/* The limits of rule 4. final is set after avformat_find_stream_info, when
 * the duration is known and every chosen stream must have its parameters. */
static enum kd_err
check_limits(const AVFormatContext *fmt, const struct kd_limits *lim, bool final,
             char err[KD_MEDIA_ERRLEN])
{
    double dur;

    if ((int64_t)fmt->nb_streams > lim->max_streams) {
        kd_media_seterr(err, "the file has %u streams; at most %lld are allowed", fmt->nb_streams,
                        (long long)lim->max_streams);
        return KD_EMEDIA;
    }
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVCodecParameters *par = fmt->streams[i]->codecpar;

        if (par->codec_type == AVMEDIA_TYPE_VIDEO) {
            if (par->width < 0 || par->height < 0 || par->width > lim->max_width ||
                par->height > lim->max_height ||
                (int64_t)par->width * par->height > lim->max_pixels) {
                kd_media_seterr(err,
                                "stream %u is %dx%d pixels; the limit is %lldx%lld and "
                                "%lld pixels",
                                i, par->width, par->height, (long long)lim->max_width,
                                (long long)lim->max_height, (long long)lim->max_pixels);
                return KD_EMEDIA;
            }
        } else if (par->codec_type == AVMEDIA_TYPE_AUDIO) {
            if (par->ch_layout.nb_channels > MAX_CHANNELS || par->sample_rate > MAX_SAMPLE_RATE ||
                par->ch_layout.nb_channels < 0 || par->sample_rate < 0) {
                kd_media_seterr(err,
                                "stream %u has %d channels at %d Hz; at most %d channels "
                                "and %d Hz are allowed",
                                i, par->ch_layout.nb_channels, par->sample_rate, MAX_CHANNELS,
                                MAX_SAMPLE_RATE);
                return KD_EMEDIA;
            }
        }
    }
    if (!final)
        return KD_OK;
    if (fmt->nb_streams == 0) {
        kd_media_seterr(err, "the file has no streams");
        return KD_EMEDIA;
    }
    dur = file_duration_s(fmt);
    if (!isnan(dur) && dur > (double)lim->max_duration_s) {
        kd_media_seterr(err, "the file lasts %.0f s; the limit is %lld s", dur,
                        (long long)lim->max_duration_s);
        return KD_EMEDIA;
    }
    return KD_OK;
}

/* The stream of type to use: decodable, with its parameters known, not
 * cover art; the one marked default wins, else the first. */
static int
pick_stream(const AVFormatContext *fmt, enum AVMediaType type)
{
    int best = -1;

    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVStream *st = fmt->streams[i];
        const AVCodecParameters *par = st->codecpar;

        if (par->codec_type != type || avcodec_find_decoder(par->codec_id) == NULL)
            continue;
        if (type == AVMEDIA_TYPE_VIDEO && ((st->disposition & AV_DISPOSITION_ATTACHED_PIC) ||
                                           par->width <= 0 || par->height <= 0))
            continue;
        if (type == AVMEDIA_TYPE_AUDIO &&
            (par->sample_rate <= 0 || par->ch_layout.nb_channels <= 0))
            continue;
        if (best < 0 || ((st->disposition & AV_DISPOSITION_DEFAULT) &&
                         !(fmt->streams[best]->disposition & AV_DISPOSITION_DEFAULT)))
            best = (int)i;
    }
    return best;
}

static bool
has_stream_of(const AVFormatContext *fmt, enum AVMediaType type)
{
    for (unsigned i = 0; i < fmt->nb_streams; i++)
        if (fmt->streams[i]->codecpar->codec_type == type)
            return true;
    return false;
}

/* The kind rules (doc/internals/media.md): a picture stream makes a video,
 * unless the format holds single pictures (or the GIF is one frame); else a
 * sound stream makes audio; else a subtitle format makes a subtitle file;
 * anything else is not media kadr can use. */
static enum kd_err
classify(struct kd_media_input *in, char err[KD_MEDIA_ERRLEN])
{
    const AVFormatContext *fmt = in->fmt;
    const char *name = fmt->iformat->name;

    in->video_idx = pick_stream(fmt, AVMEDIA_TYPE_VIDEO);
    in->audio_idx = pick_stream(fmt, AVMEDIA_TYPE_AUDIO);
    if (in->video_idx >= 0) {
        const AVStream *st = fmt->streams[in->video_idx];
        bool one_frame = strcmp(name, "gif") == 0 && (isnan(in->duration_s) || st->nb_frames == 1);

        if (name_in(name, IMAGE_FORMATS, KD_ARRAY_LEN(IMAGE_FORMATS)) || one_frame)
            in->kind = KD_MEDIA_KIND_IMAGE;
        else
            in->kind = KD_MEDIA_KIND_VIDEO;
        return KD_OK;
    }
    if (in->audio_idx >= 0) {
        in->kind = KD_MEDIA_KIND_AUDIO;
        return KD_OK;
    }
    if (name_in(name, SUBTITLE_FORMATS, KD_ARRAY_LEN(SUBTITLE_FORMATS)) &&
        has_stream_of(fmt, AVMEDIA_TYPE_SUBTITLE)) {
        in->kind = KD_MEDIA_KIND_SUBTITLE;
        return KD_OK;
    }
    if (has_stream_of(fmt, AVMEDIA_TYPE_VIDEO) || has_stream_of(fmt, AVMEDIA_TYPE_AUDIO))
        kd_media_seterr(err, "no picture or sound in the file can be decoded");
    else
        kd_media_seterr(err, "the file holds no picture, sound or subtitles");
    return KD_EMEDIA;
}

/* Rule 2: which demuxer the content asks for, and whether it may be used. */
static enum kd_err
detect_format(struct kd_media_input *in, const AVInputFormat **out, char err[KD_MEDIA_ERRLEN])
{
    const AVInputFormat *ifmt = NULL;
    int ret;

    /* An empty name: extension-based guesses must not steer the choice. */
    ret = av_probe_input_buffer2(in->pb, &ifmt, "", NULL, 0, PROBE_BYTES);
    if (ret < 0 || ifmt == NULL || in->guard.store_err != KD_OK) {
        if (in->guard.is_cancelled || in->guard.is_timed_out || in->guard.store_err != KD_OK)
            return kd_media_averr(&in->guard, ret, KD_EMEDIA, err, "probing the file");
        kd_media_seterr(err, "not a media file kadr can read (the format was not recognised)");
        return KD_EMEDIA;
    }
    if (name_in(ifmt->name, REFERRING_FORMATS, KD_ARRAY_LEN(REFERRING_FORMATS))) {
        kd_media_seterr(err,
                        "the file is a playlist or script (%s) that refers to other files; "
                        "such files are not allowed",
                        ifmt->name);
        return KD_EFORBIDDEN;
    }
    if (av_match_list(ifmt->name, FORMAT_WHITELIST, ',') <= 0) {
        kd_media_seterr(err, "the format %s is not supported", ifmt->name);
        return KD_EMEDIA;
    }
    *out = ifmt;
    return KD_OK;
}

static enum kd_err
set_dict(AVDictionary **d, const char *key, const char *value)
{
    return av_dict_set(d, key, value, 0) < 0 ? KD_ENOMEM : KD_OK;
}

/* Rule 4 for avformat_find_stream_info: the decoders it opens get the
 * pixel cap and a single thread each. */
static enum kd_err
stream_info(struct kd_media_input *in, const struct kd_limits *lim, char err[KD_MEDIA_ERRLEN])
{
    AVDictionary **sopts = NULL;
    unsigned n = in->fmt->nb_streams;
    int64_t max_pixels = lim->max_pixels < INT_MAX ? lim->max_pixels : INT_MAX;
    enum kd_err rc = KD_OK;
    int ret;

    if (n > 0 && (sopts = calloc(n, sizeof(*sopts))) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    for (unsigned i = 0; i < n; i++) {
        if (av_dict_set_int(&sopts[i], "max_pixels", max_pixels, 0) < 0 ||
            av_dict_set(&sopts[i], "threads", "1", 0) < 0) {
            rc = KD_ENOMEM;
            goto out;
        }
    }
    ret = avformat_find_stream_info(in->fmt, sopts);
    if (ret < 0) {
        rc = kd_media_averr(&in->guard, ret, KD_EMEDIA, err, "the file is damaged");
        goto out;
    }
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    for (unsigned i = 0; sopts != NULL && i < n; i++)
        av_dict_free(&sopts[i]);
    free(sopts);
    return rc;
}

/* --- objects of a store: the custom AVIOContext -------------------------- */

/* The AVIO buffer: the demuxer's reads come out of it; the reader behind
 * it keeps a read-ahead window of several MiB, one ranged GET each. */
#define STORE_IO_BUF (256 * 1024)

/* Latches a failure of the store in the guard, in the media engine's
 * terms (see struct kd_media_guard). */
static void
store_failed(struct kd_media_guard *g, struct kd_storage *store, enum kd_err rc)
{
    const char *why = store != NULL ? kd_storage_last_error(store) : "";

    if (g->store_err != KD_OK)
        return;
    switch (rc) {
    case KD_EUNAVAIL:
    case KD_ETIMEOUT:
        g->store_err = KD_EUNAVAIL;
        (void)snprintf(g->store_msg, sizeof(g->store_msg), "the storage is unavailable (%s)",
                       why[0] != '\0' ? why : kd_err_name(rc));
        break;
    case KD_ENOTFOUND:
        g->store_err = KD_EMEDIA;
        (void)snprintf(g->store_msg, sizeof(g->store_msg), "the file is missing from storage");
        break;
    case KD_ENOMEM:
        g->store_err = KD_ENOMEM;
        (void)snprintf(g->store_msg, sizeof(g->store_msg), "out of memory");
        break;
    default:
        g->store_err = KD_EIO;
        (void)snprintf(g->store_msg, sizeof(g->store_msg), "the storage failed (%s)",
                       why[0] != '\0' ? why : kd_err_name(rc));
        break;
    }
}

static int
store_read(void *opaque, uint8_t *buf, int len)
{
    struct kd_media_input *in = opaque;
    size_t got = 0;
    enum kd_err rc;

    /* custom I/O has no interrupt callback of its own: ask the guard */
    if (kd_media_guard_check(&in->guard))
        return AVERROR_EXIT;
    if (len <= 0)
        return 0;
    if ((rc = kd_storage_reader_read(in->reader, buf, (size_t)len, &got)) != KD_OK) {
        store_failed(&in->guard, in->store, rc);
        return AVERROR(EIO);
    }
    return got == 0 ? AVERROR_EOF : (int)got;
}

static int64_t
store_seek(void *opaque, int64_t offset, int whence)
{
    struct kd_media_input *in = opaque;
    int64_t size = kd_storage_reader_size(in->reader), pos;

    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
        return size;
    case SEEK_SET:
        pos = offset;
        break;
    case SEEK_CUR:
        pos = kd_storage_reader_tell(in->reader) + offset;
        break;
    case SEEK_END:
        pos = size + offset;
        break;
    default:
        return AVERROR(EINVAL);
    }
    if (kd_storage_reader_seek(in->reader, pos) != KD_OK)
        return AVERROR(EINVAL);
    return pos;
}

/* Rule 1 for an object: the reader (its HEAD tells the size) and an
 * AVIOContext over it. */
static enum kd_err
open_object(struct kd_media_input *in, struct kd_storage *store, const char *key,
            char err[KD_MEDIA_ERRLEN])
{
    unsigned char *buf = NULL;
    enum kd_err rc;

    in->store = store;
    if ((rc = kd_storage_reader_open(store, key, &in->reader)) != KD_OK) {
        store_failed(&in->guard, store, rc);
        return kd_media_averr(&in->guard, 0, KD_EIO, err, "the file could not be opened");
    }
    if ((buf = av_malloc(STORE_IO_BUF)) == NULL)
        return KD_ENOMEM;
    in->pb = avio_alloc_context(buf, STORE_IO_BUF, 0, in, store_read, NULL, store_seek);
    if (in->pb == NULL) {
        av_free(buf);
        return KD_ENOMEM;
    }
    return KD_OK;
}

/* Rule 1 for a local file: libavformat's own file protocol, alone. */
static enum kd_err
open_file(struct kd_media_input *in, const char *url, char err[KD_MEDIA_ERRLEN])
{
    AVDictionary *io_opts = NULL;
    enum kd_err rc;
    int ret;

    if ((rc = set_dict(&io_opts, "protocol_whitelist", "file")) != KD_OK)
        goto out;
    ret = avio_open2(&in->pb, url, AVIO_FLAG_READ,
                     &(AVIOInterruptCB){kd_media_guard_check, &in->guard}, &io_opts);
    if (ret < 0)
        rc = kd_media_averr(&in->guard, ret, KD_EIO, err, "the file could not be opened");
out:
    av_dict_free(&io_opts);
    return rc;
}

enum kd_err
kd_media_input_store_check(const struct kd_media_input *in, char err[KD_MEDIA_ERRLEN],
                           const char *what)
{
    if (in->guard.store_err == KD_OK)
        return KD_OK;
    kd_media_seterr(err, "%s: %s", what, in->guard.store_msg);
    return in->guard.store_err;
}

enum kd_err
kd_media_read_whole(struct kd_storage *store, const char *name, size_t max, char **data,
                    size_t *len)
{
    struct kd_storage_reader *r = NULL;
    char *buf = NULL;
    size_t done = 0, got;
    int64_t size;
    enum kd_err rc;

    if (store == NULL)
        return kd_read_file(name, max, data, len);
    if ((rc = kd_storage_reader_open(store, name, &r)) != KD_OK)
        goto out;
    size = kd_storage_reader_size(r);
    if (size < 0 || (uint64_t)size > max) {
        rc = KD_ELIMIT;
        goto out;
    }
    if ((buf = malloc((size_t)size + 1)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    while (done < (size_t)size) {
        if ((rc = kd_storage_reader_read(r, buf + done, (size_t)size - done, &got)) != KD_OK)
            goto out;
        if (got == 0) {
            rc = KD_EIO; /* the object shrank while read */
            goto out;
        }
        done += got;
    }
    buf[done] = '\0';
    *data = buf;
    *len = done;
    buf = NULL;
out:
    free(buf);
    kd_storage_reader_close(r);
    return rc;
}

enum kd_err
kd_media_input_open(struct kd_storage *store, const char *name, const struct kd_limits *lim,
                    int64_t timeout_ms, kd_media_cancelled_fn *cancelled, void *ud,
                    struct kd_media_input **out, char err[KD_MEDIA_ERRLEN])
{
    struct kd_media_input *in = NULL;
    const AVInputFormat *ifmt = NULL;
    AVDictionary *opts = NULL;
    char url[4096 + 8];
    char num[32];
    enum kd_err rc;
    int ret;

    /* The name only for messages when it is a key: custom I/O ignores it. */
    if (kd_snprintf(url, sizeof(url), "%s%s", store == NULL ? "file:" : "", name) != KD_OK) {
        kd_media_seterr(err, "the input path is too long");
        rc = KD_EINVAL;
        goto out;
    }
    if ((in = calloc(1, sizeof(*in))) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    in->video_idx = -1;
    in->audio_idx = -1;
    in->duration_s = NAN;
    kd_media_guard_init(&in->guard, timeout_ms, cancelled, ud);

    /* Rule 1. */
    rc = store != NULL ? open_object(in, store, name, err) : open_file(in, url, err);
    if (rc != KD_OK)
        goto out;
    in->size = avio_size(in->pb);
    if (in->size == 0) {
        kd_media_seterr(err, "the file is empty");
        rc = KD_EMEDIA;
        goto out;
    }
    /* Rule 2. */
    if ((rc = detect_format(in, &ifmt, err)) != KD_OK)
        goto out;

    if ((in->fmt = avformat_alloc_context()) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    in->fmt->pb = in->pb;
    in->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    in->fmt->interrupt_callback.callback = kd_media_guard_check;
    in->fmt->interrupt_callback.opaque = &in->guard;
    in->fmt->opaque = in;
    in->fmt->io_open = refuse_nested_open; /* rule 3 */
    /* One more than allowed, so that the check below (not the demuxer)
     * names the problem; the option is an int. */
    (void)snprintf(num, sizeof(num), "%lld",
                   lim->max_streams < INT_MAX - 1 ? (long long)lim->max_streams + 1
                                                  : (long long)INT_MAX);
    /* The whitelists again on the context itself: defence in depth should
     * the detection above ever be bypassed. */
    if ((rc = set_dict(&opts, "format_whitelist", FORMAT_WHITELIST)) != KD_OK ||
        (rc = set_dict(&opts, "protocol_whitelist", "file")) != KD_OK ||
        (rc = set_dict(&opts, "probesize", PROBESIZE_BYTES)) != KD_OK ||
        (rc = set_dict(&opts, "analyzeduration", ANALYZE_US)) != KD_OK ||
        (rc = set_dict(&opts, "max_streams", num)) != KD_OK ||
        (rc = set_dict(&opts, "enable_drefs", "0")) != KD_OK)
        goto out;
    ret = avformat_open_input(&in->fmt, url, ifmt, &opts);
    if (ret < 0) {
        /* avformat_open_input freed the context on failure. */
        if (in->is_nested_refused) {
            kd_media_seterr(err, "the file refers to other files; such files are not allowed");
            rc = KD_EFORBIDDEN;
        } else {
            rc = kd_media_averr(&in->guard, ret, KD_EMEDIA, err, "the file could not be read");
        }
        goto out;
    }
    /* A store that failed while the header was read may have looked like
     * the file's end to the demuxer: then nothing it found counts. */
    if ((rc = kd_media_input_store_check(in, err, "the file could not be read")) != KD_OK)
        goto out;
    /* Rule 4, before anything is decoded. */
    if ((rc = check_limits(in->fmt, lim, false, err)) != KD_OK)
        goto out;
    if ((rc = stream_info(in, lim, err)) != KD_OK)
        goto out;
    if ((rc = kd_media_input_store_check(in, err, "the file could not be read")) != KD_OK)
        goto out;
    if (in->is_nested_refused) {
        kd_media_seterr(err, "the file refers to other files; such files are not allowed");
        rc = KD_EFORBIDDEN;
        goto out;
    }
    if ((rc = check_limits(in->fmt, lim, true, err)) != KD_OK)
        goto out;
    in->duration_s = file_duration_s(in->fmt);
    in->start_time = in->fmt->start_time != AV_NOPTS_VALUE ? in->fmt->start_time : 0;
    if ((rc = classify(in, err)) != KD_OK)
        goto out;
    in->guard.deadline_ms = 0; /* from here on the job's own deadline rules */
    *out = in;
    in = NULL;
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    av_dict_free(&opts);
    kd_media_input_close(in);
    return rc;
}

void
kd_media_input_close(struct kd_media_input *in)
{
    if (in == NULL)
        return;
    avformat_close_input(&in->fmt);
    /* after the demuxer, which borrowed it */
    if (in->reader != NULL) {
        if (in->pb != NULL)
            av_freep(&in->pb->buffer);
        avio_context_free(&in->pb);
        kd_storage_reader_close(in->reader);
    } else {
        avio_closep(&in->pb);
    }
    free(in);
}

enum kd_err
kd_media_decoder_open(struct kd_media_input *in, int idx, const struct kd_limits *lim, int threads,
                      AVCodecContext **out, char err[KD_MEDIA_ERRLEN])
{
    const AVStream *st = in->fmt->streams[idx];
    const AVCodec *codec;
    AVCodecContext *dec = NULL;
    AVDictionary *opts = NULL;
    int64_t max_pixels = lim->max_pixels < INT_MAX ? lim->max_pixels : INT_MAX;
    enum kd_err rc = KD_OK;
    int ret;

    if ((codec = avcodec_find_decoder(st->codecpar->codec_id)) == NULL) {
        kd_media_seterr(err, "stream %d: the codec %s cannot be decoded", idx,
                        avcodec_get_name(st->codecpar->codec_id));
        rc = KD_EMEDIA;
        goto out;
    }
    if ((dec = avcodec_alloc_context3(codec)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if ((ret = avcodec_parameters_to_context(dec, st->codecpar)) < 0) {
        rc = kd_media_averr(NULL, ret, KD_EMEDIA, err, "the stream's parameters are invalid");
        goto out;
    }
    dec->pkt_timebase = st->time_base;
    dec->thread_count = threads > 0 ? threads : 0;
    if (av_dict_set_int(&opts, "max_pixels", max_pixels, 0) < 0) {
        rc = KD_ENOMEM;
        goto out;
    }
    if ((ret = avcodec_open2(dec, codec, &opts)) < 0) {
        rc = kd_media_averr(NULL, ret, KD_EMEDIA, err, "the stream cannot be decoded");
        goto out;
    }
    *out = dec;
    dec = NULL;
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    av_dict_free(&opts);
    avcodec_free_context(&dec);
    return rc;
}

int
kd_media_stream_rotation(const AVStream *st)
{
    size_t size = 0;
    const uint8_t *m = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
    double theta;
    long q;

    if (m == NULL || size < 9 * sizeof(int32_t))
        return 0;
    /* The matrix says how to rotate counter-clockwise to display; we turn
     * the picture clockwise by the opposite angle. */
    theta = -av_display_rotation_get((const int32_t *)m);
    if (isnan(theta))
        return 0;
    q = lround(theta / 90.0) % 4;
    if (q < 0)
        q += 4;
    return (int)q * 90;
}
