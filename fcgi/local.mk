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
	fcgi/internal.c
fcgi_kadr_api_CFLAGS = $(AM_CFLAGS) $(FCGI_CFLAGS)
fcgi_kadr_api_LDADD = $(KADR_CORE_LIBS) $(FCGI_LIBS)
