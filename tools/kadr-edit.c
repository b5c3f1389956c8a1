/* kadr-edit: runs one edit of the media engine on local files, without the
 * API, queue or worker: for debugging the engine and for benchmarks.
 *
 *   kadr-edit --spec spec.json --input PATH... [--layer PATH...]
 *             [--audio PATH] --output PATH [--work-dir DIR] [--threads N]
 *             [--quiet]
 *
 * The media ids in the spec are placeholders: the inputs take the --input
 * paths in order, the video/image/subtitle layers the --layer paths in
 * order, the audio track the --audio path. Limits come from the usual
 * configuration ($KADR_CONFIG and the environment). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <jansson.h>

#include "config.h"
#include "jobspec.h"
#include "log.h"
#include "media.h"
#include "problem.h"
#include "util.h"

#define MAX_PATHS 64

struct args {
    const char *spec, *audio, *output, *work_dir;
    const char *inputs[MAX_PATHS], *layers[MAX_PATHS];
    size_t n_inputs, n_layers;
    int threads;
    bool quiet;
};

struct progress {
    int64_t start_ms;
    int last_permille;
    bool quiet;
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: kadr-edit --spec FILE --input PATH... [--layer PATH...] [--audio PATH]\n"
               "                 --output PATH [--work-dir DIR] [--threads N] [--quiet]\n");
}

static void
on_progress(void *ud, double fraction)
{
    struct progress *p = ud;
    int permille = (int)(fraction * 1000);

    if (p->quiet || permille / 50 == p->last_permille / 50)
        return;
    p->last_permille = permille;
    fprintf(stderr, "progress %5.1f%% at %.2f s\n", fraction * 100,
            (double)(kd_mono_ms() - p->start_ms) / 1000.0);
}

static void
on_event(void *ud, const char *event, const char *detail)
{
    (void)ud;
    fprintf(stderr, "event %s: %s\n", event, detail);
}

static bool
parse_args(int argc, char **argv, struct args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char **list = NULL;
        size_t *n = NULL;

        if (strcmp(opt, "--quiet") == 0) {
            a->quiet = true;
            continue;
        }
        if (strcmp(opt, "--input") == 0 || strcmp(opt, "--layer") == 0) {
            list = opt[2] == 'i' ? a->inputs : a->layers;
            n = opt[2] == 'i' ? &a->n_inputs : &a->n_layers;
            /* Every following word up to the next option. */
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                if (*n >= MAX_PATHS)
                    return false;
                list[(*n)++] = argv[++i];
            }
            continue;
        }
        if (i + 1 >= argc)
            return false;
        if (strcmp(opt, "--spec") == 0) {
            a->spec = argv[++i];
        } else if (strcmp(opt, "--audio") == 0) {
            a->audio = argv[++i];
        } else if (strcmp(opt, "--output") == 0) {
            a->output = argv[++i];
        } else if (strcmp(opt, "--work-dir") == 0) {
            a->work_dir = argv[++i];
        } else if (strcmp(opt, "--threads") == 0) {
            int64_t v;

            if (kd_parse_i64(argv[++i], 0, 256, &v) != KD_OK)
                return false;
            a->threads = (int)v;
        } else {
            return false;
        }
    }
    return a->spec != NULL && a->output != NULL && a->n_inputs > 0;
}

int
main(int argc, char **argv)
{
    struct args a = {0};
    struct kd_config *cfg = NULL;
    struct kd_jobspec *spec = NULL;
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct kd_edit e = {0};
    struct progress prog = {.last_permille = -1};
    const char *layer_paths[MAX_PATHS] = {0};
    char cfg_err[512], tmpl[] = "/tmp/kadr-edit.XXXXXX";
    json_t *body = NULL;
    json_error_t jerr;
    struct rusage ru;
    size_t next_layer = 0;
    int status = 1;
    enum kd_err rc;

    signal(SIGPIPE, SIG_IGN);
    kd_log_init("kadr-edit", KD_LOG_WARN);
    if (!parse_args(argc, argv, &a)) {
        usage(stderr);
        return 2;
    }
    prog.quiet = a.quiet;
    if (kd_config_load(NULL, &cfg, cfg_err, sizeof(cfg_err)) != KD_OK) {
        fprintf(stderr, "kadr-edit: configuration: %s\n", cfg_err);
        goto out;
    }
    if ((body = json_load_file(a.spec, 0, &jerr)) == NULL) {
        fprintf(stderr, "kadr-edit: %s:%d: %s\n", a.spec, jerr.line, jerr.text);
        goto out;
    }
    if ((rc = kd_jobspec_parse(body, &cfg->limits, &spec, &pb)) != KD_OK) {
        fprintf(stderr, "kadr-edit: the spec is invalid (%s)\n", kd_err_name(rc));
        for (size_t i = 0; i < pb.n; i++)
            fprintf(stderr, "  %s: %s\n", pb.errors[i].field, pb.errors[i].message);
        goto out;
    }
    if (spec->n_inputs != a.n_inputs) {
        fprintf(stderr, "kadr-edit: the spec has %zu inputs, %zu --input paths given\n",
                spec->n_inputs, a.n_inputs);
        goto out;
    }
    for (size_t i = 0; i < spec->n_layers; i++) {
        if (spec->layers[i].type == KD_LAYER_TEXT)
            continue;
        if (next_layer >= a.n_layers) {
            fprintf(stderr, "kadr-edit: layers[%zu] needs a --layer path\n", i);
            goto out;
        }
        layer_paths[i] = a.layers[next_layer++];
    }
    if (next_layer != a.n_layers || spec->has_audio != (a.audio != NULL)) {
        fprintf(stderr, "kadr-edit: the --layer/--audio paths do not match the spec\n");
        goto out;
    }
    if (a.work_dir == NULL) {
        if (mkdtemp(tmpl) == NULL) {
            fprintf(stderr, "kadr-edit: mkdtemp: %s\n", strerror(errno));
            goto out;
        }
        a.work_dir = tmpl;
    } else if (kd_mkdir_p(a.work_dir, 0700) != KD_OK) {
        fprintf(stderr, "kadr-edit: cannot create %s\n", a.work_dir);
        goto out;
    }
    e.spec = spec;
    e.input_paths = a.inputs;
    e.layer_paths = layer_paths;
    e.audio_path = a.audio;
    e.out_path = a.output;
    e.work_dir = a.work_dir;
    e.lim = &cfg->limits;
    e.threads = a.threads;
    e.progress = on_progress;
    e.event = on_event;
    e.ud = &prog;
    prog.start_ms = kd_mono_ms();
    rc = kd_media_edit(&e);
    if (rc != KD_OK) {
        fprintf(stderr, "kadr-edit: failed (%s, %s): %s\n", kd_err_name(rc), kd_err_job_code(rc),
                e.err);
        goto out;
    }
    printf("output %s\nduration %.3f s\nwall %.3f s\n", a.output, e.duration_s,
           (double)(kd_mono_ms() - prog.start_ms) / 1000.0);
    for (size_t i = 0; i < e.n_thumbs; i++)
        printf("thumbnail %s\n", e.thumb_paths[i]);
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        printf("peak_rss %ld KiB\n", ru.ru_maxrss);
    status = 0;
out:
    kd_edit_clear(&e);
    kd_problem_clear(&pb);
    kd_jobspec_free(spec);
    json_decref(body);
    kd_config_free(cfg);
    return status;
}
