/* media_subs.c: subtitle files, from untrusted bytes to burned pictures or a
 * subtitle stream.
 *
 * The path of a file is fixed: read (bounded) -> UTF-8 (Windows-1251 when
 * the bytes are not UTF-8) -> for SRT/WebVTT a line-level pass that keeps
 * only cues with a valid timing line and rewrites them canonically -> the
 * cleaned copy is parsed by libavformat's srt/webvtt/ass demuxer (opened
 * through kd_media_input_open, so with its whitelists) and every cue is
 * decoded into memory as an ASS event. Burning writes an ASS file of our
 * own (for SRT/WebVTT with a [V4+ Styles] section built from validated
 * numbers, so no user text ever reaches a style string) and hands it to the
 * libass "subtitles" filter as an option value. Soft subtitles re-encode
 * the events for the container (mov_text, webvtt, ass). */
#include "media_parts.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Largest cue time accepted in a timing line: 100 hours. */
#define MAX_TIME_MS (100LL * 3600 * 1000)
/* An encoded cue never needs more than this (mov_text adds style boxes). */
#define MAX_PACKET_BYTES (1024 * 1024)

struct cue {
    int64_t start_ms, end_ms;
    int layer;
    char *rest; /* "Style,Name,MarginL,MarginR,MarginV,Effect,Text" */
};

struct kd_subs {
    enum kd_subs_format format;
    char *work_dir;
    unsigned idx;
    char path[PATH_MAX]; /* the UTF-8 copy */
    char *header;        /* ASS header of the decoder (subtitle_header) */
    struct cue *cues;
    size_t n_cues;
    AVCodecContext *enc; /* soft */
    int stream_idx;
};

/* ---- text: encoding, lines ---- */

/* Windows-1251 0x80..0xBF to Unicode; 0xC0..0xFF are U+0410..U+044F. 0x98
 * is unassigned and becomes U+FFFD. */
static const uint16_t CP1251_HIGH[64] = {
    0x0402, 0x0403, 0x201A, 0x0453, 0x201E, 0x2026, 0x2020, 0x2021, 0x20AC, 0x2030, 0x0409,
    0x2039, 0x040A, 0x040C, 0x040B, 0x040F, 0x0452, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0xFFFD, 0x2122, 0x0459, 0x203A, 0x045A, 0x045C, 0x045B, 0x045F, 0x00A0,
    0x040E, 0x045E, 0x0408, 0x00A4, 0x0490, 0x00A6, 0x00A7, 0x0401, 0x00A9, 0x0404, 0x00AB,
    0x00AC, 0x00AD, 0x00AE, 0x0407, 0x00B0, 0x00B1, 0x0406, 0x0456, 0x0491, 0x00B5, 0x00B6,
    0x00B7, 0x0451, 0x2116, 0x0454, 0x00BB, 0x0458, 0x0405, 0x0455, 0x0457,
};

static enum kd_err
put_utf8(struct kd_buf *b, unsigned cp)
{
    unsigned char u[3];
    size_t n;

    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else {
        u[0] = (unsigned char)(0xE0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    }
    return kd_buf_append(b, u, n);
}

/* Appends p as UTF-8 to b: kept when it is UTF-8, else read as
 * Windows-1251. Line ends become "\n". */
static enum kd_err
to_utf8(const char *p, size_t len, struct kd_buf *b, bool *was_cp1251)
{
    enum kd_err rc = KD_OK;

    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
        p += 3;
        len -= 3;
    }
    *was_cp1251 = !kd_utf8_valid(p, len);
    for (size_t i = 0; i < len && rc == KD_OK; i++) {
        unsigned char ch = (unsigned char)p[i];

        if (ch == '\r') {
            /* CRLF and a lone CR both end a line. */
            if (i + 1 < len && p[i + 1] == '\n')
                continue;
            rc = kd_buf_append(b, "\n", 1);
        } else if (ch < 0x80 || !*was_cp1251) {
            rc = kd_buf_append(b, &p[i], 1);
        } else if (ch >= 0xC0) {
            rc = put_utf8(b, 0x0410 + (ch - 0xC0));
        } else {
            rc = put_utf8(b, CP1251_HIGH[ch - 0x80]);
        }
    }
    return rc;
}

