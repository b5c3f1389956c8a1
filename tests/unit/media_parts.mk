# tests/unit/media_parts_test: subtitles, thumbnails and the remux path of
# the media engine, against media made at run time by the ffmpeg CLI.
if HAVE_CHECK
check_PROGRAMS += tests/unit/media_parts_test
TESTS += tests/unit/media_parts_test
tests_unit_media_parts_test_SOURCES = tests/unit/media_parts_test.c
tests_unit_media_parts_test_CFLAGS = $(AM_CFLAGS) $(KADR_MEDIA_CFLAGS) $(CHECK_CFLAGS)
tests_unit_media_parts_test_LDADD = $(KADR_MEDIA_LIBS) $(KADR_CORE_LIBS) $(CHECK_LIBS)
endif
