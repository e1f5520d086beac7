EXTRA_DIST += conf/connectd.conf conf/connectd-kubernetes.conf conf/pods.example.json \
	conf/connectd.service.in conf/connectd.logrotate

# The shipped config names its example pods file relative to the source
# tree; the installed copy names the installed file.  An existing config
# is never overwritten.
confdir = $(sysconfdir)/connectd
conf_DATA = conf/pods.example.json
doc_DATA = conf/connectd-kubernetes.conf README.md

# The BigQuery table schema of the json format (connectd.conf(5)), data
# rather than configuration: DATADIR/connectd/bigquery-schema.json.
dist_pkgdata_DATA = conf/bigquery-schema.json
# connectd-learn(1) in BigQuery SQL, over that table
dist_pkgdata_DATA += conf/learn.sql
# Fluent Bit configurations that send the lines to BigQuery, from a file
# on a host or from a container's standard output in Kubernetes.
fluentbitdir = $(pkgdatadir)/fluent-bit
dist_fluentbit_DATA = conf/fluent-bit/fluent-bit-host.conf \
	conf/fluent-bit/fluent-bit-kubernetes.conf \
	conf/fluent-bit/parsers-connectd.conf conf/fluent-bit/connectd-pod.lua

# A lab host: the systemd unit, made from connectd.service.in with the
# configured paths (connectd(8), SYSTEMD), in systemd's unit directory;
# the logrotate file in SYSCONFDIR/logrotate.d, kept if it exists.
if HAVE_SYSTEMDSYSTEMUNITDIR
systemdsystemunit_DATA = conf/connectd.service
endif
noinst_DATA = conf/connectd.service
CLEANFILES += conf/connectd.service
logrotatedir = $(sysconfdir)/logrotate.d

conf/connectd.service: $(srcdir)/conf/connectd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) conf && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@bindir[@]|$(bindir)|g' \
	    -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	    $(srcdir)/conf/connectd.service.in > $@.tmp && mv $@.tmp $@

install-data-local:
	$(MKDIR_P) $(DESTDIR)$(confdir)
	if [ ! -f $(DESTDIR)$(confdir)/connectd.conf ]; then \
	  sed 's|file:conf/pods.example.json|file:$(confdir)/pods.example.json|' \
	    $(srcdir)/conf/connectd.conf > $(DESTDIR)$(confdir)/connectd.conf; \
	fi
	$(MKDIR_P) $(DESTDIR)$(logrotatedir)
	if [ ! -f $(DESTDIR)$(logrotatedir)/connectd ]; then \
	  $(INSTALL_DATA) $(srcdir)/conf/connectd.logrotate \
	    $(DESTDIR)$(logrotatedir)/connectd; \
	fi

uninstall-local:
	rm -f $(DESTDIR)$(confdir)/connectd.conf
	rm -f $(DESTDIR)$(logrotatedir)/connectd
