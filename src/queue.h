/* queue.h: work delivery over Redis Streams, at least once.
 *
 * One stream per priority (<prefix>q:1 .. <prefix>q:10, 1 the most urgent),
 * one consumer group "workers". A message names a task kind ("edit", "probe")
 * and an id (job or media UUID); PostgreSQL holds the truth, so a message is
 * only a hint that work may be waiting and duplicates are harmless. */
#ifndef KD_QUEUE_H
#define KD_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

#define KD_QUEUE_PRIORITIES 10
#define KD_QUEUE_GROUP "workers"

struct kd_queue;

struct kd_queue_msg {
    char stream[64];  /* which stream it came from */
    char id[48];      /* stream entry id, "1700000000000-0" */
    char kind[16];    /* "edit", "probe" */
    char ref[48];     /* the job or media id */
    int priority;
};

struct kd_queue_stats {
    int64_t length[KD_QUEUE_PRIORITIES];  /* entries per stream (XLEN) */
    int64_t pending[KD_QUEUE_PRIORITIES]; /* delivered, not acknowledged */
    int64_t lag[KD_QUEUE_PRIORITIES];     /* not yet delivered to the group */
    int64_t consumers;                    /* consumers of the group, all streams */
};

/* Does not connect yet; connections are made lazily and remade after loss. */
KD_MUST_CHECK enum kd_err kd_queue_open(const struct kd_config *cfg, struct kd_queue **out);
void kd_queue_close(struct kd_queue *q); /* NULL is a no-op */
/* KD_OK when Redis answers PING; KD_EUNAVAIL otherwise. */
KD_MUST_CHECK enum kd_err kd_queue_ping(struct kd_queue *q);
/* Appends a message to the stream of priority (clamped to 1..10). KD_EINVAL
 * when kind or ref is too long for struct kd_queue_msg. */
KD_MUST_CHECK enum kd_err kd_queue_push(struct kd_queue *q, const char *kind, const char *ref,
                                        int priority);
/* Delivers the next message to consumer, the most urgent stream first,
 * waiting up to wait_ms. KD_OK fills *msg; KD_EAGAIN: nothing arrived;
 * KD_EUNAVAIL: Redis is down (the caller backs off). Creates the group when
 * missing. */
KD_MUST_CHECK enum kd_err kd_queue_next(struct kd_queue *q, const char *consumer, int wait_ms,
                                        struct kd_queue_msg *msg);
/* Takes over one message that another consumer left unacknowledged for at
 * least idle_ms (XAUTOCLAIM). KD_EAGAIN when there is none. */
KD_MUST_CHECK enum kd_err kd_queue_claim_stale(struct kd_queue *q, const char *consumer,
                                               int64_t idle_ms, struct kd_queue_msg *msg);
/* Acknowledges and deletes the entry. */
KD_MUST_CHECK enum kd_err kd_queue_ack(struct kd_queue *q, const struct kd_queue_msg *msg);
KD_MUST_CHECK enum kd_err kd_queue_stats(struct kd_queue *q, struct kd_queue_stats *out);

/* A lock with expiry, for electing one leader among several processes:
 * takes the key <prefix><name> for token when it is free, or renews it when
 * token holds it already, for ttl_ms. *held (set on KD_OK only): token
 * holds it now. KD_EUNAVAIL when Redis does not answer: then nobody can
 * prove the lead, and the caller acts as a follower. */
KD_MUST_CHECK enum kd_err kd_queue_lock(struct kd_queue *q, const char *name, const char *token,
                                        int64_t ttl_ms, bool *held);
/* Releases the lock if (and only if) token holds it. */
KD_MUST_CHECK enum kd_err kd_queue_unlock(struct kd_queue *q, const char *name,
                                          const char *token);
/* Sets the key <prefix><name> when it is missing. *created is true when it
 * was (set on KD_OK only): the first call ever, or Redis lost its data since
 * the last one (the caller then re-enqueues what PostgreSQL says is
 * waiting). */
KD_MUST_CHECK enum kd_err kd_queue_marker(struct kd_queue *q, const char *name, bool *created);

#endif
