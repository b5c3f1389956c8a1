/* problem.h: validation errors collected with their field paths (RFC 9457 "errors"). */
#ifndef KD_PROBLEM_H
#define KD_PROBLEM_H

#include <stddef.h>

#include "err.h"

#define KD_PROBLEM_MAX_ERRORS 64

struct kd_field_error {
    char *field;   /* "layers[0].size"; "" for the whole body */
    char *message; /* one sentence for a person */
};

struct kd_problem {
    struct kd_field_error errors[KD_PROBLEM_MAX_ERRORS];
    size_t n;
    size_t dropped; /* errors beyond the cap */
};

#define KD_PROBLEM_INIT {.n = 0}

/* Adds one error; past KD_PROBLEM_MAX_ERRORS it only counts. Returns KD_ENOMEM
 * when the copy failed (the error is then dropped too). */
enum kd_err kd_problem_add(struct kd_problem *pb, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kd_problem_clear(struct kd_problem *pb);

#endif
