# notify/: kadr-notify, the daemon that delivers signed webhooks from the
# outbox table webhook_deliveries (doc/webhooks.md).
bin_PROGRAMS += notify/kadr-notify
notify_kadr_notify_SOURCES = notify/main.c notify/policy.c notify/policy.h
notify_kadr_notify_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS)
notify_kadr_notify_LDADD = $(KADR_CORE_LIBS)

if HAVE_CHECK
check_PROGRAMS += tests/unit/notify_test
TESTS += tests/unit/notify_test
tests_unit_notify_test_SOURCES = tests/unit/notify_test.c notify/policy.c
tests_unit_notify_test_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) -I$(top_srcdir)/notify
tests_unit_notify_test_LDADD = $(KADR_CORE_LIBS) $(CHECK_LIBS)
endif
