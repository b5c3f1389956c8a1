/* kadr-edit: runs one edit of the media engine on local files, without the
 * API, queue or database, exactly as a worker runs a job: the same child
 * process (kd_child_spawn, with the worker's rlimits from the
 * configuration), the same body (kd_run_edit: the spec parsed again, the
 * engine, the output probed and hashed, the outputs stored), the same
 * pipe protocol. The store is a local one in <work dir>/store, whatever
 * the configuration says; the output is then moved to --output. For
 * debugging the engine and for benchmarks.
 *
 *   kadr-edit --spec spec.json --input PATH... [--layer PATH...]
 *             [--audio PATH] --output PATH [--work-dir DIR] [--threads N]
 *             [--quiet]
 *
 * The media ids in the spec are placeholders: the inputs take the --input
 * paths in order, the video/image/subtitle layers the --layer paths in
 * order, the audio track the --audio path. Limits, the thread count
 * (worker_threads, unless --threads) and the child's rlimits come from the
 * usual configuration ($KADR_CONFIG and the environment). Prints the
 * output, its duration, the wall time, the thumbnails and the job child's
 * peak RSS (from wait4). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "child.h"
#include "config.h"
#include "jobspec.h"
#include "json.h"
#include "log.h"
#include "problem.h"
#include "proto.h"
#include "run.h"
#include "storage.h"
#include "util.h"

/* As the worker gives a job child: a few descriptors of its own, one per
 * file and thumbnail. */
#define NOFILE_BASE 32

#define MAX_PATHS 64

