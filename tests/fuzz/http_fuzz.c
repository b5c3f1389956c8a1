/* http_fuzz.c: libFuzzer harness for the request parsing of kadr-api
 * (fcgi/http.c): the request line (method, REQUEST_URI percent-decoding,
 * the query string), headers (request id, Content-Length, Content-Type),
 * list paging (limit, base64url cursors) and Content-Disposition.
 *
 * The input is split at newlines into REQUEST_URI, QUERY_STRING,
 * REQUEST_METHOD, HTTP_X_REQUEST_ID, CONTENT_LENGTH and CONTENT_TYPE, in
 * that order, as FastCGI would hand them over. Checked invariants: a parsed
 * path starts with '/' and holds no NUL, query values hold no NUL, the
 * request id is always valid, and a cursor that decodes encodes back to the
 * same text. Built and run by tests/fuzz/run.sh. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELDS 6

static const char *const names[FIELDS] = {
    "REQUEST_URI=",       "QUERY_STRING=",   "REQUEST_METHOD=",
    "HTTP_X_REQUEST_ID=", "CONTENT_LENGTH=", "CONTENT_TYPE="};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *env[FIELDS + 1] = {NULL};
    const char *p = (const char *)data, *end = p + size;
    struct kd_req rq;
    struct kd_page pg;
    struct kd_problem pb = KD_PROBLEM_INIT;
    char cursor[KD_CURSOR_MAX + 1], enc[2 * KD_CURSOR_MAX + 8];
    char *dec = NULL, *disp = NULL;
    int64_t len;
    size_t i, n = 0;

    if (size > 16384)
        return 0;
    /* Straight decoders on the whole input first. */
    if (memchr(data, '\0', size) == NULL) {
        char *whole = strndup((const char *)data, size);

        if (whole == NULL)
            return 0;
        if (kd_percent_decode(whole, size, true, &dec) == KD_OK) {
            if (strlen(dec) > size)
                abort();
            free(dec);
            dec = NULL;
        }
        if (kd_cursor_decode(whole, cursor, sizeof(cursor)) == KD_OK) {
            if (kd_cursor_encode(cursor, enc, sizeof(enc)) != KD_OK || strcmp(enc, whole) != 0)
                abort();
        }
        if (kd_content_disposition(whole, &disp) == KD_OK) {
            if (strpbrk(disp, "\r\n") != NULL)
                abort();
            free(disp);
        }
        (void)kd_content_type_is_json(whole);
        free(whole);
    }
    /* Then as a request. */
    for (i = 0; i < FIELDS && p <= end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t flen = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        size_t nlen = strlen(names[i]);

        if (memchr(p, '\0', flen) != NULL)
            goto out;
        if ((env[n] = malloc(nlen + flen + 1)) == NULL)
            goto out;
        memcpy(env[n], names[i], nlen);
        memcpy(env[n] + nlen, p, flen);
        env[n][nlen + flen] = '\0';
        n++;
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    if (kd_req_init(&rq, NULL, env, NULL) == KD_OK) {
        if (rq.path == NULL || rq.path[0] != '/')
            abort();
        for (i = 0; i < rq.n_query; i++)
            if (rq.query[i].name == NULL || rq.query[i].value == NULL)
                abort();
        if (!kd_request_id_valid(rq.request_id))
            abort();
        (void)kd_req_query_repeated(&rq);
        (void)kd_req_content_length(&rq, &len);
        (void)kd_content_type_is_json(kd_req_param(&rq, "CONTENT_TYPE"));
        if (kd_page_parse(&rq, &pg, &pb) == KD_OK) {
            char micros[24], id[KD_UUID_STRLEN + 1];

            if (pg.limit < 1 || pg.limit > KD_LIST_LIMIT_MAX)
                abort();
            if (pg.has_cursor && kd_cursor_split(pg.cursor, micros, id) == KD_OK &&
                !kd_uuid_valid(id))
                abort();
        }
        kd_problem_clear(&pb);
        kd_req_clear(&rq);
    } else {
        kd_req_clear(&rq);
    }
out:
    for (i = 0; i < n; i++)
        free(env[i]);
    return 0;
}
