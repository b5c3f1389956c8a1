#include "storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "storage_int.h"
#include "util.h"

#define SIG_VERSION "kadr-v1"

bool
kd_storage_key_valid(const char *key)
{
    size_t len, seg = 0;

    if (key == NULL || (len = strlen(key)) == 0 || len > 200)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = key[i];

        if (c == '/') {
            if (seg == 0)
                return false; /* empty segment or leading slash */
            seg = 0;
            continue;
        }
        if (seg == 0 && c == '.')
            return false; /* no ".", "..", or hidden names */
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
            return false;
        seg++;
    }
    return seg > 0;
}

static enum kd_err
object_path(struct kd_storage *s, const char *key, char *out, size_t len)
{
    if (!kd_storage_key_valid(key))
        return KD_EINVAL;
    return kd_snprintf(out, len, "%s/%s", s->objects, key) == KD_OK ? KD_OK : KD_EINVAL;
}

/* Copies every byte of fd_in to fd_out. copy_file_range lets the kernel move
 * the data (reflinks on file systems that have them); read/write otherwise. */
static enum kd_err
copy_fd(int fd_in, int fd_out)
{
    char buf[1 << 16];

    for (;;) {
        ssize_t n = copy_file_range(fd_in, NULL, fd_out, NULL, 1 << 30, 0);

        if (n == 0)
            return KD_OK;
        if (n > 0)
            continue;
        if (errno == EINTR)
            continue;
        if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
            return KD_EIO;
        break;
    }
    for (;;) {
        ssize_t n = read(fd_in, buf, sizeof(buf));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return KD_EIO;
        if (n == 0)
            return KD_OK;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd_out, buf + off, (size_t)(n - off));

            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return KD_EIO;
            off += w;
        }
    }
}

/* Makes a rename in dir durable: until the directory is synced, a crash
 * can lose the new name while the database already points to it. */