struct args {
    const char *spec, *audio, *output, *work_dir;
    const char *inputs[MAX_PATHS], *layers[MAX_PATHS];
    size_t n_inputs, n_layers;
    int threads; /* -1: worker_threads from the configuration */
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
on_progress(struct progress *p, double fraction)
{
    int permille = (int)(fraction * 1000);

    if (p->quiet || permille / 50 == p->last_permille / 50)
        return;
    p->last_permille = permille;
    fprintf(stderr, "progress %5.1f%% at %.2f s\n", fraction * 100,
            (double)(kd_mono_ms() - p->start_ms) / 1000.0);
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

/* Reads the child's protocol lines until its pipe closes: progress and
 * events to stderr, the result kept in *res. False when the child broke
 * the protocol or passed the deadline (it is then killed). */
static bool
follow_child(pid_t pid, int fd, int64_t deadline_ms, struct progress *prog,
             struct kd_proto_msg *res, bool *has_res)
{
    struct kd_linereader lr;
    bool ok = true;

    kd_linereader_init(&lr, KD_PROTO_LINE_MAX);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char buf[65536], *line, why[160];
        size_t len;
        ssize_t n;

        if (kd_mono_ms() >= deadline_ms) {
            fprintf(stderr, "kadr-edit: the job passed its time limit; killed\n");
            kd_child_kill(pid);
            ok = false;
            break;
        }
        if (poll(&pfd, 1, 200) <= 0)
            continue;
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break;
        if (kd_linereader_push(&lr, buf, (size_t)n) != KD_OK) {
            ok = false;
            break;
        }
        while (kd_linereader_next(&lr, &line, &len) == KD_OK) {
            struct kd_proto_msg m = {0};

            if (kd_proto_decode(line, len, &m, why, sizeof(why)) != KD_OK) {
                fprintf(stderr, "kadr-edit: the job process broke the protocol: %s\n", why);
                kd_child_kill(pid);
                ok = false;
                continue;
            }
            if (m.type == KD_PROTO_PROGRESS) {
                on_progress(prog, m.progress);
            } else if (m.type == KD_PROTO_EVENT) {
                fprintf(stderr, "event %s: %s\n", m.event, m.detail);
            } else if (m.type == KD_PROTO_STORE) {
                /* an output being stored: nothing to do here */
            } else if (!*has_res) {
                *res = m;
                *has_res = true;
                continue; /* now *res's */
            }
            kd_proto_msg_clear(&m);
        }
    }
    kd_linereader_clear(&lr);
    return ok;
}

/* Moves the child's output from the work directory to where it was asked
 * for (a copy when they are on different file systems). */
static bool
move_output(const char *from, const char *to)
{
    char *data = NULL;
    size_t len = 0;
    FILE *f;
    bool ok;

    if (rename(from, to) == 0)
        return true;
    if (errno != EXDEV || kd_read_file(from, (size_t)1 << 40, &data, &len) != KD_OK)
        return false;
    ok = (f = fopen(to, "wb")) != NULL && fwrite(data, 1, len, f) == len;
    if (f != NULL && fclose(f) != 0)
        ok = false;
    free(data);
    return ok;
}

/* An absolute path for the child, which runs in the work directory. */
static const char *
absolute(const char *path, char *buf)
{
    return realpath(path, buf);
}

int
main(int argc, char **argv)
{
    struct args a = {.threads = -1};
    struct kd_config *cfg = NULL;
    struct kd_jobspec *spec = NULL;
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct progress prog = {.last_permille = -1};
    struct kd_proto_msg res = {0};
    static char in_abs[MAX_PATHS][PATH_MAX], layer_abs[MAX_PATHS][PATH_MAX];
    const char *in_paths[MAX_PATHS] = {0}, *layer_paths[MAX_PATHS] = {0};
    char audio_abs[PATH_MAX], work_abs[PATH_MAX];
    char cfg_err[512], tmpl[] = "/tmp/kadr-edit.XXXXXX", store_dir[PATH_MAX + 8];
    char keys[KD_PROTO_MAX_FILES][32], obj_path[PATH_MAX];
    const char *key_ptrs[KD_PROTO_MAX_FILES];
    struct kd_storage *store = NULL;
    size_t n_keys;
    char *spec_text = NULL;
    size_t spec_len = 0, next_layer = 0;
    json_t *body = NULL;
    struct rusage ru;
    bool has_res = false, followed;
    pid_t pid = -1;
    int fd = -1, status = 1, wstatus = 0;
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
    if (kd_read_file(a.spec, (size_t)cfg->limits.body_max_bytes, &spec_text, &spec_len) != KD_OK ||
        kd_json_parse(spec_text, spec_len, &body, cfg_err, sizeof(cfg_err)) != KD_OK) {
        fprintf(stderr, "kadr-edit: %s: cannot read the spec as JSON\n", a.spec);
        goto out;
    }
    /* Checked here too, to match the paths to it; the child parses the
     * text again, as a job child does with the stored spec. */
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
    for (size_t i = 0; i < a.n_inputs; i++) {
        if ((in_paths[i] = absolute(a.inputs[i], in_abs[i])) == NULL) {
            fprintf(stderr, "kadr-edit: %s: %s\n", a.inputs[i], strerror(errno));
            goto out;
        }
    }
    for (size_t i = 0; i < spec->n_layers; i++) {
        if (spec->layers[i].type == KD_LAYER_TEXT)
            continue;
        if (next_layer >= a.n_layers) {
            fprintf(stderr, "kadr-edit: layers[%zu] needs a --layer path\n", i);
            goto out;
        }
        if ((layer_paths[i] = absolute(a.layers[next_layer], layer_abs[i])) == NULL) {
            fprintf(stderr, "kadr-edit: %s: %s\n", a.layers[next_layer], strerror(errno));
            goto out;
        }
        next_layer++;
    }
    if (next_layer != a.n_layers || spec->has_audio != (a.audio != NULL)) {
        fprintf(stderr, "kadr-edit: the --layer/--audio paths do not match the spec\n");
        goto out;
    }
    if (a.audio != NULL && absolute(a.audio, audio_abs) == NULL) {
        fprintf(stderr, "kadr-edit: %s: %s\n", a.audio, strerror(errno));
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
    if (absolute(a.work_dir, work_abs) == NULL) {
        fprintf(stderr, "kadr-edit: the work directory cannot be used\n");
        goto out;
    }
    /* The outputs go to a local store of our own, as a job child's go to
     * the service's. */
    n_keys = 1 + (size_t)spec->thumbnails.count;
    if (n_keys > KD_PROTO_MAX_FILES ||
        kd_snprintf(store_dir, sizeof(store_dir), "%s/store", work_abs) != KD_OK ||
        kd_mkdir_p(store_dir, 0700) != KD_OK) {
        fprintf(stderr, "kadr-edit: cannot make the store in %s\n", work_abs);
        goto out;
    }
    free(cfg->storage_backend);
    free(cfg->storage_root);
    if ((cfg->storage_backend = strdup("local")) == NULL ||
        (cfg->storage_root = strdup(store_dir)) == NULL || kd_storage_open(cfg, &store) != KD_OK) {
        fprintf(stderr, "kadr-edit: cannot open the store in %s\n", store_dir);
        goto out;
    }
    for (size_t i = 0; i < n_keys; i++) {
        (void)snprintf(keys[i], sizeof(keys[i]), i == 0 ? "edit/main" : "edit/thumb-%zu", i);
        key_ptrs[i] = keys[i];
    }
    {
        int64_t timeout_ms = cfg->worker_job_timeout_s * 1000;
        struct kd_run_edit args = {
            .spec_text = spec_text,
            .spec_len = spec_len,
            .store = store,
            .out_keys = key_ptrs,
            .n_out_keys = n_keys,
            .input_paths = in_paths,
            .n_inputs = spec->n_inputs,
            .layer_paths = layer_paths,
            .n_layers = spec->n_layers,
            .audio_path = a.audio != NULL ? audio_abs : NULL,
            .work_dir = work_abs,
            .lim = &cfg->limits,
            .threads = a.threads >= 0 ? a.threads : (int)cfg->worker_threads,
            .deadline_ms = kd_mono_ms() + timeout_ms,
        };
        struct kd_child_limits lim = {
            .mem_mb = cfg->worker_mem_limit_mb,
            .cpu_s = cfg->worker_cpu_limit_s,
            .file_mb = cfg->worker_file_limit_mb,
            .nofile = NOFILE_BASE + (int64_t)(a.n_inputs + a.n_layers + 1) + spec->thumbnails.count,
            .inet = false, /* local files only: no sockets at all */
        };

        prog.start_ms = kd_mono_ms();
        if (kd_child_spawn(&lim, work_abs, kd_run_edit, &args, &pid, &fd) != KD_OK) {
            fprintf(stderr, "kadr-edit: cannot start the job process\n");
            goto out;
        }
        followed = follow_child(pid, fd, args.deadline_ms + 5000, &prog, &res, &has_res);
    }
    while (wait4(pid, &wstatus, 0, &ru) < 0 && errno == EINTR) {
    }
    if (!followed || !has_res) {
        fprintf(stderr, "kadr-edit: the job process ended without a result (status %d)\n", wstatus);
        goto out;
    }
    if (!res.ok) {
        fprintf(stderr, "kadr-edit: failed (%s): %s\n", res.error, res.message);
        goto out;
    }
    if (kd_storage_local_path(store, key_ptrs[0], obj_path, sizeof(obj_path)) != KD_OK ||
        !move_output(obj_path, a.output)) {
        fprintf(stderr, "kadr-edit: cannot move the output to %s: %s\n", a.output, strerror(errno));
        goto out;
    }
    printf("output %s\nduration %.3f s\nwall %.3f s\n", a.output,
           json_number_value(json_object_get(res.payload, "duration")),
           (double)(kd_mono_ms() - prog.start_ms) / 1000.0);
    for (size_t i = 0; i < json_array_size(json_object_get(res.payload, "thumbs")); i++)
        if (i + 1 < n_keys &&
            kd_storage_local_path(store, key_ptrs[i + 1], obj_path, sizeof(obj_path)) == KD_OK)
            printf("thumbnail %s\n", obj_path);
    printf("peak_rss %ld KiB\n", ru.ru_maxrss);
    status = 0;
out:
    if (fd >= 0)
        close(fd);
    kd_proto_msg_clear(&res);
    kd_storage_close(store);
    kd_problem_clear(&pb);
    kd_jobspec_free(spec);
    json_decref(body);
    free(spec_text);
    kd_config_free(cfg);
    return status;
}
