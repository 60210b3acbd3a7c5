"""HTTP/1.1 keep-alive for werkzeug's threaded server, as Kong's nginx does it.

werkzeug's development server answers every request with ``Connection: close`` because
Python's http.server cannot tell where an unread request body ends. Kong keeps client
connections open, and a Kong stand-in that does not would charge every Admin API call a
TCP handshake and a fresh thread, and never exercise a client's connection reuse (a reused
connection the server has since closed, say). Here the body of every request is bounded by
its Content-Length and drained after the answer, so the next request line is where the
parser expects it; a chunked body still closes the connection.

Stopping the server closes the connections it holds open, as a stopping nginx does, so a
client's idle pooled connection cannot keep a stopped server's thread alive.
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler
from werkzeug.wsgi import LimitedStream

IDLE_TIMEOUT = 60.0  # seconds an idle kept-alive connection stays open (nginx: 75 s)


_DIGITS = re.compile(r"[0-9]+")


class KeepAliveHandler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT  # StreamRequestHandler sets it on the socket

    def setup(self) -> None:
        super().setup()
        # werkzeug writes status, headers and body in separate sends; on a kept-alive
        # connection Nagle's algorithm would hold the body for the client's delayed ACK
        # (~40 ms). nginx sets tcp_nodelay on keep-alive connections for the same reason.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._body: LimitedStream | None = None
        self._rfile: Any = None
        self._closing = False
        self._in_app = False
        _open_connections(self.server).add(self.connection)
        if getattr(self.server, "_kong_local_stopping", False):
            # accepted just before the server stopped, registered after it closed the rest
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        _open_connections(self.server).discard(self.connection)
        super().finish()

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        if environ.get("wsgi.input_terminated"):  # chunked: no bound to drain to
            self._closing = True
            return environ
        lengths = self.headers.get_all("Content-Length") or ["0"]
        length = lengths[0].strip()
        if len(lengths) > 1 or not _DIGITS.fullmatch(length) or "Transfer-Encoding" in self.headers:
            # "-1", "+5", "1_0", empty, twice, or a transfer coding besides the length: where
            # this body ends is not certain, so nothing after it may be read as a request
            self._closing = True
            return environ
        self._body = LimitedStream(environ["wsgi.input"], int(length))
        environ["wsgi.input"] = self._body
        environ["wsgi.input_terminated"] = True  # the stream ends at Content-Length
        # After answering, werkzeug reads whatever the socket still holds "to discard the
        # body" (serving.py says this would break keep-alive: it eats the next request).
        # It reads self.rfile: hand it an empty one until run_wsgi returns.
        self._rfile, self.rfile = self.rfile, io.BytesIO()
        return environ

    def run_wsgi(self) -> None:
        self._body, self._closing, self._rfile = None, False, None
        self._in_app = True
        try:
            super().run_wsgi()
        finally:
            self._in_app = False
            if self._rfile is not None:
                self.rfile = self._rfile
        if self._closing or self._body is None:
            self.close_connection = True
            return
        try:
            self._body.exhaust()
        except Exception:  # the client went away mid-body (werkzeug's ClientDisconnected)
            self.close_connection = True

    def log_error(self, format: str, *args: Any) -> None:
        if format.startswith("Request timed out"):
            return  # an idle kept-alive connection reaching IDLE_TIMEOUT: normal, not an error
        super().log_error(format, *args)

    def send_header(self, keyword: str, value: str) -> None:
        """Drop the ``Connection: close`` werkzeug adds to every answer from the app, unless
        this connection is closing anyway (HTTP/1.0, the client asked, an unbounded body).
        Errors http.server sends itself (431, 414, 505: the request could not be parsed)
        keep it, and close."""
        closing = self._closing or self.close_connection or not self._in_app
        if keyword.lower() == "connection" and value.lower() == "close" and not closing:
            return
        super().send_header(keyword, value)


def _open_connections(server: BaseWSGIServer) -> set[socket.socket]:
    found = getattr(server, "_kong_local_connections", None)
    if found is None:
        with _CREATE:
            found = getattr(server, "_kong_local_connections", None)
            if found is None:
                found = set()
                server._kong_local_connections = found  # type: ignore[attr-defined]
    return found


_CREATE = threading.Lock()


def close_open_connections(server: BaseWSGIServer) -> None:
    """Shut down every connection the server still holds (after ``shutdown()``); a
    connection accepted in the meantime shuts itself down in ``setup``."""
    server._kong_local_stopping = True  # type: ignore[attr-defined]
    for sock in list(_open_connections(server)):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
