/* jwt_fuzz.c: libFuzzer harness for access-token verification (src/jwt.c).
 *
 * Every input is verified as a token against a fixed key set: no input may
 * crash, leak or verify unless it carries a genuine signature, which the
 * fuzzer cannot make. Half of each run also decodes the input as base64url
 * and re-encodes it: a decoded text must encode back to itself (the decoder
 * is strict, so one byte string has one text). Built and run by
 * tests/fuzz/run.sh. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char secret[] = "0123456789abcdef0123456789abcdef-fuzz";
static char kid[] = "k1";
static char prev[] = "k0:0123456789abcdef0123456789abcdef-zero";
static char iss[] = "kadr";
static char aud[] = "kadr-api";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kd_config cfg;
    struct kd_jwt_claims c;
    char *text = malloc(size + 1);
    unsigned char raw[4096];
    char back[8192];
    size_t n = 0;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    memset(&cfg, 0, sizeof(cfg));
    cfg.jwt_secret = secret;
    cfg.jwt_kid = kid;
    cfg.jwt_previous_keys = prev;
    cfg.jwt_issuer = iss;
    cfg.jwt_audience = aud;
    cfg.jwt_ttl_s = 900;
    if (kd_jwt_verify(&cfg, text, 1800000000, &c) == KD_OK)
        abort(); /* a forgery got through */
    if (kd_b64url_decode((const char *)data, size, raw, sizeof(raw), &n) == KD_OK) {
        if (kd_b64url_encode(raw, n, back, sizeof(back)) != KD_OK || strlen(back) != size ||
            memcmp(back, data, size) != 0)
            abort();
    }
    free(text);
    return 0;
}
