# tests/unit/media_test: the media engine against media made at run time by
# the ffmpeg command line (Check). media.supp: for valgrind runs by hand.
if HAVE_CHECK
check_PROGRAMS += tests/unit/media_test
TESTS += tests/unit/media_test
tests_unit_media_test_SOURCES = tests/unit/media_test.c
tests_unit_media_test_CFLAGS = $(AM_CFLAGS) $(KADR_MEDIA_CFLAGS) $(CHECK_CFLAGS)
tests_unit_media_test_LDADD = $(KADR_MEDIA_LIBS) $(KADR_CORE_LIBS) $(CHECK_LIBS)
endif
EXTRA_DIST += tests/unit/media.supp
