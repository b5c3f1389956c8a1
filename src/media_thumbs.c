/* media_thumbs.c: JPEG thumbnails taken from the output frames as the edit
 * loop produces them, so no second decode of the output is needed.
 *
 * Thumbnail i is due at duration * (i + 0.5) / count: evenly spaced and
 * never the black first or last frame of a fade. Only due frames are
 * scaled and encoded; every other frame costs one reference (kept so the
 * thumbnails of an output shorter than announced still get a picture). */
#include "media_parts.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libswscale/swscale.h>

#include "log.h"
#include "util.h"

/* mjpeg's quantiser scale (like ffmpeg -q:v 3): good quality, small files. */
#define THUMB_QSCALE 3

struct kd_thumbs {
    char *work_dir;
    int count, width;
    double duration_s;
    int next;         /* the next thumbnail due */
    char **paths;     /* count entries, filled as they are written */
    AVFrame *last;    /* the latest frame offered */
    int out_w, out_h; /* fixed by the first frame */
    struct SwsContext *sws;
    AVCodecContext *enc;
    AVFrame *scaled;
    AVPacket *pkt;
};

enum kd_err
kd_thumbs_new(const char *work_dir, int count, int width, double duration_s, struct kd_thumbs **out,
              char err[KD_MEDIA_ERRLEN])
{
    struct kd_thumbs *t = NULL;
    enum kd_err rc = KD_OK;

    if (count < 1 || count > 1000 || width < 16 || width > 8192 || !(duration_s > 0)) {
        kd_media_seterr(err, "internal error (thumbnail parameters)");
        rc = KD_EINTERNAL;
        goto out;
    }
    if ((t = calloc(1, sizeof(*t))) == NULL || (t->work_dir = strdup(work_dir)) == NULL ||
        (t->paths = calloc((size_t)count, sizeof(*t->paths))) == NULL ||
        (t->last = av_frame_alloc()) == NULL || (t->pkt = av_packet_alloc()) == NULL) {
        kd_media_seterr(err, "out of memory");
        rc = KD_ENOMEM;
        goto out;
    }
    t->count = count;
    t->width = width & ~1;
    t->duration_s = duration_s;
    *out = t;
    t = NULL;
out:
    kd_thumbs_free(t);
    return rc;
}

void
kd_thumbs_free(struct kd_thumbs *t)
{
    if (t == NULL)
        return;
    for (int i = 0; t->paths != NULL && i < t->count; i++)
        free(t->paths[i]);
    free(t->paths);
    av_frame_free(&t->last);
    av_frame_free(&t->scaled);
    av_packet_free(&t->pkt);
    avcodec_free_context(&t->enc);
    sws_freeContext(t->sws);
    free(t->work_dir);
    free(t);
}

/* Fixes the thumbnail size from the first frame: width as asked, height
 * from the display aspect (sample aspect applied), even, at least 2. */
static enum kd_err
setup(struct kd_thumbs *t, const AVFrame *f, char err[KD_MEDIA_ERRLEN])
{
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    AVRational sar = f->sample_aspect_ratio;
    double dar;
    int ret;

    if (f->width <= 0 || f->height <= 0) {
        kd_media_seterr(err, "internal error (thumbnail of an empty frame)");
        return KD_EINTERNAL;
    }
    if (sar.num <= 0 || sar.den <= 0)
        sar = (AVRational){1, 1};
    dar = (double)f->width * sar.num / sar.den / f->height;
    t->out_w = t->width;
    t->out_h = (int)lround(t->out_w / dar / 2.0) * 2;
    if (t->out_h < 2)
        t->out_h = 2;
    if (t->out_h > 8192)
        t->out_h = 8192;
    if (codec == NULL || (t->enc = avcodec_alloc_context3(codec)) == NULL ||
        (t->scaled = av_frame_alloc()) == NULL) {
        kd_media_seterr(err, "internal error (no JPEG encoder)");
        return KD_EINTERNAL;
    }
    t->enc->width = t->out_w;
    t->enc->height = t->out_h;
    /* Full-range 4:2:0, what every JPEG reader expects (yuv420p tagged
     * JPEG range: the same bytes as the deprecated yuvj420p). */
    t->enc->pix_fmt = AV_PIX_FMT_YUV420P;
    t->enc->color_range = AVCOL_RANGE_JPEG;
    t->enc->time_base = (AVRational){1, 25};
    t->enc->flags |= AV_CODEC_FLAG_QSCALE;
    t->enc->global_quality = FF_QP2LAMBDA * THUMB_QSCALE;
    t->enc->thread_count = 1;
    if ((ret = avcodec_open2(t->enc, codec, NULL)) < 0)
        return kd_media_averr(NULL, ret, KD_EINTERNAL, err, "thumbnail encoder");
    t->scaled->format = AV_PIX_FMT_YUV420P;
    t->scaled->color_range = AVCOL_RANGE_JPEG;
    t->scaled->width = t->out_w;
    t->scaled->height = t->out_h;
    if ((ret = av_frame_get_buffer(t->scaled, 0)) < 0)
        return kd_media_averr(NULL, ret, KD_ENOMEM, err, "thumbnail");
    return KD_OK;
}

