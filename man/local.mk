dist_man_MANS += man/connectd.8 man/connectd.conf.5 man/podmeta.8
