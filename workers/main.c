/* kadr-worker: takes tasks from the queue and runs each in a sandboxed child.
 *
 * The parent is single-threaded so that fork is safe; it owns the database,
 * Redis and storage connections, reads its children's pipes with poll(), and
 * writes every state change to PostgreSQL before acknowledging a delivery.
 * See doc/internals/worker.md. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "policy.h"
#include "queue.h"
#include "slot.h"
#include "storage.h"
#include "tasks.h"
#include "util.h"
#include "worker.h"

/* How often stale deliveries (of workers that died) are looked for. */
#define CLAIM_EVERY_MS 5000
/* Blocking reads of the queue: short while children need their pipes read
 * and heartbeats written, longer when idle. Both keep signals prompt. */
#define WAIT_BUSY_MS 200
#define WAIT_IDLE_MS 1000
/* How often the worker records itself as online (workers table). Due work
 * without a delivery (scheduled jobs, retries, lost pushes) is kadr-scheduler's. */
#define ANNOUNCE_EVERY_MS 2000

/* Poll interval of the pipes when no queue read follows. */
#define POLL_MS 100
/* An outcome that cannot be written for this long is given up on: by then
 * the lease has long expired and another worker may run the job again. */
#define FINISH_GIVE_UP_MS (10 * 60 * 1000)

static volatile sig_atomic_t stop_signals;

static void
on_stop(int sig)
{
    (void)sig;
    if (stop_signals < 2)
        stop_signals++;
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: kadr-worker [--config PATH] [--check-config]\n"
               "  --config PATH    configuration file (default $KADR_CONFIG)\n"
               "  --check-config   validate the configuration and exit\n"
               "Runs until SIGTERM or SIGINT; a second signal cuts the grace period short.\n");
}

/* A daemon started with 0, 1 or 2 closed would hand those numbers to its
 * sockets, and a stray write to "stderr" would then go to PostgreSQL. */
static bool
standard_fds_open(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            continue;
        int n = open("/dev/null", O_RDWR);

        if (n < 0)
            return false;
        if (n != fd) {
            dup2(n, fd);
            close(n);
        }
    }
    return true;
}

static size_t
busy_slots(const struct kd_worker *w)
{
    size_t n = 0;

    for (size_t i = 0; i < w->n_slots; i++)
        n += !kd_slot_is_free(&w->slots[i]);
    return n;
}

static struct kd_slot *
free_slot(struct kd_worker *w)
{
    for (size_t i = 0; i < w->n_slots; i++)
        if (kd_slot_is_free(&w->slots[i]))
            return &w->slots[i];
    return NULL;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL); /* a signal ends it early, which is what we want */
}

/* Drives every slot one step: reads pipes (waiting up to timeout_ms for
 * one to have data), reaps children, enforces deadlines, writes heartbeats
 * and outcomes. */
static void
service(struct kd_worker *w, int timeout_ms)
{
    struct pollfd pfd[64];
    struct kd_slot *owner[64];
    nfds_t n = 0;

    for (size_t i = 0; i < w->n_slots && n < KD_ARRAY_LEN(pfd); i++) {
        struct kd_slot *s = &w->slots[i];

        if (s->state == KD_SLOT_RUNNING && s->fd >= 0) {
            pfd[n].fd = s->fd;
            pfd[n].events = POLLIN;
            pfd[n].revents = 0;
            owner[n++] = s;
        }
    }
    if (n > 0) {
        if (poll(pfd, n, timeout_ms) > 0)
            for (nfds_t i = 0; i < n; i++)
                if (pfd[i].revents != 0)
                    kd_slot_pump(owner[i], kd_task_event, w);
    } else if (timeout_ms > 0) {
        sleep_ms(timeout_ms);
    }
    for (size_t i = 0; i < w->n_slots; i++) {
        struct kd_slot *s = &w->slots[i];
        int64_t now = kd_mono_ms();

        if (s->state == KD_SLOT_RUNNING) {
            kd_slot_check(s, now);
            kd_task_heartbeat(w, s, now);
            if (!kd_slot_child_done(s))
                continue;
            kd_slot_conclude(s, w->cfg->worker_job_timeout_s);
        }
        if (s->state != KD_SLOT_FINISHING || now < s->retry_at_ms)
            continue;
        kd_task_heartbeat(w, s, now);
        if (kd_task_finish(w, s) == KD_OK) {
            kd_slot_release(s);
        } else if (kd_mono_ms() - s->finish_started_ms > FINISH_GIVE_UP_MS) {
            kd_task_abandon(w, s);
            kd_slot_release(s);
        }
    }
}

/* The grace period is over: stop the children that still run, and hand
 * their tasks back (pending again and pushed) so another worker continues. */
