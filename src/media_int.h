/* media_int.h: what the media_*.c files share. Nothing outside them
 * includes this header: it is the only place besides those files that sees
 * libav* types.
 *
 * The engine is built from four parts that the next milestone (many inputs,
 * every layer type, one graph) extends rather than replaces:
 *   - media_input.c  opens one untrusted file safely and picks its streams;
 *   - media_graph.c  adds filter nodes to one graph: each input contributes
 *                    a source and a chain that brings it to the output's
 *                    size, rate and sample format; each layer contributes
 *                    nodes drawn over the video tail;
 *   - media_output.c chooses codecs and opens the encoders and the muxer;
 *   - media_edit.c   checks the spec, wires the parts and runs the
 *                    read -> decode -> filter -> encode -> mux loop. */
#ifndef KD_MEDIA_INT_H
#define KD_MEDIA_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <libavcodec/avcodec.h>
#include <libavfilter/avfilter.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>

#include "media.h"
#include "storage.h"

/* How long opening and probing one input may take before it counts as
 * hostile: a well-formed file needs a fraction of a second. */
#define KD_MEDIA_OPEN_TIMEOUT_MS 30000

/* Routes libav* logging into kd_log (once per process). */
void kd_media_setup(void);

/* Writes a message for the user into err (truncation is harmless there). */
void kd_media_seterr(char err[KD_MEDIA_ERRLEN], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* What an input's interrupt callback reads. It lives inside the input (or
 * output) object so that its address stays fixed while libav* holds it. */
struct kd_media_guard {
    int64_t deadline_ms;              /* kd_mono_ms() value; 0: no deadline */
    kd_media_cancelled_fn *cancelled; /* NULL: never cancelled */
    void *ud;
    int64_t last_poll_ms; /* cancelled() is polled at most every 100 ms */
    bool is_cancelled;    /* latched once cancelled() said yes */
    bool is_timed_out;
    /* A read from the store (S3) that failed, latched: it ends every
     * read after it and wins over whatever libav* made of it (a demuxer
     * may take a failed read for the end of the file). KD_EUNAVAIL: the
     * store did not answer; KD_EMEDIA: the object is gone; KD_EIO:
     * anything else. */
    enum kd_err store_err;
    char store_msg[160];
};

void kd_media_guard_init(struct kd_media_guard *g, int64_t timeout_ms,
                         kd_media_cancelled_fn *cancelled, void *ud);
/* The AVIOInterruptCB function; opaque is a struct kd_media_guard. */
int kd_media_guard_check(void *opaque);
/* Turns a libav* failure into a kd_err and a message "<what>: <reason>".
 * A cancelled or timed-out guard wins over the library's code. */
KD_MUST_CHECK enum kd_err kd_media_averr(const struct kd_media_guard *g, int averr,
                                         enum kd_err otherwise, char err[KD_MEDIA_ERRLEN],
                                         const char *what);

enum kd_media_kind {
    KD_MEDIA_KIND_VIDEO,
    KD_MEDIA_KIND_AUDIO,
    KD_MEDIA_KIND_IMAGE,
    KD_MEDIA_KIND_SUBTITLE,
};
const char *kd_media_kind_name(enum kd_media_kind k);

/* One opened input: a demuxer reading a file through our own AVIOContext,
 * restricted to the whitelists and checked against the limits. */
struct kd_media_input {
    AVFormatContext *fmt;
    AVIOContext *pb;                  /* ours: closed after fmt */
    struct kd_storage *store;         /* NULL for a local file */
    struct kd_storage_reader *reader; /* an object of store: pb reads it by ranges */
    struct kd_media_guard guard;
    enum kd_media_kind kind;
    int video_idx;          /* the picture stream (not cover art), or -1 */
    int audio_idx;          /* the sound stream, or -1 */
    int64_t start_time;     /* AV_TIME_BASE units; what "0 s" means in the file */
    double duration_s;      /* NAN when the file does not say */
    int64_t size;           /* bytes */
    bool is_nested_refused; /* the demuxer tried to open another file */
};

