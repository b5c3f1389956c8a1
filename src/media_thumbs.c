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
    int quarter;      /* clockwise quarter turns to apply (kd_thumbs_set_rotation) */
    struct SwsContext *sws;
    AVCodecContext *enc;
    AVFrame *scaled; /* the frame scaled, still unturned */
    AVFrame *turned; /* and turned (quarter != 0) */
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
    av_frame_free(&t->turned);
    av_packet_free(&t->pkt);
    avcodec_free_context(&t->enc);
    sws_freeContext(t->sws);
    free(t->work_dir);
    free(t);
}

void
kd_thumbs_set_rotation(struct kd_thumbs *t, int degrees)
{
    if (t->enc != NULL)
        return;
    t->quarter = degrees == 90 ? 1 : degrees == 180 ? 2 : degrees == 270 ? 3 : 0;
}

/* A frame of w x h in yuv420p, for the thumbnail's pictures. */
static enum kd_err
new_picture(AVFrame **out, int w, int h, char err[KD_MEDIA_ERRLEN])
{
    AVFrame *f = av_frame_alloc();
    int ret;

    if (f == NULL) {
        kd_media_seterr(err, "out of memory");
        return KD_ENOMEM;
    }
    f->format = AV_PIX_FMT_YUV420P;
    f->color_range = AVCOL_RANGE_JPEG;
    f->width = w;
    f->height = h;
    if ((ret = av_frame_get_buffer(f, 0)) < 0) {
        av_frame_free(&f);
        return kd_media_averr(NULL, ret, KD_ENOMEM, err, "thumbnail");
    }
    *out = f;
    return KD_OK;
}

/* One plane of sw x sh turned by q clockwise quarter turns into dst. */
static void
turn_plane(const uint8_t *src, int sls, int sw, int sh, uint8_t *dst, int dls, int q)
{
    int dw = q == 2 ? sw : sh, dh = q == 2 ? sh : sw;

    for (int y = 0; y < dh; y++) {
        uint8_t *d = dst + (ptrdiff_t)y * dls;

        for (int x = 0; x < dw; x++) {
            int sx = q == 1 ? y : q == 2 ? sw - 1 - x : sw - 1 - y;
            int sy = q == 1 ? sh - 1 - x : q == 2 ? sh - 1 - y : x;

            d[x] = src[(ptrdiff_t)sy * sls + sx];
        }
    }
}

/* Fixes the thumbnail size from the first frame: width as asked, height
 * from the display aspect (sample aspect and rotation applied), even, at
 * least 2. */
static enum kd_err
setup(struct kd_thumbs *t, const AVFrame *f, char err[KD_MEDIA_ERRLEN])
{
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    AVRational sar = f->sample_aspect_ratio;
    enum kd_err rc;
    double dar;
    int ret;

    if (f->width <= 0 || f->height <= 0) {
        kd_media_seterr(err, "internal error (thumbnail of an empty frame)");
        return KD_EINTERNAL;
    }
    if (sar.num <= 0 || sar.den <= 0)
        sar = (AVRational){1, 1};
    dar = (double)f->width * sar.num / sar.den / f->height;
    if (t->quarter % 2 == 1)
        dar = 1.0 / dar;
    t->out_w = t->width;
    t->out_h = (int)lround(t->out_w / dar / 2.0) * 2;
    if (t->out_h < 2)
        t->out_h = 2;
    if (t->out_h > 8192)
        t->out_h = 8192;
    if (codec == NULL || (t->enc = avcodec_alloc_context3(codec)) == NULL) {
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
    /* Scaled as stored (a quarter turn swaps the sides), then turned. */
    if (t->quarter % 2 == 1)
        rc = new_picture(&t->scaled, t->out_h, t->out_w, err);
    else
        rc = new_picture(&t->scaled, t->out_w, t->out_h, err);
    if (rc == KD_OK && t->quarter != 0)
        rc = new_picture(&t->turned, t->out_w, t->out_h, err);
    return rc;
}

/* Scales f, encodes it and writes thumb-<i + 1>.jpg. */
static enum kd_err
write_thumb(struct kd_thumbs *t, const AVFrame *f, int i, char err[KD_MEDIA_ERRLEN])
{
    char path[PATH_MAX];
    AVFrame *pic;
    enum kd_err rc;
    int ret;

    if (t->enc == NULL && (rc = setup(t, f, err)) != KD_OK)
        return rc;
    t->sws =
        sws_getCachedContext(t->sws, f->width, f->height, f->format, t->scaled->width,
                             t->scaled->height, AV_PIX_FMT_YUV420P, SWS_BICUBIC, NULL, NULL, NULL);
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
                  t->scaled->data, t->scaled->linesize) != t->scaled->height) {
        kd_media_seterr(err, "internal error (scaling a thumbnail)");
        return KD_EINTERNAL;
    }
    pic = t->scaled;
    if (t->quarter != 0) {
        if ((ret = av_frame_make_writable(t->turned)) < 0)
            return kd_media_averr(NULL, ret, KD_ENOMEM, err, "thumbnail");
        for (int p = 0; p < 3; p++) {
            int sh = p == 0 ? 0 : 1; /* 4:2:0: the chroma planes are half each way */

            turn_plane(t->scaled->data[p], t->scaled->linesize[p], t->scaled->width >> sh,
                       t->scaled->height >> sh, t->turned->data[p], t->turned->linesize[p],
                       t->quarter);
        }
        pic = t->turned;
    }
    pic->pts = i;
    pic->quality = t->enc->global_quality;
    if ((ret = avcodec_send_frame(t->enc, pic)) < 0 ||
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
