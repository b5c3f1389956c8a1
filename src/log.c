#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* Per-process context: programs are single-threaded (the worker forks rather
 * than starting threads), so plain statics are enough. */
static char prog_name[32] = "kadr";
static enum kd_log_level min_lvl = KD_LOG_INFO;
static char ctx_request[130];
static char ctx_job[40];
static int ctx_attempt;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
kd_log_init(const char *prog, enum kd_log_level min_level)
{
    snprintf(prog_name, sizeof(prog_name), "%s", prog);
    min_lvl = min_level;
}

int
kd_log_level_parse(const char *s)
{
    for (size_t i = 0; i < KD_ARRAY_LEN(level_names); i++)
        if (s != NULL && strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void
kd_log_set_request(const char *request_id)
{
    snprintf(ctx_request, sizeof(ctx_request), "%s", request_id != NULL ? request_id : "");
}

void
kd_log_set_job(const char *job_id, int attempt)
{
    snprintf(ctx_job, sizeof(ctx_job), "%s", job_id != NULL ? job_id : "");
    ctx_attempt = attempt;
}

/* Appends s as the body of a JSON string: quotes, backslashes and control
 * characters escaped; bytes that are not UTF-8 become U+FFFD so that every
 * line stays valid JSON whatever the message holds. */
static void
put_escaped(char *out, size_t cap, size_t *pos, const char *s)
{
    size_t len = strlen(s);

    for (size_t i = 0; i < len && *pos + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            out[(*pos)++] = '\\';
            out[(*pos)++] = (char)c;
        } else if (c == '\n') {
            out[(*pos)++] = '\\';
            out[(*pos)++] = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            *pos += (size_t)snprintf(out + *pos, cap - *pos, "\\u%04x", c);
        } else if (c < 0x80) {
            out[(*pos)++] = (char)c;
        } else {
            /* Copy one whole valid UTF-8 sequence, or replace one byte. */
            size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;

            if (i + n <= len && kd_utf8_valid(s + i, n) && *pos + n + 8 < cap) {
                memcpy(out + *pos, s + i, n);
                *pos += n;
                i += n - 1;
            } else {
                memcpy(out + *pos, "\xef\xbf\xbd", 3);
                *pos += 3;
            }
        }
    }
}

void
kd_vlog(enum kd_log_level level, const char *fmt, va_list ap)
{
    char msg[2048], line[4608], ts[32];
    size_t pos = 0;
    int saved = errno;

    if ((unsigned)level >= KD_ARRAY_LEN(level_names))
        level = KD_LOG_ERROR; /* a caller's bug must not index past the names */
    if (level < min_lvl)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    kd_time_rfc3339(kd_now_ms(), ts);
    pos += (size_t)snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"program\":\"",
                            ts, level_names[level]);
    put_escaped(line, sizeof(line), &pos, prog_name);
    pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\",\"pid\":%d", (int)getpid());
    /* request_id and job_id are on every line (null outside a request or
     * job), so that log tools can rely on the keys. */
    if (ctx_request[0] != '\0') {
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, ",\"request_id\":\"");
        put_escaped(line, sizeof(line), &pos, ctx_request);
        line[pos++] = '"';
    } else {
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, ",\"request_id\":null");
    }
    if (ctx_job[0] == '\0') {
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, ",\"job_id\":null");
    } else {
        /* The id comes from a queue message: escaped like any other text. */
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, ",\"job_id\":\"");
        put_escaped(line, sizeof(line), &pos, ctx_job);
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\",\"attempt\":%d", ctx_attempt);
    }
    pos += (size_t)snprintf(line + pos, sizeof(line) - pos, ",\"message\":\"");
    put_escaped(line, sizeof(line) - 3, &pos, msg);
    line[pos++] = '"';
    line[pos++] = '}';
    line[pos++] = '\n';
    /* One write per line keeps lines whole when several processes share stderr. */
    if (write(STDERR_FILENO, line, pos) < 0) {
        /* nowhere left to report it */
    }
    errno = saved;
}

void
kd_log(enum kd_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    kd_vlog(level, fmt, ap);
    va_end(ap);
}

void
kd_log_errno(enum kd_log_level level, int err, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    kd_log(level, "%s: %s", msg, strerror(err));
}
