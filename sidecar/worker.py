"""The gunicorn worker ``serve`` runs: threads only ever see complete requests.

Why not gunicorn's ``gthread`` as is: it hands a connection to a thread as soon as the first
byte arrives, and the thread then blocks reading the rest. Ten sockets that send half a
header held every thread of a worker (issue 13 item 2), and twelve requests waiting on a
Kong that never answers left none for ``/healthz`` (item 3).

Why not an async worker class (gunicorn's ``gevent``/``eventlet``): they hold idle
connections cheaply, but ``GeventWorker.init_process`` calls ``monkey.patch_all()``, after
which the sidecar's own threads (the lease sweeper, the ``kong-io`` pool in ``traffic.py``)
and every request are greenlets on one OS thread. httpx's sync client would keep working
(its sockets and locks are patched, as are prometheus_client's, imported after the patch),
but scheduling becomes cooperative: a CPU-bound stretch (a write plan for hundreds of
targets, issue 13 item 7; a large JSON answer) stops every greenlet, ``/healthz`` included,
until it ends, where OS threads are switched every 5 ms under the GIL. Kong-bound work would
still need a bound of its own, and gevent is a compiled dependency we do not have. This worker
keeps ``gthread``'s model (a selector loop in the main thread, a thread pool for the WSGI
app) and changes what the loop does before handing a connection over:

- It reads the request itself, non-blocking, into a buffer until :func:`sidecar.core.framing.
  frame` says the request is complete, so an idle or trickling client costs a buffer and a
  selector entry, never a thread. A head must arrive within ``header_timeout`` seconds of
  its first byte (or of the accept), a body within ``body_timeout`` of the head; late ones
  get 408 and are closed. Heads over 64 KiB get 431, bodies over the larger of the two body
  caps (``max_body_bytes``, ``kong_log_max_body_bytes``) 413.
- The complete request goes to its lane's pool (:mod:`sidecar.core.lanes`): ``/healthz``
  and ``/metrics`` each on threads of their own, everything else on ``threads`` threads
  with ``request_queue`` more allowed to wait; one more is answered 503 at once with the
  project's JSON error and ``Retry-After``, without touching a thread.
- Every answer the loop gives itself (408, 413, 431, 503) and every eviction is counted in
  ``kong_canary_http_shed_total`` by reason; the API's own request counter never sees them.
- At ``connections`` (gunicorn's ``worker_connections``) the oldest connection still being
  read (or idle between requests) is closed to admit the new one, so a flood of half-open
  sockets cannot stop the worker from accepting the kubelet's probe.
- Sockets handed to threads carry a timeout (``body_timeout``), so a client that stops
  reading its response releases the thread; closing connections are drained in the loop,
  not in a blocking linger.

It extends gunicorn 27's ``gthread.ThreadWorker`` (its loop, ``method_queue``,
``murder_pending`` hook and ``TConn``), hence the pin to gunicorn 27.x in pyproject.toml;
the serve tests fail loudly if a new gunicorn moves them.

Plain HTTP/1.x only (``serve`` configures no TLS and no HTTP/2): the sidecar sits behind
the cluster's Service, and TLS, if any, ends in front of it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import selectors
import socket
import time
from collections import OrderedDict
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

from sidecar.core.framing import Framing, State, frame
from sidecar.core.lanes import Lane, LaneLimit, lane_for
from sidecar.errors import ApiError
from sidecar.metrics import HTTP_SHED

MAX_HEAD = 64 * 1024
# Probes and scrapes come one at a time (a kubelet, a Prometheus or two): small fixed lanes.
HEALTH_LIMIT = LaneLimit(threads=2, queue=16)
METRICS_LIMIT = LaneLimit(threads=1, queue=4)
CLOSE_LINGER = 2.0  # seconds a closing connection is drained before it is cut
RECV_SIZE = 65536
RETRY_AFTER_SECONDS = 1


class TimedSocket:
    """A socket whose blocking mode is a timeout: gunicorn's code sets sockets blocking
    before handing them to a thread, and a thread must never wait on a client forever."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self._sock = sock
        self._timeout = timeout

    def setblocking(self, flag: bool) -> None:
        self._sock.settimeout(self._timeout if flag else 0.0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class SettledConfig:
    """The worker's gunicorn ``Config``, each setting read from it once.

    ``Config.__getattr__`` looks the setting up and calls its ``get()`` on every read, and
    gunicorn reads about twenty-five per request (the parser's limits and header policy,
    ``forwarded_allow_ips``, the WSGI environ, keep-alive): measured in-process, a quarter
    of the ~115 µs gunicorn's parser and ``wsgi.create`` spend on a ``PUT …/split``. A
    worker's settings cannot change after the fork (a reload forks new workers; nothing in
    a worker calls ``Config.set``), so the first value read is the value: the next read of
    that name is a plain attribute. Methods (``forwarded_allow_networks``) still run on the
    ``Config``. Writing through it is refused, as ``Config`` refuses writing a setting.
    """

    def __init__(self, cfg: Any) -> None:
        object.__setattr__(self, "_cfg", cfg)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._cfg, name)
        object.__setattr__(self, name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"settled configuration: {name} cannot be set in a worker")


