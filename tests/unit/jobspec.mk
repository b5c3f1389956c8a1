# tests/unit/jobspec_test: the job spec parser (Check).
if HAVE_CHECK
check_PROGRAMS += tests/unit/jobspec_test
TESTS += tests/unit/jobspec_test
tests_unit_jobspec_test_SOURCES = tests/unit/jobspec_test.c
tests_unit_jobspec_test_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_jobspec_test_LDADD = $(KADR_CORE_LIBS) $(CHECK_LIBS)
# Allocation-failure injection: the linker routes every allocation made by the
# test and by src/libkadr.a through counting wrappers in jobspec_test.c
# (jansson's own allocations go there via json_set_alloc_funcs).
tests_unit_jobspec_test_LDFLAGS = $(AM_LDFLAGS) \
	-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free \
	-Wl,--wrap=strdup,--wrap=strndup,--wrap=vasprintf
endif
