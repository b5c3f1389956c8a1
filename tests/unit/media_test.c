/* Unit tests of the media engine (src/media_*.c), with Check.
 *
 * The media is made at run time by the ffmpeg command line (tests only:
 * the engine itself never runs a program) into a temporary directory, once
 * for the whole run. Outputs are checked through kd_media_probe and, for
 * pixels, through frames that ffmpeg decodes into raw grey bytes on a pipe.
 * Everything is tiny (320x240, a few seconds, preset ultrafast) to keep the
 * suite fast. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "media.h"
#include "storage.h"
#include "util.h"

#define W       320
#define H       240
#define FRAME_S 0.04 /* one frame at 25 fps */

static char dir[256];

/* libx265 3.5 leaks parameter strings and SAO buffers when an encoder is
 * closed (nothing kadr can free): LeakSanitizer reads this hook in the
 * ASan build. tests/unit/media.supp does the same for valgrind. */
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

/* ---- helpers: files and programs ---- */

static void
path_of(char *out, size_t len, const char *name)
{
    if (kd_snprintf(out, len, "%s/%s", dir, name) != KD_OK) {
        fprintf(stderr, "media_test: path too long\n");
        abort();
    }
}

/* Runs argv (no shell) with stdout into buf (up to cap bytes); returns the
 * bytes read, or -1 when the program failed. */
static ssize_t
run_capture(char *const argv[], unsigned char *buf, size_t cap)
{
    int fds[2];
    pid_t pid;
    size_t got = 0;
    int status;

    if (pipe(fds) != 0)
        return -1;
    if ((pid = fork()) < 0)
        return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, STDIN_FILENO);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        unsigned char sink[4096];
        unsigned char *dst = buf != NULL && got < cap ? buf + got : sink;
        size_t room = buf != NULL && got < cap ? cap - got : sizeof(sink);
        ssize_t n = read(fds[0], dst, room);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (dst != sink)
            got += (size_t)n;
    }
    close(fds[0]);
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return (ssize_t)got;
}

static void
run_ok(char *const argv[])
{
    if (run_capture(argv, NULL, 0) < 0) {
        fprintf(stderr, "media_test: command failed: %s ...\n", argv[0]);
        exit(1);
    }
}

static void
write_file(const char *name, const void *data, size_t len)
{
    char p[512];
    FILE *f;

    path_of(p, sizeof(p), name);
    if ((f = fopen(p, "wb")) == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "media_test: cannot write %s\n", p);
        exit(1);
    }
}

static unsigned char *
read_all(const char *name, size_t *len)
{
    char p[512];
    char *data = NULL;

    path_of(p, sizeof(p), name);
    if (kd_read_file(p, 64 << 20, &data, len) != KD_OK) {
        fprintf(stderr, "media_test: cannot read %s\n", p);
        exit(1);
    }
    return (unsigned char *)data;
}

/* Makes the fixture name with the ffmpeg command line from two lavfi
 * sources, a picture and a sound, secs long, with the output options in
 * opts (NULL-terminated). */
static void
make_clip(const char *name, const char *picture, const char *sound, const char *secs,
          char *const opts[])
{
    char path[512], *argv[64];
    char *const head[] = {"ffmpeg",    "-nostdin",      "-v", "error", "-y", "-f",          "lavfi",
                          "-i",        (char *)picture, "-f", "lavfi", "-i", (char *)sound, "-t",
                          (char *)secs};
    size_t n = 0;

    path_of(path, sizeof(path), name);
    for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
        argv[n++] = head[i];
    for (size_t i = 0; opts[i] != NULL; i++) {
        if (n + 2 >= sizeof(argv) / sizeof(argv[0])) {
            fprintf(stderr, "media_test: too many options for %s\n", name);
            exit(1);
        }
        argv[n++] = opts[i];
    }
    argv[n++] = path;
    argv[n] = NULL;
    run_ok(argv);
}

/* Makes the test media with the ffmpeg command line. */
static void
make_media(void)
{
    char p[512], q[512];
    size_t len;
    unsigned char *data;

#define FF "ffmpeg", "-nostdin", "-v", "error", "-y"
    make_clip("av.mp4", "testsrc2=size=320x240:rate=25", "sine=frequency=440:sample_rate=48000",
              "3",
              (char *[]){"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt",
                         "yuv420p", "-c:a", "aac", NULL});
    path_of(p, sizeof(p), "blue.mp4");
    run_ok((char *[]){FF, "-f", "lavfi", "-i", "color=c=blue:size=320x240:rate=25", "-t", "3",
                      "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", p, NULL});
    /* A phone-style video: upright only through its display matrix (the
     * 5.1 command line writes one when copying, not when encoding). */
    path_of(p, sizeof(p), "flat.mp4");
    path_of(q, sizeof(q), "rot.mp4");
    run_ok((char *[]){FF, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "1", "-c:v",
                      "libx264", "-preset", "ultrafast", p, NULL});
    run_ok((char *[]){FF, "-i", p, "-c", "copy", "-metadata:s:v:0", "rotate=90", q, NULL});
    /* The same with a language: what a remux must carry over. */
    path_of(q, sizeof(q), "rotfra.mp4");
    run_ok((char *[]){FF, "-i", p, "-c", "copy", "-metadata:s:v:0", "rotate=90", "-metadata:s:v:0",
                      "language=fra", q, NULL});
    path_of(p, sizeof(p), "tone.mp3");
    run_ok((char *[]){FF, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "2",
                      "-c:a", "libmp3lame", p, NULL});
    /* HEVC pictures and MP3 sound in MP4: omitted codecs keep them. */
    make_clip("hevc_mp3.mp4", "testsrc2=size=320x240:rate=25",
              "sine=frequency=440:sample_rate=44100", "1",
              (char *[]){"-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
                         "log-level=error", "-c:a", "libmp3lame", NULL});
    path_of(p, sizeof(p), "tone.wav");
    run_ok((char *[]){FF, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "1", p,
                      NULL});
    path_of(p, sizeof(p), "pic.png");
    run_ok((char *[]){FF, "-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1", p, NULL});
    path_of(p, sizeof(p), "pic.jpg");
    run_ok((char *[]){FF, "-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1", p, NULL});
    /* MPEG-TS has no index: seeking may land past the keyframe asked for. */
    make_clip(
        "gop.ts", "testsrc2=size=320x240:rate=25", "sine=sample_rate=48000", "8",
        (char *[]){"-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac", NULL});
    path_of(p, sizeof(p), "anim.gif");
    run_ok((char *[]){FF, "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-t", "1", p, NULL});
    path_of(p, sizeof(p), "one.gif");
    run_ok((char *[]){FF, "-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1", p, NULL});
    /* For joining, layers and sound: solid colours, mismatched formats. */
    path_of(p, sizeof(p), "red.mp4");
    run_ok((char *[]){FF, "-f", "lavfi", "-i", "color=c=red:size=160x120:rate=25", "-t", "1",
                      "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", p, NULL});
    make_clip("wide.mp4", "testsrc2=size=640x360:rate=25", "sine=frequency=440:sample_rate=48000",
              "1",
              (char *[]){"-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
                         "yuv420p", "-c:a", "aac", NULL});
    make_clip("narrow.mp4", "color=c=green:size=320x240:rate=30",
              "sine=frequency=660:sample_rate=44100", "1",
              (char *[]){"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p", "-c:a",
                         "aac", NULL});
    /* Picture for 1 s, sound for 2 s: the file says 2 s. */
    path_of(p, sizeof(p), "shortpic.mp4");
    run_ok((char *[]){FF, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1", "-f",
                      "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2", "-c:v",
                      "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", p,
                      NULL});
    /* A recording whose picture size, pixel format, sample rate and
     * layout change midway: two MPEG-TS segments end to end. */
    make_clip(
        "seg1.ts", "testsrc2=size=320x240:rate=25", "sine=frequency=440:sample_rate=48000", "2",
        (char *[]){"-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-ac", "2", NULL});
    make_clip("seg2.ts", "color=c=red:size=160x90:rate=25", "sine=frequency=660:sample_rate=44100",
              "2",
              (char *[]){"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p", "-c:a",
                         "aac", "-ac", "1", "-output_ts_offset", "2", NULL});
    {
        size_t l1, l2;
        unsigned char *d1 = read_all("seg1.ts", &l1), *d2 = read_all("seg2.ts", &l2);
        unsigned char *both = malloc(l1 + l2);

        if (both == NULL)
            exit(1);
        memcpy(both, d1, l1);
        memcpy(both + l1, d2, l2);
        write_file("change.ts", both, l1 + l2);
        free(both);
        free(d1);
        free(d2);
    }
    /* A browser-style WebM: no duration in its header. */
    make_clip("live.webm", "testsrc2=size=160x120:rate=25", "sine=sample_rate=48000", "2",
              (char *[]){"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a",
                         "libopus", "-f", "webm", "-live", "1", NULL});
    path_of(p, sizeof(p), "music.wav");
    run_ok((char *[]){FF, "-f", "lavfi", "-i", "sine=frequency=880:sample_rate=48000", "-t", "0.5",
                      "-af", "volume=2", p, NULL});
    /* 64x64, the left half opaque red, the right half transparent. */
    path_of(p, sizeof(p), "logo.png");
    run_ok((char *[]){FF, "-f", "lavfi", "-i",
                      "color=c=red:size=64x64,format=rgba,geq=r=255:g=0:b=0:a='if(lt(X,32),255,0)'",
                      "-frames:v", "1", p, NULL});
#undef FF
    static const char srt[] = "1\n00:00:00,500 --> 00:00:02,000\nHello\n\n"
                              "2\n00:00:02,500 --> 00:00:03,000\nWorld\n";
    write_file("subs.srt", srt, sizeof(srt) - 1);
    write_file("empty.mp4", "", 0);
    static const char text[] = "This is a plain text file, not a video.\nIt has two lines.\n";
    write_file("text.mp4", text, sizeof(text) - 1);
    static const char m3u8[] = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
                               "#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n"
                               "http://127.0.0.1:9/segment0.ts\n#EXTINF:10.0,\n/etc/passwd\n"
                               "#EXT-X-ENDLIST\n";
    write_file("playlist.mp4", m3u8, sizeof(m3u8) - 1);
    static const char ffconcat[] = "ffconcat version 1.0\nfile '/etc/passwd'\n"
                                   "file 'http://127.0.0.1:9/x.mp4'\n";
    write_file("concat.mp4", ffconcat, sizeof(ffconcat) - 1);

    /* The first half of an mp4 whose index (moov) is at the end. */
    data = read_all("av.mp4", &len);
    write_file("truncated.mp4", data, len / 2);
    free(data);
    /* A PNG whose header claims 65536x65536 pixels. */
    data = read_all("pic.png", &len);
    if (len < 24)
        exit(1);
    memcpy(data + 16, "\x00\x01\x00\x00\x00\x01\x00\x00", 8);
    write_file("huge.png", data, len);
    free(data);
}

static void
remove_dir(void)
{
    if (dir[0] == '\0')
        return;
    char *argv[] = {"rm", "-rf", "--", dir, NULL};
    (void)run_capture(argv, NULL, 0);
}

/* ---- helpers: probing and editing ---- */

static enum kd_err
probe(const char *name, const struct kd_limits *l, json_t **j, char kind[16], char sha[65],
      char err[KD_MEDIA_ERRLEN])
{
    char p[512];

    path_of(p, sizeof(p), name);
    return kd_media_probe(p, l, j, kind, sha, err);
}

static json_t *
probe_ok(const char *name, char kind[16])
{
    char sha[65], err[KD_MEDIA_ERRLEN];
    json_t *j = NULL;
    enum kd_err rc = probe(name, &lim, &j, kind, sha, err);

    ck_assert_msg(rc == KD_OK, "probe %s: %s (%s)", name, err, kd_err_name(rc));
    return j;
}

static double
jdur(const json_t *j)
{
    return json_real_value(json_object_get(j, "duration"));
}

static const json_t *
jstream(const json_t *j, const char *type)
{
    size_t i;
    const json_t *s;

    json_array_foreach(json_object_get(j, "streams"), i,
                       s) if (strcmp(json_string_value(json_object_get(s, "type")), type) ==
                              0) return s;
    return NULL;
}

