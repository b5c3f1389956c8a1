/* media_parts.h: the self-contained parts of the media engine that the main
 * edit path (media_edit.c) calls: subtitles (media_subs.c), thumbnails
 * (media_thumbs.c) and the remux fast path (media_remux.c). Nothing outside
 * src/media_*.c includes this header.
 *
 * Every function here runs inside the job child, on untrusted files that
 * are worker-owned copies inside the job's directory. Files these parts
 * write go into the work directory the caller names, under names they
 * choose ("subs-<idx>.*", "thumb-<n>.jpg"), never a name a user gave. */
#ifndef KD_MEDIA_PARTS_H
#define KD_MEDIA_PARTS_H

#include <stdbool.h>
#include <stddef.h>

#include <libavfilter/avfilter.h>
#include <libavformat/avformat.h>
#include <libavutil/frame.h>

#include "media.h"
#include "media_int.h"

/* Creates path (ours, in the job directory; an existing link is refused)
 * holding len bytes of data, mode 0600. KD_EIO, logged. */
KD_MUST_CHECK enum kd_err kd_media_write_file(const char *path, const void *data, size_t len);

/* ---- subtitles (media_subs.c) ---- */

/* A subtitle file larger than this is refused (KD_EMEDIA): real ones are
 * a few hundred kilobytes. */
#define KD_SUBS_MAX_BYTES (8 * 1024 * 1024)
/* At most this many cues are kept; a file with more is refused. */
#define KD_SUBS_MAX_CUES 20000

enum kd_subs_format { KD_SUBS_SRT, KD_SUBS_WEBVTT, KD_SUBS_ASS };

/* One subtitle file, converted to UTF-8, validated and read into memory. */
struct kd_subs;

/* Where the cues go on the output timeline: a cue at t seconds in the file
 * shows at t + shift_s, and only what falls inside [from_s, to_s) is kept
 * (cues crossing an edge are clipped). to_s NAN: no end. For a subtitle
 * layer: shift_s 0, from_s/to_s the layer's window; the caller adds an
 * input trim as a negative shift_s when the cues follow one input. */
struct kd_subs_timing {
    double shift_s;
    double from_s;
    double to_s;
};

/* Reads the subtitle file at path (a local file when store is NULL, else
 * the key of an object of store, read whole: it is small), then:
 *   - encoding: valid UTF-8 (a BOM is dropped) is kept, anything else is
 *     decoded as Windows-1251; the UTF-8 text is written to
 *     work_dir/subs-<idx>.<srt|vtt|ass>;
 *   - format: detected from the content (WEBVTT header, [Script Info],
 *     else SRT); never from the name;
 *   - timing: in SRT/WebVTT, a cue whose timing line does not parse (or
 *     ends before it starts) is dropped and reported once per cue through
 *     event(ud, "warning",
 *     "subtitles: line 12: invalid timing line, cue skipped"); the
 *     rest is kept;
 *   - the cleaned copy is then opened through kd_media_input_open (the
 *     srt/webvtt/ass demuxers only, protocol file only) and every cue is
 *     decoded into memory (ASS events, as libavcodec's decoders give them).
 * KD_EMEDIA (not a subtitle file, too large, too many cues, broken),
 * KD_EFORBIDDEN (a format outside the whitelist), KD_EIO (cannot read or
 * write), KD_ENOMEM, KD_ECANCELED. A file with no valid cue is accepted
 * (with a warning event): it adds nothing. event may be NULL. */
KD_MUST_CHECK enum kd_err kd_subs_open(struct kd_storage *store, const char *path,
                                       const char *work_dir, unsigned idx,
                                       const struct kd_limits *lim, kd_media_event_fn *event,
                                       void *ud, kd_media_cancelled_fn *cancelled,
                                       struct kd_subs **out, char err[KD_MEDIA_ERRLEN]);
void kd_subs_free(struct kd_subs *s); /* NULL is a no-op */

enum kd_subs_format kd_subs_format_get(const struct kd_subs *s);
size_t kd_subs_count(const struct kd_subs *s);          /* cues kept */
const char *kd_subs_utf8_path(const struct kd_subs *s); /* valid while s lives */

/* Burn: writes work_dir/subs-<idx>.burn.ass and appends a "subtitles"
 * (libass) node for it to *tail, which then points at the node's output
 * (the caller links it on). Every option is set as a value; the file name
 * is ours. The ASS file holds the cues placed by t, with:
 *   - for ASS input, the file's own [Script Info] and styles (kept as is;
 *     layer->style is ignored, as the API says);
 *   - for SRT/WebVTT, a [V4+ Styles] section written here from the
 *     validated style of layer (style_font, style_size in pixels,
 *     style_color, style_outline; defaults DejaVu Sans, height/18, white,
 *     2) with PlayResX/Y = width/height, so sizes are output pixels.
 * layer is the subtitles layer (type KD_LAYER_SUBTITLES). width/height is
 * the picture size at the node. */
KD_MUST_CHECK enum kd_err kd_subs_burn_node(struct kd_subs *s, const struct kd_layer *layer,
                                            const struct kd_subs_timing *t, int width, int height,
                                            struct kd_media_graph *gr, struct kd_media_pad *tail,
                                            char err[KD_MEDIA_ERRLEN]);

/* Soft, step 1, before avformat_write_header: opens the encoder the
 * container takes (mov_text for mp4/mov, webvtt for webm, ass for mkv) and
 * adds its stream to ofmt. KD_EINVAL for an audio-only container. One call
 * per kd_subs. */