static bool
is_blank(const char *s)
{
    for (; *s != '\0'; s++)
        if (*s != ' ' && *s != '\t')
            return false;
    return true;
}

static bool
is_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Reads 1..max_digits digits. */
static bool
read_num(const char **p, int max_digits, int64_t *out)
{
    int64_t v = 0;
    int n = 0;

    while (**p >= '0' && **p <= '9' && n < max_digits) {
        v = v * 10 + (**p - '0');
        (*p)++;
        n++;
    }
    if (n == 0 || (**p >= '0' && **p <= '9'))
        return false;
    *out = v;
    return true;
}

/* One SRT/WebVTT time: [H+:]MM:SS[,.]mmm (hours optional for WebVTT). */
static bool
parse_time(const char **p, int64_t *ms)
{
    int64_t a, b, c, frac;
    const char *s = *p;

    while (*s == ' ' || *s == '\t')
        s++;
    if (!read_num(&s, 3, &a) || *s++ != ':' || !read_num(&s, 2, &b))
        return false;
    if (*s == ':') {
        s++;
        if (!read_num(&s, 2, &c))
            return false;
    } else {
        /* MM:SS */
        c = b;
        b = a;
        a = 0;
    }
    if (*s != ',' && *s != '.')
        return false;
    s++;
    if (!read_num(&s, 3, &frac))
        return false;
    if (b > 59 || c > 59)
        return false;
    *ms = ((a * 60 + b) * 60 + c) * 1000 + frac;
    if (*ms > MAX_TIME_MS)
        return false;
    *p = s;
    return true;
}

/* "start --> end[ settings]" with end > start. */
static bool
parse_timing(const char *line, int64_t *start, int64_t *end)
{
    const char *p = line;

    if (!parse_time(&p, start))
        return false;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncmp(p, "-->", 3) != 0)
        return false;
    p += 3;
    if (!parse_time(&p, end))
        return false;
    if (*p != '\0' && *p != ' ' && *p != '\t')
        return false;
    return *end > *start;
}

