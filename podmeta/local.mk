bin_PROGRAMS += podmeta/podmeta
podmeta_podmeta_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CURL_CFLAGS) $(PCRE2_CFLAGS) $(YAML_CFLAGS)
podmeta_podmeta_LDADD = lib/libshared.a $(JANSSON_LIBS) $(CURL_LIBS) $(PCRE2_LIBS) $(YAML_LIBS) $(EV_LIBS) $(PTHREAD_LIBS) -lm
podmeta_podmeta_SOURCES = \
	podmeta/podmeta.h \
	podmeta/podmeta.c \
	podmeta/proto.c \
	podmeta/policy.c \
	podmeta/index.c \
	podmeta/render.c \
	podmeta/kube.c \
	podmeta/yamljson.c \
	podmeta/watch.c \
	podmeta/source.c