/* Scales f, encodes it and writes thumb-<i + 1>.jpg. */
static enum kd_err
write_thumb(struct kd_thumbs *t, const AVFrame *f, int i, char err[KD_MEDIA_ERRLEN])
{
    char path[PATH_MAX];
    enum kd_err rc;
    int ret;

    if (t->enc == NULL && (rc = setup(t, f, err)) != KD_OK)
        return rc;
    t->sws = sws_getCachedContext(t->sws, f->width, f->height, f->format, t->out_w, t->out_h,
                                  AV_PIX_FMT_YUV420P, SWS_BICUBIC, NULL, NULL, NULL);
    if (t->sws == NULL) {
        kd_media_seterr(err, "internal error (thumbnail scaler)");
        return KD_EINTERNAL;
    }
    {
        /* Limited-range video in, full-range JPEG out. */
        const int *coefs = sws_getCoefficients(SWS_CS_ITU601);

        (void)sws_setColorspaceDetails(t->sws, coefs, f->color_range == AVCOL_RANGE_JPEG, coefs, 1,
                                       0, 1 << 16, 1 << 16);
    }
    if ((ret = av_frame_make_writable(t->scaled)) < 0)
        return kd_media_averr(NULL, ret, KD_ENOMEM, err, "thumbnail");
    if (sws_scale(t->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height,
                  t->scaled->data, t->scaled->linesize) != t->out_h) {
        kd_media_seterr(err, "internal error (scaling a thumbnail)");
        return KD_EINTERNAL;
    }
    t->scaled->pts = i;
    t->scaled->quality = t->enc->global_quality;
    if ((ret = avcodec_send_frame(t->enc, t->scaled)) < 0 ||
        (ret = avcodec_receive_packet(t->enc, t->pkt)) < 0)
        return kd_media_averr(NULL, ret, KD_EINTERNAL, err, "thumbnail encoder");
    rc = kd_snprintf(path, sizeof(path), "%s/thumb-%d.jpg", t->work_dir, i + 1);
    if (rc == KD_OK)
        rc = kd_media_write_file(path, t->pkt->data, (size_t)t->pkt->size);
    av_packet_unref(t->pkt);
    if (rc != KD_OK) {
        kd_media_seterr(err, "internal error (writing a thumbnail)");
        return rc;
    }
    if ((t->paths[i] = strdup(path)) == NULL) {
        kd_media_seterr(err, "out of memory");
        return KD_ENOMEM;
    }
    return KD_OK;
}

static double
due_s(const struct kd_thumbs *t, int i)
{
    return t->duration_s * (i + 0.5) / t->count;
}

enum kd_err
kd_thumbs_push(struct kd_thumbs *t, const AVFrame *frame, AVRational tb, char err[KD_MEDIA_ERRLEN])
{
    double at_s;
    enum kd_err rc;
    int ret;

    if (t->next >= t->count)
        return KD_OK;
    av_frame_unref(t->last);
    if ((ret = av_frame_ref(t->last, frame)) < 0)
        return kd_media_averr(NULL, ret, KD_ENOMEM, err, "thumbnail");
    if (frame->pts == AV_NOPTS_VALUE)
        return KD_OK;
    at_s = (double)frame->pts * av_q2d(tb);
    while (t->next < t->count && at_s >= due_s(t, t->next)) {
        if ((rc = write_thumb(t, frame, t->next, err)) != KD_OK)
            return rc;
        t->next++;
    }
    return KD_OK;
}

enum kd_err
kd_thumbs_finish(struct kd_thumbs *t, char ***paths, size_t *n, char err[KD_MEDIA_ERRLEN])
{
    enum kd_err rc;

    if (t->next < t->count && t->last->buf[0] == NULL) {
        kd_media_seterr(err, "the output has no picture to take thumbnails from");
        return KD_EMEDIA;
    }
    for (; t->next < t->count; t->next++)
        if ((rc = write_thumb(t, t->last, t->next, err)) != KD_OK)
            return rc;
    av_frame_unref(t->last);
    *paths = t->paths;
    *n = (size_t)t->count;
    t->paths = NULL;
    return KD_OK;
}
