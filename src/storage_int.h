/* storage_int.h: the backend table behind storage.h, shared by storage.c
 * (the dispatch and the local backend) and storage_s3.c. Nothing else
 * includes it. */
#ifndef KD_STORAGE_INT_H
#define KD_STORAGE_INT_H

#include "storage.h"

struct kd_storage_ops {
    const char *name;
    void (*close)(struct kd_storage *s);
    enum kd_err (*put_file)(struct kd_storage *s, const char *key, const char *path,
                            kd_storage_upload_fn *fn, void *arg);
    enum kd_err (*get_file)(struct kd_storage *s, const char *key, const char *path);
    enum kd_err (*del)(struct kd_storage *s, const char *key);
    enum kd_err (*stat)(struct kd_storage *s, const char *key, struct kd_storage_stat *out);
    enum kd_err (*local_path)(struct kd_storage *s, const char *key, char *out, size_t out_len);
    enum kd_err (*check)(struct kd_storage *s);
    enum kd_err (*presign)(struct kd_storage *s, const char *method, const char *key,
                           const struct kd_presign *opt, char **url, int64_t *expires_at);
    enum kd_err (*verify)(struct kd_storage *s, const char *method, const char *request_uri,
                          int64_t now_s, struct kd_presigned_req *out);
    enum kd_err (*read_range)(struct kd_storage *s, const char *key, int64_t offset, void *buf,
                              size_t len, size_t *got);
    enum kd_err (*list)(struct kd_storage *s, const char *prefix, kd_storage_list_fn fn, void *arg);
    /* multipart; NULL when the backend has none */
    enum kd_err (*mp_begin)(struct kd_storage *s, const char *key, const char *content_type,
                            char **upload_id);
    enum kd_err (*mp_presign_part)(struct kd_storage *s, const char *key, const char *upload_id,
                                   int part_number, int64_t size, int64_t ttl_s, char **url,
                                   int64_t *expires_at);
    enum kd_err (*mp_upload_part)(struct kd_storage *s, const char *key, const char *upload_id,
                                  int part_number, int fd, int64_t offset, int64_t len,
                                  struct kd_storage_part *out);
    enum kd_err (*mp_complete)(struct kd_storage *s, const char *key, const char *upload_id,
                               const struct kd_storage_part *parts, size_t n);
    enum kd_err (*mp_abort)(struct kd_storage *s, const char *key, const char *upload_id);
    enum kd_err (*mp_list_parts)(struct kd_storage *s, const char *key, const char *upload_id,
                                 struct kd_storage_part **parts, size_t *n);
};

struct kd_s3;

struct kd_storage {
    const struct kd_storage_ops *ops;
    const struct kd_config *cfg;
    /* local backend: <root>/objects holds objects; <root>/tmp receives
     * partial files (nginx's client_body_temp_path points there too) so
     * that publishing an object is a rename within one file system. */
    char objects[2048];
    char tmp[2048];
    struct kd_s3 *s3;   /* s3 backend */
    char last_err[256]; /* kd_storage_last_error */
};

/* storage_s3.c: fills s->ops and s->s3 for storage_backend "s3". */
KD_MUST_CHECK enum kd_err kd_storage_s3_init(struct kd_storage *s);

#endif