static const char *
jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static long long
jint(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

struct job {
    struct kd_jobspec spec;
    struct kd_input input;
    struct kd_input inputs[50];
    struct kd_layer layers[4];
    const char *paths[50];
    char more_paths[50][512];
    const char *layer_paths[4];
    char layer_files[4][512];
    char audio_file[512];
    char in_path[512];
    char out_path[512];
    struct kd_edit e;
    /* what the callbacks saw */
    double fractions[4096];
    int n_fractions;
    bool is_decreasing;
    int cancel_after_progress; /* 0: never cancel */
    bool is_cancel_now;
    int n_cancel_polls;
    int n_warnings;
    char last_warning[256];
    const char *unlink_after_progress; /* a file removed once progress came */
};

static void
on_progress(void *ud, double f)
{
    struct job *j = ud;

    if (j->n_fractions > 0 && f < j->fractions[j->n_fractions - 1])
        j->is_decreasing = true;
    if (j->n_fractions < (int)KD_ARRAY_LEN(j->fractions))
        j->fractions[j->n_fractions++] = f;
}

static bool
on_cancelled(void *ud)
{
    struct job *j = ud;

    j->n_cancel_polls++;
    if (j->unlink_after_progress != NULL && j->n_fractions > 0) {
        ck_assert_int_eq(unlink(j->unlink_after_progress), 0);
        j->unlink_after_progress = NULL;
    }
    return j->is_cancel_now ||
           (j->cancel_after_progress > 0 && j->n_fractions >= j->cancel_after_progress);
}

static void
on_event(void *ud, const char *event, const char *detail)
{
    struct job *j = ud;

    fprintf(stderr, "media_test: event %s: %s\n", event, detail);
    if (strcmp(event, "warning") == 0) {
        j->n_warnings++;
        (void)snprintf(j->last_warning, sizeof(j->last_warning), "%s", detail);
    }
}

static struct job *
job_new(const char *input, const char *output)
{
    struct job *j = calloc(1, sizeof(*j));

    ck_assert_ptr_nonnull(j);
    (void)snprintf(j->spec.type, sizeof(j->spec.type), "edit");
    j->input.start_s = 0;
    j->input.end_s = NAN;
    j->spec.inputs = &j->input;
    j->spec.n_inputs = 1;
    j->spec.layers = j->layers;
    j->spec.priority = 5;
    j->spec.output.container = KD_CONT_MP4;
    j->spec.output.fit = KD_FIT_CONTAIN;
    j->spec.output.crf = -1;
    (void)snprintf(j->spec.output.preset, sizeof(j->spec.output.preset), "ultrafast");
    j->spec.output.audio_bitrate = 128000;
    j->spec.output.faststart = true;
    path_of(j->in_path, sizeof(j->in_path), input);
    path_of(j->out_path, sizeof(j->out_path), output);
    j->paths[0] = j->in_path;
    j->e.layer_paths = j->layer_paths;
    j->e.spec = &j->spec;
    j->e.input_paths = j->paths;
    j->e.out_path = j->out_path;
    j->e.work_dir = dir;
    j->e.lim = &lim;
    j->e.threads = 2;
    j->e.progress = on_progress;
    j->e.cancelled = on_cancelled;
    j->e.event = on_event;
    j->e.ud = j;
    return j;
}

static struct kd_layer *
add_text(struct job *j, const char *text, enum kd_position pos, double start, double end)
{
    struct kd_layer *l = &j->layers[j->spec.n_layers++];

    memset(l, 0, sizeof(*l));
    l->type = KD_LAYER_TEXT;
    l->text = (char *)text;
    l->font = "DejaVu Sans";
    l->size = 32;
    l->color = (struct kd_rgba){255, 255, 255, 255};
    l->position = pos;
    l->margin = 16;
    l->start_s = start;
    l->end_s = end;
    return l;
}

/* Appends an input (the first one stays j->input until a second comes). */
static void
add_input(struct job *j, const char *name, double start, double end)
{
    size_t k = j->spec.n_inputs;

    if (j->spec.inputs == &j->input) {
        j->inputs[0] = j->input;
        j->spec.inputs = j->inputs;
    }
    j->inputs[k] = (struct kd_input){.start_s = start, .end_s = end};
    path_of(j->more_paths[k], sizeof(j->more_paths[k]), name);
    j->paths[k] = j->more_paths[k];
    j->spec.n_inputs++;
}

/* A video or image layer from file name. */
static struct kd_layer *
add_file_layer(struct job *j, enum kd_layer_type type, const char *name, enum kd_position pos,
               double width, double start, double end)
{
    size_t k = j->spec.n_layers++;
    struct kd_layer *l = &j->layers[k];

    memset(l, 0, sizeof(*l));
    l->type = type;
    l->position = pos;
    l->margin = 16;
    l->width = width;
    l->opacity = 1.0;
    l->start_s = start;
    l->end_s = end;
    path_of(j->layer_files[k], sizeof(j->layer_files[k]), name);
    j->layer_paths[k] = j->layer_files[k];
    j->e.layer_paths = j->layer_paths;
    return l;
}

static struct kd_audio *
set_audio(struct job *j, const char *name, enum kd_audio_mode mode)
{
    j->spec.has_audio = true;
    j->spec.audio = (struct kd_audio){.mode = mode, .volume = 1, .original_volume = 1};
    path_of(j->audio_file, sizeof(j->audio_file), name);
    j->e.audio_path = j->audio_file;
    return &j->spec.audio;
}

static enum kd_err
run_job(struct job *j)
{
    enum kd_err rc = kd_media_edit(&j->e);

    kd_edit_clear(&j->e);
    return rc;
}

static void
edit_ok(struct job *j)
{
    enum kd_err rc = run_job(j);

    ck_assert_msg(rc == KD_OK, "edit: %s (%s)", j->e.err, kd_err_name(rc));
}

/* Frame at t seconds of path as grey bytes (w*h). */
static void
grab_gray(const char *path, double t, int w, int h, unsigned char *buf)
{
    char ts[32];
    ssize_t n;

    (void)snprintf(ts, sizeof(ts), "%.3f", t);
    char *argv[] = {"ffmpeg",   "-nostdin", "-v",        "error", "-i", (char *)path,
                    "-ss",      ts,         "-frames:v", "1",     "-f", "rawvideo",
                    "-pix_fmt", "gray",     "-",         NULL};
    n = run_capture(argv, buf, (size_t)w * h);
    ck_assert_int_eq(n, (ssize_t)w * h);
}

/* The first frame of path at or after t seconds (decoded from the start,
 * as the trim filter picks it) as grey bytes (w*h). */
static void
grab_first_after(const char *path, double t, int w, int h, unsigned char *buf)
{
    char vf[64];
    ssize_t n;

    (void)snprintf(vf, sizeof(vf), "trim=start=%.3f", t);
    char *argv[] = {"ffmpeg",   "-nostdin", "-v",        "error", "-i", (char *)path,
                    "-vf",      vf,         "-frames:v", "1",     "-f", "rawvideo",
                    "-pix_fmt", "gray",     "-",         NULL};
    n = run_capture(argv, buf, (size_t)w * h);
    ck_assert_int_eq(n, (ssize_t)w * h);
}

/* Frame at t seconds of path as RGB bytes (w*h*3). */
static void
grab_rgb(const char *path, double t, int w, int h, unsigned char *buf)
{
    char ts[32];
    ssize_t n;

    (void)snprintf(ts, sizeof(ts), "%.3f", t);
    char *argv[] = {"ffmpeg",   "-nostdin", "-v",        "error", "-i", (char *)path,
                    "-ss",      ts,         "-frames:v", "1",     "-f", "rawvideo",
                    "-pix_fmt", "rgb24",    "-",         NULL};
    n = run_capture(argv, buf, (size_t)w * h * 3);
    ck_assert_int_eq(n, (ssize_t)w * h * 3);
}

/* Mean of colour channel c (0 R, 1 G, 2 B) over [x0,x1)x[y0,y1). */
static double
rgb_mean(const unsigned char *a, int w, int c, int x0, int y0, int x1, int y1)
{
    double sum = 0;

    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            sum += a[(y * w + x) * 3 + c];
    return sum / ((double)(x1 - x0) * (y1 - y0));
}

/* Mean absolute difference of two frames over [x0,x1)x[y0,y1). */
static double
region_diff(const unsigned char *a, const unsigned char *b, int w, int x0, int y0, int x1, int y1)
{
    double sum = 0;

    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            sum += abs((int)a[y * w + x] - (int)b[y * w + x]);
    return sum / ((double)(x1 - x0) * (y1 - y0));
}

static int
max_diff(const unsigned char *a, const unsigned char *b, int w, int x0, int y0, int x1, int y1)
{
    int m = 0;

    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            if (abs((int)a[y * w + x] - (int)b[y * w + x]) > m)
                m = abs((int)a[y * w + x] - (int)b[y * w + x]);
    return m;
}

/* The bounding box of pixels where a and b differ by more than 24. */
static bool
changed_box(const unsigned char *a, const unsigned char *b, int w, int h, int box[4])
{
    bool any = false;

    box[0] = w, box[1] = h, box[2] = -1, box[3] = -1;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            if (abs((int)a[y * w + x] - (int)b[y * w + x]) <= 24)
                continue;
            any = true;
            if (x < box[0])
                box[0] = x;
            if (y < box[1])
                box[1] = y;
            if (x > box[2])
                box[2] = x;
            if (y > box[3])
                box[3] = y;
        }
    }
    return any;
}

/* Mean of the grey values over [x0,x1)x[y0,y1). */
static double
region_mean(const unsigned char *a, int w, int x0, int y0, int x1, int y1)
{
    double sum = 0;

    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            sum += a[y * w + x];
    return sum / ((double)(x1 - x0) * (y1 - y0));
}

#define RMS_RATE 8000

/* The RMS of path's sound (mixed to mono at 8 kHz by the ffmpeg command
 * line) over [t0, t1) seconds, as a fraction of full scale. */
static double
audio_rms(const char *path, double t0, double t1)
{
    size_t cap = (size_t)RMS_RATE * 2 * 30;
    short *pcm = malloc(cap);
    ssize_t n;
    size_t a, b, got;
    double sum = 0;

    ck_assert_ptr_nonnull(pcm);
    char *argv[] = {"ffmpeg", "-nostdin", "-v",   "error", "-i",    (char *)path, "-vn", "-ac",
                    "1",      "-ar",      "8000", "-f",    "s16le", "-",          NULL};
    n = run_capture(argv, (unsigned char *)pcm, cap);
    ck_assert_int_ge(n, 0);
    got = (size_t)n / 2;
    a = (size_t)(t0 * RMS_RATE);
    b = (size_t)(t1 * RMS_RATE);
    if (b > got)
        b = got;
    ck_assert_msg(b > a, "%s: no sound in [%.2f, %.2f)", path, t0, t1);
    for (size_t i = a; i < b; i++)
        sum += (double)pcm[i] * pcm[i];
    free(pcm);
    return sqrt(sum / (double)(b - a)) / 32768.0;
}

/* What ffprobe prints for entries of the first stream of type sel ("v:0")
 * of path, as "key=value" lines, into buf (NUL-terminated). */
static void
ffprobe_entries(const char *path, const char *sel, const char *entries, char *buf, size_t cap)
{
    ssize_t n;

    char *argv[] = {
        "ffprobe",       "-v",  "error",        "-select_streams", (char *)sel, "-show_entries",
        (char *)entries, "-of", "default=nw=1", (char *)path,      NULL};
    n = run_capture(argv, (unsigned char *)buf, cap - 1);
    ck_assert_int_ge(n, 0);
    buf[n] = '\0';
}

/* ---- probe ---- */

START_TEST(probe_video_with_sound)
{
    char kind[16], sha[65], err[KD_MEDIA_ERRLEN], p[512];
    unsigned char out[256];
    json_t *j = NULL;
    const json_t *v, *a;
    ssize_t n;

    ck_assert_int_eq(probe("av.mp4", &lim, &j, kind, sha, err), KD_OK);
    ck_assert_str_eq(kind, "video");
    ck_assert_str_eq(jstr(j, "format"), "mp4");
    ck_assert_double_eq_tol(jdur(j), 3.0, 0.1);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "streams")), 2);
    ck_assert_ptr_nonnull(v = jstream(j, "video"));
    ck_assert_str_eq(jstr(v, "codec"), "h264");
    ck_assert_int_eq(jint(v, "width"), W);
    ck_assert_int_eq(jint(v, "height"), H);
    ck_assert_double_eq_tol(json_real_value(json_object_get(v, "fps")), 25.0, 0.01);
    ck_assert(json_is_null(json_object_get(v, "sample_rate")));
    ck_assert_ptr_nonnull(a = jstream(j, "audio"));
    ck_assert_str_eq(jstr(a, "codec"), "aac");
    ck_assert_int_eq(jint(a, "sample_rate"), 48000);
    ck_assert_int_eq(jint(a, "channels"), 1);
    ck_assert(json_is_null(json_object_get(a, "width")));
    ck_assert(json_is_null(json_object_get(a, "fps")));
    ck_assert_ptr_nonnull(json_object_get(a, "language"));
    /* The hash is sha256sum's. */
    path_of(p, sizeof(p), "av.mp4");
    n = run_capture((char *[]){"sha256sum", p, NULL}, out, sizeof(out));
    ck_assert_int_ge(n, 64);
    ck_assert_int_eq(memcmp(out, sha, 64), 0);
    ck_assert_uint_eq(strlen(sha), 64);
    json_decref(j);
}
END_TEST

