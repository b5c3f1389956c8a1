/* err.h: the one status type of kadr, and how it maps to HTTP and job errors. */
#ifndef KD_ERR_H
#define KD_ERR_H

#define KD_MUST_CHECK __attribute__((warn_unused_result))

enum kd_err {
    KD_OK = 0,
    KD_ENOMEM,      /* allocation failed */
    KD_EINVAL,      /* bad input (the caller's or a user's) */
    KD_ENOTFOUND,   /* no such object (or not the caller's) */
    KD_ECONFLICT,   /* the object is in a state that forbids this */
    KD_ELIMIT,      /* a configured limit was reached */
    KD_EAGAIN,      /* nothing now; try again later */
    KD_EUNAVAIL,    /* a dependency (PostgreSQL, Redis, storage) is down */
    KD_ETIMEOUT,    /* a deadline passed */
    KD_ECANCELED,   /* the work was cancelled */
    KD_EIO,         /* an operating-system I/O error */
    KD_EFORBIDDEN,  /* authenticated but not allowed; or a forbidden input */
    KD_EUNSUPPORTED,/* valid but not (yet) implemented */
    KD_EMEDIA,      /* a media file is broken or not media */
    KD_EINTERNAL,   /* our own bug or an unexpected library failure */
};

/* A short stable name ("EINVAL"); never NULL. */
const char *kd_err_name(enum kd_err e);
/* The HTTP status a handler answers with for an error it did not map itself. */
int kd_err_http_status(enum kd_err e);
/* The job error code of the API contract ("invalid_input", ...). */
const char *kd_err_job_code(enum kd_err e);

#endif
