# tools/: kadrctl, the operator's tool (migrations, users, keys, queue, config).
bin_PROGRAMS += tools/kadrctl
tools_kadrctl_SOURCES = tools/kadrctl.c
tools_kadrctl_CFLAGS = $(AM_CFLAGS)
tools_kadrctl_LDADD = $(KADR_CORE_LIBS)