static enum kd_err
sync_dir(const char *path)
{
    char dir[2048];
    char *slash;
    int fd;
    enum kd_err rc = KD_OK;

    if (kd_snprintf(dir, sizeof(dir), "%s", path) != KD_OK || (slash = strrchr(dir, '/')) == NULL)
        return KD_EINVAL;
    *slash = '\0';
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(fd) != 0) {
        kd_log_errno(KD_LOG_ERROR, errno, "storage: sync %s", dir);
        rc = KD_EIO;
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

static enum kd_err
parent_dirs(const char *path)
{
    char dir[2048];
    char *slash;

    if (kd_snprintf(dir, sizeof(dir), "%s", path) != KD_OK)
        return KD_EINVAL;
    if ((slash = strrchr(dir, '/')) == NULL)
        return KD_OK;
    *slash = '\0';
    return kd_mkdir_p(dir, 0750);
}

static enum kd_err
local_put_file(struct kd_storage *s, const char *key, const char *path, kd_storage_upload_fn *fn,
               void *arg)
{
    char dst[2048], tmp[2048], rnd[9];
    unsigned char rb[4];
    int in = -1, out = -1, err;
    bool tmp_made = false;
    enum kd_err rc;

    (void)fn; /* one rename publishes the file: there is no upload to abort */
    (void)arg;
    if ((rc = object_path(s, key, dst, sizeof(dst))) != KD_OK)
        goto out;
    if ((rc = kd_random_bytes(rb, sizeof(rb))) != KD_OK)
        goto out;
    kd_hex_encode(rb, sizeof(rb), rnd);
    if ((rc = kd_snprintf(tmp, sizeof(tmp), "%s/put-%s", s->tmp, rnd)) != KD_OK)
        goto out;
    if ((rc = kd_mkdir_p(s->tmp, 0750)) != KD_OK || (rc = parent_dirs(dst)) != KD_OK)
        goto out;
    if ((in = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = errno == ENOENT ? KD_ENOTFOUND : KD_EIO;
        kd_log_errno(KD_LOG_ERROR, errno, "storage: open %s", path);
        goto out;
    }
    if ((out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640)) < 0) {
        rc = KD_EIO;
        kd_log_errno(KD_LOG_ERROR, errno, "storage: create %s", tmp);
        goto out;
    }
    tmp_made = true;
    if ((rc = copy_fd(in, out)) != KD_OK) {
        kd_log_errno(KD_LOG_ERROR, errno, "storage: copy to %s", tmp);
        goto out;
    }
    /* The object must be on disk before its name is, or a crash could
     * publish an empty file under a key the database already knows. */
    if (fdatasync(out) != 0) {
        rc = KD_EIO;
        kd_log_errno(KD_LOG_ERROR, errno, "storage: sync %s", tmp);
        goto out;
    }
    err = close(out);
    out = -1;
    if (err != 0) {
        rc = KD_EIO;
        kd_log_errno(KD_LOG_ERROR, errno, "storage: close %s", tmp);
        goto out;
    }
    if (rename(tmp, dst) != 0) {
        rc = KD_EIO;
        kd_log_errno(KD_LOG_ERROR, errno, "storage: rename to %s", dst);
        goto out;
    }
    tmp_made = false;
    rc = sync_dir(dst);
out:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (tmp_made)
        unlink(tmp);
    return rc;
}

static enum kd_err
local_get_file(struct kd_storage *s, const char *key, const char *path)
{
    char src[2048];
    int in = -1, out = -1;
    enum kd_err rc;

    if ((rc = object_path(s, key, src, sizeof(src))) != KD_OK)
        goto out;
    if ((in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        rc = errno == ENOENT ? KD_ENOTFOUND : KD_EIO;
        goto out;
    }
    if ((out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
        rc = KD_EIO;
        goto out;
    }
    rc = copy_fd(in, out);
out:
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0 && rc == KD_OK)
        rc = KD_EIO;
    return rc;
}

static enum kd_err
local_delete(struct kd_storage *s, const char *key)
{
    char path[2048];
    enum kd_err rc;

    if ((rc = object_path(s, key, path, sizeof(path))) != KD_OK)
        return rc;
    if (unlink(path) != 0 && errno != ENOENT) {
        kd_log_errno(KD_LOG_ERROR, errno, "storage: delete %s", key);
        return KD_EIO;
    }
    return KD_OK;
}

static enum kd_err
local_stat(struct kd_storage *s, const char *key, struct kd_storage_stat *out)
{
    char path[2048];
    struct stat st;
    enum kd_err rc;

    if ((rc = object_path(s, key, path, sizeof(path))) != KD_OK)
        return rc;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? KD_ENOTFOUND : KD_EIO;
    if (!S_ISREG(st.st_mode))
        return KD_ENOTFOUND;
    out->size = (int64_t)st.st_size;
    out->mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    return KD_OK;
}

static enum kd_err
local_local_path(struct kd_storage *s, const char *key, char *out, size_t out_len)
{
    return object_path(s, key, out, out_len);
}

static enum kd_err
local_check(struct kd_storage *s)
{
    if (access(s->objects, W_OK | X_OK) != 0) {
        kd_log_errno(KD_LOG_WARN, errno, "storage: %s is not usable", s->objects);
        return KD_EUNAVAIL;
    }
    return KD_OK;
}

/* --- presigned URLs --------------------------------------------------- */

static bool
unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Percent-encodes every byte but the RFC 3986 unreserved ones. */
static enum kd_err
pct_encode(struct kd_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    enum kd_err rc = KD_OK;

    for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && rc == KD_OK; p++) {
        if (unreserved(*p)) {
            rc = kd_buf_append(b, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};

            rc = kd_buf_append(b, e, 3);
        }
    }
    return rc;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes src[0..len) into out (NUL-terminated); '+' is not special here. */
static enum kd_err
pct_decode(const char *src, size_t len, char *out, size_t out_len)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)src[i];

        if (c == '%') {
            int hi, lo;

            if (i + 2 >= len || (hi = hexval(src[i + 1])) < 0 || (lo = hexval(src[i + 2])) < 0)
                return KD_EINVAL;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0 || o + 1 >= out_len)
            return KD_EINVAL;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return KD_OK;
}

