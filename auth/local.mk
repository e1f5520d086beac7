# basic_file_auth: a Squid basic auth helper (auth_param basic program)
pkglibexec_PROGRAMS = auth/basic_file_auth
auth_basic_file_auth_LDADD = $(CRYPT_LIBS)
auth_basic_file_auth_SOURCES = auth/basic_file_auth.c
