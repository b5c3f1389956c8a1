# tools/: kadrctl, the operator's tool (migrations, users, keys, queue, config).
bin_PROGRAMS += tools/kadrctl
tools_kadrctl_SOURCES = tools/kadrctl.c
tools_kadrctl_CFLAGS = $(AM_CFLAGS)
tools_kadrctl_LDADD = $(KADR_CORE_LIBS)

# kadr-edit: runs an edit on local files in a job child, as the worker
# does (debugging, benchmarks): it shares the worker's child, body and
# protocol sources.
bin_PROGRAMS += tools/kadr-edit
tools_kadr_edit_SOURCES = tools/kadr-edit.c workers/run.c workers/child.c workers/sandbox.c \
	workers/proto.c
tools_kadr_edit_CFLAGS = $(AM_CFLAGS) $(KADR_MEDIA_CFLAGS) -I$(top_srcdir)/workers
tools_kadr_edit_LDADD = $(KADR_MEDIA_LIBS) $(KADR_CORE_LIBS) $(SECCOMP_LIBS)
