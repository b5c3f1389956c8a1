# tools/: kadrctl, the operator's tool (migrations, users, keys, queue, config).
bin_PROGRAMS += tools/kadrctl
tools_kadrctl_SOURCES = tools/kadrctl.c
tools_kadrctl_CFLAGS = $(AM_CFLAGS)
tools_kadrctl_LDADD = $(KADR_CORE_LIBS)

# kadr-edit: runs kd_media_edit on local files (debugging, benchmarks).
bin_PROGRAMS += tools/kadr-edit
tools_kadr_edit_SOURCES = tools/kadr-edit.c
tools_kadr_edit_CFLAGS = $(AM_CFLAGS) $(KADR_MEDIA_CFLAGS)
tools_kadr_edit_LDADD = $(KADR_MEDIA_LIBS) $(KADR_CORE_LIBS)