static enum kd_err
signature(struct kd_storage *s, const char *method, const char *key, int64_t expires,
          const char *constraint, char out[65])
{
    struct kd_buf msg;
    const char *secret = s->cfg->url_signing_secret;
    enum kd_err rc;

    if (secret[0] == '\0') {
        kd_log(KD_LOG_ERROR, "storage: url_signing_secret is not set");
        return KD_EINTERNAL;
    }
    kd_buf_init(&msg, 4096);
    rc = kd_buf_printf(&msg, "%s\n%s\n%s\n%lld\n%s", SIG_VERSION, method, key, (long long)expires,
                       constraint);
    if (rc == KD_OK)
        rc = kd_hmac_sha256_hex(secret, strlen(secret), msg.data, msg.len, out);
    kd_buf_clear(&msg);
    return rc;
}

static enum kd_err
local_presign(struct kd_storage *s, const char *method, const char *key,
              const struct kd_presign *opt, char **url, int64_t *expires_at)
{
    struct kd_buf b;
    char sig[65], constraint[32];
    const char *name = opt->filename != NULL ? opt->filename : "";
    int64_t expires;
    bool put = strcmp(method, "PUT") == 0;
    enum kd_err rc;

    /* A year is far beyond any configured TTL and keeps the sum small. */
    if (!kd_storage_key_valid(key) || (!put && strcmp(method, "GET") != 0) ||
        (put && opt->size < 0) || strlen(name) > 255 || opt->ttl_s < 1 || opt->ttl_s > 366 * 86400)
        return KD_EINVAL;
    expires = kd_now_ms() / 1000 + opt->ttl_s;
    snprintf(constraint, sizeof(constraint), "%lld", (long long)opt->size);
    if ((rc = signature(s, method, key, expires, put ? constraint : name, sig)) != KD_OK)
        return rc;
    kd_buf_init(&b, 8192);
    rc = kd_buf_printf(&b, "%s/%s/%s?X-Kadr-Expires=%lld", s->cfg->public_url,
                       put ? "upload" : "download", key, (long long)expires);
    if (rc == KD_OK && put)
        rc = kd_buf_printf(&b, "&X-Kadr-Size=%lld", (long long)opt->size);
    if (rc == KD_OK && !put) {
        rc = kd_buf_puts(&b, "&X-Kadr-Name=");
        if (rc == KD_OK)
            rc = pct_encode(&b, name);
    }
    if (rc == KD_OK)
        rc = kd_buf_printf(&b, "&X-Kadr-Signature=%s", sig);
    if (rc != KD_OK) {
        kd_buf_clear(&b);
        return rc;
    }
    if ((*url = kd_buf_take(&b)) == NULL)
        return KD_ENOMEM;
    *expires_at = expires;
    return KD_OK;
}

static enum kd_err
local_verify(struct kd_storage *s, const char *method, const char *request_uri, int64_t now_s,
             struct kd_presigned_req *out)
{
    const char *q, *path, *prefix;
    char expires_s[24] = "", size_s[24] = "", sig[80] = "", name[256] = "", constraint[256];
    char want[65], key[sizeof(out->key)];
    bool have_exp = false, have_size = false, have_sig = false, have_name = false;
    bool put = strcmp(method, "PUT") == 0;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int64_t expires, size = -1;
    size_t klen;

