/* media_probe.c: what an uploaded file is (kd_media_probe).
 *
 * The file is opened through the safe path of media_input.c, its main
 * stream must yield one decoded frame (a header alone proves nothing), and
 * the Media.probe object of the API is built from the demuxer's view. The
 * SHA-256 covers every byte of the file, read in blocks. */
#include "media_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"
#include "util.h"

/* How far the decode check reads before calling the file undecodable. */
#define DECODE_CHECK_PACKETS 2000
#define HASH_BLOCK           (64 * 1024)
#define LANGUAGE_MAX_LEN     32

static enum kd_err
hash_file(const char *path, char sha256[65], char err[KD_MEDIA_ERRLEN])
{
    EVP_MD_CTX *md = NULL;
    unsigned char *block = NULL;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned digest_len = 0;
    int fd = -1;
    enum kd_err rc = KD_OK;

    if ((block = malloc(HASH_BLOCK)) == NULL || (md = EVP_MD_CTX_new()) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        kd_media_seterr(err, "internal error (SHA-256)");
        rc = KD_EINTERNAL;
        goto out;
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        int e = errno;
        kd_log_errno(KD_LOG_WARN, e, "media: cannot open %s for hashing", path);
        kd_media_seterr(err, "the file could not be opened");
        rc = KD_EIO;
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, block, HASH_BLOCK);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            kd_log_errno(KD_LOG_WARN, e, "media: reading %s for hashing", path);
            kd_media_seterr(err, "the file could not be read");
            rc = KD_EIO;
            goto out;
        }
        if (n == 0)
            break;
        if (EVP_DigestUpdate(md, block, (size_t)n) != 1) {
            kd_media_seterr(err, "internal error (SHA-256)");
            rc = KD_EINTERNAL;
            goto out;
        }
    }
    if (EVP_DigestFinal_ex(md, digest, &digest_len) != 1 || digest_len != 32) {
        kd_media_seterr(err, "internal error (SHA-256)");
        rc = KD_EINTERNAL;
        goto out;
    }
    kd_hex_encode(digest, digest_len, sha256);
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    if (fd >= 0)
        close(fd);
    EVP_MD_CTX_free(md);
    free(block);
    return rc;
}

/* The SHA-256 of an object, read again from its start through the input's
 * own AVIOContext (the reader's ranged requests), in blocks. */
static enum kd_err
hash_object(struct kd_media_input *in, char sha256[65], char err[KD_MEDIA_ERRLEN])
{
    EVP_MD_CTX *md = NULL;
    unsigned char *block = NULL;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned digest_len = 0;
    int64_t done = 0;
    enum kd_err rc = KD_OK;
    int n;

    if ((block = malloc(HASH_BLOCK)) == NULL || (md = EVP_MD_CTX_new()) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        kd_media_seterr(err, "internal error (SHA-256)");
        rc = KD_EINTERNAL;
        goto out;
    }
    avio_flush(in->pb);
    if (avio_seek(in->pb, 0, SEEK_SET) != 0) {
        rc = kd_media_averr(&in->guard, AVERROR(EIO), KD_EIO, err, "hashing the file");
        goto out;
    }
    while ((n = avio_read(in->pb, block, HASH_BLOCK)) > 0) {
        if (EVP_DigestUpdate(md, block, (size_t)n) != 1) {
            kd_media_seterr(err, "internal error (SHA-256)");
            rc = KD_EINTERNAL;
            goto out;
        }
        done += n;
    }
    /* every byte, or the hash is of something else */
    if ((rc = kd_media_input_store_check(in, err, "hashing the file")) != KD_OK)
        goto out;
    if (done != in->size) {
        kd_media_seterr(err, "hashing the file: %lld of %lld bytes could be read", (long long)done,
                        (long long)in->size);
        rc = KD_EIO;
        goto out;
    }
    if (EVP_DigestFinal_ex(md, digest, &digest_len) != 1 || digest_len != 32) {
        kd_media_seterr(err, "internal error (SHA-256)");
        rc = KD_EINTERNAL;
        goto out;
    }
    kd_hex_encode(digest, digest_len, sha256);
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    EVP_MD_CTX_free(md);
    free(block);
    return rc;
}

/* Reads until the main stream yields a decoded frame. Subtitle files have
 * been parsed whole by their demuxer already. */
