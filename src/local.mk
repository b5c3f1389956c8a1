# src/: the core library every program links.
noinst_LIBRARIES += src/libkadr.a
src_libkadr_a_CFLAGS = $(AM_CFLAGS) $(PQ_CFLAGS) $(HIREDIS_CFLAGS) $(CURL_CFLAGS) $(XML2_CFLAGS)
src_libkadr_a_SOURCES = \
	src/err.c src/err.h \
	src/util.c src/util.h \
	src/log.c src/log.h \
	src/config.c src/config.h \
	src/json.c src/json.h \
	src/problem.c src/problem.h \
	src/db.c src/db.h \
	src/queue.c src/queue.h \
	src/storage.c src/storage.h \
	src/auth.c src/auth.h

dist_pkgdata_DATA += sql/001_init.sql sql/002_enqueue.sql
dist_pkgdata_DATA += sql/006_webhooks.sql
dist_pkgdata_DATA += sql/004_accounts.sql
# Accounts (issue #5): access tokens and password hashes.
src_libkadr_a_SOURCES += src/jwt.c src/jwt.h src/password.c src/password.h
# The audit log and plan limits, shared by kadr-api and kadrctl.
src_libkadr_a_SOURCES += src/audit.c src/audit.h src/plan.c src/plan.h
# Request counters the API processes share (GET /metrics).
src_libkadr_a_SOURCES += src/stats.c src/stats.h
# Housekeeping of the account tables (kadrctl cleanup, kadr-scheduler).
src_libkadr_a_SOURCES += src/cleanup.c src/cleanup.h
# The runs the jobs-per-hour limit counts (retries included).
dist_pkgdata_DATA += sql/007_job_runs.sql
dist_pkgdata_DATA += sql/003_lifecycle.sql
# Dead letters of retried jobs gone, every webhook try logged (issue #4).
dist_pkgdata_DATA += sql/008_lifecycle_fixes.sql
