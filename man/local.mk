dist_man_MANS += man/connectd.8 man/connectd.conf.5 man/podmeta.8 man/basic_file_auth.8 \
	man/connectd-learn.1