static enum kd_err
check_decodes(struct kd_media_input *in, const struct kd_limits *lim, char err[KD_MEDIA_ERRLEN])
{
    int idx = in->video_idx >= 0 ? in->video_idx : in->audio_idx;
    AVCodecContext *dec = NULL;
    AVPacket *pkt = NULL;
    AVFrame *frame = NULL;
    bool is_decoded = false, is_eof = false;
    enum kd_err rc = KD_OK;
    int ret;

    if (idx < 0)
        goto out;
    kd_media_guard_init(&in->guard, KD_MEDIA_OPEN_TIMEOUT_MS, NULL, NULL);
    if ((rc = kd_media_decoder_open(in, idx, lim, 1, &dec, err)) != KD_OK)
        goto out;
    if ((pkt = av_packet_alloc()) == NULL || (frame = av_frame_alloc()) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    for (int n = 0; !is_decoded && !is_eof && n < DECODE_CHECK_PACKETS; n++) {
        ret = av_read_frame(in->fmt, pkt);
        if (ret < 0 &&
            (rc = kd_media_input_store_check(in, err, "the file could not be read")) != KD_OK)
            goto out;
        if (ret == AVERROR_EOF) {
            is_eof = true;
            ret = avcodec_send_packet(dec, NULL); /* drain what is buffered */
        } else if (ret < 0) {
            rc = kd_media_averr(&in->guard, ret, KD_EMEDIA, err, "the file is damaged");
            goto out;
        } else if (pkt->stream_index != idx) {
            av_packet_unref(pkt);
            continue;
        } else {
            ret = avcodec_send_packet(dec, pkt);
            av_packet_unref(pkt);
        }
        /* A broken packet is not yet a broken file: keep reading. */
        if (ret < 0 && ret != AVERROR(EAGAIN) && ret != AVERROR_EOF && ret != AVERROR_INVALIDDATA) {
            rc = kd_media_averr(&in->guard, ret, KD_EMEDIA, err, "the file cannot be decoded");
            goto out;
        }
        while ((ret = avcodec_receive_frame(dec, frame)) >= 0) {
            is_decoded = true;
            av_frame_unref(frame);
        }
        if (ret != AVERROR(EAGAIN) && ret != AVERROR_EOF && ret != AVERROR_INVALIDDATA) {
            rc = kd_media_averr(&in->guard, ret, KD_EMEDIA, err, "the file cannot be decoded");
            goto out;
        }
    }
    if (!is_decoded) {
        kd_media_seterr(err, "no %s could be decoded from the file",
                        idx == in->video_idx ? "picture" : "sound");
        rc = KD_EMEDIA;
        goto out;
    }
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    av_frame_free(&frame);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    return rc;
}

/* Seconds rounded to the millisecond: what a client can use. */
static json_t *
seconds_json(double s)
{
    if (isnan(s) || isinf(s) || s < 0)
        return json_null();
    return json_real(round(s * 1000.0) / 1000.0);
}

/* The format's short name: the first of the demuxer's names, refined by
 * the brand for the ISO family (which one demuxer reads). */
static enum kd_err
format_name(const AVFormatContext *fmt, json_t **out)
{
    const char *name = fmt->iformat->name;
    const char *comma = strchr(name, ',');
    size_t len = comma != NULL ? (size_t)(comma - name) : strlen(name);

    if (strcmp(fmt->iformat->name, "mov,mp4,m4a,3gp,3g2,mj2") == 0) {
        const AVDictionaryEntry *brand = av_dict_get(fmt->metadata, "major_brand", NULL, 0);
        const char *b = brand != NULL ? brand->value : "";

        if (strncmp(b, "qt", 2) == 0)
            name = "mov";
        else if (strncmp(b, "M4A", 3) == 0 || strncmp(b, "M4B", 3) == 0)
            name = "m4a";
        else if (strncmp(b, "3g", 2) == 0)
            name = "3gp";
        else
            name = "mp4";
        len = strlen(name);
    }
    *out = json_stringn(name, len);
    return *out != NULL ? KD_OK : KD_ENOMEM;
}

static const char *
type_name(enum AVMediaType t)
{
    switch (t) {
    case AVMEDIA_TYPE_VIDEO:
        return "video";
    case AVMEDIA_TYPE_AUDIO:
        return "audio";
    case AVMEDIA_TYPE_SUBTITLE:
        return "subtitle";
    default:
        return "data";
    }
}

/* The language tag comes from the file: keep it only if it is short,
 * printable text. */
static json_t *
language_json(const AVStream *st)
{
    const AVDictionaryEntry *e = av_dict_get(st->metadata, "language", NULL, 0);
    size_t len;

    if (e == NULL || (len = strlen(e->value)) == 0 || len > LANGUAGE_MAX_LEN ||
        !kd_utf8_valid(e->value, len))
        return json_null();
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)e->value[i] < 0x20 || e->value[i] == 0x7f)
            return json_null();
    return json_stringn(e->value, len);
}

