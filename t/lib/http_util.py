"""http_util.py: an HTTP/1.1 origin for the plain-HTTP forwarding tests (t/60-69).

    import http_util as hu
    web = hu.WebOrigin()                 # 127.0.0.1, a free port, threads
    url = web.url("/bytes/1000")         # http://127.0.0.1:PORT/bytes/1000
    web.connections                      # TCP connections accepted so far

Paths:
  /bytes/N     N pattern bytes, Content-Length (HEAD: the head only)
  /chunked/N   N pattern bytes, Transfer-Encoding: chunked, 1000-byte chunks
  /close/N     N pattern bytes, no length: the server closes after them
  /status/S    an empty response with status S (204, 304, 404 ...)
  /headers     JSON: the request line and every header as received
  /sha         (POST, PUT) JSON: the body's length and sha256, read by
               Content-Length or chunked; Expect: 100-continue is honoured
  /slow/N      waits N seconds, then answers /bytes/10
Every response says "Connection: keep-alive" unless the path is /close.

    files = hu.FileOrigin(root)          # serves the files under root
    files.requests                       # [(method, path with query, headers)]
    files.answered                       # [(method, path with query, status)]

FileOrigin is a static HTTP/1.1 file server for the real-client tests
(apt, pip): http.server's SimpleHTTPRequestHandler (Content-Length,
If-Modified-Since -> 304, index.html for a directory), keep-alive on
every response, errors included, as Debian's mirrors (nginx, Apache) do.
`special` maps a path (without its query) to a callable that answers it
instead: fn(handler) -> (status, [(field, value)], body bytes); a
Content-Length is added unless the fields give one or a
Transfer-Encoding.
"""
import functools
import hashlib
import http.server
import json
import socketserver
import threading
import time

import harness as h


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, status, body=b"", headers=(), length=True):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        self.server.origin.requests.append((self.command, self.path,
                                            dict(self.headers.items())))
        if parts[0] == "bytes":
            self._send(200, h.pattern(int(parts[1])),
                       [("Content-Type", "application/octet-stream")])
        elif parts[0] == "chunked":
            data = h.pattern(int(parts[1]))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command != "HEAD":
                for i in range(0, len(data), 1000):
                    piece = data[i:i + 1000]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
        elif parts[0] == "close":
            self.close_connection = True
            self._send(200, h.pattern(int(parts[1])), [("Connection", "close")],
                       length=False)
        elif parts[0] == "status":
            self._send(int(parts[1]), length=int(parts[1]) not in (204, 304))
        elif parts[0] == "headers":
            body = json.dumps({"line": self.requestline,
                               "headers": self.headers.items()}).encode()
            self._send(200, body, [("Content-Type", "application/json")])
        elif parts[0] == "slow":
            time.sleep(float(parts[1]))
            self._send(200, h.pattern(10))
        else:
            self._send(404, b"no such path\n")

    do_HEAD = do_GET
    do_DELETE = do_GET
    do_OPTIONS = do_GET

    def do_POST(self):
        self.server.origin.requests.append((self.command, self.path,
                                            dict(self.headers.items())))
        body = self._body()
        out = json.dumps({"len": len(body),
                          "sha256": hashlib.sha256(body).hexdigest()}).encode()
        self._send(200, out, [("Content-Type", "application/json")])

    do_PUT = do_POST
    do_PATCH = do_POST


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass        # a client that went away mid-request: not news

    def get_request(self):
        sock, addr = super().get_request()
        self.origin.connections += 1
        return sock, addr


class WebOrigin:
    """The origin server of the forwarding tests (see the module text)."""

    def __init__(self, host="127.0.0.1", port=0):
        self.requests = []
        self.connections = 0
        self.server = _Server((host, port), _Handler)
        self.server.origin = self
        self.host, self.port = host, self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        h.at_cleanup(self.close)

    @property
    def authority(self):
        return "%s:%d" % (self.host, self.port)

    def url(self, path):
        return "http://%s%s" % (self.authority, path)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class _FileHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send_error(self, code, message=None, explain=None):
        # http.server closes after every error; a mirror keeps the
        # connection for the next request
        body = ("%d %s\n" % (code, message or self.responses.get(code, ("",))[0])).encode()
        self.send_response(code, message)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_response(self, code, message=None):
        self.server.origin.answered.append((self.command, self.path, code))
        super().send_response(code, message)

    def _record(self):
        origin = self.server.origin
        origin.requests.append((self.command, self.path, dict(self.headers.items())))
        fn = origin.special.get(self.path.split("?")[0])
        if fn is None:
            return False
        status, fields, body = fn(self)
        self.send_response(status)
        names = [k.lower() for k, v in fields]
        for k, v in fields:
            self.send_header(k, v)
        if "content-length" not in names and "transfer-encoding" not in names:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return True

    def do_GET(self):
        if not self._record():
            super().do_GET()

    def do_HEAD(self):
        if not self._record():
            super().do_HEAD()


class FileOrigin:
    """A static file server over root (see the module text)."""

    def __init__(self, root, host="127.0.0.1", port=0, special=None):
        self.requests = []
        self.answered = []
        self.connections = 0
        self.special = dict(special or {})
        handler = functools.partial(_FileHandler, directory=root)
        self.server = _Server((host, port), handler)
        self.server.origin = self
        self.host, self.port = host, self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        h.at_cleanup(self.close)

    authority = WebOrigin.authority
    url = WebOrigin.url
    close = WebOrigin.close
