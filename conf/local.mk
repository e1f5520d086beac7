EXTRA_DIST += conf/connectd.conf conf/connectd-kubernetes.conf conf/pods.example.json
