noinst_LIBRARIES += lib/libshared.a
lib_libshared_a_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
lib_libshared_a_SOURCES = \
	lib/diag.c lib/diag.h \
	lib/timefmt.c lib/timefmt.h \
	lib/helperproto.c lib/helperproto.h \
	lib/jsonutil.c lib/jsonutil.h
