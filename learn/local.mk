# connectd-learn: a suggested egress.connectd.io/allow list per workload
# from connectd's json access-log lines (connectd-learn(1))
bin_PROGRAMS += learn/connectd-learn
learn_connectd_learn_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
learn_connectd_learn_LDADD = lib/libshared.a $(JANSSON_LIBS)
learn_connectd_learn_SOURCES = learn/learn.c
