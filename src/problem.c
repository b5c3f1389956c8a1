#include "problem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kd_err
kd_problem_add(struct kd_problem *pb, const char *field, const char *fmt, ...)
{
    struct kd_field_error *fe;
    va_list ap;
    int n;

    if (pb->n >= KD_PROBLEM_MAX_ERRORS) {
        pb->dropped++;
        return KD_OK;
    }
    fe = &pb->errors[pb->n];
    fe->field = strdup(field != NULL ? field : "");
    va_start(ap, fmt);
    n = vasprintf(&fe->message, fmt, ap);
    va_end(ap);
    if (fe->field == NULL || n < 0) {
        free(fe->field);
        if (n >= 0)
            free(fe->message);
        fe->field = NULL;
        fe->message = NULL;
        pb->dropped++;
        return KD_ENOMEM;
    }
    pb->n++;
    return KD_OK;
}

void
kd_problem_clear(struct kd_problem *pb)
{
    for (size_t i = 0; i < pb->n; i++) {
        free(pb->errors[i].field);
        free(pb->errors[i].message);
    }
    pb->n = 0;
    pb->dropped = 0;
}