static json_t *
positive_int(int64_t v)
{
    return v > 0 ? json_integer(v) : json_null();
}

static enum kd_err
stream_json(const AVFormatContext *fmt, const AVStream *st, json_t **out)
{
    const AVCodecParameters *par = st->codecpar;
    bool is_video = par->codec_type == AVMEDIA_TYPE_VIDEO;
    bool is_audio = par->codec_type == AVMEDIA_TYPE_AUDIO;
    json_t *o = NULL, *fps = json_null();
    enum kd_err rc = KD_OK;

    if (is_video && !(st->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
        AVRational r = av_guess_frame_rate((AVFormatContext *)fmt, (AVStream *)st, NULL);
        if (r.num > 0 && r.den > 0)
            fps = json_real(round(av_q2d(r) * 1000.0) / 1000.0);
    }
    o = json_pack("{s:i, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "index", st->index, "type",
                  type_name(par->codec_type), "codec",
                  par->codec_id != AV_CODEC_ID_NONE ? json_string(avcodec_get_name(par->codec_id))
                                                    : json_null(),
                  "width", is_video ? positive_int(par->width) : json_null(), "height",
                  is_video ? positive_int(par->height) : json_null(), "fps", fps, "sample_rate",
                  is_audio ? positive_int(par->sample_rate) : json_null(), "channels",
                  is_audio ? positive_int(par->ch_layout.nb_channels) : json_null(), "language",
                  language_json(st));
    if (o == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    *out = o;
    o = NULL;
out:
    json_decref(o);
    return rc;
}

static enum kd_err
probe_json(const struct kd_media_input *in, json_t **out)
{
    json_t *o = NULL, *streams = NULL, *name = NULL;
    enum kd_err rc;

    if ((rc = format_name(in->fmt, &name)) != KD_OK)
        goto out;
    if ((streams = json_array()) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    for (unsigned i = 0; i < in->fmt->nb_streams; i++) {
        json_t *s = NULL;
        if ((rc = stream_json(in->fmt, in->fmt->streams[i], &s)) != KD_OK)
            goto out;
        if (json_array_append_new(streams, s) != 0) {
            rc = KD_ENOMEM;
            goto out;
        }
    }
    o = json_pack("{s:o, s:O, s:O}", "duration", seconds_json(in->duration_s), "format", name,
                  "streams", streams);
    if (o == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    *out = o;
    o = NULL;
out:
    json_decref(o);
    json_decref(streams);
    json_decref(name);
    return rc;
}

static enum kd_err
probe_in(struct kd_storage *store, const char *path, const struct kd_limits *lim, json_t **probe,
         char kind[16], char sha256[65], char err[KD_MEDIA_ERRLEN])
{
    struct kd_media_input *in = NULL;
    json_t *j = NULL;
    char hex[65];
    enum kd_err rc;

    err[0] = '\0';
    kd_media_setup();
    /* Cheap rejections first: the hash reads the whole file. */
    if ((rc = kd_media_input_open(store, path, lim, KD_MEDIA_OPEN_TIMEOUT_MS, NULL, NULL, &in,
                                  err)) != KD_OK)
        goto out;
    if (in->kind != KD_MEDIA_KIND_SUBTITLE && (rc = check_decodes(in, lim, err)) != KD_OK)
        goto out;
    if ((rc = probe_json(in, &j)) != KD_OK) {
        kd_media_seterr(err, "out of memory");
        goto out;
    }
    rc = store != NULL ? hash_object(in, hex, err) : hash_file(path, hex, err);
    if (rc != KD_OK)
        goto out;
    (void)snprintf(kind, 16, "%s", kd_media_kind_name(in->kind));
    memcpy(sha256, hex, sizeof(hex));
    *probe = j;
    j = NULL;
out:
    if (rc != KD_OK)
        kd_log(KD_LOG_INFO, "media: probe refused the file: %s (%s)", err, kd_err_name(rc));
    json_decref(j);
    kd_media_input_close(in);
    return rc;
}

enum kd_err
kd_media_probe(const char *path, const struct kd_limits *lim, json_t **probe, char kind[16],
               char sha256[65], char err[KD_MEDIA_ERRLEN])
{
    return probe_in(NULL, path, lim, probe, kind, sha256, err);
}

enum kd_err
kd_media_probe_object(struct kd_storage *store, const char *key, const struct kd_limits *lim,
                      json_t **probe, char kind[16], char sha256[65], char err[KD_MEDIA_ERRLEN])
{
    return probe_in(store, key, lim, probe, kind, sha256, err);
}
