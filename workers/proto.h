/* proto.h: the lines a task's child process writes to the worker over its pipe.
 *
 * One JSON object per line, in this order: any number of
 *   {"progress":0.42}                          (0..1, never decreasing)
 *   {"event":"warning","detail":"..."}
 *   {"store":0}                                (an edit stores output 0 now)
 *   {"store":0,"upload_id":"..."}              (in parts: the upload to abort
 *                                               should the child be killed)
 * then exactly one result line, after which the child exits with status 0:
 *   {"ok":true, ...payload...}
 *   {"ok":false,"error":"invalid_media","message":"..."}
 *   {"ok":false,"error":"internal","message":"...","unavailable":true}
 *                                              (the store did not answer: the
 *                                               attempt did not fail by itself)
 * The payload of a probe is one file description ({"kind","sha256","probe"});
 * that of an edit is {"duration":s,"output":<file>,"thumbs":[<file>...]}.
 *
 * File names never travel over the pipe: the child processed untrusted
 * input, so the parent decides where outputs are (kd_proto_output_name,
 * kd_proto_thumb_name, relative to the work directory) and checks them
 * itself before storing anything. */
#ifndef KD_WORKER_PROTO_H
#define KD_WORKER_PROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* A line is at most this long; a child that writes more is broken. */
#define KD_PROTO_LINE_MAX (1024 * 1024)
/* Event details and failure messages are cut to this many bytes. */
#define KD_PROTO_TEXT_MAX 1024

enum kd_proto_type { KD_PROTO_PROGRESS, KD_PROTO_EVENT, KD_PROTO_STORE, KD_PROTO_RESULT };

/* Outputs an edit stores: the main one (0) and up to 20 thumbnails. */
#define KD_PROTO_MAX_FILES 21
/* The longest multipart upload id passed on (S3's are about 100 bytes). */
#define KD_PROTO_UPLOAD_ID_MAX 1024

struct kd_proto_msg {
    enum kd_proto_type type;
    double progress;  /* PROGRESS: 0..1 */
    char event[32];   /* EVENT: its name ("warning") */
    char *detail;     /* EVENT: owned, at most KD_PROTO_TEXT_MAX bytes, valid UTF-8 */
    int store_index;  /* STORE: 0 .. KD_PROTO_MAX_FILES - 1 */
    char *upload_id;  /* STORE: owned; NULL when not in parts */
    bool ok;          /* RESULT */
    bool unavailable; /* RESULT, !ok: the store did not answer */
    char error[32];   /* RESULT, !ok: a job error code of the API */
    char *message;    /* RESULT, !ok: owned, capped like detail */
    json_t *payload;  /* RESULT, ok: the whole line object (owned) */
};

/* Decodes one line (without its newline). KD_EINVAL with a reason in why
 * when the line is not one of the messages above; KD_ENOMEM. An unknown
 * error code in a result becomes "internal". Clear *out afterwards. */
KD_MUST_CHECK enum kd_err kd_proto_decode(const char *line, size_t len, struct kd_proto_msg *out,
                                          char *why, size_t why_len);
void kd_proto_msg_clear(struct kd_proto_msg *m); /* frees detail, message, payload */

/* What a child reports about one file it produced (or probed). */
struct kd_proto_file {
    char kind[16];   /* video, audio, image, subtitle, other */
    char sha256[65]; /* lowercase hex */
    json_t *probe;   /* borrowed from the payload */
};

/* Reads the file description at key of obj (or obj itself when key is
 * NULL); KD_EINVAL when it is missing or malformed. */
KD_MUST_CHECK enum kd_err kd_proto_file_get(const json_t *obj, const char *key,
                                            struct kd_proto_file *out);

/* True if code is one of the job error codes of the API. */
bool kd_proto_code_valid(const char *code);

/* The names of a task's outputs inside its work directory. */
KD_MUST_CHECK enum kd_err kd_proto_output_name(const char *ext, char *out, size_t out_len);
KD_MUST_CHECK enum kd_err kd_proto_thumb_name(size_t n, char *out, size_t out_len); /* n from 1 */

/* Child side: write one message as a line to fd, whole (retrying short
 * writes). KD_EIO when the parent is gone. */
KD_MUST_CHECK enum kd_err kd_proto_send(int fd, const json_t *obj);
KD_MUST_CHECK enum kd_err kd_proto_send_progress(int fd, double fraction);
KD_MUST_CHECK enum kd_err kd_proto_send_event(int fd, const char *event, const char *detail);
KD_MUST_CHECK enum kd_err kd_proto_send_error(int fd, const char *code, const char *message);
/* The store did not answer (KD_EUNAVAIL): an "internal" failure marked
 * "unavailable", which the parent hands back instead of counting. */
KD_MUST_CHECK enum kd_err kd_proto_send_unavailable(int fd, const char *message);
/* Output index is being stored now; upload_id (may be NULL) names its
 * multipart upload. */
KD_MUST_CHECK enum kd_err kd_proto_send_store(int fd, int index, const char *upload_id);

/* Parent side: splits the bytes read from a pipe into lines. */
struct kd_linereader {
    char *data;
    size_t len;   /* bytes held */
    size_t start; /* first byte not yet returned */
    size_t alloc;
    size_t cap; /* longest line accepted, newline excluded */
};

void kd_linereader_init(struct kd_linereader *lr, size_t cap);
void kd_linereader_clear(struct kd_linereader *lr);
/* Appends bytes. KD_ELIMIT when an unfinished line would exceed cap. */
KD_MUST_CHECK enum kd_err kd_linereader_push(struct kd_linereader *lr, const void *p, size_t n);
/* Hands out the next whole line (NUL-terminated, newline removed), valid
 * until the next push or clear. KD_EAGAIN when no whole line is held. */
KD_MUST_CHECK enum kd_err kd_linereader_next(struct kd_linereader *lr, char **line, size_t *len);
/* Bytes held that do not end a line yet (what an exiting child left cut). */
size_t kd_linereader_pending(const struct kd_linereader *lr);

#endif
