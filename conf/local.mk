EXTRA_DIST += conf/connectd.conf conf/connectd-kubernetes.conf conf/pods.example.json

# The shipped config names its example pods file relative to the source
# tree; the installed copy names the installed file.  An existing config
# is never overwritten.
confdir = $(sysconfdir)/connectd
conf_DATA = conf/pods.example.json
doc_DATA = conf/connectd-kubernetes.conf README.md

# The BigQuery table schema of the json format (connectd.conf(5)), data
# rather than configuration: DATADIR/connectd/bigquery-schema.json.
dist_pkgdata_DATA = conf/bigquery-schema.json
# Fluent Bit configurations that send the lines to BigQuery, from a file
# on a host or from a container's standard output in Kubernetes.
fluentbitdir = $(pkgdatadir)/fluent-bit
dist_fluentbit_DATA = conf/fluent-bit/fluent-bit-host.conf \
	conf/fluent-bit/fluent-bit-kubernetes.conf \
	conf/fluent-bit/parsers-connectd.conf conf/fluent-bit/connectd-pod.lua

install-data-local:
	$(MKDIR_P) $(DESTDIR)$(confdir)
	if [ ! -f $(DESTDIR)$(confdir)/connectd.conf ]; then \
	  sed 's|file:conf/pods.example.json|file:$(confdir)/pods.example.json|' \
	    $(srcdir)/conf/connectd.conf > $(DESTDIR)$(confdir)/connectd.conf; \
	fi

uninstall-local:
	rm -f $(DESTDIR)$(confdir)/connectd.conf
