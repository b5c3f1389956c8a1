# workers/: kadr-worker, the daemon that runs probes and edits in sandboxed
# children (doc/internals/worker.md).
bin_PROGRAMS += workers/kadr-worker
workers_kadr_worker_SOURCES = \
	workers/main.c workers/worker.h \
	workers/tasks.c workers/tasks.h \
	workers/slot.c workers/slot.h \
	workers/child.c workers/child.h \
	workers/sandbox.c workers/sandbox.h \
	workers/run.c workers/run.h \
	workers/proto.c workers/proto.h \
	workers/policy.c workers/policy.h
workers_kadr_worker_CFLAGS = $(AM_CFLAGS) $(KADR_MEDIA_CFLAGS)
# The media engine uses the core library, so it comes first.
workers_kadr_worker_LDADD = $(KADR_MEDIA_LIBS) $(KADR_CORE_LIBS) $(SECCOMP_LIBS)

# kadr-scheduler: pushes due work into the queue, reconciles it with
# PostgreSQL, applies retention; one leads at a time (doc/lifecycle.md).
bin_PROGRAMS += workers/kadr-scheduler
workers_kadr_scheduler_SOURCES = workers/scheduler.c
workers_kadr_scheduler_LDADD = $(KADR_CORE_LIBS)

if HAVE_CHECK
check_PROGRAMS += tests/unit/worker_proto_test tests/unit/worker_policy_test \
	tests/unit/worker_child_test tests/unit/worker_slot_test
TESTS += tests/unit/worker_proto_test tests/unit/worker_policy_test \
	tests/unit/worker_child_test tests/unit/worker_slot_test
tests_unit_worker_proto_test_SOURCES = tests/unit/worker_proto_test.c workers/proto.c
tests_unit_worker_proto_test_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) -I$(top_srcdir)/workers
tests_unit_worker_proto_test_LDADD = $(KADR_CORE_LIBS) $(CHECK_LIBS)
tests_unit_worker_policy_test_SOURCES = tests/unit/worker_policy_test.c workers/policy.c
tests_unit_worker_policy_test_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) -I$(top_srcdir)/workers
tests_unit_worker_policy_test_LDADD = $(KADR_CORE_LIBS) $(CHECK_LIBS)
tests_unit_worker_child_test_SOURCES = tests/unit/worker_child_test.c workers/child.c \
	workers/sandbox.c workers/proto.c
tests_unit_worker_child_test_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) -I$(top_srcdir)/workers
tests_unit_worker_child_test_LDADD = $(KADR_CORE_LIBS) $(SECCOMP_LIBS) $(CHECK_LIBS)
tests_unit_worker_slot_test_SOURCES = tests/unit/worker_slot_test.c workers/slot.c \
	workers/child.c workers/sandbox.c workers/proto.c workers/policy.c
tests_unit_worker_slot_test_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) -I$(top_srcdir)/workers
tests_unit_worker_slot_test_LDADD = $(KADR_CORE_LIBS) $(SECCOMP_LIBS) $(CHECK_LIBS)
endif
