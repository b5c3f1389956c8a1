/* tasks.h: what deliveries and outcomes mean for PostgreSQL.
 *
 * Taking a task: a probe (ref = media id) runs while its media is
 * 'processing'; an edit (ref = job id) is claimed with one conditional
 * UPDATE that raises its lease generation, so two workers can never both
 * hold it and a stale holder's writes (all conditional on the generation)
 * change nothing. Deliveries are hints: every duplicate is recognised from
 * the rows and acknowledged, and a delivery is acknowledged only after
 * PostgreSQL holds the outcome. */
#ifndef KD_WORKER_TASKS_H
#define KD_WORKER_TASKS_H

#include "proto.h"
#include "queue.h"
#include "slot.h"
#include "worker.h"

/* Handles one delivery with s, a FREE slot: acknowledges it when there is
 * nothing to do, leaves it unacknowledged when another live worker holds the
 * job, or starts the task in s (RUNNING; or FINISHING when it failed before
 * its child started). KD_EUNAVAIL: PostgreSQL or Redis is down; the delivery
 * stays unacknowledged and the caller backs off. */
KD_MUST_CHECK enum kd_err kd_task_dispatch(struct kd_worker *w, const struct kd_queue_msg *msg,
                                           struct kd_slot *s);

/* For a RUNNING edit: writes progress when it grew (at most every
 * worker_progress_ms) and renews the lease at least every 500 ms, learning
 * from the same statement whether the job was cancelled or taken over; kills
 * the child in those cases. */
void kd_task_heartbeat(struct kd_worker *w, struct kd_slot *s, int64_t now_ms);

/* A kd_slot_event_fn (ud is the worker): records a child's warning as a job
 * event, at most 20 per attempt. */
void kd_task_event(void *ud, struct kd_slot *s, const struct kd_proto_msg *m);

/* Writes the outcome of a FINISHING slot and acknowledges its delivery.
 * KD_OK: done, the caller releases the slot. Otherwise s->retry_at_ms says
 * when to try again (the steps already done are not repeated). */
KD_MUST_CHECK enum kd_err kd_task_finish(struct kd_worker *w, struct kd_slot *s);

/* Gives up writing an outcome (shutdown, or too long): deletes outputs
 * stored for it and leaves the delivery unacknowledged, to be delivered
 * again once its lease has expired. */
void kd_task_abandon(struct kd_worker *w, struct kd_slot *s);

/* Records the worker in the workers table (name, slots, busy, seen_at) for
 * GET /api/v1/admin/queue; leaving deletes the row. Best effort. */
void kd_task_announce(struct kd_worker *w, size_t busy, bool leaving);

#endif
