# src/media: the media engine (libav*), linked only by the worker and its tests.
noinst_LIBRARIES += src/libkadr_media.a
src_libkadr_media_a_CFLAGS = $(AM_CFLAGS) $(KADR_MEDIA_CFLAGS)
src_libkadr_media_a_SOURCES = \
	src/media.h src/media_int.h \
	src/media_input.c \
	src/media_probe.c \
	src/media_graph.c \
	src/media_output.c \
	src/media_edit.c
src_libkadr_media_a_SOURCES += src/media_parts.h src/media_subs.c src/media_thumbs.c src/media_remux.c
