noinst_LIBRARIES += lib/libshared.a
lib_libshared_a_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
lib_libshared_a_SOURCES = \
	lib/util.h \
	lib/addr.c lib/addr.h \
	lib/buf.c lib/buf.h \
	lib/hash.c lib/hash.h \
	lib/diag.c lib/diag.h \
	lib/timefmt.c lib/timefmt.h \
	lib/helperproto.c lib/helperproto.h \
	lib/net.c lib/net.h \
	lib/jsonutil.c lib/jsonutil.h

# The TLS hello reader: only connectd needs it, and it alone needs
# libcrypto (SHA-256 for JA4), so it is an archive of its own; link it
# before lib/libshared.a, with $(CRYPTO_LIBS).
noinst_LIBRARIES += lib/libtlshello.a
lib_libtlshello_a_CFLAGS = $(AM_CFLAGS) $(CRYPTO_CFLAGS)
lib_libtlshello_a_SOURCES = lib/tlshello.c lib/tlshello.h
