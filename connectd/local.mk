sbin_PROGRAMS += connectd/connectd
connectd_connectd_CFLAGS = $(AM_CFLAGS) $(CRYPTO_CFLAGS) $(JANSSON_CFLAGS) $(CARES_CFLAGS) $(PCRE2_CFLAGS)
connectd_connectd_LDADD = lib/libtlshello.a lib/libshared.a $(CRYPTO_LIBS) $(JANSSON_LIBS) $(CARES_LIBS) $(PCRE2_LIBS) $(EV_LIBS) $(PTHREAD_LIBS) -lm
connectd_connectd_SOURCES = \
	connectd/connectd.h \
	connectd/connectd.c \
	connectd/conf.c \
	connectd/http.c \
	connectd/httpmsg.c \
	connectd/listener.c \
	connectd/worker.c \
	connectd/conn.c \
	connectd/relay.c \
	connectd/peek.c \
	connectd/forward.c \
	connectd/resolve.c \
	connectd/acl.c \
	connectd/ifaddr.c \
	connectd/limit.c \
	connectd/helper.h \
	connectd/helper_conf.c \
	connectd/helper_pool.c \
	connectd/helper_cache.c \
	connectd/helper_conn.c \
	connectd/logrec.c \
	connectd/accesslog.c \
	connectd/opener.c \
	connectd/sdnotify.c \
	connectd/logformat.c \
	connectd/sink.h \
	connectd/sink.c \
	connectd/sinknet.c \
	connectd/metrics.c \
	connectd/admin.c
