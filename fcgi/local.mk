# fcgi/: kadr-api, the FastCGI program (one file per resource).
bin_PROGRAMS += fcgi/kadr-api
fcgi_kadr_api_SOURCES = \
	fcgi/main.c \
	fcgi/http.c fcgi/http.h \
	fcgi/router.c fcgi/router.h \
	fcgi/health.c \
	fcgi/uploads.c \
	fcgi/media.c \
	fcgi/jobs.c \
	fcgi/internal.c \
	fcgi/admin.c \
	fcgi/metrics.c
fcgi_kadr_api_CFLAGS = $(AM_CFLAGS) $(FCGI_CFLAGS)
fcgi_kadr_api_LDADD = $(KADR_CORE_LIBS) $(FCGI_LIBS)
# Accounts (issue #5).
fcgi_kadr_api_SOURCES += fcgi/account.h fcgi/auth.c fcgi/me.c fcgi/apikeys.c fcgi/quota.c

# Unit tests of the request and response code (Check), run by make check.
if HAVE_CHECK
check_PROGRAMS += fcgi/tests/http_test
TESTS += fcgi/tests/http_test
fcgi_tests_http_test_SOURCES = fcgi/tests/http_test.c fcgi/http.c fcgi/http.h
fcgi_tests_http_test_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/fcgi
fcgi_tests_http_test_CFLAGS = $(AM_CFLAGS) $(FCGI_CFLAGS) $(CHECK_CFLAGS)
fcgi_tests_http_test_LDADD = $(KADR_CORE_LIBS) $(FCGI_LIBS) $(CHECK_LIBS)
endif