static void warn(kd_media_event_fn *event, void *ud, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
warn(kd_media_event_fn *event, void *ud, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    int n = snprintf(msg, sizeof(msg), "subtitles: ");

    va_start(ap, fmt);
    (void)vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    /* "warning" is the one event name the worker passes to the job. */
    va_end(ap);
    kd_log(KD_LOG_INFO, "media: %s", msg);
    if (event != NULL)
        event(ud, "warning", msg);
}

static enum kd_err
put_srt_time(struct kd_buf *b, int64_t ms, char frac_sep)
{
    return kd_buf_printf(b, "%02lld:%02lld:%02lld%c%03lld", (long long)(ms / 3600000),
                         (long long)(ms / 60000 % 60), (long long)(ms / 1000 % 60), frac_sep,
                         (long long)(ms % 1000));
}

/* Rewrites SRT or WebVTT text keeping only cues with a valid timing line,
 * numbered and timed canonically; *n_cues counts them. */
static enum kd_err
clean_cues(char *text, enum kd_subs_format fmt, struct kd_buf *out, size_t *n_cues,
           kd_media_event_fn *event, void *ud)
{
    enum { IDLE, AFTER_ID, IN_CUE, SKIP } st = IDLE;
    bool is_vtt = fmt == KD_SUBS_WEBVTT, cue_has_text = false;
    size_t n = 0, lineno = 0;
    enum kd_err rc = KD_OK;
    char *line = text;

    if (is_vtt)
        rc = kd_buf_puts(out, "WEBVTT\n\n");
    while (rc == KD_OK && line != NULL) {
        char *nl = strchr(line, '\n');
        int64_t start, end;

        if (nl != NULL)
            *nl = '\0';
        lineno++;
        if (st == IN_CUE && !is_blank(line) && strstr(line, "-->") != NULL) {
            /* A new timing line without a blank line before it. */
            rc = kd_buf_puts(out, "\n");
            st = IDLE;
        }
        if (rc != KD_OK)
            break;
        switch (st) {
        case AFTER_ID:
            /* A cue number or identifier must be followed by its timing. */
            if (is_blank(line)) {
                st = IDLE;
                break;
            }
            if (strstr(line, "-->") == NULL) {
                warn(event, ud, "line %zu: invalid timing line, cue skipped", lineno);
                st = SKIP;
                break;
            }
            /* fall through */
        case IDLE:
            if (is_blank(line))
                break;
            if (strstr(line, "-->") != NULL) {
                if (!parse_timing(line, &start, &end)) {
                    warn(event, ud, "line %zu: invalid timing line, cue skipped", lineno);
                    st = SKIP;
                    break;
                }
                if (n >= KD_SUBS_MAX_CUES) {
                    rc = KD_ELIMIT;
                    break;
                }
                n++;
                if (!is_vtt)
                    rc = kd_buf_printf(out, "%zu\n", n);
                if (rc == KD_OK)
                    rc = put_srt_time(out, start, is_vtt ? '.' : ',');
                if (rc == KD_OK)
                    rc = kd_buf_puts(out, " --> ");
                if (rc == KD_OK)
                    rc = put_srt_time(out, end, is_vtt ? '.' : ',');
                if (rc == KD_OK)
                    rc = kd_buf_puts(out, "\n");
                cue_has_text = false;
                st = IN_CUE;
            } else if (is_vtt && lineno == 1 && strncmp(line, "WEBVTT", 6) == 0) {
                st = SKIP; /* the header block; ours replaces it */
            } else if (is_vtt && (strncmp(line, "NOTE", 4) == 0 || strncmp(line, "STYLE", 5) == 0 ||
                                  strncmp(line, "REGION", 6) == 0)) {
                st = SKIP;
            } else if (is_digits(line) || is_vtt) {
                /* An SRT cue number or a WebVTT cue identifier: ours replace them. */
                st = AFTER_ID;
            } else {
                warn(event, ud, "line %zu: text outside a cue, skipped", lineno);
                st = SKIP;
            }
            break;
        case IN_CUE:
            if (is_blank(line)) {
                /* A cue without text still needs a line for the demuxers. */
                rc = kd_buf_puts(out, cue_has_text ? "\n" : " \n\n");
                st = IDLE;
            } else {
                rc = kd_buf_printf(out, "%s\n", line);
                cue_has_text = true;
            }
            break;
        case SKIP:
            if (is_blank(line))
                st = IDLE;
            break;
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    if (rc == KD_OK && st == IN_CUE)
        rc = kd_buf_puts(out, cue_has_text ? "\n" : " \n\n");
    if (rc == KD_OK)
        *n_cues = n;
    return rc;
}

/* ASS "H:MM:SS.cc". */
static bool
parse_ass_time(const char **p, int64_t *ms)
{
    int64_t h, m, s, cs;
    const char *q = *p;

    while (*q == ' ')
        q++;
    if (!read_num(&q, 3, &h) || *q++ != ':' || !read_num(&q, 2, &m) || *q++ != ':' ||
        !read_num(&q, 2, &s) || *q++ != '.' || !read_num(&q, 3, &cs) || m > 59 || s > 59)
        return false;
    *ms = (h * 3600 + m * 60 + s) * 1000 + cs * 10;
    *p = q;
    return true;
}

/* Drops the Dialogue lines of an ASS script whose times do not parse (the
 * demuxer reads "Dialogue: Layer,Start,End,..." in this order too). */
static enum kd_err
clean_ass(char *text, struct kd_buf *out, size_t *n_cues, kd_media_event_fn *event, void *ud)
{
    size_t n = 0, lineno = 0;
    enum kd_err rc = KD_OK;
    char *line = text;

    while (rc == KD_OK && line != NULL) {
        char *nl = strchr(line, '\n');
        bool keep = true;

        if (nl != NULL)
            *nl = '\0';
        lineno++;
        if (strncmp(line, "Dialogue:", 9) == 0) {
            const char *p = strchr(line, ',');
            int64_t start, end;

            keep = p != NULL && (p++, parse_ass_time(&p, &start)) && *p++ == ',' &&
                   parse_ass_time(&p, &end) && *p == ',' && end > start;
            if (!keep)
                warn(event, ud, "line %zu: invalid timing in a Dialogue line, skipped", lineno);
            else if (++n > KD_SUBS_MAX_CUES)
                rc = KD_ELIMIT;
        }
        if (rc == KD_OK && keep)
            rc = kd_buf_printf(out, "%s\n", line);
        line = nl != NULL ? nl + 1 : NULL;
    }
    if (rc == KD_OK)
        *n_cues = n;
    return rc;
}

static enum kd_subs_format
detect_format(const char *text)
{
    while (*text == '\n' || *text == ' ' || *text == '\t')
        text++;
    if (strncmp(text, "WEBVTT", 6) == 0)
        return KD_SUBS_WEBVTT;
    if (strncmp(text, "[Script Info]", 13) == 0)
        return KD_SUBS_ASS;
    return KD_SUBS_SRT;
}

enum kd_err
kd_media_write_file(const char *path, const void *data, size_t len)
{
    const char *p = data;
    enum kd_err rc = KD_OK;
    int fd;

    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
        kd_log(KD_LOG_ERROR, "media: create %s: %s", path, strerror(errno));
        return KD_EIO;
    }
    while (len > 0) {
        ssize_t w = write(fd, p, len);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            kd_log(KD_LOG_ERROR, "media: write %s: %s", path, strerror(errno));
            rc = KD_EIO;
            break;
        }
        p += w;
        len -= (size_t)w;
    }
    if (close(fd) != 0 && rc == KD_OK)
        rc = KD_EIO;
    return rc;
}

/* ---- reading the cues through libav* ---- */

static void
cues_free(struct cue *c, size_t n)
{
    for (size_t i = 0; c != NULL && i < n; i++)
        free(c[i].rest);
    free(c);
}

/* Keeps one decoded event: "ReadOrder,Layer,Style,...,Text". */
static enum kd_err
add_cue(struct kd_subs *s, int64_t start_ms, int64_t end_ms, const char *ass)
{
    const char *p = strchr(ass, ',');
    int64_t layer = 0;
    struct cue *c;

    if (p == NULL)
        return KD_EMEDIA;
    p++;
    /* Layer is a small number; anything else is not from the decoders. */
    if (!read_num(&p, 6, &layer) || *p != ',')
        return KD_EMEDIA;
    if (s->n_cues >= KD_SUBS_MAX_CUES)
        return KD_ELIMIT;
    if (s->n_cues % 64 == 0) {
        struct cue *grown = realloc(s->cues, (s->n_cues + 64) * sizeof(*grown));

        if (grown == NULL)
            return KD_ENOMEM;
        s->cues = grown;
    }
    c = &s->cues[s->n_cues];
    if ((c->rest = strdup(p + 1)) == NULL)
        return KD_ENOMEM;
    c->start_ms = start_ms;
    c->end_ms = end_ms;
    c->layer = (int)layer;
    s->n_cues++;
    return KD_OK;
}

static enum kd_err
read_cues(struct kd_subs *s, const struct kd_limits *lim, kd_media_cancelled_fn *cancelled,
          void *ud, char err[KD_MEDIA_ERRLEN])
{
    struct kd_media_input *in = NULL;
    AVCodecContext *dec = NULL;
    AVPacket *pkt = NULL;
    const AVCodec *codec;
    const AVStream *st = NULL;
    enum kd_err rc;
    int ret;

    if ((rc = kd_media_input_open(NULL, s->path, lim, KD_MEDIA_OPEN_TIMEOUT_MS, cancelled, ud, &in,
                                  err)) != KD_OK)
        goto out;
    for (unsigned i = 0; i < in->fmt->nb_streams; i++) {
        if (in->fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_SUBTITLE) {
            st = in->fmt->streams[i];
            break;
        }
    }
    if (in->kind != KD_MEDIA_KIND_SUBTITLE || st == NULL) {
        kd_media_seterr(err, "the subtitle file is not SRT, WebVTT or ASS");
        rc = KD_EMEDIA;
        goto out;
    }
    if ((codec = avcodec_find_decoder(st->codecpar->codec_id)) == NULL ||
        (dec = avcodec_alloc_context3(codec)) == NULL) {
        kd_media_seterr(err, "internal error (no subtitle decoder)");
        rc = KD_EINTERNAL;
        goto out;
    }
    if ((ret = avcodec_parameters_to_context(dec, st->codecpar)) < 0 ||
        (dec->pkt_timebase = st->time_base, ret = avcodec_open2(dec, codec, NULL)) < 0) {
        rc = kd_media_averr(&in->guard, ret, KD_EMEDIA, err, "subtitles");
        goto out;
    }
    if (dec->subtitle_header != NULL &&
        (s->header = strndup((const char *)dec->subtitle_header,
                             (size_t)dec->subtitle_header_size)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if ((pkt = av_packet_alloc()) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    while ((ret = av_read_frame(in->fmt, pkt)) >= 0) {
        AVSubtitle sub;
        int got = 0;

        if (pkt->stream_index != st->index || pkt->pts == AV_NOPTS_VALUE) {
            av_packet_unref(pkt);
            continue;
        }
        ret = avcodec_decode_subtitle2(dec, &sub, &got, pkt);
        if (ret >= 0 && got) {
            int64_t start = av_rescale_q(pkt->pts, st->time_base, (AVRational){1, 1000});
            int64_t dur = pkt->duration > 0
                              ? av_rescale_q(pkt->duration, st->time_base, (AVRational){1, 1000})
                              : (int64_t)sub.end_display_time;

            for (unsigned i = 0; i < sub.num_rects && rc == KD_OK; i++)
                if (sub.rects[i]->ass != NULL && dur > 0)
                    rc = add_cue(s, start, start + dur, sub.rects[i]->ass);
            avsubtitle_free(&sub);
        }
        av_packet_unref(pkt);
        if (rc == KD_ELIMIT) {
            kd_media_seterr(err, "the subtitle file has more than %d cues", KD_SUBS_MAX_CUES);
            goto out;
        }
        if (rc != KD_OK) {
            kd_media_seterr(err, "the subtitle file could not be read");
            goto out;
        }
    }
    if (ret != AVERROR_EOF) {
        rc = kd_media_averr(&in->guard, ret, KD_EMEDIA, err, "subtitles");
        goto out;
    }
out:
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    kd_media_input_close(in);
    return rc;
}

static const char *
format_ext(enum kd_subs_format f)
{
    return f == KD_SUBS_WEBVTT ? "vtt" : f == KD_SUBS_ASS ? "ass" : "srt";
}

enum kd_err
kd_subs_open(struct kd_storage *store, const char *path, const char *work_dir, unsigned idx,
             const struct kd_limits *lim, kd_media_event_fn *event, void *ud,
             kd_media_cancelled_fn *cancelled, struct kd_subs **out, char err[KD_MEDIA_ERRLEN])
{
    struct kd_buf utf8, clean;
    struct kd_subs *s = NULL;
    char *raw = NULL;
    size_t raw_len = 0, n = 0;
    bool was_cp1251 = false;
    enum kd_err rc;

    kd_buf_init(&utf8, (size_t)KD_SUBS_MAX_BYTES * 3);
    kd_buf_init(&clean, (size_t)KD_SUBS_MAX_BYTES * 4);
    if ((s = calloc(1, sizeof(*s))) == NULL || (s->work_dir = strdup(work_dir)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    s->idx = idx;
    s->stream_idx = -1;
    if ((rc = kd_media_read_whole(store, path, KD_SUBS_MAX_BYTES, &raw, &raw_len)) != KD_OK) {
        if (rc == KD_ELIMIT) {
            kd_media_seterr(err, "the subtitle file is larger than %d bytes", KD_SUBS_MAX_BYTES);
            rc = KD_EMEDIA;
        } else if (store != NULL && (rc == KD_EUNAVAIL || rc == KD_ETIMEOUT)) {
            /* the store's trouble, not the file's: the job comes back later */
            kd_media_seterr(err,
                            "the subtitle file could not be read: the storage is unavailable "
                            "(%s)",
                            kd_storage_last_error(store));
            rc = KD_EUNAVAIL;
        } else if (store != NULL && rc == KD_ENOTFOUND) {
            kd_media_seterr(err, "the subtitle file is missing from storage");
            rc = KD_EMEDIA;
        } else {
            kd_media_seterr(err, "the subtitle file could not be read");
            rc = KD_EIO;
        }
        goto out;
    }
    /* Text formats hold no NUL byte; UTF-16 and binaries do. */
    if (raw_len == 0 || memchr(raw, '\0', raw_len) != NULL) {
        kd_media_seterr(err, "the subtitle file is empty or not text");
        rc = KD_EMEDIA;
        goto out;
    }
    if ((rc = to_utf8(raw, raw_len, &utf8, &was_cp1251)) != KD_OK ||
        (rc = kd_buf_append(&utf8, "", 1)) != KD_OK)
        goto out;
    if (was_cp1251)
        warn(event, ud, "the subtitle file is not UTF-8: read as Windows-1251");
    s->format = detect_format(utf8.data);
    rc = s->format == KD_SUBS_ASS ? clean_ass(utf8.data, &clean, &n, event, ud)
                                  : clean_cues(utf8.data, s->format, &clean, &n, event, ud);
    if (rc == KD_ELIMIT) {
        kd_media_seterr(err, "the subtitle file has more than %d cues", KD_SUBS_MAX_CUES);
        rc = KD_EMEDIA;
        goto out;
    }
    if (rc != KD_OK)
        goto out;
    if ((rc = kd_snprintf(s->path, sizeof(s->path), "%s/subs-%u.%s", work_dir, idx,
                          format_ext(s->format))) != KD_OK ||
        (rc = kd_media_write_file(s->path, clean.data, clean.len)) != KD_OK) {
        kd_media_seterr(err, "internal error (writing the subtitle copy)");
        goto out;
    }
    if (n == 0) {
        /* Nothing a demuxer would recognise: an empty track. */
        warn(event, ud, "the subtitle file has no valid cue");
    } else if ((rc = read_cues(s, lim, cancelled, ud, err)) != KD_OK) {
        goto out;
    }
    *out = s;
    s = NULL;
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    free(raw);
    kd_buf_clear(&utf8);
    kd_buf_clear(&clean);
    kd_subs_free(s);
    return rc;
}

void
kd_subs_free(struct kd_subs *s)
{
    if (s == NULL)
        return;
    cues_free(s->cues, s->n_cues);
    avcodec_free_context(&s->enc);
    free(s->header);
    free(s->work_dir);
    free(s);
}

enum kd_subs_format
kd_subs_format_get(const struct kd_subs *s)
{
    return s->format;
}

size_t
kd_subs_count(const struct kd_subs *s)
{
    return s->n_cues;
}

const char *
kd_subs_utf8_path(const struct kd_subs *s)
{
    return s->path;
}

/* Places a cue on the output timeline; false when it falls outside. */
static bool
place(const struct cue *c, const struct kd_subs_timing *t, int64_t *start, int64_t *end)
{
    double s = (double)c->start_ms / 1000.0 + t->shift_s;
    double e = (double)c->end_ms / 1000.0 + t->shift_s;

    if (s < t->from_s)
        s = t->from_s;
    if (!isnan(t->to_s) && e > t->to_s)
        e = t->to_s;
    if (e <= s || e <= 0)
        return false;
    *start = llround(s * 1000.0);
    *end = llround(e * 1000.0);
    return *end > *start;
}

/* ---- burn ---- */

static enum kd_err
put_ass_time(struct kd_buf *b, int64_t ms)
{
    int64_t cs = (ms + 5) / 10;

    return kd_buf_printf(b, "%lld:%02lld:%02lld.%02lld", (long long)(cs / 360000),
                         (long long)(cs / 6000 % 60), (long long)(cs / 100 % 60),
                         (long long)(cs % 100));
}

/* The script header for SRT/WebVTT: one style from validated values. The
 * font family went through the jobspec's narrow charset (no ',' that would
 * end the field, no newline). */
static enum kd_err
put_styled_header(struct kd_buf *b, const struct kd_layer *l, int width, int height)
{
    const char *font = l->has_style && l->style_font != NULL ? l->style_font : "DejaVu Sans";
    int size = l->has_style && l->style_size > 0 ? l->style_size : height / 18;
    int outline = l->has_style && l->style_outline >= 0 ? l->style_outline : 2;
    struct kd_rgba c =
        l->has_style && l->has_style_color ? l->style_color : (struct kd_rgba){255, 255, 255, 255};
    int margin_v = height / 20;

    for (const char *p = font; *p != '\0'; p++)
        if (*p == ',' || (unsigned char)*p < 0x20)
            return KD_EINVAL;
    if (size < 4)
        size = 4;
    /* ASS colours are &HAABBGGRR with alpha 00 = opaque. */
    return kd_buf_printf(
        b,
        "[Script Info]\nScriptType: v4.00+\nPlayResX: %d\nPlayResY: %d\nWrapStyle: 0\n"
        "ScaledBorderAndShadow: yes\n\n[V4+ Styles]\n"
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
        "BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, "
        "BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
        "Style: Default,%s,%d,&H%02X%02X%02X%02X,&H000000FF,&H00000000,&H80000000,0,0,0,0,"
        "100,100,0,0,1,%d,0,2,%d,%d,%d,1\n\n[Events]\n"
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n",
        width, height, font, size, 255 - c.a, c.b, c.g, c.r, outline, margin_v, margin_v, margin_v);
}

enum kd_err
kd_subs_burn_node(struct kd_subs *s, const struct kd_layer *layer, const struct kd_subs_timing *t,
                  int width, int height, struct kd_media_graph *gr, struct kd_media_pad *tail,
                  char err[KD_MEDIA_ERRLEN])
{
    struct kd_buf b;
    char path[PATH_MAX];
    enum kd_err rc;

    kd_buf_init(&b, SIZE_MAX);
    if (width <= 0 || height <= 0) {
        kd_media_seterr(err, "internal error (subtitles on an empty picture)");
        rc = KD_EINTERNAL;
        goto out;
    }
    if (s->format == KD_SUBS_ASS && s->header != NULL) {
        /* The file's own script info and styles. */
        rc = kd_buf_puts(&b, s->header);
        if (rc == KD_OK && (b.len == 0 || b.data[b.len - 1] != '\n'))
            rc = kd_buf_puts(&b, "\n");
    } else {
        rc = put_styled_header(&b, layer, width, height);
    }
    for (size_t i = 0; i < s->n_cues && rc == KD_OK; i++) {
        int64_t start, end;

        if (!place(&s->cues[i], t, &start, &end))
            continue;
        rc = kd_buf_printf(&b, "Dialogue: %d,", s->cues[i].layer);
        if (rc == KD_OK)
            rc = put_ass_time(&b, start);
        if (rc == KD_OK)
            rc = kd_buf_puts(&b, ",");
        if (rc == KD_OK)
            rc = put_ass_time(&b, end);
        if (rc == KD_OK)
            rc = kd_buf_printf(&b, ",%s\n", s->cues[i].rest);
    }
    if (rc != KD_OK) {
        kd_media_seterr(err, rc == KD_ENOMEM ? "out of memory" : "invalid subtitle style");
        goto out;
    }
    if ((rc = kd_snprintf(path, sizeof(path), "%s/subs-%u.burn.ass", s->work_dir, s->idx)) !=
            KD_OK ||
        (rc = kd_media_write_file(path, b.data, b.len)) != KD_OK) {
        kd_media_seterr(err, "internal error (writing the subtitle script)");
        goto out;
    }
    {
        const char *const kv[] = {"filename", path, NULL};

        rc = kd_media_graph_append(gr, "subtitles", kv, tail, err);
    }
out:
    kd_buf_clear(&b);
    return rc;
}

/* ---- soft ---- */

enum kd_err
kd_subs_soft_add(struct kd_subs *s, AVFormatContext *ofmt, enum kd_container c,
                 char err[KD_MEDIA_ERRLEN])
{
    const char *name;
    const AVCodec *codec;
    AVCodecContext *enc = NULL;
    AVStream *st;
    enum kd_err rc = KD_OK;
    int ret;

    switch (c) {
    case KD_CONT_MP4:
    case KD_CONT_MOV:
        name = "mov_text";
        break;
    case KD_CONT_WEBM:
        name = "webvtt";
        break;
    case KD_CONT_MKV:
        name = "ass";
        break;
    default:
        kd_media_seterr(err, "an audio-only output cannot hold subtitles");
        rc = KD_EINVAL;
        goto out;
    }
    if (s->enc != NULL) {
        kd_media_seterr(err, "internal error (subtitles added twice)");
        rc = KD_EINTERNAL;
        goto out;
    }
    if ((codec = avcodec_find_encoder_by_name(name)) == NULL) {
        kd_media_seterr(err, "the %s subtitle encoder is missing", name);
        rc = KD_EUNSUPPORTED;
        goto out;
    }
    if ((enc = avcodec_alloc_context3(codec)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    enc->time_base = (AVRational){1, 1000};
    /* The encoders read styles from the ASS header the decoder produced. */
    if (s->header != NULL) {
        size_t len = strlen(s->header);

        if ((enc->subtitle_header = av_mallocz(len + 1)) == NULL) {
            rc = KD_ENOMEM;
            goto out;
        }
        memcpy(enc->subtitle_header, s->header, len);
        enc->subtitle_header_size = (int)len;
    } else {
        /* No cue was read: the encoders still want a header. */
        static const char dflt[] =
            "[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
            "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
            "BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, "
            "BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
            "Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,"
            "10,10,0\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, "
            "MarginV, Effect, Text\n";

        if ((enc->subtitle_header = av_mallocz(sizeof(dflt))) == NULL) {
            rc = KD_ENOMEM;
            goto out;
        }
        memcpy(enc->subtitle_header, dflt, sizeof(dflt));
        enc->subtitle_header_size = (int)sizeof(dflt) - 1;
    }
    if (ofmt->oformat->flags & AVFMT_GLOBALHEADER)
        enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if ((ret = avcodec_open2(enc, codec, NULL)) < 0) {
        rc = kd_media_averr(NULL, ret, KD_EINTERNAL, err, "subtitle encoder");
        goto out;
    }
    if ((st = avformat_new_stream(ofmt, NULL)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    if ((ret = avcodec_parameters_from_context(st->codecpar, enc)) < 0) {
        rc = kd_media_averr(NULL, ret, KD_EINTERNAL, err, "subtitle stream");
        goto out;
    }
    st->time_base = enc->time_base;
    s->stream_idx = st->index;
    s->enc = enc;
    enc = NULL;
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    avcodec_free_context(&enc);
    return rc;
}

enum kd_err
kd_subs_soft_write(struct kd_subs *s, AVFormatContext *ofmt, const struct kd_subs_timing *t,
                   char err[KD_MEDIA_ERRLEN])
{
    AVPacket *pkt = NULL;
    uint8_t *buf = NULL;
    struct kd_buf ass;
    enum kd_err rc = KD_OK;
    const AVStream *st;
    int ret;

    kd_buf_init(&ass, SIZE_MAX);
    if (s->enc == NULL || s->stream_idx < 0 || (unsigned)s->stream_idx >= ofmt->nb_streams) {
        kd_media_seterr(err, "internal error (subtitle stream not added)");
        rc = KD_EINTERNAL;
        goto out;
    }
    st = ofmt->streams[s->stream_idx];
    if ((pkt = av_packet_alloc()) == NULL || (buf = av_malloc(MAX_PACKET_BYTES)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < s->n_cues; i++) {
        AVSubtitleRect rect = {0}, *rects[1] = {&rect};
        AVSubtitle sub = {0};
        int64_t start, end;

        if (!place(&s->cues[i], t, &start, &end))
            continue;
        kd_buf_reset(&ass);
        if ((rc = kd_buf_printf(&ass, "%zu,%d,%s", i, s->cues[i].layer, s->cues[i].rest)) != KD_OK)
            goto out;
        rect.type = SUBTITLE_ASS;
        rect.ass = ass.data;
        sub.num_rects = 1;
        sub.rects = rects;
        sub.pts = av_rescale_q(start, (AVRational){1, 1000}, AV_TIME_BASE_Q);
        sub.end_display_time = (uint32_t)(end - start);
        if ((ret = avcodec_encode_subtitle(s->enc, buf, MAX_PACKET_BYTES, &sub)) < 0) {
            rc = kd_media_averr(NULL, ret, KD_EMEDIA, err, "subtitle encoder");
            goto out;
        }
        if (ret == 0)
            continue;
        av_packet_unref(pkt);
        if (av_new_packet(pkt, ret) < 0) {
            rc = KD_ENOMEM;
            goto out;
        }
        memcpy(pkt->data, buf, (size_t)ret);
        pkt->stream_index = s->stream_idx;
        pkt->pts = pkt->dts = av_rescale_q(start, (AVRational){1, 1000}, st->time_base);
        pkt->duration = av_rescale_q(end - start, (AVRational){1, 1000}, st->time_base);
        pkt->flags |= AV_PKT_FLAG_KEY;
        if ((ret = av_interleaved_write_frame(ofmt, pkt)) < 0) {
            rc = kd_media_averr(NULL, ret, KD_EIO, err, "writing subtitles");
            goto out;
        }
    }
out:
    if (rc == KD_ENOMEM)
        kd_media_seterr(err, "out of memory");
    kd_buf_clear(&ass);
    av_free(buf);
    av_packet_free(&pkt);
    return rc;
}
