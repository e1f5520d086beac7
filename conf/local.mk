EXTRA_DIST += conf/connectd.conf conf/pods.example.json
