# Unit tests of the S3 backend (issue #6).
if HAVE_CHECK
check_PROGRAMS += tests/unit/sigv4_test
TESTS += tests/unit/sigv4_test
tests_unit_sigv4_test_SOURCES = tests/unit/sigv4_test.c
tests_unit_sigv4_test_CFLAGS = $(UNIT_CFLAGS) -DKD_TOP_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_sigv4_test_LDADD = $(UNIT_LIBS)
endif
if HAVE_CHECK
check_PROGRAMS += tests/unit/storage_s3_test
TESTS += tests/unit/storage_s3_test
tests_unit_storage_s3_test_SOURCES = tests/unit/storage_s3_test.c
tests_unit_storage_s3_test_CFLAGS = $(UNIT_CFLAGS)
tests_unit_storage_s3_test_LDADD = $(UNIT_LIBS)
endif
EXTRA_DIST += tests/s3/package.json tests/s3/package-lock.json tests/s3/s3server.sh \
	tests/s3/verify-proxy.js
