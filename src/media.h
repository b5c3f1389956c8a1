/* media.h: everything kadr does to media bytes, through libav* (no program
 * is ever executed). Runs only inside a worker's job child process: every
 * input here is untrusted.
 *
 * Inputs are opened with a protocol whitelist ("file") and a demuxer
 * whitelist (never playlists such as hls or concat), and checked against
 * the limits (pixels per frame, duration, streams) before anything is
 * allocated from their values. */
#ifndef KD_MEDIA_H
#define KD_MEDIA_H

#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "err.h"
#include "jobspec.h"

struct kd_storage;

#define KD_MEDIA_ERRLEN 256

/* Probes the file at path. On KD_OK, *probe is the Media.probe object of the
 * API ({"duration","format","streams":[...]}, caller owns it), kind is one of
 * "video", "audio", "image", "subtitle", "other", and sha256 holds the hex
 * SHA-256 of the file's bytes. KD_EMEDIA (not media, broken, or over a
 * limit) and KD_EFORBIDDEN (a format that is not allowed) put a message
 * for the user in err; KD_EIO when the file cannot be opened. */
KD_MUST_CHECK enum kd_err kd_media_probe(const char *path, const struct kd_limits *lim,
                                         json_t **probe, char kind[16], char sha256[65],
                                         char err[KD_MEDIA_ERRLEN]);
/* kd_media_probe of the object key of store (read through ranged requests,
 * never copied whole to disk). KD_EUNAVAIL when the store did not answer
 * (err says so): the file may be fine; try again later. */
KD_MUST_CHECK enum kd_err kd_media_probe_object(struct kd_storage *store, const char *key,
                                                const struct kd_limits *lim, json_t **probe,
                                                char kind[16], char sha256[65],
                                                char err[KD_MEDIA_ERRLEN]);

typedef void kd_media_progress_fn(void *ud, double fraction); /* 0..1, never decreasing */
typedef bool kd_media_cancelled_fn(void *ud);                 /* polled >= 2 times a second */
typedef void kd_media_event_fn(void *ud, const char *event, const char *detail); /* warnings */

struct kd_edit {
    /* in */
    const struct kd_jobspec *spec;
    /* NULL: the paths below are local files. Otherwise they are keys of
     * objects in this store, read by ranged requests (kd_storage_reader). */
    struct kd_storage *store;
    const char *const *input_paths; /* spec->n_inputs local files, in order */
    const char *const *layer_paths; /* spec->n_layers; NULL for text layers */
    const char *audio_path;         /* when spec->has_audio */
    const char *out_path;           /* the main output file to create */
    const char *work_dir;           /* the job's private directory */
    const struct kd_limits *lim;
    int threads; /* encoder threads; 0 = auto */
    kd_media_progress_fn *progress;
    kd_media_cancelled_fn *cancelled;
    kd_media_event_fn *event;
    void *ud;
    /* out */
    double duration_s;  /* of the main output */
    char **thumb_paths; /* spec->thumbnails.count files (in work_dir) */
    size_t n_thumbs;
    char err[KD_MEDIA_ERRLEN]; /* a message for the user on failure */
};

/* Runs the edit in one decode -> filter -> encode pass (or a remux when
 * nothing needs decoding). KD_EUNSUPPORTED names the operation not yet
 * supported; KD_EMEDIA / KD_EFORBIDDEN for bad inputs; KD_EINVAL for a spec
 * the inputs cannot satisfy (a trim past the input's end, a codec the
 * container cannot hold); KD_ELIMIT when the output would pass the file
 * size limit; KD_ECANCELED when cancelled() said so; KD_EIO; KD_EINTERNAL.
 * Always fills err on failure. The output may be left partly written: the
 * caller discards the work directory. */
KD_MUST_CHECK enum kd_err kd_media_edit(struct kd_edit *e);
/* KD_EUNAVAIL from kd_media_edit or kd_media_probe_object means that the
 * store stopped answering while a file was read: not the file's fault. */
/* Frees what kd_media_edit allocated in e (thumb_paths). */
void kd_edit_clear(struct kd_edit *e);

#endif