    if (!put && !get)
        return KD_EFORBIDDEN;
    prefix = put ? "/upload/" : "/download/";
    if (strncmp(request_uri, prefix, strlen(prefix)) != 0)
        return KD_EFORBIDDEN;
    path = request_uri + strlen(prefix);
    if ((q = strchr(path, '?')) == NULL)
        return KD_EFORBIDDEN;
    klen = (size_t)(q - path);
    if (klen == 0 || klen >= sizeof(key))
        return KD_EFORBIDDEN;
    memcpy(key, path, klen);
    key[klen] = '\0';
    if (!kd_storage_key_valid(key))
        return KD_EFORBIDDEN;
    /* Each known parameter exactly once; anything else makes the URL invalid. */
    struct {
        const char *name;
        char *dst;
        size_t dst_len;
        bool *seen;
    } params[] = {
        {"X-Kadr-Expires", expires_s, sizeof(expires_s), &have_exp},
        {"X-Kadr-Size", size_s, sizeof(size_s), &have_size},
        {"X-Kadr-Signature", sig, sizeof(sig), &have_sig},
        {"X-Kadr-Name", name, sizeof(name), &have_name},
    };
    for (const char *p = q + 1; *p != '\0';) {
        const char *amp = strchr(p, '&'), *eq;
        size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
        size_t nlen, i;

        if ((eq = memchr(p, '=', len)) == NULL)
            return KD_EFORBIDDEN;
        nlen = (size_t)(eq - p);
        for (i = 0; i < KD_ARRAY_LEN(params); i++)
            if (strlen(params[i].name) == nlen && memcmp(p, params[i].name, nlen) == 0)
                break;
        if (i == KD_ARRAY_LEN(params) || *params[i].seen ||
            pct_decode(eq + 1, len - nlen - 1, params[i].dst, params[i].dst_len) != KD_OK)
            return KD_EFORBIDDEN;
        *params[i].seen = true;
        p += len;
        if (*p == '&')
            p++;
    }
    if (!have_exp || !have_sig || strlen(sig) != 64 || (put && (!have_size || have_name)) ||
        (get && (have_size || !have_name)))
        return KD_EFORBIDDEN;
    if (kd_parse_i64(expires_s, 0, INT64_MAX / 2, &expires) != KD_OK)
        return KD_EFORBIDDEN;
    if (put && kd_parse_i64(size_s, 0, INT64_MAX, &size) != KD_OK)
        return KD_EFORBIDDEN;
    snprintf(constraint, sizeof(constraint), "%s", put ? size_s : name);
    if (signature(s, put ? "PUT" : "GET", key, expires, constraint, want) != KD_OK)
        return KD_EINTERNAL;
    for (char *c = sig; *c != '\0'; c++)
        if (*c >= 'A' && *c <= 'F')
            *c = (char)(*c - 'A' + 'a');
    if (!kd_secure_equal(want, sig, 64))
        return KD_EFORBIDDEN;
    /* Only a genuine URL learns that it expired. */
    if (now_s > expires)
        return KD_ETIMEOUT;
    /* *out is written only now, for a genuine and current URL. */
    snprintf(out->method, sizeof(out->method), "%s", put ? "PUT" : "GET");
    memcpy(out->key, key, sizeof(out->key));
    out->expires_at = expires;
    out->size = size;
    snprintf(out->filename, sizeof(out->filename), "%s", name);
    return KD_OK;
}

/* --- reads by range and listing ---------------------------------------- */

static enum kd_err
local_read_range(struct kd_storage *s, const char *key, int64_t offset, void *buf, size_t len,
                 size_t *got)
{
    char path[2048];
    size_t done = 0;
    int fd = -1;
    enum kd_err rc;

    if ((rc = object_path(s, key, path, sizeof(path))) != KD_OK)
        goto out;
    if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        rc = errno == ENOENT ? KD_ENOTFOUND : KD_EIO;
        goto out;
    }
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)offset + (off_t)done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = KD_EIO;
            goto out;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    *got = done;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

