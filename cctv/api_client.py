"""The cloud's REST API as the `cctv` managing verbs use it (httpx).

Every failure leaves this module as an `ApiError` whose message is one line
an operator can act on: the API cannot be reached, it refused the token, or
it refused the request (with the API's own reason). This module must never
print, and never put the token in a message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

PAGE_MAX = 1000  # the API's largest `limit`
TIMEOUT_S = 15.0
# The stream sends a comment every 15 s: a minute of silence is a dead connection.
STREAM_READ_TIMEOUT_S = 60.0
DOWNLOAD_CHUNK = 1 << 16

Json = dict[str, Any]


class ApiError(RuntimeError):
    """The API could not be used; the message says why, in one line."""


class ApiUnreachableError(ApiError):
    """No answer from the API (connection refused, DNS, timeout, TLS)."""


class ApiUnauthorizedError(ApiError):
    """The API answered 401: the token is missing or not one it knows."""


class ApiRefusedError(ApiError):
    """The API answered 4xx or 5xx; `status` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_api_url(url: str) -> str:
    """`url` without a trailing slash, or ValueError naming CCTV_API_URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"CCTV_API_URL: must be http(s)://host[:port], got {url!r}")
    return url.rstrip("/")


def describe_detail(detail: object) -> str:
    """FastAPI's `detail` (a string, validation errors, or an object) as one line."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
        message = f"{first.get('msg', 'invalid')}{more}"
        return f"{'.'.join(loc)}: {message}" if loc else message
    if isinstance(detail, dict) and "error" in detail:
        return str(detail["error"])
    return json.dumps(detail)


def _refusal(response: httpx.Response) -> ApiRefusedError:
    try:
        body = response.json()
        detail = describe_detail(body.get("detail", body) if isinstance(body, dict) else body)
    except ValueError:
        detail = response.text.strip().splitlines()[0] if response.text.strip() \
            else response.reason_phrase
    return ApiRefusedError(response.status_code, f"{response.status_code}: {detail}")


class ApiClient:
    """One connection pool to the API; use as a context manager."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = TIMEOUT_S) -> None:
        self.base_url = check_api_url(base_url)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s,
                                  headers={"Authorization": f"Bearer {token}"})

    def __enter__(self) -> Self:
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None,
                 _tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the one place requests are made and errors translated ------------------

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code == 401:
            raise ApiUnauthorizedError(
                f"the API at {self.base_url} refused the token (401): "
                "check CCTV_API_TOKEN or --token")
        if response.status_code >= 400:
            response.read()  # a streamed answer has not been read yet
            raise _refusal(response)
        return response

    def _unreachable(self, exc: httpx.TransportError) -> ApiUnreachableError:
        reason = str(exc) or type(exc).__name__
        return ApiUnreachableError(f"cannot reach the API at {self.base_url}: {reason}")

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        return self._check(response)

    def get_json(self, path: str, params: Any = None) -> Any:
        response = self.request("GET", path, params=params)
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(f"the API at {self.base_url} answered {path} with "
                           "something that is not JSON") from exc

    def pages(self, path: str, params: dict[str, Any], limit: int) -> tuple[list[Json], int]:
        """Up to `limit` items of a list endpoint, paging with offset; and the total."""
        items: list[Json] = []
        total = 0
        while len(items) < limit:
            page = self.get_json(path, {**params, "offset": len(items),
                                        "limit": min(PAGE_MAX, limit - len(items))})
            items.extend(page["items"])
            total = int(page["total"])
            if not page["items"] or len(items) >= total:
                break
        return items, total

    # -- nodes --------------------------------------------------------------------

    def list_nodes(self, *, online: bool | None, limit: int) -> tuple[list[Json], int]:
        params: dict[str, Any] = {} if online is None else {"online": str(online).lower()}
        return self.pages("/api/nodes", params, limit)

    def delete_node(self, node_id: str) -> None:
        self.request("DELETE", f"/api/nodes/{node_id}")

    # -- schedules ----------------------------------------------------------------

    def list_schedules(self, *, limit: int) -> tuple[list[Json], int]:
        return self.pages("/api/schedules", {}, limit)

    def put_schedule(self, document: Json, *, replace: bool) -> Json:
        if replace:
            response = self.request("PUT", f"/api/schedules/{document['schedule_id']}",
                                    json=document)
        else:
            response = self.request("POST", "/api/schedules", json=document)
        result: Json = response.json()
        return result

    def delete_schedule(self, schedule_id: str) -> None:
        self.request("DELETE", f"/api/schedules/{schedule_id}")

    # -- recordings ---------------------------------------------------------------

    def list_recordings(self, filters: dict[str, str], *, limit: int) -> tuple[list[Json], int]:
        return self.pages("/api/recordings", filters, limit)

    def get_recording(self, recording_id: str) -> Json:
        result: Json = self.get_json(f"/api/recordings/{recording_id}")
        return result

    def find_segments(self, segment_ids: set[str],
                      filters: dict[str, str]) -> dict[str, tuple[Json, Json]]:
        """segment_id -> (recording, segment) for each id found.

        The API has no route for one segment, so recordings are read a page at
        a time (newest first) until every id is found; `filters` narrow that.
        """
        found: dict[str, tuple[Json, Json]] = {}
        offset = 0
        while len(found) < len(segment_ids):
            page = self.get_json("/api/recordings",
                                 {**filters, "offset": offset, "limit": PAGE_MAX})
            for recording in page["items"]:
                for segment in recording["segments"]:
                    if segment["segment_id"] in segment_ids:
                        found[segment["segment_id"]] = (recording, segment)
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                break
        return found

    def download(self, segment_id: str, sink: Callable[[bytes], None]) -> int:
        """Stream the segment's media into `sink` (following a signed-URL
        redirect); returns the bytes received."""
        received = 0
        try:
            with self._http.stream("GET", f"/api/segments/{segment_id}/media",
                                   follow_redirects=True) as response:
                self._check(response)
                for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                    sink(chunk)
                    received += len(chunk)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        return received

    # -- the live stream -------------------------------------------------------------

    def stream(self, *, node_id: str | None, types: list[str],
               on_open: Callable[[], None] | None = None) -> Iterator[str]:
        """The lines of GET /api/stream (server-sent events), as they come."""
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("type", t) for t in types]
        if node_id is not None:
            params.append(("node_id", node_id))
        timeout = httpx.Timeout(TIMEOUT_S, read=STREAM_READ_TIMEOUT_S)
        try:
            with self._http.stream("GET", "/api/stream", params=params,
                                   timeout=timeout) as response:
                self._check(response)
                if on_open is not None:
                    on_open()
                yield from response.iter_lines()
        except httpx.ReadTimeout as exc:
            raise ApiUnreachableError(
                f"the stream from {self.base_url} went silent for "
                f"{STREAM_READ_TIMEOUT_S:.0f} s") from exc
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