START_TEST(probe_kinds)
{
    static const struct {
        const char *file, *kind, *format, *codec;
    } cases[] = {
        {"tone.mp3", "audio", "mp3", "mp3"},       {"tone.wav", "audio", "wav", "pcm_s16le"},
        {"pic.png", "image", "png_pipe", "png"},   {"pic.jpg", "image", "jpeg_pipe", "mjpeg"},
        {"subs.srt", "subtitle", "srt", "subrip"}, {"anim.gif", "video", "gif", "gif"},
        {"one.gif", "image", "gif", "gif"},
    };

    for (size_t i = 0; i < KD_ARRAY_LEN(cases); i++) {
        char kind[16];
        json_t *j = probe_ok(cases[i].file, kind);
        const json_t *s = json_array_get(json_object_get(j, "streams"), 0);

        ck_assert_msg(strcmp(kind, cases[i].kind) == 0, "%s: kind %s", cases[i].file, kind);
        ck_assert_str_eq(jstr(j, "format"), cases[i].format);
        ck_assert_str_eq(jstr(s, "codec"), cases[i].codec);
        if (strcmp(cases[i].kind, "image") == 0) {
            ck_assert_int_eq(jint(s, "width"), 64);
            ck_assert_int_eq(jint(s, "height"), 48);
        }
        if (strcmp(cases[i].file, "tone.mp3") == 0)
            ck_assert_double_eq_tol(jdur(j), 2.0, 0.1);
        json_decref(j);
    }
}
END_TEST

START_TEST(probe_refuses_hostile_files)
{
    static const struct {
        const char *file;
        enum kd_err rc;
        const char *needle;
    } cases[] = {
        {"empty.mp4", KD_EMEDIA, "empty"},
        {"truncated.mp4", KD_EMEDIA, ""},
        {"text.mp4", KD_EMEDIA, ""},
        {"huge.png", KD_EMEDIA, ""},
        {"playlist.mp4", KD_EFORBIDDEN, "hls"},
        {"concat.mp4", KD_EFORBIDDEN, "concat"},
        {"missing.mp4", KD_EIO, "opened"},
    };

    for (size_t i = 0; i < KD_ARRAY_LEN(cases); i++) {
        char kind[16] = "", sha[65] = "", err[KD_MEDIA_ERRLEN] = "";
        json_t *j = NULL;
        enum kd_err rc = probe(cases[i].file, &lim, &j, kind, sha, err);

        ck_assert_msg(rc == cases[i].rc, "%s: %s (%s)", cases[i].file, kd_err_name(rc), err);
        ck_assert_ptr_null(j);
        ck_assert_msg(err[0] != '\0', "%s: no message", cases[i].file);
        ck_assert_msg(strstr(err, cases[i].needle) != NULL, "%s: %s", cases[i].file, err);
    }
}
END_TEST

START_TEST(probe_applies_limits)
{
    struct kd_limits l;
    char kind[16], sha[65], err[KD_MEDIA_ERRLEN];
    json_t *j = NULL;

    l = lim;
    l.max_width = 200;
    ck_assert_int_eq(probe("av.mp4", &l, &j, kind, sha, err), KD_EMEDIA);
    ck_assert_ptr_nonnull(strstr(err, "320x240"));
    l = lim;
    l.max_pixels = 320 * 239;
    ck_assert_int_eq(probe("av.mp4", &l, &j, kind, sha, err), KD_EMEDIA);
    l = lim;
    l.max_streams = 1;
    ck_assert_int_eq(probe("av.mp4", &l, &j, kind, sha, err), KD_EMEDIA);
    ck_assert_ptr_nonnull(strstr(err, "streams"));
    l = lim;
    l.max_duration_s = 2;
    ck_assert_int_eq(probe("av.mp4", &l, &j, kind, sha, err), KD_EMEDIA);
    ck_assert_ptr_nonnull(strstr(err, "lasts"));
    ck_assert_ptr_null(j);
}
END_TEST

/* ---- edit ---- */

START_TEST(edit_trims_frame_accurately)
{
    struct job *j = job_new("av.mp4", "trim.mp4");
    char kind[16];
    json_t *p;

    j->input.start_s = 1.0;
    j->input.end_s = 2.5;
    edit_ok(j);
    ck_assert_double_eq_tol(j->e.duration_s, 1.5, FRAME_S + 0.001);
    p = probe_ok("trim.mp4", kind);
    ck_assert_str_eq(kind, "video");
    ck_assert_double_eq_tol(jdur(p), 1.5, FRAME_S + 0.001);
    ck_assert_str_eq(jstr(jstream(p, "video"), "codec"), "h264");
    ck_assert_str_eq(jstr(jstream(p, "audio"), "codec"), "aac");
    ck_assert_int_eq(jint(jstream(p, "video"), "width"), W);
    json_decref(p);
    /* Progress: never decreasing, ending at 1. */
    ck_assert(!j->is_decreasing);
    ck_assert_int_ge(j->n_fractions, 3);
    ck_assert_double_eq(j->fractions[j->n_fractions - 1], 1.0);
    ck_assert_double_ge(j->fractions[j->n_fractions - 2], 0.9);
    ck_assert_int_ge(j->n_cancel_polls, 2);
    free(j);
}
END_TEST

START_TEST(edit_trim_starts_at_the_cut)
{
    /* The first frame of a cut at 1.0 s is the input's frame at 1.0 s, not
     * the keyframe before it. */
    struct job *j = job_new("av.mp4", "cut.mkv");
    unsigned char *a = malloc(W * H), *b = malloc(W * H);
    char in[512];

    j->spec.output.container = KD_CONT_MKV;
    j->spec.output.crf = 0;
    j->input.start_s = 1.2;
    edit_ok(j);
    path_of(in, sizeof(in), "av.mp4");
    grab_gray(in, 1.2, W, H, a);
    grab_gray(j->out_path, 0.0, W, H, b);
    ck_assert_double_le(region_diff(a, b, W, 0, 0, W, H), 3.0);
    grab_gray(in, 1.0, W, H, a); /* a frame that must not appear */
    ck_assert_double_ge(region_diff(a, b, W, 0, 0, W, H), 3.0);
    free(a);
    free(b);
    free(j);
}
END_TEST

START_TEST(edit_trims_mpegts)
{
    static const double starts[] = {3.0, 5.5, 6.3};
    struct job *whole = job_new("gop.ts", "ts_whole.mp4");
    unsigned char *a = malloc(W * H), *b = malloc(W * H);

    /* The reference: the same input read from its start, no seeking (the
     * command line's own timeline for MPEG-TS is one frame off ours). */
    whole->spec.output.crf = 0;
    edit_ok(whole);
    for (size_t i = 0; i < KD_ARRAY_LEN(starts); i++) {
        struct job *j = job_new("gop.ts", "cut_ts.mp4");

        j->spec.output.crf = 0;
        j->input.start_s = starts[i];
        edit_ok(j);
        ck_assert_double_eq_tol(j->e.duration_s, 8.0 - starts[i], 0.1);
        grab_first_after(whole->out_path, starts[i], W, H, a);
        grab_gray(j->out_path, 0.0, W, H, b);
        ck_assert_msg(region_diff(a, b, W, 0, 0, W, H) <= 1.0, "start %.1f: wrong first frame",
                      starts[i]);
        free(j);
    }
    free(a);
    free(b);
    free(whole);
}
END_TEST

START_TEST(edit_containers_and_codecs)
{
    static const struct {
        enum kd_container c;
        enum kd_vcodec v;
        enum kd_acodec a;
        const char *file, *kind, *vcodec, *acodec;
    } cases[] = {
        {KD_CONT_MP4, KD_VCODEC_AUTO, KD_ACODEC_AUTO, "o1.mp4", "video", "h264", "aac"},
        {KD_CONT_MOV, KD_VCODEC_H264, KD_ACODEC_AAC, "o2.mov", "video", "h264", "aac"},
        {KD_CONT_MKV, KD_VCODEC_HEVC, KD_ACODEC_OPUS, "o3.mkv", "video", "hevc", "opus"},
        {KD_CONT_WEBM, KD_VCODEC_AUTO, KD_ACODEC_AUTO, "o4.webm", "video", "vp9", "opus"},
        {KD_CONT_MP4, KD_VCODEC_HEVC, KD_ACODEC_MP3, "o5.mp4", "video", "hevc", "mp3"},
        {KD_CONT_MP3, KD_VCODEC_AUTO, KD_ACODEC_AUTO, "o6.mp3", "audio", NULL, "mp3"},
        {KD_CONT_M4A, KD_VCODEC_AUTO, KD_ACODEC_AUTO, "o7.m4a", "audio", NULL, "aac"},
        {KD_CONT_WAV, KD_VCODEC_AUTO, KD_ACODEC_AUTO, "o8.wav", "audio", NULL, "pcm_s16le"},
        /* Sound alone in a video container stays sound alone (and keeps
         * its codec, which mp4 holds). */
        {KD_CONT_MP4, KD_VCODEC_AUTO, KD_ACODEC_AUTO, "o9.mp4", "audio", NULL, "mp3"},
    };

    for (size_t i = 0; i < KD_ARRAY_LEN(cases); i++) {
        struct job *j = job_new(i == 8 ? "tone.mp3" : "av.mp4", cases[i].file);
        char kind[16];
        json_t *p;
        const json_t *v;

        j->spec.output.container = cases[i].c;
        j->spec.output.video_codec = cases[i].v;
        j->spec.output.audio_codec = cases[i].a;
        j->spec.output.width = 160;
        j->spec.output.height = 120;
        j->input.end_s = 1.0;
        edit_ok(j);
        p = probe_ok(cases[i].file, kind);
        ck_assert_msg(strcmp(kind, cases[i].kind) == 0, "%s: %s", cases[i].file, kind);
        ck_assert_double_eq_tol(jdur(p), 1.0, 0.08);
        v = jstream(p, "video");
        if (cases[i].vcodec == NULL) {
            ck_assert_ptr_null(v);
        } else {
            ck_assert_ptr_nonnull(v);
            ck_assert_str_eq(jstr(v, "codec"), cases[i].vcodec);
            ck_assert_int_eq(jint(v, "width"), 160);
            ck_assert_int_eq(jint(v, "height"), 120);
        }
        ck_assert_str_eq(jstr(jstream(p, "audio"), "codec"), cases[i].acodec);
        json_decref(p);
        free(j);
    }
}
END_TEST

/* API.md: omitted output fields keep the first input's properties. A codec
 * the container usually holds is kept; another becomes the container's
 * usual one (doc/jobspec.md). */
START_TEST(edit_omitted_codecs_follow_the_first_input)
{
    static const struct {
        const char *in;
        enum kd_container c;
        const char *file, *vcodec, *acodec;
    } cases[] = {
        {"hevc_mp3.mp4", KD_CONT_MP4, "f1.mp4", "hevc", "mp3"},
        {"hevc_mp3.mp4", KD_CONT_MKV, "f2.mkv", "hevc", "mp3"},
        {"live.webm", KD_CONT_MKV, "f3.mkv", "vp9", "opus"},
        {"live.webm", KD_CONT_MP4, "f4.mp4", "h264", "aac"},
        {"hevc_mp3.mp4", KD_CONT_WEBM, "f5.webm", "vp9", "opus"},
    };

    for (size_t i = 0; i < KD_ARRAY_LEN(cases); i++) {
        struct job *j = job_new(cases[i].in, cases[i].file);
        char kind[16];
        json_t *p;

        j->spec.output.container = cases[i].c;
        j->spec.output.width = 160;
        j->spec.output.height = 120;
        j->input.end_s = 0.5;
        edit_ok(j);
        p = probe_ok(cases[i].file, kind);
        ck_assert_msg(strcmp(jstr(jstream(p, "video"), "codec"), cases[i].vcodec) == 0, "%s: %s",
                      cases[i].file, jstr(jstream(p, "video"), "codec"));
        ck_assert_msg(strcmp(jstr(jstream(p, "audio"), "codec"), cases[i].acodec) == 0, "%s: %s",
                      cases[i].file, jstr(jstream(p, "audio"), "codec"));
        json_decref(p);
        free(j);
    }
}
END_TEST

START_TEST(edit_refuses_impossible_outputs)
{
    struct job *j = job_new("av.mp4", "bad.webm");

    j->spec.output.container = KD_CONT_WEBM;
    j->spec.output.video_codec = KD_VCODEC_H264;
    ck_assert_int_eq(run_job(j), KD_EINVAL);
    ck_assert_ptr_nonnull(strstr(j->e.err, "h264"));
    free(j);
    /* An mp3 file from a video without sound. */
    j = job_new("blue.mp4", "bad.mp3");
    j->spec.output.container = KD_CONT_MP3;
    ck_assert_int_eq(run_job(j), KD_EMEDIA);
    ck_assert_ptr_nonnull(strstr(j->e.err, "no sound"));
    free(j);
    /* Text on sound alone. */
    j = job_new("tone.mp3", "bad2.mp4");
    add_text(j, "x", KD_POS_CENTER, 0, NAN);
    ck_assert_int_eq(run_job(j), KD_EMEDIA);
    free(j);
    /* A trim that starts after the end. */
    j = job_new("av.mp4", "bad3.mp4");
    j->input.start_s = 10;
    ck_assert_int_eq(run_job(j), KD_EINVAL);
    free(j);
    /* A still image has no sound for an mp3. */
    j = job_new("pic.png", "bad4.mp3");
    j->spec.output.container = KD_CONT_MP3;
    ck_assert_int_eq(run_job(j), KD_EMEDIA);
    ck_assert_ptr_nonnull(strstr(j->e.err, "no sound"));
    free(j);
}
END_TEST

