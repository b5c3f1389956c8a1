# Unit tests of the core modules (Check). Run by make check, also under ASan+UBSan.
if HAVE_CHECK
UNIT_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
UNIT_LIBS = $(KADR_CORE_LIBS) $(CHECK_LIBS)

check_PROGRAMS += tests/unit/util_test tests/unit/config_test tests/unit/json_test \
	tests/unit/storage_test tests/unit/queue_test tests/unit/db_test
TESTS += tests/unit/util_test tests/unit/config_test tests/unit/json_test \
	tests/unit/storage_test tests/unit/queue_test tests/unit/db_test

tests_unit_util_test_SOURCES = tests/unit/util_test.c
tests_unit_util_test_CFLAGS = $(UNIT_CFLAGS)
tests_unit_util_test_LDADD = $(UNIT_LIBS)
tests_unit_config_test_SOURCES = tests/unit/config_test.c
tests_unit_config_test_CFLAGS = $(UNIT_CFLAGS)
tests_unit_config_test_LDADD = $(UNIT_LIBS)
tests_unit_json_test_SOURCES = tests/unit/json_test.c
tests_unit_json_test_CFLAGS = $(UNIT_CFLAGS)
tests_unit_json_test_LDADD = $(UNIT_LIBS)
tests_unit_storage_test_SOURCES = tests/unit/storage_test.c
tests_unit_storage_test_CFLAGS = $(UNIT_CFLAGS)
tests_unit_storage_test_LDADD = $(UNIT_LIBS)
tests_unit_queue_test_SOURCES = tests/unit/queue_test.c
tests_unit_queue_test_CFLAGS = $(UNIT_CFLAGS)
tests_unit_queue_test_LDADD = $(UNIT_LIBS)
tests_unit_db_test_SOURCES = tests/unit/db_test.c
tests_unit_db_test_CFLAGS = $(UNIT_CFLAGS) -DKD_TOP_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_db_test_LDADD = $(UNIT_LIBS)
endif

# Accounts (issue #5): access tokens and password hashes.
if HAVE_CHECK
check_PROGRAMS += tests/unit/jwt_test tests/unit/password_test tests/unit/plan_test \
	tests/unit/stats_test
TESTS += tests/unit/jwt_test tests/unit/password_test tests/unit/plan_test \
	tests/unit/stats_test
tests_unit_jwt_test_SOURCES = tests/unit/jwt_test.c
tests_unit_jwt_test_CFLAGS = $(UNIT_CFLAGS)
tests_unit_jwt_test_LDADD = $(UNIT_LIBS)
tests_unit_password_test_SOURCES = tests/unit/password_test.c
tests_unit_password_test_CFLAGS = $(UNIT_CFLAGS)
tests_unit_password_test_LDADD = $(UNIT_LIBS)
tests_unit_plan_test_SOURCES = tests/unit/plan_test.c
tests_unit_plan_test_CFLAGS = $(UNIT_CFLAGS)
tests_unit_plan_test_LDADD = $(UNIT_LIBS)
tests_unit_stats_test_SOURCES = tests/unit/stats_test.c
tests_unit_stats_test_CFLAGS = $(UNIT_CFLAGS)
tests_unit_stats_test_LDADD = $(UNIT_LIBS)
endif