class StagedConn(TConn):
    """A connection and the bytes of its next request, read by the main loop."""

    def __init__(self, cfg: Any, sock: Any, client: Any, server: Any) -> None:
        super().__init__(cfg, sock, client, server)
        self.buffer = bytearray()
        self.deadline = 0.0
        self.head_seen = False
        self.continue_sent = False
        self.closing = False
        self.lane = Lane.KONG
        self.needs = 0  # total bytes of the request once its head gave a Content-Length
        self.resume: tuple[int, int] | None = None  # where the chunk walk stopped


class StagingWorker(ThreadWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = self.app.settings
        self.header_timeout: float = settings.header_timeout
        self.body_timeout: float = settings.body_timeout
        # The app refuses bodies past its per-route caps in the API's error shape; the loop only
        # keeps anything larger than every cap out of memory.
        self.max_body: int = max(settings.max_body_bytes, settings.kong_log_max_body_bytes)
        self.limits = {
            Lane.KONG: LaneLimit(settings.threads, settings.request_queue),
            Lane.HEALTH: HEALTH_LIMIT,
            Lane.METRICS: METRICS_LIMIT,
        }
        self.admitted = dict.fromkeys(Lane, 0)
        self.pools: dict[Lane, futures.ThreadPoolExecutor] = {}
        # Connections the loop is reading (or draining), oldest first: the eviction order.
        self.staged: OrderedDict[StagedConn, None] = OrderedDict()

    def init_process(self) -> None:
        self.cfg = SettledConfig(self.cfg)  # in the forked worker only: see SettledConfig
        self.pools = {
            lane: futures.ThreadPoolExecutor(limit.threads, thread_name_prefix=lane.value)
            for lane, limit in self.limits.items()
        }
        super().init_process()

    def get_thread_pool(self) -> futures.ThreadPoolExecutor:
        return self.pools[Lane.KONG]  # gunicorn's own shutdown paths stop this one

    def handle_quit(self, sig: Any, frame_: Any) -> None:
        for lane, pool in self.pools.items():
            if lane is not Lane.KONG:
                pool.shutdown(wait=False)
        super().handle_quit(sig, frame_)

    # -- accepting and reading ------------------------------------------------------------

    def accept(self, listener: Any) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        sock = TimedSocket(client_sock, self.body_timeout)
        conn = StagedConn(self.cfg, sock, client_addr, listener.getsockname())
        self._stage(conn, self.header_timeout)
        while self.nr_conns >= self.worker_connections and self._evict_oldest():
            pass

    def _stage(self, conn: StagedConn, idle_timeout: float) -> None:
        """Read ``conn``'s next request in the loop; ``idle_timeout`` until its first byte."""
        conn.sock.setblocking(False)
        conn.head_seen = conn.continue_sent = False
        conn.needs = 0
        conn.resume = None
        conn.deadline = time.monotonic() + (self.header_timeout if conn.buffer else idle_timeout)
        self.staged[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._readable, conn))
        if conn.buffer:  # pipelined behind the last request
            self._advance(conn)

    def _readable(self, conn: StagedConn, _sock: Any) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        if conn.closing:
            return  # draining what a refused client still sends
        if not conn.buffer and not conn.head_seen:
            conn.deadline = time.monotonic() + self.header_timeout
        conn.buffer += data
        self._advance(conn)

    def _advance(self, conn: StagedConn) -> None:
        if len(conn.buffer) < conn.needs:
            return  # a body of known length still arriving: no need to look again
        if len(conn.buffer) > MAX_HEAD + self.max_body + RECV_SIZE:  # endless chunk trailers
            self._refuse(conn, 413, "too_large", "body too large")
            return
        framing = frame(conn.buffer, max_head=MAX_HEAD, max_body=self.max_body, resume=conn.resume)
        if framing.state is State.INCOMPLETE:
            conn.resume = framing.resume
            if framing.head_length and not conn.head_seen:
                conn.head_seen = True
                conn.deadline = time.monotonic() + self.body_timeout
            if framing.length:
                conn.needs = framing.length
            if framing.expects_continue and not conn.continue_sent:
                conn.continue_sent = True
                self._send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        if framing.state is State.TOO_LARGE:
            message = "request head too large" if framing.status == 431 else "body too large"
            self._refuse(conn, framing.status, "too_large", message)
            return
        self._dispatch(conn, framing)

    def _dispatch(self, conn: StagedConn, framing: Framing) -> None:
        lane = lane_for(framing.method, framing.path)
        if not self.limits[lane].admits(self.admitted[lane]):
            self._refuse(
                conn,
                503,
                "overloaded",
                "the sidecar is busy with requests waiting on Kong; retry shortly",
                retry_after=RETRY_AFTER_SECONDS,
            )
            return
        self._unstage(conn)
        conn.lane = lane
        self.admitted[lane] += 1
        fs = self.pools[lane].submit(self.handle, conn)
        fs.add_done_callback(lambda f: self.method_queue.defer(self.finish_request, conn, f))

    # -- the thread's side ----------------------------------------------------------------

    def handle(self, conn: StagedConn) -> Any:  # type: ignore[override]
        """gunicorn's handler, with the request already in the parser's buffer."""
        conn.data_ready = True
        conn.sock.setblocking(True)
        conn.init()
        conn.parser.unreader.unread(bytes(conn.buffer))
        conn.buffer = bytearray()
        return super().handle(conn)

    def handle_request(self, req: Any, conn: StagedConn) -> Any:  # type: ignore[override]
        """The whole body is in already: gunicorn's own ``100 Continue`` would be a second
        one after the loop's (RFC 9110 section 10.1.1 lets a server omit it once it has
        the content)."""
        req._expected_100_continue = False
        return super().handle_request(req, conn)

    def finish_request(self, conn: StagedConn, fs: futures.Future) -> None:  # type: ignore[override]
        self.admitted[conn.lane] -= 1
        try:
            keepalive = fs.result() if not fs.cancelled() else False
        except Exception:
            keepalive = False
        if keepalive and self.alive:
            conn.buffer = bytearray(conn.parser.unreader.take_buffered())
            self._stage(conn, self.cfg.keepalive)
        else:
            self._close_gently(conn)

    # -- ending connections ---------------------------------------------------------------

    def _refuse(
        self, conn: StagedConn, status: int, code: str, message: str, retry_after: int = 0
    ) -> None:
        """An error in the project's JSON shape, written from the loop, then close."""
        HTTP_SHED.labels(code).inc()
        headers = {"Retry-After": str(retry_after)} if retry_after else {}
        body = json.dumps(ApiError(status, code, message).body()).encode()
        reason = {408: "Request Timeout", 413: "Content Too Large", 431: "Request Header "
                  "Fields Too Large", 503: "Service Unavailable"}[status]  # fmt: skip
        head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json"]
        head += [f"Content-Length: {len(body)}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self._send(conn, ("\r\n".join(head) + "\r\n\r\n").encode() + body)
        self._close_gently(conn, registered=True)  # only staged connections are refused

    def _send(self, conn: StagedConn, data: bytes) -> None:
        """Best effort: a fresh socket's send buffer takes a short answer whole."""
        with contextlib.suppress(OSError):
            conn.sock.send(data)

    def _close_gently(self, conn: StagedConn, registered: bool = False) -> None:
        """Half-close and drain in the loop (RFC 9112 section 9.6) instead of gunicorn's
        blocking linger, which would stall this loop for every client that keeps its end."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._drop(conn)
            return
        conn.closing = True
        conn.buffer = bytearray()
        conn.deadline = time.monotonic() + CLOSE_LINGER
        if not registered:
            conn.sock.setblocking(False)
            self.staged[conn] = None
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._readable, conn))

    def _unstage(self, conn: StagedConn) -> None:
        self.staged.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _drop(self, conn: StagedConn) -> None:
        self._unstage(conn)
        self.nr_conns -= 1
        conn.close()

    def _evict_oldest(self) -> bool:
        if not self.staged:
            return False
        HTTP_SHED.labels("evicted").inc()
        self._drop(next(iter(self.staged)))
        return True

    def murder_pending(self) -> None:
        """Runs every loop turn (at least once a second): end what overran its deadline.
        A stopping worker closes idle connections at once and gives others CLOSE_LINGER."""
        now = time.monotonic()
        for conn in list(self.staged):
            if not self.alive and not conn.closing:
                if not conn.buffer:
                    self._drop(conn)
                    continue
                conn.deadline = min(conn.deadline, now + CLOSE_LINGER)
            if conn.deadline > now:
                continue
            if conn.closing or not conn.buffer:
                self._drop(conn)
            else:
                self._refuse(conn, 408, "request_timeout", "the request did not arrive in time")