START_TEST(edit_without_sound_has_no_audio_stream)
{
    struct job *j = job_new("blue.mp4", "nosound.mp4");
    char kind[16];
    json_t *p;

    j->input.end_s = 1.0;
    edit_ok(j);
    p = probe_ok("nosound.mp4", kind);
    ck_assert_ptr_nonnull(jstream(p, "video"));
    ck_assert_ptr_null(jstream(p, "audio"));
    json_decref(p);
    free(j);
}
END_TEST

START_TEST(edit_fps_size_and_fit)
{
    static const enum kd_fit fits[] = {KD_FIT_CONTAIN, KD_FIT_COVER, KD_FIT_STRETCH};
    unsigned char *f = malloc(160 * 160);

    for (size_t i = 0; i < KD_ARRAY_LEN(fits); i++) {
        char name[32], kind[16];
        struct job *j;
        json_t *p;
        const json_t *v;
        double top, middle;

        (void)snprintf(name, sizeof(name), "fit%zu.mp4", i);
        j = job_new("av.mp4", name);
        j->spec.output.width = 160;
        j->spec.output.height = 160;
        j->spec.output.fit = fits[i];
        j->spec.output.fps = 10;
        j->input.end_s = 1.0;
        edit_ok(j);
        p = probe_ok(name, kind);
        v = jstream(p, "video");
        ck_assert_int_eq(jint(v, "width"), 160);
        ck_assert_int_eq(jint(v, "height"), 160);
        ck_assert_double_eq_tol(json_real_value(json_object_get(v, "fps")), 10.0, 0.01);
        json_decref(p);
        /* 4:3 in a square: contain pads 20 rows of black above and below;
         * cover and stretch fill the frame. */
        grab_gray(j->out_path, 0.5, 160, 160, f);
        top = 0;
        middle = 0;
        for (int x = 0; x < 160; x++) {
            for (int y = 0; y < 16; y++)
                top += f[y * 160 + x];
            for (int y = 72; y < 88; y++)
                middle += f[y * 160 + x];
        }
        top /= 160 * 16;
        middle /= 160 * 16;
        if (fits[i] == KD_FIT_CONTAIN)
            ck_assert_double_le(top, 4.0);
        else
            ck_assert_double_ge(top, 20.0);
        ck_assert_double_ge(middle, 20.0);
        free(j);
    }
    free(f);
}
END_TEST

START_TEST(edit_applies_rotation)
{
    struct job *j = job_new("rot.mp4", "rot_out.mkv");
    unsigned char *a = malloc(W * H), *b = malloc(W * H);
    char kind[16], in[512];
    json_t *p;

    j->spec.output.container = KD_CONT_MKV;
    j->spec.output.crf = 0;
    edit_ok(j);
    p = probe_ok("rot_out.mkv", kind);
    ck_assert_int_eq(jint(jstream(p, "video"), "width"), H);
    ck_assert_int_eq(jint(jstream(p, "video"), "height"), W);
    json_decref(p);
    /* Turned the way the command line's autorotation turns it. */
    path_of(in, sizeof(in), "rot.mp4");
    grab_gray(in, 0.5, H, W, a);
    grab_gray(j->out_path, 0.5, H, W, b);
    ck_assert_double_le(region_diff(a, b, H, 0, 0, H, W), 3.0);
    free(a);
    free(b);
    free(j);
}
END_TEST

START_TEST(edit_text_layer_in_box_and_window)
{
    struct job *j = job_new("blue.mp4", "text.mkv");
    unsigned char *before = malloc(W * H), *during = malloc(W * H), *after = malloc(W * H);
    struct kd_layer *l;
    int box[4];

    j->spec.output.container = KD_CONT_MKV;
    j->spec.output.crf = 0;
    l = add_text(j, "Hi", KD_POS_TOP_LEFT, 1.0, 2.0);
    l->has_background = true;
    l->background = (struct kd_rgba){255, 255, 0, 255};
    edit_ok(j);
    grab_gray(j->out_path, 0.5, W, H, before);
    grab_gray(j->out_path, 1.5, W, H, during);
    grab_gray(j->out_path, 2.5, W, H, after);
    /* Outside the window the picture is untouched. */
    ck_assert_int_le(max_diff(before, after, W, 0, 0, W, H), 4);
    /* Inside it, only the top-left box changes: at the margin (16 px) from
     * the corner, and no further than the text plus its padding. */
    ck_assert(changed_box(before, during, W, H, box));
    ck_assert_int_ge(box[0], 14);
    ck_assert_int_ge(box[1], 14);
    ck_assert_int_le(box[0], 18);
    ck_assert_int_le(box[1], 18);
    ck_assert_int_le(box[2], 120);
    ck_assert_int_le(box[3], 100);
    ck_assert_int_le(max_diff(before, during, W, 0, 120, W, H), 4);
    ck_assert_int_le(max_diff(before, during, W, 160, 0, W, H), 4);
    ck_assert_double_ge(region_diff(before, during, W, box[0], box[1], box[2], box[3]), 40.0);
    free(before);
    free(during);
    free(after);
    free(j);
}
END_TEST

/* The box of what text draws over blue (x0, y0, x1, y1). */
static void
drawn_box(const char *name, const char *text, enum kd_position pos, int box[4])
{
    struct job *j = job_new("blue.mp4", name);
    unsigned char *a = malloc(W * H), *b = malloc(W * H);
    struct job *ref = job_new("blue.mp4", "ref.mkv");

    j->spec.output.container = KD_CONT_MKV;
    j->spec.output.crf = 0;
    j->input.end_s = 0.2;
    add_text(j, text, pos, 0, NAN);
    edit_ok(j);
    ref->spec.output.container = KD_CONT_MKV;
    ref->spec.output.crf = 0;
    ref->input.end_s = 0.2;
    edit_ok(ref);
    grab_gray(ref->out_path, 0.0, W, H, a);
    grab_gray(j->out_path, 0.0, W, H, b);
    ck_assert(changed_box(a, b, W, H, box));
    free(a);
    free(b);
    free(j);
    free(ref);
}

/* The width of what text draws over blue, in pixels. */
static int
drawn_width(const char *name, const char *text, enum kd_position pos)
{
    struct job *j = job_new("blue.mp4", name);
    unsigned char *a = malloc(W * H), *b = malloc(W * H);
    struct job *ref = job_new("blue.mp4", "ref.mkv");
    int box[4], width;

    j->spec.output.container = KD_CONT_MKV;
    j->spec.output.crf = 0;
    j->input.end_s = 0.2;
    add_text(j, text, pos, 0, NAN);
    edit_ok(j);
    ref->spec.output.container = KD_CONT_MKV;
    ref->spec.output.crf = 0;
    ref->input.end_s = 0.2;
    edit_ok(ref);
    grab_gray(ref->out_path, 0.0, W, H, a);
    grab_gray(j->out_path, 0.0, W, H, b);
    ck_assert(changed_box(a, b, W, H, box));
    width = box[2] - box[0] + 1;
    free(a);
    free(b);
    free(j);
    free(ref);
    return width;
}

START_TEST(edit_text_is_literal)
{
    /* With expansion "%{n}" would draw "0": one glyph, not four. */
    int literal = drawn_width("lit1.mkv", "%{n}", KD_POS_CENTER);
    int digit = drawn_width("lit2.mkv", "0", KD_POS_CENTER);

    ck_assert_int_ge(literal, 3 * digit);
    /* Strftime-like and graph-like syntax, Cyrillic, several lines. */
    ck_assert_int_gt(drawn_width("lit3.mkv", "%{localtime} Привет\n'a':b=c;[x] \\", KD_POS_BOTTOM),
                     100);
}
END_TEST

/* What text draws over blue (grey bytes of the first frame). */
static void
drawn_frame(const char *name, const char *text, unsigned char *buf)
{
    struct job *j = job_new("blue.mp4", name);

    j->spec.output.container = KD_CONT_MKV;
    j->spec.output.crf = 0;
    j->input.end_s = 0.2;
    add_text(j, text, KD_POS_TOP_LEFT, 0, NAN);
    edit_ok(j);
    grab_gray(j->out_path, 0.0, W, H, buf);
    free(j);
}

/* Runs of columns where anything was drawn (one per glyph for text set
 * with a gap between letters). */
static int
glyph_runs(const unsigned char *frame, const unsigned char *ref)
{
    int runs = 0;
    bool in_run = false;

    for (int x = 0; x < W; x++) {
        bool any = false;

        for (int y = 0; y < H / 2 && !any; y++)
            any = abs((int)frame[y * W + x] - (int)ref[y * W + x]) > 60;
        if (any && !in_run)
            runs++;
        in_run = any;
    }
    return runs;
}

START_TEST(edit_draws_cyrillic_glyphs)
{
    /* Cyrillic must come out as its letters: not as the boxes a font
     * draws for characters it lacks (private-use code points here), and
     * one glyph per letter. */
    unsigned char *ref = malloc(W * H), *cyr = malloc(W * H), *tofu = malloc(W * H),
                  *other = malloc(W * H);
    struct job *j = job_new("blue.mp4", "cyr_ref.mkv");

    j->spec.output.container = KD_CONT_MKV;
    j->spec.output.crf = 0;
    j->input.end_s = 0.2;
    edit_ok(j);
    grab_gray(j->out_path, 0.0, W, H, ref);
    free(j);
    drawn_frame("cyr1.mkv", "ЖИЗНЬ", cyr);
    drawn_frame("cyr2.mkv", "\xee\x80\x80\xee\x80\x81\xee\x80\x82\xee\x80\x83\xee\x80\x84", tofu);
    drawn_frame("cyr3.mkv", "ФЫВАП", other);
    ck_assert_int_eq(glyph_runs(cyr, ref), 5);
    ck_assert_int_ge(max_diff(cyr, tofu, W, 0, 0, W, H / 2), 100);
    ck_assert_double_ge(region_diff(cyr, tofu, W, 0, 0, W / 2, H / 4), 3.0);
    /* Other letters, other shapes. */
    ck_assert_double_ge(region_diff(cyr, other, W, 0, 0, W / 2, H / 4), 3.0);
    free(ref);
    free(cyr);
    free(tofu);
    free(other);
}
END_TEST

START_TEST(edit_font_name_is_only_a_family)
{
    /* fontconfig syntax in the name stays part of a (missing) family name:
     * the fallback font draws, nothing else is read. */
    struct job *j = job_new("blue.mp4", "font.mkv");
    struct kd_layer *l;

    j->spec.output.container = KD_CONT_MKV;
    j->input.end_s = 0.2;
    l = add_text(j, "font", KD_POS_TOP, 0, NAN);
    l->font = "DejaVu Sans-99:file=/etc/passwd,Serif:style=Bold\\";
    edit_ok(j);
    free(j);
}
END_TEST

START_TEST(edit_cancels)
{
    struct job *j = job_new("av.mp4", "cancel.mp4");

    j->cancel_after_progress = 1;
    ck_assert_int_eq(run_job(j), KD_ECANCELED);
    ck_assert_str_eq(j->e.err, "cancelled");
    ck_assert_int_ge(j->n_fractions, 1);
    ck_assert_double_lt(j->fractions[j->n_fractions - 1], 0.5);
    free(j);
    /* Already cancelled: the first read of the input stops. */
    j = job_new("av.mp4", "cancel2.mp4");
    j->is_cancel_now = true;
    ck_assert_int_eq(run_job(j), KD_ECANCELED);
    ck_assert_str_eq(j->e.err, "cancelled");
    ck_assert_int_eq(j->n_fractions, 0);
    free(j);
}
END_TEST

/* ---- inputs that are objects of a store (kd_storage_reader, custom AVIO) ---- */

static struct kd_config *store_cfg;
static struct kd_storage *store;

/* A local-disk store under dir/store holding name as key media/<name>;
 * the engine reads it through the same ranged reader it uses on S3. */
static void
store_put(const char *name, char key[64], char obj_path[512])
{
    char root[512], p[512], err[256];

    if (store == NULL) {
        path_of(root, sizeof(root), "store");
        ck_assert_int_eq(setenv("KADR_STORAGE_BACKEND", "local", 1), 0);
        ck_assert_int_eq(setenv("KADR_STORAGE_ROOT", root, 1), 0);
        ck_assert_int_eq(kd_config_load(NULL, &store_cfg, err, sizeof(err)), KD_OK);
        ck_assert_int_eq(kd_storage_open(store_cfg, &store), KD_OK);
    }
    snprintf(key, 64, "media/%s", name);
    for (char *c = key; *c != '\0'; c++)
        if (*c == '.')
            *c = '-';
    path_of(p, sizeof(p), name);
    ck_assert_int_eq(kd_storage_put_file(store, key, p), KD_OK);
    ck_assert_int_eq(kd_storage_local_path(store, key, obj_path, 512), KD_OK);
}

