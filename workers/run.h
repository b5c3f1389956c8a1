/* run.h: what a task's child process does (the bodies given to
 * kd_child_spawn). They run on untrusted media, hold no database or Redis
 * connection, and report only through the pipe protocol of proto.h. */
#ifndef KD_WORKER_RUN_H
#define KD_WORKER_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct kd_storage;

/* Probes one uploaded file; the result payload is its file description. */
struct kd_run_probe {
    struct kd_storage *store; /* non-NULL: path is the key of an object of it */
    const char *path;
    const struct kd_limits *lim;
};
int kd_run_probe(void *ud, int out_fd);

/* Runs one edit, then stores its outputs under the keys the parent chose:
 * the main output under out_keys[0], thumbnail i under out_keys[i]. The
 * child parses the stored spec again (the parent hands over text, not
 * pointers into its own parse) and checks that the paths the parent
 * resolved match it in number. */
struct kd_run_edit {
    const char *spec_text; /* the job's stored spec (JSON) */
    size_t spec_len;
    struct kd_storage *in_store; /* non-NULL: the paths are keys of objects of it */
    struct kd_storage *store;    /* where the outputs go */
    const char *const *out_keys; /* n_out_keys: 1 + the spec's thumbnail count */
    size_t n_out_keys;
    const char *const *input_paths; /* n_inputs local files, in spec order */
    size_t n_inputs;
    const char *const *layer_paths; /* n_layers; NULL for text layers */
    size_t n_layers;
    const char *audio_path; /* NULL when the spec has no audio */
    const char *work_dir;   /* absolute; the child's current directory */
    const struct kd_limits *lim;
    int threads;
    int64_t deadline_ms; /* kd_mono_ms() past which it gives up (timeout) */
};
int kd_run_edit(void *ud, int out_fd);

#endif