/* Opens name for reading: with store NULL, name is a local file (protocol
 * "file" only); otherwise it is the key of an object of store, read by
 * kd_storage_reader (ranged requests with read-ahead) through a custom
 * AVIOContext, so no libav* network protocol is ever enabled. Then: a demuxer from the
 * whitelist (detected from the content, never from the name), bounded
 * probing, every nested open refused, stream count, picture size, audio
 * parameters and duration checked against lim before and after
 * avformat_find_stream_info. Chooses video_idx/audio_idx and the kind.
 * KD_EMEDIA (broken, not media, over a limit), KD_EFORBIDDEN (a playlist or
 * a format that refers to other files), KD_ECANCELED, KD_ENOMEM; err says
 * which for the user. The deadline applies to opening only; afterwards the
 * guard checks cancellation alone. */
KD_MUST_CHECK enum kd_err kd_media_input_open(struct kd_storage *store, const char *name,
                                              const struct kd_limits *lim, int64_t timeout_ms,
                                              kd_media_cancelled_fn *cancelled, void *ud,
                                              struct kd_media_input **out,
                                              char err[KD_MEDIA_ERRLEN]);
void kd_media_input_close(struct kd_media_input *in); /* NULL is a no-op */

/* To call where reading in ended (an error or AVERROR_EOF): KD_OK when the
 * file itself ended or failed, else the store's failure that ended it,
 * with err saying so ("<what>: ..."). */
KD_MUST_CHECK enum kd_err kd_media_input_store_check(const struct kd_media_input *in,
                                                     char err[KD_MEDIA_ERRLEN], const char *what);

/* Reads the whole of name (a local file, or an object of store when store
 * is not NULL) into *data (NUL-terminated, the caller's to free).
 * KD_ELIMIT when it is larger than max; store failures as in the guard. */
KD_MUST_CHECK enum kd_err kd_media_read_whole(struct kd_storage *store, const char *name,
                                              size_t max, char **data, size_t *len);

/* Opens a decoder for stream idx of in with max_pixels from lim and the
 * given thread count (0 = auto). */
KD_MUST_CHECK enum kd_err kd_media_decoder_open(struct kd_media_input *in, int idx,
                                                const struct kd_limits *lim, int threads,
                                                AVCodecContext **out, char err[KD_MEDIA_ERRLEN]);

/* The rotation in degrees (0, 90, 180, 270, clockwise) the file asks its
 * player to apply to stream idx. */
int kd_media_stream_rotation(const AVStream *st);

/* ---- the filter graph (media_graph.c) ---- */

/* An output pad of a node: where the next node links. */
struct kd_media_pad {
    AVFilterContext *f;
    unsigned idx;
};

struct kd_media_graph {
    AVFilterGraph *g;
    unsigned n_nodes; /* names nodes uniquely ("n7_trim") */
};

/* What every input's video is brought to before layers are drawn. */
struct kd_media_vtarget {
    int width, height; /* even */
    enum kd_fit fit;
    AVRational fps; /* 0/1: keep the input's timing */
    enum AVPixelFormat pix_fmt;
};

/* What every input's audio is brought to before it reaches the encoder. */
struct kd_media_atarget {
    enum AVSampleFormat sample_fmt;
    int sample_rate;
    AVChannelLayout ch_layout;
};

/* A slice of an input, in its own seconds (from its start_time). */
struct kd_media_span {
    double start_s;
    double end_s; /* NAN: to the end */
};

KD_MUST_CHECK enum kd_err kd_media_graph_init(struct kd_media_graph *gr);
void kd_media_graph_clear(struct kd_media_graph *gr);

/* Adds a node of filter name with options given as key/value strings
 * (kv: NULL-terminated, pairs) and links it from *tail (when tail->f is
 * set); *tail becomes its output 0. Values are set as option values, never
 * parsed as graph syntax. */
KD_MUST_CHECK enum kd_err kd_media_graph_append(struct kd_media_graph *gr, const char *name,
                                                const char *const *kv, struct kd_media_pad *tail,
                                                char err[KD_MEDIA_ERRLEN]);

/* Allocates and initialises a node of filter name with options kv (as
 * kd_media_graph_append), unlinked. */
KD_MUST_CHECK enum kd_err kd_media_graph_node(struct kd_media_graph *gr, const char *name,
                                              const char *const *kv, AVFilterContext **out,
                                              char err[KD_MEDIA_ERRLEN]);
/* Links from's pad to input pad in of to. */
KD_MUST_CHECK enum kd_err kd_media_graph_link(struct kd_media_pad from, AVFilterContext *to,
                                              unsigned in, char err[KD_MEDIA_ERRLEN]);

/* The video of one input: buffer source (from the stream's parameters) ->
 * trim to span -> timeline from 0 -> [fps] -> rotation -> fit to vt. *src
 * is the buffer source to feed; *tail the end of the chain. */