START_TEST(object_probe_and_edit_by_ranges)
{
    char kind[16], kind2[16], sha[65], sha2[65], err[KD_MEDIA_ERRLEN], key[64], obj[512];
    json_t *a = NULL, *b = NULL, *o = NULL;
    struct job *j;

    store_put("av.mp4", key, obj);
    ck_assert_int_eq(probe("av.mp4", &lim, &a, kind, sha, err), KD_OK);
    ck_assert_msg(kd_media_probe_object(store, key, &lim, &b, kind2, sha2, err) == KD_OK, "%s",
                  err);
    /* the same file, whichever way it is read */
    ck_assert_str_eq(kind2, kind);
    ck_assert_str_eq(sha2, sha);
    ck_assert(json_equal(a, b));
    ck_assert_int_eq(kd_media_probe_object(store, "media/none", &lim, &o, kind2, sha2, err),
                     KD_EMEDIA);
    ck_assert_ptr_nonnull(strstr(err, "missing from storage"));
    json_decref(a);
    json_decref(b);
    /* an edit whose input is the object: trimmed and re-encoded */
    j = job_new("av.mp4", "object.mp4");
    j->paths[0] = key;
    j->e.store = store;
    j->input.start_s = 0.5;
    j->input.end_s = 2.5;
    ck_assert_msg(run_job(j) == KD_OK, "%s", j->e.err);
    o = probe_ok("object.mp4", kind);
    ck_assert_double_eq_tol(jdur(o), 2.0, 0.1);
    json_decref(o);
    free(j);
}
END_TEST

/* An object that vanishes while the edit reads it (the store failing
 * mid-file) fails the edit: it never passes for the end of the input,
 * which would cut the output short without a word. */
START_TEST(object_failing_midway_is_not_its_end)
{
    char p[512], key[64], obj[512];
    struct stat st;
    struct job *j;

    path_of(p, sizeof(p), "big.mkv");
    run_ok((char *[]){"ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                      "testsrc2=size=1280x720:rate=25", "-t", "6", "-c:v", "libx264", "-preset",
                      "ultrafast", "-qp", "0", p, NULL});
    /* larger than two read-ahead windows, so reads go on after the unlink */
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_gt(st.st_size, 9 * 1024 * 1024);
    store_put("big.mkv", key, obj);
    j = job_new("big.mkv", "vanished.mp4");
    j->paths[0] = key;
    j->e.store = store;
    j->unlink_after_progress = obj;
    ck_assert_int_eq(run_job(j), KD_EMEDIA);
    ck_assert_msg(strstr(j->e.err, "missing from storage") != NULL, "%s", j->e.err);
    free(j);
}
END_TEST

START_TEST(edit_concat_mismatched_inputs)
{
    /* 640x360 at 25 fps with 48 kHz stereo, then 320x240 at 30 fps in
     * 4:4:4 with 44.1 kHz mono: the second is fitted to the first. */
    struct job *j = job_new("wide.mp4", "concat.mkv");
    unsigned char *f = malloc(640 * 360);
    const json_t *v, *a;
    char kind[16];
    json_t *p;

    j->spec.output.container = KD_CONT_MKV;
    j->input.start_s = 0.2;
    add_input(j, "narrow.mp4", 0, NAN);
    edit_ok(j);
    ck_assert_double_eq_tol(j->e.duration_s, 1.8, FRAME_S + 0.001);
    p = probe_ok("concat.mkv", kind);
    ck_assert_double_eq_tol(jdur(p), 1.8, FRAME_S + 0.03);
    ck_assert_ptr_nonnull(v = jstream(p, "video"));
    ck_assert_ptr_nonnull(a = jstream(p, "audio"));
    ck_assert_int_eq(jint(v, "width"), 640);
    ck_assert_int_eq(jint(v, "height"), 360);
    ck_assert_double_eq_tol(json_real_value(json_object_get(v, "fps")), 25.0, 0.01);
    ck_assert_int_eq(jint(a, "sample_rate"), 48000);
    ck_assert_int_eq(jint(a, "channels"), 2);
    ck_assert_uint_eq(json_array_size(json_object_get(p, "streams")), 2);
    json_decref(p);
    /* The 4:3 green input is letterboxed: black sides, green middle. */
    grab_gray(j->out_path, 1.4, 640, 360, f);
    ck_assert_double_le(region_mean(f, 640, 0, 0, 70, 360), 20.0);
    ck_assert_double_le(region_mean(f, 640, 570, 0, 640, 360), 20.0);
    ck_assert_double_ge(region_mean(f, 640, 200, 100, 440, 260), 60.0);
    /* Both parts have their sound. */
    ck_assert_double_ge(audio_rms(j->out_path, 0.1, 0.7), 0.05);
    ck_assert_double_ge(audio_rms(j->out_path, 0.9, 1.7), 0.05);
    free(f);
    free(j);
}
END_TEST

START_TEST(edit_concat_input_without_sound_is_silent)
{
    struct job *j = job_new("av.mp4", "silence.mp4");
    char kind[16];
    json_t *p;

    j->input.end_s = 1.0;
    add_input(j, "blue.mp4", 0, 1.0);
    add_input(j, "av.mp4", 2.0, NAN);
    edit_ok(j);
    p = probe_ok("silence.mp4", kind);
    ck_assert_double_eq_tol(jdur(p), 3.0, FRAME_S + 0.03);
    ck_assert_ptr_nonnull(jstream(p, "audio"));
    json_decref(p);
    ck_assert_double_ge(audio_rms(j->out_path, 0.1, 0.9), 0.05);
    ck_assert_double_le(audio_rms(j->out_path, 1.1, 1.9), 0.001);
    ck_assert_double_ge(audio_rms(j->out_path, 2.1, 2.9), 0.05);
    free(j);
}
END_TEST

START_TEST(edit_transition_crossfades)
{
    struct job *j = job_new("av.mp4", "fade.mkv");
    struct job *ref = job_new("blue.mp4", "fade_ref.mkv");
    unsigned char *a = malloc(W * H), *b = malloc(W * H), *m = malloc(W * H);
    char in[512];
    double d_mid, d_blue;

    j->spec.output.container = KD_CONT_MKV;
    j->spec.output.crf = 0;
    j->input.end_s = 1.0;
    add_input(j, "blue.mp4", 0, 1.5);
    j->spec.has_transition = true;
    j->spec.transition_s = 0.5;
    edit_ok(j);
    /* 1.0 + 1.5 - 0.5 */
    ck_assert_double_eq_tol(j->e.duration_s, 2.0, FRAME_S + 0.001);
    /* Half-way through the fade (0.75 s) the picture lies between the
     * first input at 0.75 s and blue. */
    path_of(in, sizeof(in), "av.mp4");
    grab_gray(in, 0.76, W, H, a);
    ref->input.end_s = 0.2;
    ref->spec.output.container = KD_CONT_MKV;
    edit_ok(ref);
    grab_gray(ref->out_path, 0.0, W, H, b);
    grab_gray(j->out_path, 0.76, W, H, m);
    d_mid = region_diff(a, m, W, 0, 0, W, H);
    d_blue = region_diff(b, m, W, 0, 0, W, H);
    ck_assert_double_ge(d_mid, 5.0);
    ck_assert_double_ge(d_blue, 5.0);
    /* After the fade: blue. */
    grab_gray(j->out_path, 1.5, W, H, m);
    ck_assert_double_le(region_diff(b, m, W, 0, 0, W, H), 3.0);
    /* The sound fades out under the second input, which has none. */
    ck_assert_double_ge(audio_rms(j->out_path, 0.1, 0.4), 0.05);
    ck_assert_double_le(audio_rms(j->out_path, 1.1, 1.9), 0.001);
    free(a);
    free(b);
    free(m);
    free(ref);
    free(j);
}
END_TEST

START_TEST(edit_joins_sound_only_and_picture_only)
{
    /* Sound only + picture only into mp4: black, then silence. */
    struct job *j = job_new("tone.mp3", "mixed_kinds.mp4");
    unsigned char *f = malloc(W * H);
    char kind[16];
    json_t *p;

    j->input.end_s = 1.0;
    add_input(j, "blue.mp4", 0, 1.0);
    edit_ok(j);
    p = probe_ok("mixed_kinds.mp4", kind);
    ck_assert_double_eq_tol(jdur(p), 2.0, FRAME_S + 0.03);
    ck_assert_ptr_nonnull(jstream(p, "video"));
    ck_assert_ptr_nonnull(jstream(p, "audio"));
    ck_assert_int_eq(jint(jstream(p, "video"), "width"), W);
    json_decref(p);
    grab_gray(j->out_path, 0.5, W, H, f);
    ck_assert_double_le(region_mean(f, W, 0, 0, W, H), 2.0);
    grab_gray(j->out_path, 1.5, W, H, f);
    ck_assert_double_eq_tol(region_mean(f, W, 0, 0, W, H), 29.0, 3.0);
    ck_assert_double_ge(audio_rms(j->out_path, 0.1, 0.9), 0.05);
    ck_assert_double_le(audio_rms(j->out_path, 1.1, 1.9), 0.001);
    free(j);
    /* The same into m4a with a fade: sound only, 1.0 + 1.0 - 0.25. */
    j = job_new("tone.mp3", "mixed_kinds.m4a");
    j->spec.output.container = KD_CONT_M4A;
    j->input.end_s = 1.0;
    add_input(j, "av.mp4", 0, 1.0);
    j->spec.has_transition = true;
    j->spec.transition_s = 0.25;
    edit_ok(j);
    p = probe_ok("mixed_kinds.m4a", kind);
    ck_assert_str_eq(kind, "audio");
    ck_assert_double_eq_tol(jdur(p), 1.75, 0.05);
    json_decref(p);
    free(j);
    /* Two inputs into mp3 whose sound is replaced: the track alone, as long
     * as both. */
    j = job_new("av.mp4", "replaced.mp3");
    j->spec.output.container = KD_CONT_MP3;
    j->input.end_s = 1.0;
    add_input(j, "blue.mp4", 0, 1.0);
    set_audio(j, "music.wav", KD_AUDIO_REPLACE)->loop = true;
    edit_ok(j);
    p = probe_ok("replaced.mp3", kind);
    ck_assert_str_eq(kind, "audio");
    ck_assert_double_eq_tol(jdur(p), 2.0, 0.08);
    json_decref(p);
    ck_assert_double_ge(audio_rms(j->out_path, 1.2, 1.8), 0.1);
    free(f);
    free(j);
}
END_TEST

START_TEST(edit_transition_after_a_short_picture)
{
    /* The first input's picture stops 1 s before its sound: it holds its
     * last frame, and the fade and the second input still come. */
    struct job *j = job_new("shortpic.mp4", "shortfade.mkv");
    unsigned char *f = malloc(W * H);

    j->spec.output.container = KD_CONT_MKV;
    add_input(j, "blue.mp4", 0, 1.0);
    j->spec.has_transition = true;
    j->spec.transition_s = 0.5;
    edit_ok(j);
    ck_assert_double_eq_tol(j->e.duration_s, 2.5, FRAME_S + 0.03);
    grab_gray(j->out_path, 2.3, W, H, f);
    ck_assert_double_eq_tol(region_mean(f, W, 0, 0, W, H), 29.0, 3.0);
    free(f);
    free(j);
}
END_TEST

START_TEST(edit_picture_in_picture)
{
    /* Red (1 s long) over blue, 80 px wide at the top right, with a white
     * border, shown from 0.5 to 2.5 s: held after its own end at 1.5 s. */
    struct job *j = job_new("blue.mp4", "pip.mkv");
    unsigned char *before = malloc(W * H), *during = malloc(W * H), *held = malloc(W * H),
                  *after = malloc(W * H);
    struct kd_layer *l;
    int box[4];

    j->spec.output.container = KD_CONT_MKV;
    j->spec.output.crf = 0;
    l = add_file_layer(j, KD_LAYER_VIDEO, "red.mp4", KD_POS_TOP_RIGHT, 0.25, 0.5, 2.5);
    l->has_border = true;
    l->border_width = 4;
    l->border_color = (struct kd_rgba){255, 255, 255, 255};
    edit_ok(j);
    ck_assert_double_eq_tol(j->e.duration_s, 3.0, FRAME_S + 0.001);
    grab_gray(j->out_path, 0.2, W, H, before);
    grab_gray(j->out_path, 1.0, W, H, during);
    grab_gray(j->out_path, 2.2, W, H, held);
    grab_gray(j->out_path, 2.8, W, H, after);
    ck_assert_int_le(max_diff(before, after, W, 0, 0, W, H), 4);
    /* 80x60 plus 4 px of border, 16 px from the top and right edges. */
    ck_assert(changed_box(before, during, W, H, box));
    ck_assert_int_eq(box[0], W - 16 - 88);
    ck_assert_int_eq(box[1], 16);
    ck_assert_int_eq(box[2], W - 16 - 1);
    ck_assert_int_eq(box[3], 16 + 68 - 1);
    /* Red inside (grey 76), white border, blue (29) elsewhere. */
    ck_assert_double_eq_tol(region_mean(during, W, W - 16 - 70, 30, W - 16 - 14, 70), 76.0, 5.0);
    {
        /* In colour: the layer's red over the base's blue, not just the
         * same brightness. */
        unsigned char *rgb = malloc(W * H * 3);

        grab_rgb(j->out_path, 1.0, W, H, rgb);
        ck_assert_double_ge(rgb_mean(rgb, W, 0, W - 16 - 70, 30, W - 16 - 14, 70), 200.0);
        ck_assert_double_le(rgb_mean(rgb, W, 1, W - 16 - 70, 30, W - 16 - 14, 70), 40.0);
        ck_assert_double_le(rgb_mean(rgb, W, 2, W - 16 - 70, 30, W - 16 - 14, 70), 40.0);
        ck_assert_double_le(rgb_mean(rgb, W, 0, 20, 100, 100, 200), 40.0);
        ck_assert_double_ge(rgb_mean(rgb, W, 2, 20, 100, 100, 200), 200.0);
        free(rgb);
    }
    ck_assert_double_ge(region_mean(during, W, W - 16 - 88, 16, W - 16, 18), 200.0);
    ck_assert_int_le(max_diff(before, during, W, 0, 0, W - 16 - 88, H), 4);
    ck_assert_int_le(max_diff(before, during, W, 0, 16 + 68, W, H), 4);
    /* The layer ended at 1.5 s: its last frame stays. */
    ck_assert_int_le(max_diff(during, held, W, 0, 0, W, H), 4);
    free(before);
    free(during);
    free(held);
    free(after);
    free(j);
}
END_TEST

