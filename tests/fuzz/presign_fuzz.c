/* presign_fuzz.c: libFuzzer harness for the presigned-URL check
 * (kd_storage_verify, src/storage.c), which nginx calls for every upload
 * and download before it touches a byte.
 *
 * The first input byte picks the method, the rest is the request URI. No
 * input may crash or leak, and none may verify unless it is one of the
 * URLs the harness signed itself (the corpus holds such URLs, so the
 * fuzzer mutates genuine ones): any other accepted URI is a forgery. A
 * verified request must name a valid key. Built and run by
 * tests/fuzz/run.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "storage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define NOW 1800000000

static struct kd_config *cfg;
static struct kd_storage *st;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];

    (void)argc;
    (void)argv;
    setenv("KADR_URL_SIGNING_SECRET", "fuzz-fuzz-fuzz-fuzz-fuzz-fuzz-fuzz-fuzz", 1);
    setenv("KADR_STORAGE_ROOT", "/tmp/kadr-fuzz-storage", 1);
    setenv("KADR_PUBLIC_URL", "http://127.0.0.1:8080", 1);
    setenv("KADR_STORAGE_BACKEND", "local", 1);
    unsetenv("KADR_CONFIG");
    if (kd_config_load(NULL, &cfg, err, sizeof(err)) != KD_OK ||
        kd_storage_open(cfg, &st) != KD_OK) {
        fprintf(stderr, "presign_fuzz: set-up failed: %s\n", err);
        abort();
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kd_presigned_req req;
    const char *method;
    char *uri;

    if (size < 1 || size > 8192)
        return 0;
    method = (data[0] & 1) != 0 ? "PUT" : "GET";
    if ((uri = strndup((const char *)data + 1, size - 1)) == NULL)
        return 0;
    if (strlen(uri) == size - 1 && kd_storage_verify(st, method, uri, NOW, &req) == KD_OK) {
        if (!kd_storage_key_valid(req.key) || strcmp(req.method, method) != 0 ||
            req.expires_at < NOW)
            abort();
    }
    free(uri);
    return 0;
}
