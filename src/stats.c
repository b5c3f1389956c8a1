/* stats.c: counters in a shared mapped file. See stats.h.
 *
 * The file is one page: an 8-byte magic, then 64-bit counters. Several
 * processes may create it at once: opening with O_CREAT and growing it to
 * a page are both harmless when repeated, and the magic is set with a
 * compare-and-swap from zero, so exactly one writes it and every other
 * sees it written. A file whose first bytes are something else is refused
 * rather than scribbled over. */
#include "stats.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define FILE_BYTES 4096
/* "KADRST01" read as a little-endian number; only ever compared whole. */
#define MAGIC UINT64_C(0x313054535244414b)
#define SLOTS ((FILE_BYTES - sizeof(uint64_t)) / sizeof(uint64_t))

_Static_assert(KD_STAT_COUNT <= SLOTS, "the counter file has room for every counter");

struct kd_stats {
    uint64_t *map; /* map[0] the magic, map[1 + i] counter i */
};

enum kd_err
kd_stats_open(const char *path, struct kd_stats **out)
{
    struct kd_stats *s = NULL;
    struct stat st;
    uint64_t expected = 0;
    void *map = MAP_FAILED;
    int fd = -1, err;
    enum kd_err rc;

    if ((s = calloc(1, sizeof(*s))) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        err = errno;
        kd_log_errno(KD_LOG_ERROR, err, "stats: cannot open %s", path);
        rc = err == ELOOP ? KD_EINVAL : KD_EIO;
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        kd_log_errno(KD_LOG_ERROR, errno, "stats: cannot stat %s", path);
        rc = KD_EIO;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        kd_log(KD_LOG_ERROR, "stats: %s is not a regular file", path);
        rc = KD_EINVAL;
        goto out;
    }
    /* A file with something else in it is refused before it is touched
     * (growing it would append to it). */
    if (st.st_size > 0) {
        uint64_t head = 0;

        if (pread(fd, &head, sizeof(head), 0) != (ssize_t)sizeof(head) ||
            (head != MAGIC && head != 0)) {
            kd_log(KD_LOG_ERROR, "stats: %s is not a kadr counter file; not touching it", path);
            rc = KD_EINVAL;
            goto out;
        }
    }
    /* Only ever grown: another process may be counting in it already. */
    if (st.st_size < FILE_BYTES && ftruncate(fd, FILE_BYTES) != 0) {
        kd_log_errno(KD_LOG_ERROR, errno, "stats: cannot size %s", path);
        rc = KD_EIO;
        goto out;
    }
    map = mmap(NULL, FILE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        kd_log_errno(KD_LOG_ERROR, errno, "stats: cannot map %s", path);
        rc = KD_EIO;
        goto out;
    }
    if (!__atomic_compare_exchange_n((uint64_t *)map, &expected, MAGIC, false, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST) &&
        expected != MAGIC) {
        kd_log(KD_LOG_ERROR, "stats: %s is not a kadr counter file; not touching it", path);
        rc = KD_EINVAL;
        goto out;
    }
    s->map = map;
    map = MAP_FAILED;
    *out = s;
    s = NULL;
    rc = KD_OK;
out:
    if (map != MAP_FAILED)
        munmap(map, FILE_BYTES);
    if (fd >= 0)
        close(fd); /* the mapping stays */
    free(s);
    return rc;
}

void
kd_stats_close(struct kd_stats *s)
{
    if (s == NULL)
        return;
    munmap(s->map, FILE_BYTES);
    free(s);
}

void
kd_stats_add(struct kd_stats *s, enum kd_stat which, uint64_t n)
{
    if (s == NULL || (unsigned)which >= KD_STAT_COUNT)
        return;
    __atomic_fetch_add(&s->map[1 + which], n, __ATOMIC_RELAXED);
}

uint64_t
kd_stats_get(const struct kd_stats *s, enum kd_stat which)
{
    if (s == NULL || (unsigned)which >= KD_STAT_COUNT)
        return 0;
    return __atomic_load_n(&s->map[1 + which], __ATOMIC_RELAXED);
}

void
kd_stats_count_status(struct kd_stats *s, int status)
{
    if (s == NULL || status < 100 || status > 599)
        return;
    kd_stats_add(s, (enum kd_stat)(KD_STAT_REQ_1XX + status / 100 - 1), 1);
    if (status == 401)
        kd_stats_add(s, KD_STAT_UNAUTHORIZED, 1);
    else if (status == 429)
        kd_stats_add(s, KD_STAT_LIMITED, 1);
    else if (status == 500 || status == 503)
        kd_stats_add(s, KD_STAT_ERRORS, 1);
}