static int
name_cmp(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Walks dir (the objects below rel) depth first in name order. Keys sort
 * as paths do here because '/' sorts below every key character. */
static enum kd_err
list_dir(struct kd_storage *s, const char *rel, const char *prefix, kd_storage_list_fn fn,
         void *arg, int depth)
{
    struct dirent **ents = NULL;
    char dir[2048];
    int n = -1;
    enum kd_err rc = KD_OK;

    if (depth > 32)
        return KD_OK; /* keys have at most 100 segments; deeper is not ours */
    if ((rc = kd_snprintf(dir, sizeof(dir), "%s%s%s", s->objects, rel[0] ? "/" : "", rel)) != KD_OK)
        goto out;
    if ((n = scandir(dir, &ents, NULL, name_cmp)) < 0) {
        rc = errno == ENOENT ? KD_OK : KD_EIO;
        goto out;
    }
    for (int i = 0; i < n && rc == KD_OK; i++) {
        char key[2048];
        struct stat st;
        size_t plen = strlen(prefix), klen;

        if (ents[i]->d_name[0] == '.')
            continue;
        if ((rc = kd_snprintf(key, sizeof(key), "%s%s%s", rel, rel[0] ? "/" : "",
                              ents[i]->d_name)) != KD_OK)
            break;
        klen = strlen(key);
        /* prune subtrees that cannot hold the prefix */
        if (strncmp(key, prefix, klen < plen ? klen : plen) != 0)
            continue;
        if ((rc = kd_snprintf(dir, sizeof(dir), "%s/%s", s->objects, key)) != KD_OK)
            break;
        if (lstat(dir, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            rc = list_dir(s, key, prefix, fn, arg, depth + 1);
        else if (S_ISREG(st.st_mode) && klen >= plen && kd_storage_key_valid(key))
            rc = fn(key, (int64_t)st.st_size, arg);
    }
out:
    for (int i = 0; i < n; i++)
        free(ents[i]);
    free(ents);
    return rc;
}

static enum kd_err
local_list(struct kd_storage *s, const char *prefix, kd_storage_list_fn fn, void *arg)
{
    return list_dir(s, "", prefix, fn, arg, 0);
}

static void
local_close(struct kd_storage *s)
{
    (void)s;
}

static const struct kd_storage_ops local_ops = {
    .name = "local",
    .close = local_close,
    .put_file = local_put_file,
    .get_file = local_get_file,
    .del = local_delete,
    .stat = local_stat,
    .local_path = local_local_path,
    .check = local_check,
    .presign = local_presign,
    .verify = local_verify,
    .read_range = local_read_range,
    .list = local_list,
};

/* --- dispatch ---------------------------------------------------------- */

enum kd_err
kd_storage_open(const struct kd_config *cfg, struct kd_storage **out)
{
    struct kd_storage *s = NULL;
    enum kd_err rc;

    if ((s = calloc(1, sizeof(*s))) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    s->cfg = cfg;
    if (strcmp(cfg->storage_backend, "s3") == 0) {
        if ((rc = kd_storage_s3_init(s)) != KD_OK)
            goto out;
    } else if (strcmp(cfg->storage_backend, "local") == 0) {
        s->ops = &local_ops;
        if (kd_snprintf(s->objects, sizeof(s->objects), "%s/objects", cfg->storage_root) != KD_OK ||
            kd_snprintf(s->tmp, sizeof(s->tmp), "%s/tmp", cfg->storage_root) != KD_OK) {
            rc = KD_EINVAL;
            goto out;
        }
    } else {
        rc = KD_EUNSUPPORTED;
        goto out;
    }
    *out = s;
    s = NULL;
    rc = KD_OK;
out:
    free(s);
    return rc;
}

void
kd_storage_close(struct kd_storage *s)
{
    if (s == NULL)
        return;
    if (s->ops != NULL)
        s->ops->close(s);
    free(s);
}

const char *
kd_storage_backend_name(const struct kd_storage *s)
{
    return s->ops->name;
}

const char *
kd_storage_last_error(const struct kd_storage *s)
{
    return s->last_err;
}

enum kd_err
kd_storage_put_file(struct kd_storage *s, const char *key, const char *path)
{
    return s->ops->put_file(s, key, path, NULL, NULL);
}

enum kd_err
kd_storage_put_file_watched(struct kd_storage *s, const char *key, const char *path,
                            kd_storage_upload_fn *fn, void *arg)
{
    return s->ops->put_file(s, key, path, fn, arg);
}

enum kd_err
kd_storage_get_file(struct kd_storage *s, const char *key, const char *path)
{
    return s->ops->get_file(s, key, path);
}

enum kd_err
kd_storage_delete(struct kd_storage *s, const char *key)
{
    return s->ops->del(s, key);
}

enum kd_err
kd_storage_stat(struct kd_storage *s, const char *key, struct kd_storage_stat *out)
{
    return s->ops->stat(s, key, out);
}

enum kd_err
kd_storage_local_path(struct kd_storage *s, const char *key, char *out, size_t out_len)
{
    return s->ops->local_path != NULL ? s->ops->local_path(s, key, out, out_len) : KD_EUNSUPPORTED;
}

enum kd_err
kd_storage_check(struct kd_storage *s)
{
    return s->ops->check(s);
}

enum kd_err
kd_storage_presign(struct kd_storage *s, const char *method, const char *key,
                   const struct kd_presign *opt, char **url, int64_t *expires_at)
{
    return s->ops->presign(s, method, key, opt, url, expires_at);
}

enum kd_err
kd_storage_verify(struct kd_storage *s, const char *method, const char *request_uri, int64_t now_s,
                  struct kd_presigned_req *out)
{
    /* only kadr's own URLs (local disk behind nginx) are checked here;
     * S3 checks its presigned URLs itself */
    if (s->ops->verify == NULL)
        return KD_EFORBIDDEN;
    return s->ops->verify(s, method, request_uri, now_s, out);
}

enum kd_err
kd_storage_read_range(struct kd_storage *s, const char *key, int64_t offset, void *buf, size_t len,
                      size_t *got)
{
    if (offset < 0 || !kd_storage_key_valid(key))
        return KD_EINVAL;
    return s->ops->read_range(s, key, offset, buf, len, got);
}

enum kd_err
kd_storage_list(struct kd_storage *s, const char *prefix, kd_storage_list_fn fn, void *arg)
{
    return s->ops->list(s, prefix != NULL ? prefix : "", fn, arg);
}

enum kd_err
kd_storage_multipart_begin(struct kd_storage *s, const char *key, const char *content_type,
                           char **upload_id)
{
    if (s->ops->mp_begin == NULL)
        return KD_EUNSUPPORTED;
    return s->ops->mp_begin(s, key, content_type, upload_id);
}

enum kd_err
kd_storage_multipart_presign_part(struct kd_storage *s, const char *key, const char *upload_id,
                                  int part_number, int64_t size, int64_t ttl_s, char **url,
                                  int64_t *expires_at)
{
    if (s->ops->mp_presign_part == NULL)
        return KD_EUNSUPPORTED;
    /* S3 takes parts of 1 byte (the last) to 5 GiB. */
    if (part_number < 1 || part_number > KD_STORAGE_MAX_PARTS || size < 1 ||
        size > 5LL * 1024 * 1024 * 1024)
        return KD_EINVAL;
    return s->ops->mp_presign_part(s, key, upload_id, part_number, size, ttl_s, url, expires_at);
}

enum kd_err
kd_storage_multipart_upload_part(struct kd_storage *s, const char *key, const char *upload_id,
                                 int part_number, int fd, int64_t offset, int64_t len,
                                 struct kd_storage_part *out)
{
    if (s->ops->mp_upload_part == NULL)
        return KD_EUNSUPPORTED;
    if (part_number < 1 || part_number > KD_STORAGE_MAX_PARTS || offset < 0 || len < 0)
        return KD_EINVAL;
    return s->ops->mp_upload_part(s, key, upload_id, part_number, fd, offset, len, out);
}

enum kd_err
kd_storage_multipart_complete(struct kd_storage *s, const char *key, const char *upload_id,
                              const struct kd_storage_part *parts, size_t n)
{
    if (s->ops->mp_complete == NULL)
        return KD_EUNSUPPORTED;
    if (n == 0 || n > KD_STORAGE_MAX_PARTS)
        return KD_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (parts[i].part_number < 1 || parts[i].part_number > KD_STORAGE_MAX_PARTS ||
            (i > 0 && parts[i].part_number <= parts[i - 1].part_number))
            return KD_EINVAL;
    return s->ops->mp_complete(s, key, upload_id, parts, n);
}

enum kd_err
kd_storage_multipart_abort(struct kd_storage *s, const char *key, const char *upload_id)
{
    if (s->ops->mp_abort == NULL)
        return KD_EUNSUPPORTED;
    return s->ops->mp_abort(s, key, upload_id);
}

enum kd_err
kd_storage_multipart_list_parts(struct kd_storage *s, const char *key, const char *upload_id,
                                struct kd_storage_part **parts, size_t *n)
{
    if (s->ops->mp_list_parts == NULL)
        return KD_EUNSUPPORTED;
    return s->ops->mp_list_parts(s, key, upload_id, parts, n);
}

/* --- streaming reader -------------------------------------------------- */

/* A read-ahead window: each refill is one ranged read (one GET on S3), so
 * a demuxer reading a few KiB at a time costs one request per window, and
 * a seek within the window costs none. */
#define READER_WINDOW (4 * 1024 * 1024)

struct kd_storage_reader {
    struct kd_storage *s;
    char key[256];
    int64_t size;
    int64_t pos;     /* the reader's position */
    int64_t win_off; /* object offset of win[0] */
    size_t win_len;
    unsigned char *win;
};

enum kd_err
kd_storage_reader_open(struct kd_storage *s, const char *key, struct kd_storage_reader **out)
{
    struct kd_storage_reader *r = NULL;
    struct kd_storage_stat st;
    enum kd_err rc;

    if (!kd_storage_key_valid(key)) {
        rc = KD_EINVAL;
        goto out;
    }
    if ((rc = kd_storage_stat(s, key, &st)) != KD_OK)
        goto out;
    if ((r = calloc(1, sizeof(*r))) == NULL || (r->win = malloc(READER_WINDOW)) == NULL) {
        rc = KD_ENOMEM;
        goto out;
    }
    r->s = s;
    if ((rc = kd_snprintf(r->key, sizeof(r->key), "%s", key)) != KD_OK)
        goto out;
    r->size = st.size;
    *out = r;
    r = NULL;
out:
    kd_storage_reader_close(r);
    return rc;
}

enum kd_err
kd_storage_reader_read(struct kd_storage_reader *r, void *buf, size_t len, size_t *got)
{
    enum kd_err rc = KD_OK;
    size_t n;

    if (r->pos >= r->size || len == 0) {
        *got = 0;
        goto out;
    }
    if (r->pos < r->win_off || r->pos >= r->win_off + (int64_t)r->win_len) {
        size_t want = READER_WINDOW;

        if ((int64_t)want > r->size - r->pos)
            want = (size_t)(r->size - r->pos);
        r->win_len = 0;
        r->win_off = r->pos;
        if ((rc = kd_storage_read_range(r->s, r->key, r->pos, r->win, want, &r->win_len)) != KD_OK)
            goto out;
        if (r->win_len == 0) {
            /* the object shrank under us: a replaced object is not ours */
            rc = KD_EIO;
            goto out;
        }
    }
    n = (size_t)(r->win_off + (int64_t)r->win_len - r->pos);
    if (n > len)
        n = len;
    memcpy(buf, r->win + (r->pos - r->win_off), n);
    r->pos += (int64_t)n;
    *got = n;
out:
    return rc;
}

enum kd_err
kd_storage_reader_seek(struct kd_storage_reader *r, int64_t offset)
{
    if (offset < 0 || offset > r->size)
        return KD_EINVAL;
    r->pos = offset;
    return KD_OK;
}

int64_t
kd_storage_reader_size(const struct kd_storage_reader *r)
{
    return r->size;
}

int64_t
kd_storage_reader_tell(const struct kd_storage_reader *r)
{
    return r->pos;
}

void
kd_storage_reader_close(struct kd_storage_reader *r)
{
    if (r == NULL)
        return;
    free(r->win);
    free(r);
}