START_TEST(edit_image_with_alpha_and_opacity)
{
    static const double opacities[] = {1.0, 0.5};
    unsigned char *base = malloc(W * H), *f = malloc(W * H);

    for (size_t i = 0; i < KD_ARRAY_LEN(opacities); i++) {
        char name[32];
        struct job *j;
        struct kd_layer *l;
        double red, blue;

        (void)snprintf(name, sizeof(name), "logo%zu.mkv", i);
        j = job_new("blue.mp4", name);
        j->spec.output.container = KD_CONT_MKV;
        j->spec.output.crf = 0;
        j->input.end_s = 1.0;
        /* 0.2 of 320: the 64 px logo at its own size, in the corner. */
        l = add_file_layer(j, KD_LAYER_IMAGE, "logo.png", KD_POS_TOP_LEFT, 0.2, 0, NAN);
        l->margin = 0;
        l->opacity = opacities[i];
        edit_ok(j);
        grab_gray(j->out_path, 0.5, W, H, f);
        if (i == 0)
            memcpy(base, f, (size_t)W * H);
        red = region_mean(f, W, 4, 4, 28, 60);
        blue = region_mean(f, W, 36, 4, 60, 60);
        /* The transparent half shows the blue (grey 29) through. */
        ck_assert_double_eq_tol(blue, 29.0, 4.0);
        ck_assert_double_eq_tol(region_mean(f, W, 100, 100, W, H), 29.0, 3.0);
        if (opacities[i] == 1.0)
            ck_assert_double_eq_tol(red, 76.0, 5.0);
        else
            ck_assert_double_eq_tol(red, 52.5, 5.0);
        free(j);
    }
    free(base);
    free(f);
}
END_TEST

START_TEST(edit_audio_mix_and_replace)
{
    struct job *j;
    char orig[512];
    double r_orig, r_track, r_mix, r;

    path_of(orig, sizeof(orig), "av.mp4");
    r_orig = audio_rms(orig, 0.1, 0.4);
    /* Replace: the track alone, then silence after its 0.5 s. */
    j = job_new("av.mp4", "replace.mp4");
    j->input.end_s = 2.0;
    set_audio(j, "music.wav", KD_AUDIO_REPLACE);
    edit_ok(j);
    r_track = audio_rms(j->out_path, 0.1, 0.4);
    ck_assert_double_ge(r_track, 1.5 * r_orig);
    ck_assert_double_le(audio_rms(j->out_path, 0.7, 1.9), 0.001);
    ck_assert_double_eq_tol(j->e.duration_s, 2.0, FRAME_S + 0.03);
    free(j);
    /* Mix: both sounds (unrelated tones add as powers). */
    j = job_new("av.mp4", "mix.mp4");
    j->input.end_s = 2.0;
    set_audio(j, "music.wav", KD_AUDIO_MIX);
    edit_ok(j);
    r_mix = audio_rms(j->out_path, 0.1, 0.4);
    ck_assert_double_eq_tol(r_mix, sqrt(r_orig * r_orig + r_track * r_track), 0.1 * r_mix);
    ck_assert_double_eq_tol(audio_rms(j->out_path, 0.7, 1.9), r_orig, 0.1 * r_orig);
    free(j);
    /* Volumes: the original muted, the track at half. */
    j = job_new("av.mp4", "mixvol.mp4");
    j->input.end_s = 2.0;
    set_audio(j, "music.wav", KD_AUDIO_MIX)->volume = 0.5;
    j->spec.audio.original_volume = 0;
    edit_ok(j);
    ck_assert_double_eq_tol(audio_rms(j->out_path, 0.1, 0.4), r_track / 2, 0.1 * r_track);
    ck_assert_double_le(audio_rms(j->out_path, 0.7, 1.9), 0.001);
    free(j);
    /* Offset, loop, fade out: silent until 1 s, then the track repeated
     * to the end, fading over the last 0.5 s. */
    j = job_new("av.mp4", "loop.mp4");
    j->input.end_s = 3.0;
    set_audio(j, "music.wav", KD_AUDIO_REPLACE)->offset_s = 1.0;
    j->spec.audio.loop = true;
    j->spec.audio.fade_out_s = 0.5;
    edit_ok(j);
    ck_assert_double_le(audio_rms(j->out_path, 0.05, 0.95), 0.001);
    ck_assert_double_eq_tol(audio_rms(j->out_path, 1.1, 1.4), r_track, 0.1 * r_track);
    ck_assert_double_eq_tol(audio_rms(j->out_path, 2.1, 2.4), r_track, 0.1 * r_track);
    r = audio_rms(j->out_path, 2.8, 2.98);
    ck_assert_double_le(r, 0.4 * r_track);
    ck_assert_double_ge(r, 0.005);
    ck_assert_double_eq_tol(j->e.duration_s, 3.0, FRAME_S + 0.03);
    free(j);
}
END_TEST

START_TEST(edit_everything_at_once)
{
    /* Two inputs with a transition, text, an image, picture-in-picture and
     * a mixed track: one pass, the right length and streams. */
    struct job *j = job_new("av.mp4", "all.mp4");
    unsigned char *f = malloc(W * H);
    const json_t *v;
    char kind[16];
    json_t *p;

    j->input.start_s = 0.5;
    j->input.end_s = 2.0;
    add_input(j, "wide.mp4", 0, NAN);
    j->spec.has_transition = true;
    j->spec.transition_s = 0.4;
    add_text(j, "kadr", KD_POS_BOTTOM, 0, NAN);
    add_file_layer(j, KD_LAYER_IMAGE, "logo.png", KD_POS_TOP_LEFT, 0.1, 0.2, NAN)->opacity = 0.8;
    add_file_layer(j, KD_LAYER_VIDEO, "red.mp4", KD_POS_CENTER, 0.3, 0.5, 1.8);
    set_audio(j, "music.wav", KD_AUDIO_MIX)->loop = true;
    edit_ok(j);
    ck_assert_double_eq_tol(j->e.duration_s, 1.5 + 1.0 - 0.4, FRAME_S + 0.03);
    p = probe_ok("all.mp4", kind);
    ck_assert_double_eq_tol(jdur(p), 2.1, FRAME_S + 0.03);
    ck_assert_ptr_nonnull(v = jstream(p, "video"));
    ck_assert_str_eq(jstr(v, "codec"), "h264");
    ck_assert_int_eq(jint(v, "width"), W);
    ck_assert_str_eq(jstr(jstream(p, "audio"), "codec"), "aac");
    ck_assert_uint_eq(json_array_size(json_object_get(p, "streams")), 2);
    json_decref(p);
    /* The red picture sits in the middle within its window. */
    grab_gray(j->out_path, 1.0, W, H, f);
    ck_assert_double_eq_tol(region_mean(f, W, W / 2 - 30, H / 2 - 20, W / 2 + 30, H / 2 + 20), 76.0,
                            8.0);
    ck_assert_double_ge(audio_rms(j->out_path, 1.9, 2.05), 0.05);
    free(f);
    free(j);
}
END_TEST

START_TEST(edit_fifty_inputs)
{
    /* The most inputs a job may have, alternating files with and without
     * sound: each decoded in turn, 50 x 0.2 s. */
    struct job *j = job_new("av.mp4", "fifty.mp4");
    char kind[16];
    json_t *p;

    j->spec.output.width = 160;
    j->spec.output.height = 120;
    j->input.start_s = 0.4;
    j->input.end_s = 0.6;
    for (int i = 1; i < 50; i++)
        add_input(j, i % 2 ? "blue.mp4" : "av.mp4", 0.2 * (i % 10), 0.2 * (i % 10) + 0.2);
    edit_ok(j);
    p = probe_ok("fifty.mp4", kind);
    ck_assert_double_eq_tol(jdur(p), 10.0, 0.1);
    ck_assert_ptr_nonnull(jstream(p, "audio"));
    json_decref(p);
    ck_assert_double_ge(audio_rms(j->out_path, 0.45, 0.55), 0.05);  /* input 2 */
    ck_assert_double_le(audio_rms(j->out_path, 0.25, 0.35), 0.001); /* input 1 */
    free(j);
}
END_TEST

START_TEST(edit_refuses_a_bad_second_input)
{
    static const struct {
        const char *file;
        enum kd_err rc;
        const char *needle;
    } cases[] = {
        {"playlist.mp4", KD_EFORBIDDEN, "inputs[1]"},
        {"truncated.mp4", KD_EMEDIA, "inputs[1]"},
        {"subs.srt", KD_EMEDIA, "inputs[1]"},
    };

    for (size_t i = 0; i < KD_ARRAY_LEN(cases); i++) {
        struct job *j = job_new("av.mp4", "bad2nd.mp4");
        enum kd_err rc;

        add_input(j, cases[i].file, 0, NAN);
        rc = run_job(j);
        ck_assert_msg(rc == cases[i].rc, "%s: %s (%s)", cases[i].file, kd_err_name(rc), j->e.err);
        ck_assert_msg(strstr(j->e.err, cases[i].needle) != NULL, "%s: %s", cases[i].file, j->e.err);
        free(j);
    }
    /* A layer that is sound only, a track that is picture only, an input
     * not longer than the transition. */
    {
        struct job *j = job_new("av.mp4", "bad3rd.mp4");

        add_file_layer(j, KD_LAYER_VIDEO, "tone.mp3", KD_POS_TOP, 0.3, 0, NAN);
        ck_assert_int_eq(run_job(j), KD_EMEDIA);
        ck_assert_ptr_nonnull(strstr(j->e.err, "layers[0]"));
        free(j);
        j = job_new("av.mp4", "bad3rd.mp4");
        set_audio(j, "blue.mp4", KD_AUDIO_MIX);
        ck_assert_int_eq(run_job(j), KD_EMEDIA);
        ck_assert_ptr_nonnull(strstr(j->e.err, "audio"));
        free(j);
        j = job_new("av.mp4", "bad3rd.mp4");
        j->input.end_s = 0.3;
        add_input(j, "av.mp4", 0, NAN);
        j->spec.has_transition = true;
        j->spec.transition_s = 0.5;
        ck_assert_int_eq(run_job(j), KD_EINVAL);
        ck_assert_ptr_nonnull(strstr(j->e.err, "transition"));
        free(j);
    }
}
END_TEST

START_TEST(edit_cancels_a_join)
{
    struct job *j = job_new("av.mp4", "cancel3.mp4");

    add_input(j, "blue.mp4", 0, NAN);
    add_file_layer(j, KD_LAYER_VIDEO, "red.mp4", KD_POS_TOP, 0.3, 0, NAN);
    set_audio(j, "music.wav", KD_AUDIO_MIX)->loop = true;
    j->cancel_after_progress = 3;
    ck_assert_int_eq(run_job(j), KD_ECANCELED);
    ck_assert_str_eq(j->e.err, "cancelled");
    ck_assert_double_lt(j->fractions[j->n_fractions - 1], 0.5);
    free(j);
}
END_TEST

START_TEST(edit_subtitles_burned_and_soft)
{
    /* Burned: the picture changes while the first cue (0.5 - 2.0 s) shows,
     * after a text layer drawn before it. Soft: a stream, no drawing. */
    struct job *j = job_new("blue.mp4", "burn.mkv");
    unsigned char *before = malloc(W * H), *during = malloc(W * H);
    char kind[16];
    json_t *p;

    j->spec.output.container = KD_CONT_MKV;
    j->spec.output.crf = 0;
    j->input.end_s = 2.2;
    add_text(j, "top", KD_POS_TOP, 0, NAN);
    add_file_layer(j, KD_LAYER_SUBTITLES, "subs.srt", KD_POS_BOTTOM, 0, 0, NAN)->sub_mode =
        KD_SUB_BURN;
    edit_ok(j);
    grab_gray(j->out_path, 0.2, W, H, before);
    grab_gray(j->out_path, 1.0, W, H, during);
    ck_assert_int_ge(max_diff(before, during, W, 0, H / 2, W, H), 100);
    ck_assert_int_le(max_diff(before, during, W, 0, 0, W, H / 4), 4);
    free(j);
    j = job_new("blue.mp4", "soft.mkv");
    j->spec.output.container = KD_CONT_MKV;
    add_file_layer(j, KD_LAYER_SUBTITLES, "subs.srt", KD_POS_BOTTOM, 0, 0, NAN)->sub_mode =
        KD_SUB_SOFT;
    edit_ok(j);
    p = probe_ok("soft.mkv", kind);
    ck_assert_ptr_nonnull(jstream(p, "subtitle"));
    ck_assert_ptr_nonnull(jstream(p, "video"));
    json_decref(p);
    free(before);
    free(during);
    free(j);
}
END_TEST

