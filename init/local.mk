# init/: systemd units for a production machine (doc/operations.md). The
# .in files get the install's paths here (not in configure, whose values
# still hold ${prefix}) and go to $(pkgdatadir)/systemd, from where the
# administrator copies them to /etc/systemd/system.
systemddir = $(pkgdatadir)/systemd
systemd_units = init/systemd/kadr-api.service init/systemd/kadr-migrate.service \
	init/systemd/kadr-notify.service init/systemd/kadr-scheduler.service \
	init/systemd/kadr-worker@.service init/systemd/kadr-nginx.service
systemd_DATA = $(systemd_units)
dist_systemd_DATA = init/systemd/kadr.target
EXTRA_DIST += init/systemd/kadr-api.service.in init/systemd/kadr-migrate.service.in \
	init/systemd/kadr-notify.service.in init/systemd/kadr-scheduler.service.in \
	init/systemd/kadr-worker@.service.in init/systemd/kadr-nginx.service.in
CLEANFILES += $(systemd_units)

kd_subst_paths = sed -e 's|@bindir[@]|$(bindir)|g' -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	-e 's|@pkgdatadir[@]|$(pkgdatadir)|g'

init/systemd/kadr-api.service: init/systemd/kadr-api.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) init/systemd && $(kd_subst_paths) $(srcdir)/$@.in >$@.tmp && mv $@.tmp $@
init/systemd/kadr-migrate.service: init/systemd/kadr-migrate.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) init/systemd && $(kd_subst_paths) $(srcdir)/$@.in >$@.tmp && mv $@.tmp $@
init/systemd/kadr-notify.service: init/systemd/kadr-notify.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) init/systemd && $(kd_subst_paths) $(srcdir)/$@.in >$@.tmp && mv $@.tmp $@
init/systemd/kadr-scheduler.service: init/systemd/kadr-scheduler.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) init/systemd && $(kd_subst_paths) $(srcdir)/$@.in >$@.tmp && mv $@.tmp $@
init/systemd/kadr-worker@.service: init/systemd/kadr-worker@.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) init/systemd && $(kd_subst_paths) $(srcdir)/$@.in >$@.tmp && mv $@.tmp $@
init/systemd/kadr-nginx.service: init/systemd/kadr-nginx.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) init/systemd && $(kd_subst_paths) $(srcdir)/$@.in >$@.tmp && mv $@.tmp $@

# The nginx renderer goes next to the installed templates ($(pkgdatadir)/nginx).
dist_pkgdata_SCRIPTS = scripts/nginx-conf.sh

# make check: the units pass systemd-analyze verify.
TESTS += tests/unit/systemd_units_test.sh
EXTRA_DIST += tests/unit/systemd_units_test.sh
AM_TESTS_ENVIRONMENT = abs_top_builddir='$(abs_top_builddir)' abs_top_srcdir='$(abs_top_srcdir)'; export abs_top_builddir abs_top_srcdir;