KD_MUST_CHECK enum kd_err kd_media_graph_input_video(struct kd_media_graph *gr, const AVStream *st,
                                                     const struct kd_media_span *span,
                                                     const struct kd_media_vtarget *vt,
                                                     AVFilterContext **src,
                                                     struct kd_media_pad *tail,
                                                     char err[KD_MEDIA_ERRLEN]);
/* How long a still image input is shown when its spec gives no end. */
#define KD_STILL_DEFAULT_S 5.0

/* The picture of a still image input shown for dur_s: buffer -> the one
 * frame held (tpad clone) -> cut at dur_s -> rate (vt's, else 25) -> fit
 * to vt. */
KD_MUST_CHECK enum kd_err
kd_media_graph_input_still(struct kd_media_graph *gr, const AVStream *st, double dur_s,
                           const struct kd_media_vtarget *vt, AVFilterContext **src,
                           struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN]);
/* The audio of one input: abuffer -> trim -> timeline from 0 -> resample to
 * at. A NULL span keeps the whole stream and its timestamps. */
KD_MUST_CHECK enum kd_err kd_media_graph_input_audio(struct kd_media_graph *gr, const AVStream *st,
                                                     const struct kd_media_span *span,
                                                     const struct kd_media_atarget *at,
                                                     AVFilterContext **src,
                                                     struct kd_media_pad *tail,
                                                     char err[KD_MEDIA_ERRLEN]);
/* dur_s of black picture at vt (for an input without picture). */
KD_MUST_CHECK enum kd_err kd_media_graph_black(struct kd_media_graph *gr,
                                               const struct kd_media_vtarget *vt, double dur_s,
                                               struct kd_media_pad *tail,
                                               char err[KD_MEDIA_ERRLEN]);
/* dur_s of silence in at (for an input without sound). */
KD_MUST_CHECK enum kd_err kd_media_graph_silence(struct kd_media_graph *gr,
                                                 const struct kd_media_atarget *at, double dur_s,
                                                 struct kd_media_pad *tail,
                                                 char err[KD_MEDIA_ERRLEN]);
/* Joins the n input chains in order: a concat node, or with a transition
 * (trans_s > 0) a chain of xfade/acrossfade nodes whose offsets come from
 * the inputs' lengths dur_s[]. vtails/atails may be NULL when the output
 * has no such stream; the joined ends replace vtails[0]/atails[0]. fps is
 * the output rate (all video chains run at it when n > 1). */
KD_MUST_CHECK enum kd_err kd_media_graph_join(struct kd_media_graph *gr, size_t n,
                                              struct kd_media_pad *vtails,
                                              struct kd_media_pad *atails, const double *dur_s,
                                              double trans_s, AVRational fps, int sample_rate,
                                              char err[KD_MEDIA_ERRLEN]);
/* A video or image layer from stream st drawn over *tail (output timeline,
 * out_w wide): buffer -> window -> scale -> [border] -> [opacity] ->
 * overlay, whose last frame is held to the end of the window. The layer
 * is cut at its end and at total_s (the output's length; NAN: unknown). */
KD_MUST_CHECK enum kd_err kd_media_graph_overlay(struct kd_media_graph *gr,
                                                 const struct kd_layer *layer, const AVStream *st,
                                                 int out_w, double total_s, AVFilterContext **src,
                                                 struct kd_media_pad *tail,
                                                 char err[KD_MEDIA_ERRLEN]);
/* The added audio track: abuffer (timestamps given by the feeder, loops
 * included) -> format -> volume -> offset -> [pad] -> cut at total_s ->
 * [fade out]; mixed with *base (when base->f is set) into *tail. */
KD_MUST_CHECK enum kd_err
kd_media_graph_audio_track(struct kd_media_graph *gr, const struct kd_audio *audio,
                           const AVStream *st, const struct kd_media_atarget *at, double total_s,
                           struct kd_media_pad *base, AVFilterContext **src,
                           struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN]);
/* A text layer drawn over *tail (output timeline). */
KD_MUST_CHECK enum kd_err kd_media_graph_text(struct kd_media_graph *gr,
                                              const struct kd_layer *layer,
                                              const struct kd_limits *lim,
                                              struct kd_media_pad *tail, char err[KD_MEDIA_ERRLEN]);