START_TEST(edit_thumbnails_from_the_output)
{
    struct job *j = job_new("av.mp4", "thumbs.mp4");

    j->input.end_s = 2.0;
    add_text(j, "t", KD_POS_CENTER, 0, NAN);
    j->spec.thumbnails.count = 3;
    j->spec.thumbnails.width = 160;
    ck_assert_int_eq(kd_media_edit(&j->e), KD_OK);
    ck_assert_uint_eq(j->e.n_thumbs, 3);
    for (size_t i = 0; i < j->e.n_thumbs; i++) {
        char kind[16], sha[65], err[KD_MEDIA_ERRLEN];
        json_t *p = NULL;

        ck_assert_int_eq(kd_media_probe(j->e.thumb_paths[i], &lim, &p, kind, sha, err), KD_OK);
        ck_assert_str_eq(kind, "image");
        ck_assert_int_eq(jint(json_array_get(json_object_get(p, "streams"), 0), "width"), 160);
        json_decref(p);
    }
    kd_edit_clear(&j->e);
    free(j);
}
END_TEST

START_TEST(edit_copy_remuxes)
{
    struct job *j = job_new("av.mp4", "copy.mkv");
    char kind[16];
    json_t *p;

    j->spec.output.container = KD_CONT_MKV;
    j->spec.output.video_codec = KD_VCODEC_COPY;
    j->spec.output.audio_codec = KD_ACODEC_COPY;
    edit_ok(j);
    p = probe_ok("copy.mkv", kind);
    ck_assert_str_eq(jstr(jstream(p, "video"), "codec"), "h264");
    ck_assert_double_eq_tol(jdur(p), 3.0, 0.1);
    json_decref(p);
    free(j);
}
END_TEST

START_TEST(edit_refuses_hostile_inputs)
{
    static const struct {
        const char *file;
        enum kd_err rc;
    } cases[] = {
        {"playlist.mp4", KD_EFORBIDDEN}, {"concat.mp4", KD_EFORBIDDEN}, {"empty.mp4", KD_EMEDIA},
        {"truncated.mp4", KD_EMEDIA},    {"text.mp4", KD_EMEDIA},       {"huge.png", KD_EMEDIA},
    };

    for (size_t i = 0; i < KD_ARRAY_LEN(cases); i++) {
        struct job *j = job_new(cases[i].file, "hostile.mp4");
        enum kd_err rc = run_job(j);

        ck_assert_msg(rc == cases[i].rc, "%s: %s (%s)", cases[i].file, kd_err_name(rc), j->e.err);
        ck_assert(j->e.err[0] != '\0');
        free(j);
    }
}
END_TEST

/* ---- defects found by the audit ---- */

START_TEST(edit_sound_only_inputs_without_settings)
{
    /* No encoder settings at all (what the API's smallest spec gives): the
     * remux check must answer "not possible", not refuse the job. */
    struct job *j = job_new("tone.mp3", "soundonly.mp4");
    char kind[16];
    json_t *p;

    j->spec.output.preset[0] = '\0';
    edit_ok(j);
    p = probe_ok("soundonly.mp4", kind);
    ck_assert_ptr_null(jstream(p, "video"));
    /* The input's own codec, which mp4 holds (omitted codecs follow it). */
    ck_assert_str_eq(jstr(jstream(p, "audio"), "codec"), "mp3");
    ck_assert_double_eq_tol(jdur(p), 2.0, 0.1);
    json_decref(p);
    free(j);
    /* A picture input, then a sound-only one: black under the second. */
    j = job_new("av.mp4", "picthensound.mp4");
    j->spec.output.preset[0] = '\0';
    j->input.end_s = 1.0;
    add_input(j, "tone.mp3", 0, NAN);
    edit_ok(j);
    p = probe_ok("picthensound.mp4", kind);
    ck_assert_ptr_nonnull(jstream(p, "video"));
    ck_assert_ptr_nonnull(jstream(p, "audio"));
    ck_assert_double_eq_tol(jdur(p), 3.0, 0.1);
    json_decref(p);
    free(j);
}
END_TEST

START_TEST(edit_remux_keeps_rotation_and_language)
{
    struct job *j = job_new("rotfra.mp4", "rotremux.mp4");
    char in[2048], out[2048], src[512];

    j->spec.output.preset[0] = '\0';
    edit_ok(j);
    path_of(src, sizeof(src), "rotfra.mp4");
    ffprobe_entries(src, "v:0",
                    "stream=width:stream_side_data=rotation:stream_tags=language:"
                    "stream_disposition=default",
                    in, sizeof(in));
    ffprobe_entries(j->out_path, "v:0",
                    "stream=width:stream_side_data=rotation:stream_tags=language:"
                    "stream_disposition=default",
                    out, sizeof(out));
    /* Copied, not re-encoded upright: the stored size and the matrix. */
    ck_assert_ptr_nonnull(strstr(in, "rotation=90"));
    ck_assert_ptr_nonnull(strstr(in, "width=320"));
    ck_assert_str_eq(out, in);
    ck_assert_ptr_nonnull(strstr(out, "language=fra"));
    free(j);
}
END_TEST

START_TEST(edit_text_line_endings)
{
    int lf[4], crlf[4], cr[4];

    drawn_box("lf.mkv", "Ab\nCd", KD_POS_TOP_LEFT, lf);
    drawn_box("crlf.mkv", "Ab\r\nCd", KD_POS_TOP_LEFT, crlf);
    drawn_box("cr.mkv", "Ab\rCd", KD_POS_TOP_LEFT, cr);
    /* Two lines each time: no blank line in between. */
    for (int k = 0; k < 4; k++) {
        ck_assert_int_eq(crlf[k], lf[k]);
        ck_assert_int_eq(cr[k], lf[k]);
    }
}
END_TEST

START_TEST(edit_soft_subtitles_end_with_the_output)
{
    /* The cues run 0.5-2.0 and 2.5-3.0 s; the output lasts 1 s. */
    struct job *j = job_new("blue.mp4", "softcut.mkv");
    char out[1024];
    double pts, dur;

    j->spec.output.container = KD_CONT_MKV;
    j->input.end_s = 1.0;
    add_file_layer(j, KD_LAYER_SUBTITLES, "subs.srt", KD_POS_BOTTOM, 0, 0, NAN)->sub_mode =
        KD_SUB_SOFT;
    edit_ok(j);
    char *argv[] = {"ffprobe",
                    "-v",
                    "error",
                    "-select_streams",
                    "s:0",
                    "-show_entries",
                    "packet=pts_time,duration_time",
                    "-of",
                    "csv=p=0",
                    j->out_path,
                    NULL};
    ssize_t n = run_capture(argv, (unsigned char *)out, sizeof(out) - 1);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    /* One cue, cut at the end. */
    ck_assert_msg(sscanf(out, "%lf,%lf", &pts, &dur) == 2, "%s", out);
    ck_assert_ptr_null(strchr(out, '\n') == NULL ? NULL : strchr(strchr(out, '\n') + 1, ','));
    ck_assert_double_eq_tol(pts, 0.5, 0.01);
    ck_assert_double_eq_tol(pts + dur, 1.0, 0.01);
    free(j);
}
END_TEST

START_TEST(edit_long_layer_keeps_the_output_length)
{
    /* A 1 s picture-in-picture without an end over 0.6 s of blue: the
     * output lasts 0.6 s. A layer starting after the end is left out. */
    struct job *j = job_new("blue.mp4", "pipcut.mkv");
    char kind[16];
    json_t *p;

    j->spec.output.container = KD_CONT_MKV;
    j->input.end_s = 0.6;
    add_file_layer(j, KD_LAYER_VIDEO, "red.mp4", KD_POS_TOP_RIGHT, 0.25, 0, NAN);
    add_file_layer(j, KD_LAYER_VIDEO, "red.mp4", KD_POS_TOP_LEFT, 0.25, 2.0, NAN);
    edit_ok(j);
    ck_assert_double_eq_tol(j->e.duration_s, 0.6, FRAME_S + 0.001);
    p = probe_ok("pipcut.mkv", kind);
    ck_assert_double_eq_tol(jdur(p), 0.6, FRAME_S + 0.001);
    json_decref(p);
    ck_assert_int_eq(j->n_warnings, 1);
    ck_assert_ptr_nonnull(strstr(j->last_warning, "layers[1]"));
    free(j);
}
END_TEST

START_TEST(edit_measures_inputs_of_unknown_length)
{
    /* Thumbnails need the output's length; the header does not say it. */
    struct job *j = job_new("live.webm", "live_out.mp4");
    char kind[16];
    json_t *p;

    p = probe_ok("live.webm", kind);
    ck_assert(json_is_null(json_object_get(p, "duration")));
    json_decref(p);
    j->spec.thumbnails.count = 2;
    j->spec.thumbnails.width = 160;
    ck_assert_msg(kd_media_edit(&j->e) == KD_OK, "%s", j->e.err);
    ck_assert_uint_eq(j->e.n_thumbs, 2);
    ck_assert_double_eq_tol(j->e.duration_s, 2.0, 0.05);
    kd_edit_clear(&j->e);
    p = probe_ok("live_out.mp4", kind);
    ck_assert_double_eq_tol(jdur(p), 2.0, 0.05);
    json_decref(p);
    free(j);
}
END_TEST

START_TEST(edit_still_image_inputs)
{
    /* An image alone for 1 s, then after 1 s of video for the default
     * 5 s: held still, with silence under it. */
    struct job *j = job_new("pic.png", "still.mp4");
    unsigned char *a = malloc(W * H), *b = malloc(W * H), *c = malloc(W * H);
    char kind[16];
    json_t *p;

    j->spec.output.preset[0] = '\0';
    j->input.end_s = 1.0;
    edit_ok(j);
    p = probe_ok("still.mp4", kind);
    ck_assert_double_eq_tol(jdur(p), 1.0, FRAME_S + 0.001);
    ck_assert_int_eq(jint(jstream(p, "video"), "width"), 64);
    ck_assert_ptr_null(jstream(p, "audio"));
    json_decref(p);
    free(j);
    j = job_new("av.mp4", "stilljoin.mkv");
    j->spec.output.container = KD_CONT_MKV;
    j->spec.output.crf = 0;
    j->input.end_s = 1.0;
    add_input(j, "pic.png", 0, NAN);
    edit_ok(j);
    p = probe_ok("stilljoin.mkv", kind);
    ck_assert_double_eq_tol(jdur(p), 6.0, FRAME_S + 0.03);
    json_decref(p);
    grab_gray(j->out_path, 0.5, W, H, a);
    grab_gray(j->out_path, 2.0, W, H, b);
    grab_gray(j->out_path, 5.5, W, H, c);
    ck_assert_double_ge(region_diff(a, b, W, 0, 0, W, H), 5.0);
    ck_assert_int_le(max_diff(b, c, W, 0, 0, W, H), 4);
    ck_assert_double_ge(audio_rms(j->out_path, 0.1, 0.9), 0.05);
    ck_assert_double_le(audio_rms(j->out_path, 1.5, 5.5), 0.001);
    free(a);
    free(b);
    free(c);
    free(j);
}
END_TEST

START_TEST(edit_converts_a_format_change_midway)
{
    /* 320x240 4:2:0 with 48 kHz stereo, then 160x90 red in 4:4:4 with
     * 44.1 kHz mono: the second part is letterboxed into 320x240. */
    struct job *j = job_new("change.ts", "change.mkv");
    unsigned char *a = malloc(W * H);
    char kind[16];
    json_t *p;

    j->spec.output.container = KD_CONT_MKV;
    j->spec.output.crf = 0;
    edit_ok(j);
    ck_assert_int_ge(j->n_warnings, 1);
    ck_assert_ptr_nonnull(strstr(j->last_warning, "converted"));
    p = probe_ok("change.mkv", kind);
    ck_assert_int_eq(jint(jstream(p, "video"), "width"), W);
    ck_assert_int_eq(jint(jstream(p, "video"), "height"), H);
    ck_assert_double_eq_tol(jdur(p), 4.0, 0.1);
    json_decref(p);
    /* Red (grey 76) in the middle, black bars above and below. */
    grab_gray(j->out_path, 3.0, W, H, a);
    ck_assert_double_eq_tol(region_mean(a, W, 40, 60, 280, 180), 76.0, 6.0);
    ck_assert_double_le(region_mean(a, W, 0, 0, W, 20), 20.0);
    ck_assert_double_le(region_mean(a, W, 0, H - 20, W, H), 20.0);
    ck_assert_double_ge(audio_rms(j->out_path, 0.5, 1.5), 0.05);
    ck_assert_double_ge(audio_rms(j->out_path, 2.5, 3.5), 0.05);
    free(a);
    free(j);
}
END_TEST