KD_MUST_CHECK enum kd_err kd_subs_soft_add(struct kd_subs *s, AVFormatContext *ofmt,
                                           enum kd_container c, char err[KD_MEDIA_ERRLEN]);
/* Soft, step 2, right after avformat_write_header and before the first
 * audio/video packet: encodes every cue placed by t and hands the packets
 * to av_interleaved_write_frame (the muxer holds them until the other
 * streams catch up, which keeps the file interleaved). */
KD_MUST_CHECK enum kd_err kd_subs_soft_write(struct kd_subs *s, AVFormatContext *ofmt,
                                             const struct kd_subs_timing *t,
                                             char err[KD_MEDIA_ERRLEN]);

/* ---- thumbnails (media_thumbs.c) ---- */

/* Takes the decoded output video as the edit loop produces it and writes
 * count JPEGs, work_dir/thumb-1.jpg .. thumb-<count>.jpg, width pixels wide
 * (height keeps the display aspect, even). Thumbnail i (0-based) is the
 * first frame at or after duration_s * (i + 0.5) / count. */
struct kd_thumbs;

/* duration_s: the expected output duration (> 0). */
KD_MUST_CHECK enum kd_err kd_thumbs_new(const char *work_dir, int count, int width,
                                        double duration_s, struct kd_thumbs **out,
                                        char err[KD_MEDIA_ERRLEN]);
/* The frames pushed are stored turned from how they are shown: a picture
 * copied as it is keeps its display matrix, so its frames come out of the
 * decoder unturned. Each thumbnail is then turned by degrees (0, 90, 180
 * or 270, clockwise, as kd_media_stream_rotation gives it; anything else
 * counts as 0) and sized from the turned picture. Only before the first
 * frame is pushed: later calls change nothing. */
void kd_thumbs_set_rotation(struct kd_thumbs *t, int degrees);
/* Offers one output frame (pts in tb; the frame is only read, and a
 * reference may be kept until the next call). Cheap when no thumbnail is
 * due. */
KD_MUST_CHECK enum kd_err kd_thumbs_push(struct kd_thumbs *t, const AVFrame *frame, AVRational tb,
                                         char err[KD_MEDIA_ERRLEN]);
/* After the last frame: thumbnails whose time was never reached (the
 * output was shorter than expected) take the last frame. Hands the paths
 * out: *paths (count strings, caller frees each and the array: that is
 * kd_edit.thumb_paths / n_thumbs). KD_EMEDIA when no frame was pushed. */
KD_MUST_CHECK enum kd_err kd_thumbs_finish(struct kd_thumbs *t, char ***paths, size_t *n,
                                           char err[KD_MEDIA_ERRLEN]);
void kd_thumbs_free(struct kd_thumbs *t); /* NULL is a no-op */

/* ---- the remux fast path (media_remux.c) ---- */

/* Decides whether e can run by copying packets. Opens the inputs itself
 * (kd_media_input_open, the same whitelists and limits). *possible is true
 * when nothing needs decoding:
 *   - video_codec copy: when nothing else needs decoding (no thumbnails,
 *     no audio track, no audio codec change), but inputs whose codec
 *     parameters differ are KD_EINVAL ("copy needs inputs with the same
 *     codec parameters"), and so is an input without video; trims snap to
 *     the keyframe at or before start. Otherwise *possible is false and
 *     the decode path copies the picture while it decodes the rest;
 *   - otherwise: no layers, no audio, no transition, no thumbnails, no
 *     size/fps/crf/preset/bitrate asked, the output codecs (after auto) are
 *     the inputs' codecs, every input has identical codec parameters
 *     (codec, profile, size, pixel format, sample rate, channel layout,
 *     extradata) and every trim start lands on a keyframe.
 * why says in a few words what forced the decode (for the log). When
 * *possible and keep is not NULL, *keep gets the opened inputs for
 * kd_remux_run (the caller's until then). */
struct kd_remux_inputs;
KD_MUST_CHECK enum kd_err kd_remux_possible(const struct kd_edit *e, bool *possible,
                                            struct kd_remux_inputs **keep,
                                            char why[KD_MEDIA_ERRLEN]);
/* The inputs kd_remux_possible opened; NULL is a no-op. */
void kd_remux_inputs_free(struct kd_remux_inputs *ins);
/* Whether two streams' parameters are the same for copying one after the
 * other (codec, profile, size, pixel format, rate, layout, extradata). */
bool kd_remux_same_params(const AVCodecParameters *a, const AVCodecParameters *b);
/* Seeks in to the keyframe of its picture stream at or before start_s
 * (seconds from the file's start) and gives that keyframe's time: where a
 * copied picture really starts. KD_EMEDIA when the seek lands off a
 * keyframe. The demuxer's position is left there. */
KD_MUST_CHECK enum kd_err kd_remux_key_before(struct kd_media_input *in, double start_s,
                                              double *key_s, char err[KD_MEDIA_ERRLEN]);
/* Runs e by remuxing: inputs in order, each cut to its trim, timestamps
 * continuous across inputs, bitstream filters where the output container
 * needs them (aac_adtstoasc for ADTS AAC into mp4/mov/mkv). Progress,
 * cancellation, duration_s and err as kd_media_edit. Call only when
 * kd_remux_possible said so. opened: what it kept (taken over and freed
 * here), or NULL to open the inputs anew. */
KD_MUST_CHECK enum kd_err kd_remux_run(struct kd_edit *e, struct kd_remux_inputs *opened);

#endif
