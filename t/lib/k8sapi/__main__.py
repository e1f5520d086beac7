"""python3 t/lib/k8sapi [--pods N] [--port P]: serve until ^C."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from k8sapi.control import main  # noqa: E402

main(sys.argv[1:])
