"""A scripted local HTTP server for testing LLM clients without the network.

`FakeServer` listens on 127.0.0.1 (a free port) in a background thread, answers each POST/GET with the next
`FakeResponse` from its queue (status, body, headers, optional delay) and records every request, so a test can
play "429 then 200" or "always 500" and then check what the client sent. Not a test module itself: the
conftest beside it puts this folder on sys.path and wraps it in the `fake_server` fixture.
"""

from __future__ import annotations

import collections
import dataclasses
import http.server
import json
import threading
from typing import Any


@dataclasses.dataclass(frozen=True)
class FakeResponse:
  """One scripted reply: `body` may be a dict/list (sent as JSON), str or bytes; `delay_s` waits first.
  `drop`: close the connection without answering; `cut_after`: announce the whole body but send only its
  first `cut_after` bytes, then close (a reply cut off mid-way)."""

  status: int = 200
  body: Any = dataclasses.field(default_factory=dict)
  headers: dict[str, str] = dataclasses.field(default_factory=dict)
  delay_s: float = 0.0
  drop: bool = False
  cut_after: int | None = None

  def body_bytes(self) -> bytes:
    if isinstance(self.body, bytes):
      return self.body
    if isinstance(self.body, str):
      return self.body.encode()
    return json.dumps(self.body).encode()


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
  """What the server received: method, path (with query), headers and the body (parsed JSON when possible)."""

  method: str
  path: str
  headers: dict[str, str]
  body: Any


class FakeServer:
  """A ThreadingHTTPServer on 127.0.0.1:0 answering from a queue of `FakeResponse`s.

  When the queue is empty it answers `default` (500 "no scripted response" unless set), so a test that
  under-scripts fails loudly instead of hanging.
  """

  def __init__(self, default: FakeResponse | None = None):
    self.default = default or FakeResponse(500, {"error": {"code": 500, "message": "no scripted response"}})
    self.requests: list[RecordedRequest] = []
    self._queue: collections.deque[FakeResponse] = collections.deque()
    self._lock = threading.Lock()
    self._stopping = threading.Event()
    self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
    self._httpd.daemon_threads = True
    self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

  @property
  def url(self) -> str:
    """Base URL, e.g. 'http://127.0.0.1:54321'."""
    host, port = self._httpd.server_address[:2]
    return f"http://{host}:{port}"

  def enqueue(self, *responses: FakeResponse) -> None:
    """Append replies to the queue, answered in order."""
    with self._lock:
      self._queue.extend(responses)

  def start(self) -> "FakeServer":
    self._thread.start()
    return self

  def stop(self) -> None:
    """Stop serving; wakes handlers still sleeping through a delay."""
    self._stopping.set()
    self._httpd.shutdown()
    self._httpd.server_close()

  def __enter__(self) -> "FakeServer":
    return self.start()

  def __exit__(self, *exc_info) -> None:
    self.stop()

  def _next_response(self, request: RecordedRequest) -> FakeResponse:
    with self._lock:
      self.requests.append(request)
      return self._queue.popleft() if self._queue else self.default


def _make_handler(server: FakeServer) -> type[http.server.BaseHTTPRequestHandler]:
  class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
      length = int(self.headers.get("Content-Length") or 0)
      raw = self.rfile.read(length) if length else b""
      try:
        body = json.loads(raw) if raw else None
      except ValueError:
        body = raw
      reply = server._next_response(RecordedRequest(self.command, self.path, dict(self.headers), body))
      if reply.delay_s and server._stopping.wait(reply.delay_s):
        return
      payload = reply.body_bytes()
      if reply.drop:
        self.close_connection = True
        return
      try:
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers}
        for name, value in headers.items():
          self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload if reply.cut_after is None else payload[:reply.cut_after])
        if reply.cut_after is not None:
          self.wfile.flush()
          self.close_connection = True
      except OSError:  # the client gave up (timeout test); nothing to answer
        pass

    do_POST = _answer
    do_GET = _answer

    def log_message(self, format, *args):  # noqa: A002  (keep test output quiet)
      pass

  return Handler
