"""The live view's server: the page's files over HTTP and the stream's values pushed over a WebSocket, both on one
port, from the ``websockets`` library (its threaded server; no asyncio in the stream's loop).

Messages to the page (JSON text frames; the page is ``page/view.js``):

    {"type": "hello", "profile", "model", "source", "osc", "points": [...], "hops": [...]}   on connect
    {"type": "point", "t", "v", "a"}              each value sent over OSC (2 Hz, or --out-rate)
    {"type": "hop", "t", "level_db", "compute_ms", "silent"}   each 0.5 s hop
    {"type": "status", "state"}                   "running", "silence", "stopped"

``hello`` carries the last 60 s, so a page opened (or reconnected) mid-stream draws its charts at once. The stream's
loop only puts messages on a queue: a slow or stuck browser can never hold up the audio; when the queue is full,
messages are dropped and counted.
"""

from __future__ import annotations

import errno
import json
import math
import queue
import socket
import threading
from collections import deque
from importlib import resources

from pdmer.errors import InputError

DEFAULT_VIEW = "127.0.0.1:8765"
HISTORY_SECONDS = 60.0  # what the page's charts show
SOCKET_PATH = "/live"
PAGE_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
              "/view.js": ("view.js", "text/javascript; charset=utf-8"),
              "/view.css": ("view.css", "text/css; charset=utf-8")}


def parse_view_address(text: str) -> tuple[str, int]:
    host, separator, port_text = text.rpartition(":")
    if not separator or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise InputError(f"--view {text!r} must be HOST:PORT, e.g. {DEFAULT_VIEW}")
    return host.strip("[]"), int(port_text)


def bind_view(address: str) -> socket.socket:
    """The view's listening socket. pdmer-stream binds it first, so that a busy port is reported at once, not after
    the model has loaded."""
    host, port = parse_view_address(address)
    try:
        return socket.create_server((host, port))  # as websockets' serve() would
    except OSError as error:
        hint = ("the port is in use (another pdmer-stream --view?); pick another, e.g. "
                f"--view {host}:{port + 1}" if error.errno == errno.EADDRINUSE else error.strerror)
        raise InputError(f"--view {address}: cannot serve the live view: {hint}") from None


def _finite(value: float) -> float | None:
    return round(value, 5) if math.isfinite(value) else None  # JSON has no NaN


class LiveView:
    """Serves the page at ``url`` until ``close()``; ``point``, ``hop`` and ``status`` publish to every open page."""

    def __init__(self, address: str, *, profile: str, model: str, source: str, osc: list[str],
                 sock: socket.socket | None = None):
        """``sock``: the socket from ``bind_view(address)``, when the caller bound it early; else it is bound here."""
        from websockets.sync.server import serve

        host, port = parse_view_address(address)
        self.info = {"profile": profile, "model": model, "source": source, "osc": osc}
        self.points: deque = deque()
        self.hops: deque = deque()
        self.clients: set = set()
        self.lock = threading.Lock()  # clients, points, hops: the loop, the server and the sender all touch them
        self.outbox: queue.Queue = queue.Queue(maxsize=2000)
        self.dropped = 0
        self.server = serve(self._connection, sock=sock or bind_view(address), process_request=self._http,
                            compression=None, server_header="pdmer")
        self.port = self.server.socket.getsockname()[1]  # the port bound (0 asks the system for a free one)
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{self.port}/"
        self.threads = [threading.Thread(target=self.server.serve_forever, name="pdmer-view", daemon=True),
                        threading.Thread(target=self._send_loop, name="pdmer-view-send", daemon=True)]
        for thread in self.threads:
            thread.start()

    # -- from the stream's loop ------------------------------------------------------------------------------------
    def point(self, time_s: float, valence: float, arousal: float) -> None:
        self._publish({"type": "point", "t": round(time_s, 4), "v": _finite(valence), "a": _finite(arousal)},
                      self.points, time_s)

    def hop(self, time_s: float, level_db: float, compute_ms: float, silent: bool) -> None:
        self._publish({"type": "hop", "t": round(time_s, 4), "level_db": _finite(level_db),
                       "compute_ms": _finite(compute_ms), "silent": silent}, self.hops, time_s)

    def status(self, state: str) -> None:
        self._publish({"type": "status", "state": state}, None, None)

    def _publish(self, message: dict, history: deque | None, time_s: float | None) -> None:
        if history is not None:
            with self.lock:
                history.append(message)
                while history and history[0]["t"] < time_s - HISTORY_SECONDS:
                    history.popleft()
        try:
            self.outbox.put_nowait(message)
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        """Send what is queued, then close every page's socket (each page says the stream is gone) and the port."""
        try:
            self.outbox.put(None, timeout=2)
        except queue.Full:  # the sender is stuck on a page that stopped reading: close under it
            pass
        self.threads[1].join(timeout=2)
        with self.lock:
            clients = list(self.clients)
        for client in clients:
            client.close(1001, "the stream stopped")
        self.server.shutdown()

    # -- the server's threads --------------------------------------------------------------------------------------
    def _http(self, connection, request):
        """Serve the page's files; let WebSocket handshakes on SOCKET_PATH through (None)."""
        path = request.path.split("?", 1)[0]
        if path == SOCKET_PATH:
            return None
        if path not in PAGE_FILES:
            return connection.respond(404, f"not found: {path}; the live view is at /\n")
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        name, content_type = PAGE_FILES[path]
        body = (resources.files("pdmer.view") / "page" / name).read_bytes()
        headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                           ("Cache-Control", "no-store"), ("Connection", "close")])
        return Response(200, "OK", headers, body)

    def _connection(self, connection) -> None:
        with self.lock:
            hello = {"type": "hello", **self.info, "points": list(self.points), "hops": list(self.hops)}
            connection.send(json.dumps(hello))  # under the lock: no message can slip in before the history
            self.clients.add(connection)
        try:
            for _ in connection:  # the page sends nothing; this waits until it goes away
                pass
        except Exception:  # a page that vanished mid-frame: nothing to do but forget it
            pass
        finally:
            with self.lock:
                self.clients.discard(connection)

    def _send_loop(self) -> None:
        while (message := self.outbox.get()) is not None:
            text = json.dumps(message)
            with self.lock:
                clients = list(self.clients)
            for client in clients:
                try:
                    client.send(text)
                except Exception:  # closed under us: its handler removes it
                    pass