/* The sizes of the packets of stream sel ("v:0") of path, one a line. */
static void
packet_sizes(const char *path, const char *sel, char *buf, size_t cap)
{
    ssize_t n;

    char *argv[] = {
        "ffprobe",     "-v",  "error",   "-select_streams", (char *)sel, "-show_entries",
        "packet=size", "-of", "csv=p=0", (char *)path,      NULL};
    char *raw = malloc(cap), *o = buf;

    ck_assert_ptr_nonnull(raw);
    n = run_capture(argv, (unsigned char *)raw, cap - 1);
    ck_assert_int_gt(n, 0);
    raw[n] = '\0';
    /* Only the sizes: side data (skip samples) adds lines of its own. */
    for (char *line = raw; *line != '\0';) {
        char *end = strchr(line, '\n');
        size_t len = strspn(line, "0123456789");

        if (len > 0) {
            memcpy(o, line, len);
            o += len;
            *o++ = '\n';
        }
        if (end == NULL)
            break;
        line = end + 1;
    }
    *o = '\0';
    free(raw);
}

START_TEST(edit_copies_one_stream_and_decodes_the_other)
{
    static char in_v[65536], in_a[65536], out[65536];
    char kind[16], src[512];
    struct job *j;
    json_t *p;

    path_of(src, sizeof(src), "av.mp4");
    packet_sizes(src, "v:0", in_v, sizeof(in_v));
    packet_sizes(src, "a:0", in_a, sizeof(in_a));
    /* Picture copied, an added track mixed into the re-encoded sound. */
    j = job_new("av.mp4", "copy_mix.mp4");
    j->spec.output.preset[0] = '\0';
    j->spec.output.video_codec = KD_VCODEC_COPY;
    set_audio(j, "music.wav", KD_AUDIO_MIX);
    edit_ok(j);
    packet_sizes(j->out_path, "v:0", out, sizeof(out));
    ck_assert_str_eq(out, in_v);
    ck_assert_double_ge(audio_rms(j->out_path, 0.1, 0.4), 1.2 * audio_rms(src, 0.1, 0.4));
    p = probe_ok("copy_mix.mp4", kind);
    ck_assert_double_eq_tol(jdur(p), 3.0, 0.05);
    json_decref(p);
    free(j);
    /* Picture copied, sound in another codec. */
    j = job_new("av.mp4", "copy_mp3.mkv");
    j->spec.output.preset[0] = '\0';
    j->spec.output.container = KD_CONT_MKV;
    j->spec.output.video_codec = KD_VCODEC_COPY;
    j->spec.output.audio_codec = KD_ACODEC_MP3;
    edit_ok(j);
    packet_sizes(j->out_path, "v:0", out, sizeof(out));
    ck_assert_str_eq(out, in_v);
    p = probe_ok("copy_mp3.mkv", kind);
    ck_assert_str_eq(jstr(jstream(p, "audio"), "codec"), "mp3");
    json_decref(p);
    free(j);
    /* Sound copied while the picture gets a text layer. */
    j = job_new("av.mp4", "copy_sound.mp4");
    j->spec.output.audio_codec = KD_ACODEC_COPY;
    add_text(j, "copy", KD_POS_CENTER, 0, NAN);
    edit_ok(j);
    packet_sizes(j->out_path, "a:0", out, sizeof(out));
    ck_assert_str_eq(out, in_a);
    packet_sizes(j->out_path, "v:0", out, sizeof(out));
    ck_assert_str_ne(out, in_v);
    free(j);
    /* Thumbnails of a copied picture. */
    j = job_new("av.mp4", "copy_thumbs.mkv");
    j->spec.output.container = KD_CONT_MKV;
    j->spec.output.video_codec = KD_VCODEC_COPY;
    j->spec.output.audio_codec = KD_ACODEC_COPY;
    j->spec.thumbnails.count = 2;
    j->spec.thumbnails.width = 160;
    ck_assert_msg(kd_media_edit(&j->e) == KD_OK, "%s", j->e.err);
    ck_assert_uint_eq(j->e.n_thumbs, 2);
    kd_edit_clear(&j->e);
    packet_sizes(j->out_path, "v:0", out, sizeof(out));
    ck_assert_str_eq(out, in_v);
    packet_sizes(j->out_path, "a:0", out, sizeof(out));
    ck_assert_str_eq(out, in_a);
    free(j);
}
END_TEST

/* Thumbnails of a picture copied with its display matrix are turned as
 * players show it: upright, the way the command line autorotates. */
START_TEST(edit_copy_thumbnails_follow_the_rotation)
{
    struct job *j = job_new("rot.mp4", "copy_rot.mp4");
    unsigned char *thumb = malloc(120 * 160), *want = malloc(120 * 160);
    char kind[16], sha[65], err[KD_MEDIA_ERRLEN], in[512];
    json_t *p = NULL;
    ssize_t n;

    j->spec.output.preset[0] = '\0';
    j->spec.output.video_codec = KD_VCODEC_COPY;
    j->spec.thumbnails.count = 1;
    j->spec.thumbnails.width = 120;
    ck_assert_msg(kd_media_edit(&j->e) == KD_OK, "%s", j->e.err);
    ck_assert_uint_eq(j->e.n_thumbs, 1);
    /* 320x240 stored, shown 240x320: 120 wide is 160 high. */
    ck_assert_int_eq(kd_media_probe(j->e.thumb_paths[0], &lim, &p, kind, sha, err), KD_OK);
    ck_assert_int_eq(jint(json_array_get(json_object_get(p, "streams"), 0), "width"), 120);
    ck_assert_int_eq(jint(json_array_get(json_object_get(p, "streams"), 0), "height"), 160);
    json_decref(p);
    grab_gray(j->e.thumb_paths[0], 0, 120, 160, thumb);
    /* The thumbnail is the first frame at or after 0.5 s (1 s, one). */
    path_of(in, sizeof(in), "rot.mp4");
    char *argv[] = {"ffmpeg",    "-nostdin", "-v",  "error",
                    "-i",        in,         "-vf", "trim=start=0.5,scale=120:160",
                    "-frames:v", "1",        "-f",  "rawvideo",
                    "-pix_fmt",  "gray",     "-",   NULL};
    n = run_capture(argv, want, 120 * 160);
    ck_assert_int_eq(n, 120 * 160);
    ck_assert_double_le(region_diff(thumb, want, 120, 0, 0, 120, 160), 6.0);
    kd_edit_clear(&j->e);
    free(thumb);
    free(want);
    free(j);
}
END_TEST

START_TEST(edit_copied_picture_sets_the_sound_s_cut)
{
    /* Keyframes every second: 1.5-2.5 s copies from the keyframe at 1 s,
     * and the replacing track follows that cut (1.5 s long). */
    struct job *j = job_new("av.mp4", "copy_cut.mp4");
    char kind[16];
    json_t *p;

    j->spec.output.preset[0] = '\0';
    j->spec.output.video_codec = KD_VCODEC_COPY;
    j->input.start_s = 1.5;
    j->input.end_s = 2.5;
    set_audio(j, "tone.mp3", KD_AUDIO_REPLACE);
    edit_ok(j);
    p = probe_ok("copy_cut.mp4", kind);
    ck_assert_double_eq_tol(jdur(p), 1.5, 0.06);
    json_decref(p);
    ck_assert_double_ge(audio_rms(j->out_path, 0.1, 1.4), 0.05);
    free(j);
    /* Copy needs the picture in every input. */
    j = job_new("av.mp4", "copy_bad.mp4");
    j->spec.output.video_codec = KD_VCODEC_COPY;
    j->spec.thumbnails.count = 1;
    add_input(j, "tone.mp3", 0, NAN);
    ck_assert_int_eq(run_job(j), KD_EINVAL);
    ck_assert_ptr_nonnull(strstr(j->e.err, "inputs[1]"));
    free(j);
    /* Nothing is drawn on a copied picture (the spec check refuses it). */
    j = job_new("av.mp4", "copy_text.mp4");
    j->spec.output.video_codec = KD_VCODEC_COPY;
    j->spec.thumbnails.count = 1;
    add_text(j, "no", KD_POS_CENTER, 0, NAN);
    ck_assert_int_eq(run_job(j), KD_EINVAL);
    ck_assert_ptr_nonnull(strstr(j->e.err, "copied picture"));
    free(j);
}
END_TEST

static Suite *
media_suite(void)
{
    Suite *s = suite_create("media");
    TCase *probe_tc = tcase_create("probe");
    TCase *edit_tc = tcase_create("edit");
    TCase *fix_tc = tcase_create("fix");

    tcase_set_timeout(probe_tc, 60);
    tcase_set_timeout(edit_tc, 120);
    tcase_add_test(probe_tc, probe_video_with_sound);
    tcase_add_test(probe_tc, probe_kinds);
    tcase_add_test(probe_tc, probe_refuses_hostile_files);
    tcase_add_test(probe_tc, probe_applies_limits);
    tcase_add_test(edit_tc, edit_trims_frame_accurately);
    tcase_add_test(edit_tc, edit_trim_starts_at_the_cut);
    tcase_add_test(edit_tc, edit_trims_mpegts);
    tcase_add_test(edit_tc, edit_containers_and_codecs);
    tcase_add_test(edit_tc, edit_omitted_codecs_follow_the_first_input);
    tcase_add_test(edit_tc, edit_refuses_impossible_outputs);
    tcase_add_test(edit_tc, edit_without_sound_has_no_audio_stream);
    tcase_add_test(edit_tc, edit_fps_size_and_fit);
    tcase_add_test(edit_tc, edit_applies_rotation);
    tcase_add_test(edit_tc, edit_text_layer_in_box_and_window);
    tcase_add_test(edit_tc, edit_text_is_literal);
    tcase_add_test(edit_tc, edit_font_name_is_only_a_family);
    tcase_add_test(edit_tc, edit_cancels);
    tcase_add_test(edit_tc, edit_concat_mismatched_inputs);
    tcase_add_test(edit_tc, edit_concat_input_without_sound_is_silent);
    tcase_add_test(edit_tc, edit_transition_crossfades);
    tcase_add_test(edit_tc, edit_joins_sound_only_and_picture_only);
    tcase_add_test(edit_tc, edit_transition_after_a_short_picture);
    tcase_add_test(edit_tc, edit_picture_in_picture);
    tcase_add_test(edit_tc, edit_image_with_alpha_and_opacity);
    tcase_add_test(edit_tc, edit_audio_mix_and_replace);
    tcase_add_test(edit_tc, edit_everything_at_once);
    tcase_add_test(edit_tc, edit_fifty_inputs);
    tcase_add_test(edit_tc, edit_refuses_a_bad_second_input);
    tcase_add_test(edit_tc, edit_cancels_a_join);
    tcase_add_test(edit_tc, edit_subtitles_burned_and_soft);
    tcase_add_test(edit_tc, edit_thumbnails_from_the_output);
    tcase_add_test(edit_tc, edit_copy_thumbnails_follow_the_rotation);
    tcase_add_test(edit_tc, edit_copy_remuxes);
    tcase_add_test(edit_tc, edit_refuses_hostile_inputs);
    tcase_add_test(edit_tc, object_probe_and_edit_by_ranges);
    tcase_add_test(edit_tc, object_failing_midway_is_not_its_end);
    tcase_set_timeout(fix_tc, 120);
    tcase_add_test(fix_tc, edit_sound_only_inputs_without_settings);
    tcase_add_test(fix_tc, edit_remux_keeps_rotation_and_language);
    tcase_add_test(fix_tc, edit_text_line_endings);
    tcase_add_test(fix_tc, edit_soft_subtitles_end_with_the_output);
    tcase_add_test(fix_tc, edit_long_layer_keeps_the_output_length);
    tcase_add_test(fix_tc, edit_measures_inputs_of_unknown_length);
    tcase_add_test(fix_tc, edit_still_image_inputs);
    tcase_add_test(fix_tc, edit_converts_a_format_change_midway);
    tcase_add_test(fix_tc, edit_copies_one_stream_and_decodes_the_other);
    tcase_add_test(fix_tc, edit_copied_picture_sets_the_sound_s_cut);
    tcase_add_test(fix_tc, edit_draws_cyrillic_glyphs);
    suite_add_tcase(s, fix_tc);
    suite_add_tcase(s, probe_tc);
    suite_add_tcase(s, edit_tc);
    return s;
}

int
main(void)
{
    SRunner *sr;
    const char *tmp = getenv("TMPDIR");
    int failed;

    if (kd_snprintf(dir, sizeof(dir), "%s/kadr-media-test-XXXXXX",
                    tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp") != KD_OK ||
        mkdtemp(dir) == NULL) {
        perror("media_test: mkdtemp");
        return 1;
    }
    make_media();
    sr = srunner_create(media_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    kd_storage_close(store);
    kd_config_free(store_cfg);
    if (getenv("KADR_KEEP_TEST_DIR") == NULL)
        remove_dir();
    else
        fprintf(stderr, "media_test: files kept in %s\n", dir);
    return failed == 0 ? 0 : 1;
}
