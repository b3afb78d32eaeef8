"""An HTTP proxy in front of the GCS emulator that answers chosen requests
with an error status, for the failures the emulator cannot produce (503s, a
412 for an existing object: it ignores ifGenerationMatch)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import requests

# (method, path with query) -> status to answer instead of forwarding, or None.
Fault = Callable[[str, str], int | None]


class FaultyProxy:
    def __init__(self, upstream: str, fault: Fault) -> None:
        self.upstream = upstream.rstrip("/")
        self.fault = fault
        self.requests: list[tuple[str, str, int]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status = proxy.fault(self.command, self.path)
                if status is not None:
                    proxy.requests.append((self.command, self.path, status))
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length")}
                answer = requests.request(self.command, proxy.upstream + self.path,
                                          data=body, headers=headers, timeout=30,
                                          allow_redirects=False)
                proxy.requests.append((self.command, self.path, answer.status_code))
                content = answer.content.replace(proxy.upstream.encode(), proxy.url.encode())
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection",
                                           "content-encoding"):
                        self.send_header(key, value.replace(proxy.upstream, proxy.url))
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_PUT = do_POST = do_DELETE = _handle  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