/* Brings *tail to at exactly (after nodes that change the format). */
KD_MUST_CHECK enum kd_err kd_media_graph_aformat(struct kd_media_graph *gr,
                                                 const struct kd_media_atarget *at,
                                                 struct kd_media_pad *tail,
                                                 char err[KD_MEDIA_ERRLEN]);
/* Ends *tail in a buffer sink (video) or abuffer sink (audio). */
KD_MUST_CHECK enum kd_err kd_media_graph_sink(struct kd_media_graph *gr, bool is_video,
                                              struct kd_media_pad *tail, AVFilterContext **sink,
                                              char err[KD_MEDIA_ERRLEN]);
KD_MUST_CHECK enum kd_err kd_media_graph_config(struct kd_media_graph *gr,
                                                char err[KD_MEDIA_ERRLEN]);

/* The picture size a stream shows (square pixels, rotation applied). */
void kd_media_display_size(const AVStream *st, int *w, int *h);

/* ---- codecs and the muxer (media_output.c) ---- */

/* What the output will hold, decided before anything is opened. */
struct kd_media_plan {
    const AVOutputFormat *ofmt;
    bool has_video, has_audio;
    bool is_video_copied, is_audio_copied; /* codec "copy": no encoder, no sink */
    const AVCodec *vcodec, *acodec;
    struct kd_media_vtarget vt;
    struct kd_media_atarget at;
};

/* Chooses the muxer and codecs for out given which kinds of streams the
 * input offers, and the audio target from the reference sound stream's
 * parameters apar (NULL when in_audio is false). An omitted codec follows
 * the first input's (first_vcodec, first_acodec; AV_CODEC_ID_NONE when
 * there is none) where the container usually holds it. KD_EINVAL names an
 * impossible combination (h264 in webm); KD_EUNSUPPORTED a missing
 * encoder. plan->at.ch_layout must be uninit'd with kd_media_plan_clear. */
KD_MUST_CHECK enum kd_err kd_media_plan_codecs(const struct kd_output *out, bool in_video,
                                               bool in_audio, const AVCodecParameters *apar,
                                               enum AVCodecID first_vcodec,
                                               enum AVCodecID first_acodec,
                                               struct kd_media_plan *plan,
                                               char err[KD_MEDIA_ERRLEN]);
void kd_media_plan_clear(struct kd_media_plan *plan);

/* A stream of the output whose packets are copied from the inputs. */
struct kd_media_copy {
    const AVStream *st;           /* the first input's (rates, side data, metadata) */
    const AVCodecParameters *par; /* what is written (after a bitstream filter) */
};

struct kd_media_output {
    AVFormatContext *fmt;
    struct kd_media_guard guard;
    AVCodecContext *venc, *aenc;
    AVStream *vst, *ast;
    AVPacket *pkt; /* reused for every encoded packet */
    bool is_header_written;
};

/* Creates the muxer for path and opens the encoders, taking their
 * parameters from the configured sinks; a copied stream (plan says which)
 * takes vcopy's or acopy's parameters instead of a sink's. Nothing is
 * written yet. */
KD_MUST_CHECK enum kd_err kd_media_output_open(
    const char *path, const struct kd_output *spec, const struct kd_media_plan *plan,
    AVFilterContext *vsink, AVFilterContext *asink, const struct kd_media_copy *vcopy,
    const struct kd_media_copy *acopy, int threads, kd_media_cancelled_fn *cancelled, void *ud,
    struct kd_media_output **out, char err[KD_MEDIA_ERRLEN]);
KD_MUST_CHECK enum kd_err kd_media_output_start(struct kd_media_output *o,
                                                const struct kd_output *spec,
                                                char err[KD_MEDIA_ERRLEN]);
/* Encodes frame (NULL flushes) on the video or audio encoder and writes
 * every packet that comes out. */
KD_MUST_CHECK enum kd_err kd_media_output_encode(struct kd_media_output *o, bool is_video,
                                                 AVFrame *frame, char err[KD_MEDIA_ERRLEN]);
/* Writes a copied packet (times already in the stream's time base) of
 * the video or audio stream. */
KD_MUST_CHECK enum kd_err kd_media_output_write(struct kd_media_output *o, bool is_video,
                                                AVPacket *pkt, char err[KD_MEDIA_ERRLEN]);
KD_MUST_CHECK enum kd_err kd_media_output_finish(struct kd_media_output *o,
                                                 char err[KD_MEDIA_ERRLEN]);
void kd_media_output_close(struct kd_media_output *o); /* NULL is a no-op */

#endif
