/* jobspec_fuzz.c: libFuzzer harness for the job spec parser.
 *
 * Feeds arbitrary bytes through the API's own path: kd_json_parse (UTF-8,
 * depth and duplicate checks), then kd_jobspec_parse with the default
 * limits, then kd_jobspec_media_refs on success. Sanitizers catch memory
 * errors and leaks; the checks below catch broken invariants. Not built by
 * default. From the top of the tree:
 *
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Isrc tests/fuzz/jobspec_fuzz.c src/jobspec.c src/json.c src/problem.c \
 *     src/util.c src/err.c src/log.c $(pkg-config --cflags --libs jansson openssl) \
 *     -o jobspec_fuzz
 *   ./jobspec_fuzz -max_total_time=60 -max_len=4096
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobspec.h"
#include "json.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct kd_limits lim = {
    .body_max_bytes = 1048576,
    .upload_max_bytes = 1048576,
    .max_inputs = 50,
    .max_layers = 20,
    .max_text_bytes = 4096,
    .max_width = 7680,
    .max_height = 4320,
    .max_pixels = 33177600,
    .max_duration_s = 14400,
    .max_streams = 16,
    .max_metadata_bytes = 4096,
};

/* What every accepted spec must satisfy, whatever the input was. */
static void
check_spec(const struct kd_jobspec *s)
{
    if (s->n_inputs < 1 || (int64_t)s->n_inputs > lim.max_inputs ||
        (int64_t)s->n_layers > lim.max_layers || s->priority < 1 || s->priority > 10)
        abort();
    for (size_t i = 0; i < s->n_inputs; i++) {
        const struct kd_input *in = &s->inputs[i];

        if (!kd_uuid_valid(in->media_id) || !(in->start_s >= 0) ||
            (!isnan(in->end_s) && !(in->end_s > in->start_s)))
            abort();
    }
    for (size_t i = 0; i < s->n_layers; i++) {
        const struct kd_layer *l = &s->layers[i];

        if (l->type == KD_LAYER_TEXT && (l->text == NULL || l->text[0] == '\0' ||
                                         (int64_t)strlen(l->text) > lim.max_text_bytes ||
                                         !kd_utf8_valid(l->text, strlen(l->text))))
            abort();
    }
    if (s->output.width % 2 != 0 || s->output.height % 2 != 0 ||
        (int64_t)s->output.width * s->output.height > lim.max_pixels)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kd_problem pb = KD_PROBLEM_INIT;
    struct kd_jobspec *spec = NULL;
    struct kd_media_ref *refs = NULL;
    json_t *body = NULL;
    size_t n = 0;
    enum kd_err rc;

    if (kd_json_parse((const char *)data, size, &body, NULL, 0) != KD_OK)
        return 0;
    rc = kd_jobspec_parse(body, &lim, &spec, &pb);
    if (rc == KD_OK) {
        if (pb.n != 0)
            abort();
        check_spec(spec);
        if (kd_jobspec_media_refs(spec, &refs, &n) == KD_OK)
            free(refs);
    } else if (rc == KD_EINVAL) {
        /* A refusal always says why, with valid UTF-8 paths, once a field. */
        if (pb.n == 0)
            abort();
        for (size_t i = 0; i < pb.n; i++) {
            if (!kd_utf8_valid(pb.errors[i].field, strlen(pb.errors[i].field)))
                abort();
            for (size_t j = 0; j < i; j++)
                if (strcmp(pb.errors[i].field, pb.errors[j].field) == 0)
                    abort();
        }
    }
    kd_jobspec_free(spec);
    kd_problem_clear(&pb);
    json_decref(body);
    return 0;
}
