/* worker.h: the state kadr-worker's files share (internal to the program).
 *
 * The parent is single-threaded and owns every connection: PostgreSQL,
 * Redis and storage are used only here, never in a task's child. */
#ifndef KD_WORKER_WORKER_H
#define KD_WORKER_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
#include "queue.h"
#include "slot.h"
#include "storage.h"

struct kd_worker {
    const struct kd_config *cfg;
    struct kd_db *db;
    struct kd_queue *queue;
    struct kd_storage *storage;
    char consumer[128]; /* Redis consumer name, also jobs.worker */
    char run_dir[4096]; /* this process's work directories (kd_workdir_claim) */
    int run_lock;       /* its lock, held while the process lives */
    int64_t lease_ms;   /* a job's lease lasts this long past each heartbeat */
    struct kd_slot *slots;
    size_t n_slots;
    uint64_t seq;        /* makes probe work directories unique */
    int db_failures;     /* heartbeats that met PostgreSQL down, in a row */
    int64_t db_retry_ms; /* no heartbeat before this (kd_mono_ms) */
    bool stopping;       /* SIGTERM seen: finish, take nothing new */
};

#endif