static void
stop_all(struct kd_worker *w)
{
    for (size_t i = 0; i < w->n_slots; i++) {
        struct kd_slot *s = &w->slots[i];

        if (s->state == KD_SLOT_RUNNING && !s->reaped) {
            kd_log(KD_LOG_WARN, "%s %s: stopping process %d at shutdown",
                   s->kind == KD_TASK_EDIT ? "job" : "media", s->ref, (int)s->pid);
            kd_slot_kill(s, KD_KILL_SHUTDOWN);
        }
    }
    for (size_t i = 0; i < w->n_slots; i++) {
        struct kd_slot *s = &w->slots[i];

        if (s->state == KD_SLOT_RUNNING) {
            kd_slot_wait(s, 2000);
            kd_slot_pump(s, kd_task_event, w);
            if (s->fd >= 0) {
                close(s->fd);
                s->fd = -1;
            }
            if (!s->reaped) {
                kd_log(KD_LOG_ERROR, "worker: process %d did not die; leaving it", (int)s->pid);
                kd_slot_release(s);
                continue;
            }
            kd_slot_conclude(s, w->cfg->worker_job_timeout_s);
        }
        if (s->state != KD_SLOT_FINISHING)
            continue;
        /* A few quick tries; past them the delivery stays unacknowledged
         * and is taken over once the lease expires. */
        bool done = false;

        for (int t = 0; t < 3 && !done; t++) {
            if (t > 0)
                sleep_ms(500);
            done = kd_task_finish(w, s) == KD_OK;
        }
        if (!done)
            kd_task_abandon(w, s);
        kd_slot_release(s);
    }
}

/* Run directories of dead workers on this host (child.h): at start, then
 * this often, so that a crashed worker's files do not wait for a restart. */
#define SWEEP_EVERY_MS (10 * 60 * 1000)

static void
sweep(struct kd_worker *w)
{
    int n = kd_workdir_sweep(w->cfg->worker_tmp_dir);

    if (n > 0)
        kd_log(KD_LOG_INFO, "worker: removed %d work director%s left by workers that died", n,
               n == 1 ? "y" : "ies");
}

