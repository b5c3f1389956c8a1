/* Unit tests of the self-contained media parts (src/media_parts.h):
 * subtitles, thumbnails, the remux fast path. Media is made at run time by
 * the ffmpeg command line into a temporary directory and outputs are judged
 * by ffprobe/ffmpeg (tests only: the engine never runs a program). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libavfilter/buffersink.h>

#include "media_parts.h"
#include "util.h"

#define W 320
#define H 240

static char dir[256];

/* libx265 leaks on close (not ours); see media_test.c. */
const char *__lsan_default_suppressions(void);
const char *
__lsan_default_suppressions(void)
{
    return "leak:libx265.so\n";
}

static struct kd_limits lim = {
    .max_inputs = 50,
    .max_layers = 20,
    .max_text_bytes = 1000,
    .max_width = 4096,
    .max_height = 4096,
    .max_pixels = 4096 * 4096,
    .max_duration_s = 3600,
    .max_streams = 8,
};

/* ---- helpers ---- */

static void
path_of(char *out, size_t len, const char *name)
{
    ck_assert(kd_snprintf(out, len, "%s/%s", dir, name) == KD_OK);
}

/* Runs argv; its stdout goes to *out (NUL-terminated, caller frees) when
 * out is not NULL. Returns the exit status. */
static int
run(char *const argv[], char **out)
{
    struct kd_buf b;
    int fds[2], status = -1;
    pid_t pid;

    kd_buf_init(&b, 16 * 1024 * 1024);
    ck_assert(pipe(fds) == 0);
    if ((pid = fork()) == 0) {
        int null = open("/dev/null", 0);

        dup2(fds[1], 1);
        if (null >= 0 && out == NULL)
            dup2(null, 1);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    ck_assert(pid > 0);
    close(fds[1]);
    for (;;) {
        char chunk[4096];
        ssize_t n = read(fds[0], chunk, sizeof(chunk));

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        ck_assert(kd_buf_append(&b, chunk, (size_t)n) == KD_OK);
    }
    close(fds[0]);
    ck_assert(waitpid(pid, &status, 0) == pid);
    ck_assert(kd_buf_append(&b, "", 1) == KD_OK);
    if (out != NULL)
        *out = kd_buf_take(&b);
    kd_buf_clear(&b);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
put_file(const char *name, const char *data, size_t len)
{
    char path[512];

    path_of(path, sizeof(path), name);
    ck_assert(kd_media_write_file(path, data, len) == KD_OK);
}

static size_t
count_lines(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

struct events {
    int n;
    char last[256];
    bool saw_invalid_timing, saw_cp1251;
};

static void
on_event(void *ud, const char *event, const char *detail)
{
    struct events *ev = ud;

    ck_assert_str_eq(event, "warning");
    ck_assert(strncmp(detail, "subtitles: ", 11) == 0);
    ev->n++;
    snprintf(ev->last, sizeof(ev->last), "%s", detail);
    if (strstr(detail, "invalid timing") != NULL)
        ev->saw_invalid_timing = true;
    if (strstr(detail, "Windows-1251") != NULL)
        ev->saw_cp1251 = true;
}

static struct kd_subs *
open_subs(const char *name, unsigned idx, struct events *ev)
{
    struct kd_subs *s = NULL;
    char path[512], err[KD_MEDIA_ERRLEN] = "";

    path_of(path, sizeof(path), name);
    ck_assert_msg(kd_subs_open(NULL, path, dir, idx, &lim, on_event, ev, NULL, &s, err) == KD_OK,
                  "%s", err);
    return s;
}

static const char SRT_TWO[] = "1\r\n00:00:01,000 --> 00:00:02,000\r\nHello \xd0\x9f\xd1\x80\xd0\xb8"
                              "\xd0\xb2\xd0\xb5\xd1\x82\r\n\r\n"
                              "2\r\n00:00:03,500 --> 00:00:04,250\r\nsecond cue\r\n";

/* ---- subtitles ---- */

START_TEST(test_cp1251_srt)
{
    /* "Привет" in Windows-1251. */
    static const char srt[] = "1\n00:00:00,500 --> 00:00:01,500\n\xcf\xf0\xe8\xe2\xe5\xf2\n";
    struct events ev = {0};
    struct kd_subs *s;
    char *text = NULL;
    size_t len;

    put_file("cp1251.srt", srt, sizeof(srt) - 1);
    s = open_subs("cp1251.srt", 0, &ev);
    ck_assert_int_eq(kd_subs_count(s), 1);
    ck_assert_int_eq(kd_subs_format_get(s), KD_SUBS_SRT);
    ck_assert(ev.saw_cp1251);
    ck_assert(kd_read_file(kd_subs_utf8_path(s), 4096, &text, &len) == KD_OK);
    ck_assert(kd_utf8_valid(text, len));
    ck_assert_msg(strstr(text, "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82") != NULL, "%s",
                  text);
    free(text);
    kd_subs_free(s);
}
END_TEST

START_TEST(test_utf8_bom_kept)
{
    struct events ev = {0};
    struct kd_subs *s;
    char buf[512];

    buf[0] = '\xef';
    buf[1] = '\xbb';
    buf[2] = '\xbf';
    memcpy(buf + 3, SRT_TWO, sizeof(SRT_TWO));
    put_file("bom.srt", buf, 3 + sizeof(SRT_TWO) - 1);
    s = open_subs("bom.srt", 1, &ev);
    ck_assert_int_eq(kd_subs_count(s), 2);
    ck_assert(!ev.saw_cp1251);
    ck_assert_int_eq(ev.n, 0);
    kd_subs_free(s);
}
END_TEST

START_TEST(test_invalid_timing_skipped)
{
    static const char srt[] = "1\n00:00:01,000 --> 00:00:02,000\nfirst\n\n"
                              "2\n00:00:0x,000 --> 00:00:03,000\nbroken\n\n"
                              "3\n00:00:05,000 --> 00:00:04,000\nbackwards\n\n"
                              "4\n00:00:06,000 --> 00:00:07,000\nlast\n";
    static const char vtt[] = "WEBVTT\n\nNOTE a comment\n\n00:01.000 --> 00:02.000 align:start\n"
                              "one\n\nid2\n00:03.000 -> 00:04.000\nbad arrow\n\n"
                              "00:05.000 --> 00:06.000\nthree\n";
    struct events ev = {0}, ev2 = {0};
    struct kd_subs *s;
    char *text = NULL;
    size_t len;

    put_file("bad.srt", srt, sizeof(srt) - 1);
    s = open_subs("bad.srt", 2, &ev);
    ck_assert_int_eq(kd_subs_count(s), 2);
    ck_assert(ev.saw_invalid_timing);
    ck_assert_int_eq(ev.n, 2);
    ck_assert(kd_read_file(kd_subs_utf8_path(s), 4096, &text, &len) == KD_OK);
    ck_assert(strstr(text, "first") != NULL && strstr(text, "last") != NULL);
    ck_assert(strstr(text, "broken") == NULL && strstr(text, "backwards") == NULL);
    free(text);
    kd_subs_free(s);

    put_file("bad.vtt", vtt, sizeof(vtt) - 1);
    s = open_subs("bad.vtt", 3, &ev2);
    ck_assert_int_eq(kd_subs_format_get(s), KD_SUBS_WEBVTT);
    ck_assert_int_eq(kd_subs_count(s), 2);
    ck_assert_int_eq(ev2.n, 1);
    kd_subs_free(s);
}
END_TEST

START_TEST(test_not_subtitles)
{
    static const char junk[] = "\x00\x01\x02 binary";
    struct kd_subs *s = NULL;
    char path[512], err[KD_MEDIA_ERRLEN] = "";

    put_file("junk.srt", junk, sizeof(junk) - 1);
    path_of(path, sizeof(path), "junk.srt");
    ck_assert_int_eq(kd_subs_open(NULL, path, dir, 4, &lim, NULL, NULL, NULL, &s, err), KD_EMEDIA);
    ck_assert_ptr_null(s);
}
END_TEST

/* The luma of each frame of color -> subtitles -> sink differs from the
 * first frame exactly while a cue shows. */
static void
check_burn(struct kd_subs *s, const struct kd_layer *layer, double on_s, double off_s)
{
    static const char *const color_kv[] = {"color", "black",    "size", "320x240", "rate",
                                           "10",    "duration", "6",    NULL};
    static const char *const fmt_kv[] = {"pix_fmts", "yuv420p", NULL};
    struct kd_subs_timing t = {.shift_s = 0, .from_s = 0, .to_s = NAN};
    struct kd_media_graph gr;
    struct kd_media_pad tail = {0};
    AVFilterContext *sink = NULL;
    AVFrame *f = av_frame_alloc();
    char err[KD_MEDIA_ERRLEN] = "";
    int n = 0, changed = 0;

    ck_assert(kd_media_graph_init(&gr) == KD_OK);
    ck_assert(kd_media_graph_append(&gr, "color", color_kv, &tail, err) == KD_OK);
    ck_assert(kd_media_graph_append(&gr, "format", fmt_kv, &tail, err) == KD_OK);
    ck_assert_msg(kd_subs_burn_node(s, layer, &t, W, H, &gr, &tail, err) == KD_OK, "%s", err);
    ck_assert_msg(kd_media_graph_sink(&gr, true, &tail, &sink, err) == KD_OK, "%s", err);
    ck_assert_msg(kd_media_graph_config(&gr, err) == KD_OK, "%s", err);
    while (av_buffersink_get_frame(sink, f) >= 0) {
        double at = (double)f->pts * av_q2d(av_buffersink_get_time_base(sink));
        bool lit = false;

        for (int y = 0; y < f->height && !lit; y++)
            for (int x = 0; x < f->width; x++)
                if (f->data[0][y * f->linesize[0] + x] > 40) {
                    lit = true;
                    break;
                }
        if (at > on_s + 0.05 && at < off_s - 0.05)
            ck_assert_msg(lit, "no subtitle at %.2f s", at);
        if (at < on_s - 0.05 || at > off_s + 0.05)
            ck_assert_msg(!lit, "a subtitle at %.2f s", at);
        changed += lit;
        n++;
        av_frame_unref(f);
    }
    ck_assert_int_eq(n, 60);
    ck_assert_int_ge(changed, 8);
    av_frame_free(&f);
    kd_media_graph_clear(&gr);
}

START_TEST(test_burn_srt_at_cue_times)
{
    struct kd_layer layer = {.type = KD_LAYER_SUBTITLES,
                             .has_style = true,
                             .style_size = 40,
                             .style_outline = 2,
                             .has_style_color = true,
                             .style_color = {255, 255, 0, 255},
                             .style_font = "DejaVu Sans"};
    struct events ev = {0};
    struct kd_subs *s;

    static const char srt[] = "1\n00:00:01,000 --> 00:00:02,000\nHello\n";

    put_file("burn.srt", srt, sizeof(srt) - 1);
    s = open_subs("burn.srt", 5, &ev);
    check_burn(s, &layer, 1.0, 2.0);
    kd_subs_free(s);
}
END_TEST

START_TEST(test_burn_ass_keeps_styles)
{
    static const char ass[] =
        "[Script Info]\nScriptType: v4.00+\nPlayResX: 320\nPlayResY: 240\n\n[V4+ Styles]\n"
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
        "BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, "
        "BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
        "Style: Big,DejaVu Sans,60,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,"
        "0,0,1,2,0,5,10,10,10,1\n\n[Events]\n"
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
        "Dialogue: 0,0:00:02.00,0:00:03.00,Big,,0,0,0,,Middle\n"
        "Dialogue: 0,0:00:xx.00,0:00:03.00,Big,,0,0,0,,Broken\n";
    struct kd_layer layer = {.type = KD_LAYER_SUBTITLES, .style_outline = -1};
    struct events ev = {0};
    struct kd_subs *s;

    put_file("burn.ass", ass, sizeof(ass) - 1);
    s = open_subs("burn.ass", 6, &ev);
    ck_assert_int_eq(kd_subs_format_get(s), KD_SUBS_ASS);
    ck_assert_int_eq(kd_subs_count(s), 1);
    ck_assert(ev.saw_invalid_timing);
    check_burn(s, &layer, 2.0, 3.0);
    kd_subs_free(s);
}
END_TEST

/* Writes the cues of s as the only stream of a file of container c, then
 * reads the packets back with ffprobe and the text with ffmpeg. */
static void
check_soft(enum kd_container c, const char *muxer, const char *name, const char *codec)
{
    struct kd_subs_timing t = {.shift_s = 0.5, .from_s = 0, .to_s = NAN};
    AVFormatContext *ofmt = NULL;
    struct events ev = {0};
    struct kd_subs *s;
    char path[512], err[KD_MEDIA_ERRLEN] = "", *out = NULL;

    put_file("soft.srt", SRT_TWO, sizeof(SRT_TWO) - 1);
    s = open_subs("soft.srt", 7, &ev);
    path_of(path, sizeof(path), name);
    ck_assert(avformat_alloc_output_context2(&ofmt, NULL, muxer, path) >= 0);
    ck_assert_msg(kd_subs_soft_add(s, ofmt, c, err) == KD_OK, "%s", err);
    ck_assert(avio_open(&ofmt->pb, path, AVIO_FLAG_WRITE) >= 0);
    ck_assert(avformat_write_header(ofmt, NULL) >= 0);
    ck_assert_msg(kd_subs_soft_write(s, ofmt, &t, err) == KD_OK, "%s", err);
    ck_assert(av_write_trailer(ofmt) >= 0);
    avio_closep(&ofmt->pb);
    avformat_free_context(ofmt);
    kd_subs_free(s);
    {
        char *const probe[] = {
            "ffprobe", "-v", "error", "-show_entries", "stream=codec_name:packet=pts_time", "-of",
            "csv=p=0", path, NULL};

        ck_assert_int_eq(run(probe, &out), 0);
        ck_assert_msg(strstr(out, codec) != NULL, "%s", out);
        /* one stream line + two packets (mov_text may add empty gaps) */
        ck_assert_msg(strstr(out, "1.500") != NULL && strstr(out, "4.000") != NULL, "%s", out);
        free(out);
    }
    {
        char *const dump[] = {"ffmpeg", "-v", "error", "-i", path, "-f", "srt", "-", NULL};
        size_t cues = 0;

        ck_assert_int_eq(run(dump, &out), 0);
        for (const char *p = out; (p = strstr(p, "-->")) != NULL; p++)
            cues++;
        ck_assert_msg(cues == 2, "%zu cues: %s", cues, out);
        ck_assert_msg(strstr(out, "00:00:01,500 --> 00:00:02,500") != NULL, "%s", out);
        ck_assert(strstr(out, "Hello \xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82") != NULL);
        ck_assert(strstr(out, "second cue") != NULL);
        free(out);
    }
}

START_TEST(test_soft_mp4)
{
    check_soft(KD_CONT_MP4, "mp4", "soft.mp4", "mov_text");
}
END_TEST

START_TEST(test_soft_mkv)
{
    check_soft(KD_CONT_MKV, "matroska", "soft.mkv", "ass");
}
END_TEST

START_TEST(test_soft_webm)
{
    check_soft(KD_CONT_WEBM, "webm", "soft.webm", "webvtt");
}
END_TEST

START_TEST(test_soft_refused_for_audio)
{
    AVFormatContext *ofmt = NULL;
    struct events ev = {0};
    struct kd_subs *s;
    char err[KD_MEDIA_ERRLEN] = "";

    put_file("a.srt", SRT_TWO, sizeof(SRT_TWO) - 1);
    s = open_subs("a.srt", 8, &ev);
    ck_assert(avformat_alloc_output_context2(&ofmt, NULL, "mp3", "x.mp3") >= 0);
    ck_assert_int_eq(kd_subs_soft_add(s, ofmt, KD_CONT_MP3, err), KD_EINVAL);
    avformat_free_context(ofmt);
    kd_subs_free(s);
}
END_TEST

/* ---- thumbnails ---- */

START_TEST(test_thumbnails)
{
    struct kd_thumbs *t = NULL;
    AVFrame *f = av_frame_alloc();
    char err[KD_MEDIA_ERRLEN] = "", **paths = NULL, *out = NULL;
    size_t n = 0;

    ck_assert(kd_thumbs_new(dir, 3, 160, 2.0, &t, err) == KD_OK);
    f->format = AV_PIX_FMT_YUV420P;
    f->width = W;
    f->height = H;
    ck_assert(av_frame_get_buffer(f, 0) >= 0);
    for (int i = 0; i < 50; i++) {
        ck_assert(av_frame_make_writable(f) >= 0);
        memset(f->data[0], 16 + i * 4, (size_t)f->linesize[0] * H);
        memset(f->data[1], 128, (size_t)f->linesize[1] * H / 2);
        memset(f->data[2], 128, (size_t)f->linesize[2] * H / 2);
        f->pts = i;
        ck_assert_msg(kd_thumbs_push(t, f, (AVRational){1, 25}, err) == KD_OK, "%s", err);
    }
    ck_assert_msg(kd_thumbs_finish(t, &paths, &n, err) == KD_OK, "%s", err);
    ck_assert_int_eq(n, 3);
    for (size_t i = 0; i < n; i++) {
        char want[512], name[32];
        char *const probe[] = {
            "ffprobe", "-v",     "error", "-show_entries", "stream=codec_name,width,height", "-of",
            "csv=p=0", paths[i], NULL};

        snprintf(name, sizeof(name), "thumb-%zu.jpg", i + 1);
        path_of(want, sizeof(want), name);
        ck_assert_str_eq(paths[i], want);
        ck_assert_int_eq(run(probe, &out), 0);
        ck_assert_msg(strcmp(out, "mjpeg,160,120\n") == 0, "%s", out);
        free(out);
        {
            /* Thumbnail i shows the frame at (i + 0.5) * 2 / 3 s: luma 16 + 4 * frame. */
            char *const grey[] = {
                "ffmpeg", "-v",       "error", "-i", paths[i], "-vf", "scale=1:1,format=gray",
                "-f",     "rawvideo", "-",     NULL};
            int frame = (int)ceil((i + 0.5) * 2.0 / 3.0 * 25 - 1e-9);

            ck_assert_int_eq(run(grey, &out), 0);
            /* limited-range luma 16 + 4 * frame, full range in the JPEG */
            ck_assert_msg(abs((unsigned char)out[0] - frame * 4 * 255 / 219) <= 4, "thumb %zu: %d",
                          i, (unsigned char)out[0]);
            free(out);
        }
        free(paths[i]);
    }
    free(paths);
    kd_thumbs_free(t);
    av_frame_free(&f);
}
END_TEST

START_TEST(test_thumbnails_short_output)
{
    struct kd_thumbs *t = NULL;
    AVFrame *f = av_frame_alloc();
    char err[KD_MEDIA_ERRLEN] = "", **paths = NULL;
    size_t n = 0;

    /* Announced 10 s, only 1 s comes: the late ones take the last frame. */
    ck_assert(kd_thumbs_new(dir, 4, 64, 10.0, &t, err) == KD_OK);
    f->format = AV_PIX_FMT_YUV420P;
    f->width = 100;
    f->height = 50;
    f->sample_aspect_ratio = (AVRational){1, 1};
    ck_assert(av_frame_get_buffer(f, 0) >= 0);
    for (int i = 0; i < 25; i++) {
        f->pts = i;
        ck_assert(kd_thumbs_push(t, f, (AVRational){1, 25}, err) == KD_OK);
    }
    ck_assert_msg(kd_thumbs_finish(t, &paths, &n, err) == KD_OK, "%s", err);
    ck_assert_int_eq(n, 4);
    for (size_t i = 0; i < n; i++) {
        ck_assert(access(paths[i], R_OK) == 0);
        free(paths[i]);
    }
    free(paths);
    kd_thumbs_free(t);
    av_frame_free(&f);

    /* No frame at all: an error, not empty files. */
    ck_assert(kd_thumbs_new(dir, 2, 64, 1.0, &t, err) == KD_OK);
    ck_assert_int_eq(kd_thumbs_finish(t, &paths, &n, err), KD_EMEDIA);
    kd_thumbs_free(t);
}
END_TEST

/* ---- remux ---- */

static void
make_clip(const char *name, const char *size)
{
    char path[512], src[128];
    char *argv[] = {"ffmpeg",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    src,
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=f=440:sample_rate=48000",
                    "-t",
                    "2",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-g",
                    "25",
                    "-keyint_min",
                    "25",
                    "-sc_threshold",
                    "0",
                    "-c:a",
                    "aac",
                    "-shortest",
                    path,
                    NULL};

    path_of(path, sizeof(path), name);
    snprintf(src, sizeof(src), "testsrc2=size=%s:rate=25", size);
    ck_assert_int_eq(run(argv, NULL), 0);
}

/* The video packets of a file: "pts_time,flags,MD5:..." lines. */
static char *
video_packets(const char *path)
{
    char *out = NULL;
    char *const argv[] = {"ffprobe",
                          "-v",
                          "error",
                          "-select_streams",
                          "v:0",
                          "-show_entries",
                          "packet=flags,data_hash",
                          "-show_data_hash",
                          "MD5",
                          "-of",
                          "csv=p=0",
                          (char *)path,
                          NULL};

    ck_assert_int_eq(run(argv, &out), 0);
    return out;
}

struct remux_case {
    struct kd_jobspec spec;
    struct kd_input inputs[3];
    const char *paths[3];
    char names[3][512];
    char out[512];
    struct kd_edit e;
};

static void
remux_case_init(struct remux_case *c, size_t n, const char *const *names, const char *out)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < n; i++) {
        path_of(c->names[i], sizeof(c->names[i]), names[i]);
        c->paths[i] = c->names[i];
        c->inputs[i].end_s = NAN;
    }
    path_of(c->out, sizeof(c->out), out);
    c->spec.inputs = c->inputs;
    c->spec.n_inputs = n;
    c->spec.output.container = KD_CONT_MP4;
    c->spec.output.crf = -1;
    c->spec.output.audio_bitrate = 128000;
    c->spec.output.faststart = true;
    c->e.spec = &c->spec;
    c->e.input_paths = c->paths;
    c->e.out_path = c->out;
    c->e.work_dir = dir;
    c->e.lim = &lim;
}

static double last_progress;

static void
on_progress(void *ud, double f)
{
    (void)ud;
    ck_assert(f >= last_progress);
    last_progress = f;
}

START_TEST(test_remux_concat_packets_identical)
{
    static const char *const names[] = {"r1.mp4", "r1.mp4"};
    struct remux_case c;
    char why[KD_MEDIA_ERRLEN] = "";
    char *in = NULL, *got = NULL, *want = NULL, *from = NULL;
    bool possible = false;

    make_clip("r1.mp4", "320x240");
    remux_case_init(&c, 2, names, "remux.mp4");
    c.inputs[0].start_s = 1.0; /* a keyframe (-g 25 at 25 fps) */
    c.e.progress = on_progress;
    ck_assert_msg(kd_remux_possible(&c.e, &possible, NULL, why) == KD_OK, "%s", why);
    ck_assert_msg(possible, "%s", why);
    last_progress = 0;
    ck_assert_msg(kd_remux_run(&c.e, NULL) == KD_OK, "%s", c.e.err);
    ck_assert_msg(fabs(c.e.duration_s - 3.0) < 0.05, "%f", c.e.duration_s);
    ck_assert(last_progress > 0.99);

    /* want = the input's packets from the keyframe at 1 s, then all of them. */
    in = video_packets(c.names[0]);
    ck_assert_int_eq(count_lines(in), 50);
    from = in;
    for (int i = 0; i < 25; i++)
        from = strchr(from, '\n') + 1;
    ck_assert(strncmp(from, "K", 1) == 0);
    {
        struct kd_buf b;

        kd_buf_init(&b, SIZE_MAX);
        ck_assert(kd_buf_printf(&b, "%s%s", from, in) == KD_OK);
        want = kd_buf_take(&b);
    }
    got = video_packets(c.out);
    ck_assert_str_eq(got, want);
    free(in);
    free(got);
    free(want);
    {
        char *out = NULL;
        char *const probe[] = {"ffprobe", "-v",  "error", "-show_entries", "format=duration", "-of",
                               "csv=p=0", c.out, NULL};

        ck_assert_int_eq(run(probe, &out), 0);
        ck_assert_msg(fabs(atof(out) - 3.0) < 0.1, "%s", out);
        free(out);
    }
}
END_TEST

START_TEST(test_remux_refused)
{
    static const char *const names[] = {"r1.mp4", "r2.mp4"};
    static const char *const same[] = {"r1.mp4", "r1.mp4"};
    struct remux_case c;
    char why[KD_MEDIA_ERRLEN] = "";
    bool possible = true;

    make_clip("r1.mp4", "320x240");
    make_clip("r2.mp4", "352x288");
    remux_case_init(&c, 2, names, "no.mp4");
    ck_assert(kd_remux_possible(&c.e, &possible, NULL, why) == KD_OK);
    ck_assert_msg(!possible && strstr(why, "different codec parameters") != NULL, "%s", why);

    /* copy demands identical inputs */
    c.spec.output.video_codec = KD_VCODEC_COPY;
    ck_assert_int_eq(kd_remux_possible(&c.e, &possible, NULL, why), KD_EINVAL);

    /* a trim off a keyframe */
    remux_case_init(&c, 2, same, "no.mp4");
    c.inputs[1].start_s = 0.52;
    possible = true;
    ck_assert(kd_remux_possible(&c.e, &possible, NULL, why) == KD_OK);
    ck_assert_msg(!possible && strstr(why, "keyframe") != NULL, "%s", why);

    /* encoder settings, a different codec, something drawn */
    remux_case_init(&c, 2, same, "no.mp4");
    c.spec.output.crf = 20;
    possible = true;
    ck_assert(kd_remux_possible(&c.e, &possible, NULL, why) == KD_OK && !possible);
    remux_case_init(&c, 2, same, "no.webm");
    c.spec.output.container = KD_CONT_WEBM;
    possible = true;
    ck_assert(kd_remux_possible(&c.e, &possible, NULL, why) == KD_OK && !possible);
    remux_case_init(&c, 2, same, "no.mp4");
    c.spec.thumbnails.count = 2;
    possible = true;
    ck_assert(kd_remux_possible(&c.e, &possible, NULL, why) == KD_OK && !possible);
}
END_TEST

static bool
always_cancelled(void *ud)
{
    (void)ud;
    return true;
}

START_TEST(test_remux_copy_cut_and_cancel)
{
    static const char *const names[] = {"r1.mp4"};
    struct remux_case c;
    char why[KD_MEDIA_ERRLEN] = "";
    bool possible = false;
    char *got = NULL;

    make_clip("r1.mp4", "320x240");
    remux_case_init(&c, 1, names, "cut.mkv");
    c.spec.output.container = KD_CONT_MKV;
    c.spec.output.video_codec = KD_VCODEC_COPY;
    c.inputs[0].start_s = 0.5; /* snaps to the keyframe at 0 */
    c.inputs[0].end_s = 1.5;
    ck_assert(kd_remux_possible(&c.e, &possible, NULL, why) == KD_OK && possible);
    ck_assert_msg(kd_remux_run(&c.e, NULL) == KD_OK, "%s", c.e.err);
    got = video_packets(c.out);
    ck_assert_int_eq(count_lines(got), 38); /* pts 0 .. 1.48 s */
    free(got);

    /* cancelled: stops with KD_ECANCELED */
    c.e.cancelled = always_cancelled;
    ck_assert_int_eq(kd_remux_run(&c.e, NULL), KD_ECANCELED);
}
END_TEST

static Suite *
suite(void)
{
    Suite *s = suite_create("media_parts");
    TCase *subs = tcase_create("subtitles"), *th = tcase_create("thumbnails"),
          *rx = tcase_create("remux");

    tcase_set_timeout(subs, 30);
    tcase_set_timeout(rx, 30);
    tcase_set_timeout(th, 30); /* ffprobe and ffmpeg per thumbnail: slow on a busy machine */
    tcase_add_test(subs, test_cp1251_srt);
    tcase_add_test(subs, test_utf8_bom_kept);
    tcase_add_test(subs, test_invalid_timing_skipped);
    tcase_add_test(subs, test_not_subtitles);
    tcase_add_test(subs, test_burn_srt_at_cue_times);
    tcase_add_test(subs, test_burn_ass_keeps_styles);
    tcase_add_test(subs, test_soft_mp4);
    tcase_add_test(subs, test_soft_mkv);
    tcase_add_test(subs, test_soft_webm);
    tcase_add_test(subs, test_soft_refused_for_audio);
    tcase_add_test(th, test_thumbnails);
    tcase_add_test(th, test_thumbnails_short_output);
    tcase_add_test(rx, test_remux_concat_packets_identical);
    tcase_add_test(rx, test_remux_refused);
    tcase_add_test(rx, test_remux_copy_cut_and_cancel);
    suite_add_tcase(s, subs);
    suite_add_tcase(s, th);
    suite_add_tcase(s, rx);
    return s;
}

int
main(void)
{
    SRunner *sr;
    int failed;

    snprintf(dir, sizeof(dir), "/tmp/kadr-media-parts.XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    sr = srunner_create(suite());
    /* Forked tests each get a fresh process; the clips are remade per test. */
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    {
        pid_t pid = fork();

        if (pid == 0) {
            execlp("rm", "rm", "-rf", dir, (char *)NULL);
            _exit(127);
        }
        if (pid > 0)
            (void)waitpid(pid, NULL, 0);
    }
    return failed == 0 ? 0 : 1;
}
