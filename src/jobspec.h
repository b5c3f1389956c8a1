/* jobspec.h: the edit spec of POST /jobs, parsed and validated into types.
 *
 * kd_jobspec_parse checks the whole body against ../shared/API.md and the
 * configured limits, collecting every error with its field path
 * ("layers[2].position") so that one 422 lists them all. It validates every
 * operation of the contract, even those the worker does not run yet.
 * Absent optional numbers are NAN (times) or 0 (sizes, rates) as noted. */
#ifndef KD_JOBSPEC_H
#define KD_JOBSPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "problem.h"

enum kd_position {
    KD_POS_TOP_LEFT, KD_POS_TOP, KD_POS_TOP_RIGHT,
    KD_POS_LEFT, KD_POS_CENTER, KD_POS_RIGHT,
    KD_POS_BOTTOM_LEFT, KD_POS_BOTTOM, KD_POS_BOTTOM_RIGHT,
};

struct kd_rgba {
    uint8_t r, g, b, a; /* "#RRGGBB" gives a = 255; "#RRGGBBAA" */
};

struct kd_input {
    char media_id[37];
    double start_s;      /* >= 0; 0 when absent */
    double end_s;        /* > start_s, or NAN for "to the end" */
};

enum kd_layer_type { KD_LAYER_TEXT, KD_LAYER_VIDEO, KD_LAYER_IMAGE, KD_LAYER_SUBTITLES };
enum kd_sub_mode { KD_SUB_BURN, KD_SUB_SOFT };

struct kd_layer {
    enum kd_layer_type type;
    double start_s;              /* window start on the output timeline; 0 when absent */
    double end_s;                /* NAN: to the end */
    enum kd_position position;   /* text default bottom; video top-right; image top-left */
    int margin;                  /* pixels, default 24 (text) or 16 */
    /* text */
    char *text;                  /* UTF-8, 1..limits.max_text_bytes, drawn literally */
    char *font;                  /* fontconfig family, default "DejaVu Sans" */
    int size;                    /* pixels, default 48; 4..512 */
    struct kd_rgba color;        /* default #FFFFFF */
    bool has_background;
    struct kd_rgba background;
    /* video, image, subtitles */
    char media_id[37];
    double width;                /* fraction of output width, (0, 1]; video 0.3, image 0.15 default */
    double opacity;              /* image: 0..1, default 1 */
    bool has_border;             /* video */
    int border_width;            /* 0..50 */
    struct kd_rgba border_color;
    /* subtitles */
    enum kd_sub_mode sub_mode;   /* default burn */
    bool has_style;
    char *style_font;            /* NULL: default */
    int style_size;              /* 0: default */
    struct kd_rgba style_color;
    bool has_style_color;
    int style_outline;           /* -1: default */
};

enum kd_audio_mode { KD_AUDIO_REPLACE, KD_AUDIO_MIX };

struct kd_audio {
    char media_id[37];
    enum kd_audio_mode mode;     /* default mix */
    double volume;               /* 0..4, default 1 */
    double original_volume;      /* 0..4, default 1 */
    double offset_s;             /* >= 0, default 0 */
    bool loop;                   /* default false */
    double fade_out_s;           /* >= 0, default 0 */
};

enum kd_container { KD_CONT_MP4, KD_CONT_MOV, KD_CONT_MKV, KD_CONT_WEBM,
                    KD_CONT_MP3, KD_CONT_M4A, KD_CONT_WAV };
enum kd_vcodec { KD_VCODEC_AUTO, KD_VCODEC_H264, KD_VCODEC_HEVC, KD_VCODEC_VP9, KD_VCODEC_COPY };
enum kd_acodec { KD_ACODEC_AUTO, KD_ACODEC_AAC, KD_ACODEC_MP3, KD_ACODEC_OPUS, KD_ACODEC_COPY };
enum kd_fit { KD_FIT_CONTAIN, KD_FIT_COVER, KD_FIT_STRETCH };

struct kd_output {
    enum kd_container container; /* default mp4 */
    enum kd_vcodec video_codec;  /* AUTO: the container's usual (h264; vp9 for webm) */
    enum kd_acodec audio_codec;  /* AUTO: aac; opus for webm; mp3 for mp3; pcm for wav */
    int width, height;           /* 0: the first input's; even numbers, 16..limits */
    enum kd_fit fit;             /* default contain */
    double fps;                  /* 0: the first input's; else 1..120 */
    int crf;                     /* -1: codec default; else 0..51 (0..63 vp9) */
    char preset[16];             /* "" : default; ultrafast..veryslow */
    int64_t video_bitrate;       /* bits/s, 0 = none (crf rules) */
    int64_t audio_bitrate;       /* bits/s, default 128000; 0 for wav and copy (nothing encoded) */
    bool faststart;              /* mp4/mov/m4a only; default true there, false elsewhere */
};

struct kd_thumbnails {
    int count;                   /* 0: none; 1..20 */
    int width;                   /* pixels, default 320; 16..1920 */
};

struct kd_jobspec {
    char type[16];               /* "edit" */
    struct kd_input *inputs;
    size_t n_inputs;             /* 1..limits.max_inputs */
    bool has_transition;
    double transition_s;         /* fade duration, (0, 5] */
    struct kd_layer *layers;
    size_t n_layers;             /* 0..limits.max_layers */
    bool has_audio;
    struct kd_audio audio;
    struct kd_output output;
    struct kd_thumbnails thumbnails;
    int priority;                /* 1..10, default 5 */
    int max_attempts;            /* 1..10; 0 when absent (the configured default) */
    bool has_run_at;
    int64_t run_at_ms;           /* unix milliseconds */
    char *webhook_url;           /* http(s) URL or NULL */
    json_t *metadata;            /* object (owned), NULL when absent */
};

/* A media id named by the spec, with the path of the field naming it. */
struct kd_media_ref {
    const char *media_id;        /* borrowed from the spec */
    char field[48];              /* "inputs[3].media_id", "audio.media_id" */
};

/* Parses body (a JSON object) into *out. KD_EINVAL: *pb holds one error per
 * bad field; KD_ENOMEM. The caller frees *out with kd_jobspec_free. */
KD_MUST_CHECK enum kd_err kd_jobspec_parse(const json_t *body, const struct kd_limits *lim,
                                           struct kd_jobspec **out, struct kd_problem *pb);
void kd_jobspec_free(struct kd_jobspec *spec); /* NULL is a no-op */

/* Lists every media id the spec names (inputs, layers, audio), in order.
 * *refs is the caller's to free (free()); the strings stay the spec's. */
KD_MUST_CHECK enum kd_err kd_jobspec_media_refs(const struct kd_jobspec *spec,
                                                struct kd_media_ref **refs, size_t *n);

/* Names and file extensions for the output container. */
const char *kd_container_name(enum kd_container c);      /* "mp4" */
const char *kd_container_mime(enum kd_container c);      /* "video/mp4" */
bool kd_container_is_audio_only(enum kd_container c);
const char *kd_position_name(enum kd_position p);

#endif