static void
run(struct kd_worker *w)
{
    int64_t next_take = 0, next_claim = 0, next_announce = 0, shutdown_at = 0, next_sweep = 0;
    int failures = 0;

    for (;;) {
        int64_t now = kd_mono_ms();

        if (now >= next_sweep) {
            sweep(w);
            next_sweep = now + SWEEP_EVERY_MS;
        }

        if (stop_signals > 0 && !w->stopping) {
            w->stopping = true;
            shutdown_at = now + w->cfg->worker_grace_s * 1000;
            kd_log(KD_LOG_INFO, "worker: stopping; %zu task(s) running get %lld s to finish",
                   busy_slots(w), (long long)w->cfg->worker_grace_s);
        }
        if (stop_signals > 1 && shutdown_at > now) {
            kd_log(KD_LOG_INFO, "worker: second signal; stopping now");
            shutdown_at = now;
        }
        if (w->stopping) {
            if (busy_slots(w) == 0)
                return;
            if (now >= shutdown_at) {
                stop_all(w);
                return;
            }
        }

        if (!w->stopping && now >= next_announce && now >= w->db_retry_ms) {
            kd_task_announce(w, busy_slots(w), false);
            next_announce = now + ANNOUNCE_EVERY_MS;
        }

        struct kd_slot *slot = free_slot(w);
        bool take = !w->stopping && slot != NULL && now >= next_take;

        service(w, take ? 0 : POLL_MS);
        if (!take)
            continue;
        /* service() may have filled or freed slots. */
        if ((slot = free_slot(w)) == NULL || stop_signals > 0)
            continue;

        struct kd_queue_msg msg;
        enum kd_err rc = KD_EAGAIN;

        if (now >= next_claim) {
            rc = kd_queue_claim_stale(w->queue, w->consumer, w->cfg->queue_claim_idle_ms, &msg);
            if (rc == KD_EAGAIN)
                next_claim = now + CLAIM_EVERY_MS;
        }
        if (rc == KD_EAGAIN)
            rc = kd_queue_next(w->queue, w->consumer,
                               busy_slots(w) > 0 ? WAIT_BUSY_MS : WAIT_IDLE_MS, &msg);
        if (rc == KD_OK)
            rc = kd_task_dispatch(w, &msg, slot);
        if (rc == KD_OK || rc == KD_EAGAIN) {
            if (failures > 0)
                kd_log(KD_LOG_INFO, "worker: dependencies answer again");
            failures = 0;
            continue;
        }
        failures++;
        next_take = kd_mono_ms() + kd_policy_backoff_ms(failures, 100, 5000);
        if (failures == 1 || failures % 50 == 0)
            kd_log(KD_LOG_WARN, "worker: cannot take work (%s); backing off", kd_err_name(rc));
    }
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct kd_config *cfg = NULL;
    struct kd_worker w = {.run_lock = -1};
    const char *config_path = NULL;
    bool check_only = false;
    char errbuf[512], host[64];
    struct sigaction sa = {0};
    int status = 1, c, level;
    enum kd_err rc;

    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'C':
            check_only = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!standard_fds_open())
        return 1;
    if (kd_config_load(config_path, &cfg, errbuf, sizeof(errbuf)) != KD_OK) {
        fprintf(stderr, "kadr-worker: %s\n", errbuf);
        return 1;
    }
    if (check_only) {
        printf("configuration ok\n");
        status = 0;
        goto out;
    }
    level = kd_log_level_parse(cfg->log_level);
    kd_log_init("kadr-worker", level >= 0 ? (enum kd_log_level)level : KD_LOG_INFO);

    w.cfg = cfg;
    w.n_slots = (size_t)cfg->worker_slots;
    w.lease_ms = cfg->job_lease_ms;
    if (cfg->worker_name[0] != '\0') {
        rc = kd_snprintf(w.consumer, sizeof(w.consumer), "%s", cfg->worker_name);
    } else {
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "worker");
        host[sizeof(host) - 1] = '\0';
        rc = kd_snprintf(w.consumer, sizeof(w.consumer), "%s-%d", host, (int)getpid());
    }
    if (rc != KD_OK) {
        kd_log(KD_LOG_ERROR, "worker: worker_name is too long");
        goto out;
    }
    if (kd_mkdir_p(cfg->worker_tmp_dir, 0700) != KD_OK) {
        kd_log_errno(KD_LOG_ERROR, errno, "worker: cannot create worker_tmp_dir %s",
                     cfg->worker_tmp_dir);
        goto out;
    }
    if (kd_workdir_claim(cfg->worker_tmp_dir, w.run_dir, sizeof(w.run_dir), &w.run_lock) != KD_OK) {
        kd_log(KD_LOG_ERROR, "worker: cannot make its run directory under %s", cfg->worker_tmp_dir);
        goto out;
    }
    if ((w.slots = calloc(w.n_slots, sizeof(*w.slots))) == NULL) {
        kd_log(KD_LOG_ERROR, "worker: out of memory");
        goto out;
    }
    for (size_t i = 0; i < w.n_slots; i++)
        kd_slot_init(&w.slots[i]);
    if ((rc = kd_db_open(cfg->database_url, &w.db)) != KD_OK ||
        (rc = kd_queue_open(cfg, &w.queue)) != KD_OK) {
        kd_log(KD_LOG_ERROR, "worker: cannot set up connections (%s)", kd_err_name(rc));
        goto out;
    }
    /* One loop serves every slot: a statement stuck in a lock wait would
     * stall the heartbeats, pipes and deadlines of all of them. A statement
     * that times out is retried like one that met PostgreSQL down. */
    kd_db_set_statement_timeout(w.db, cfg->worker_db_timeout_ms);
    if ((rc = kd_storage_open(cfg, &w.storage)) != KD_OK) {
        kd_log(KD_LOG_ERROR, "worker: storage backend \"%s\" cannot be used (%s)",
               cfg->storage_backend, kd_err_name(rc));
        goto out;
    }

    /* No SA_RESTART: poll and nanosleep return at a signal, so it is seen
     * at once. SIGPIPE: a vanished child or server shows up as EPIPE. */
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    /* Dispositions and the mask survive exec: a SIGCHLD ignored by whoever
     * started us would reap our children before waitpid could see how
     * they ended. */
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t mask;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_UNBLOCK, &mask, NULL);

    kd_log(KD_LOG_INFO, "worker: %s started with %zu slot(s), lease %lld ms, heartbeat %lld ms",
           w.consumer, w.n_slots, (long long)w.lease_ms, (long long)cfg->worker_heartbeat_ms);
    run(&w);
    kd_task_announce(&w, 0, true);
    kd_log(KD_LOG_INFO, "worker: %s stopped", w.consumer);
    status = 0;
out:
    /* Every task has ended (run returns only then): nothing is left in it. */
    if (w.run_lock >= 0 && w.run_dir[0] != '\0') {
        kd_workdir_remove(w.run_dir);
        close(w.run_lock);
    }
    free(w.slots);
    kd_storage_close(w.storage);
    kd_queue_close(w.queue);
    kd_db_close(w.db);
    kd_config_free(cfg);
    return status;
}
