"""Routes a browser opens directly: the server-sent event stream and segment
playback. Both take the token as `?token=` too (EventSource and <video>
cannot send a header)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from sqlmodel import Session

from cloud_service import tables
from cloud_service.api.auth import require_token_or_query
from cloud_service.api.context import Ctx
from cloud_service.media_source import MediaError
from schemas.ids import ID_PATTERN

router = APIRouter(prefix="/api", tags=["live"], dependencies=[Depends(require_token_or_query)])
KEEPALIVE_S = 15.0


def _wanted(item: dict[str, Any], node_id: str | None, types: list[str] | None) -> bool:
    if node_id is not None and item.get("node_id") != node_id:
        return False
    return not types or item.get("type", item.get("kind")) in types


@router.get("/stream", response_class=StreamingResponse)
async def stream(request: Request, context: Ctx,
                 node_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                 type: Annotated[list[str] | None, Query()] = None,  # noqa: A002  # the contract's name
                 ) -> StreamingResponse:
    """Server-sent events: every event, status, state and reply as it is
    stored; a comment every 15 s keeps proxies from closing the stream."""
    queue = context.live.subscribe()

    async def events() -> AsyncIterator[str]:
        try:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                try:
                    item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if _wanted(item, node_id, type):
                    kind = item.get("type", item["kind"])
                    yield f"event: {kind}\ndata: {json.dumps(item, default=str)}\n\n"
        finally:
            context.live.unsubscribe(queue)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _segment_uri(context: Ctx, segment_id: str) -> str:
    with Session(context.engine) as session:
        segment = session.get(tables.Segment, segment_id)
    if segment is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no segment {segment_id}")
    if segment.uri is None:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"segment {segment_id} is not uploaded ({segment.upload_state})")
    return segment.uri


@router.get("/segments/{segment_id}/media", response_model=None)
async def segment_media(segment_id: Annotated[str, Path(pattern=ID_PATTERN)],
                        context: Ctx) -> Response:
    """The segment's video: a redirect to a signed URL, or the bytes."""
    if context.media is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "playback is not configured")
    uri = await asyncio.to_thread(_segment_uri, context, segment_id)
    try:
        playable = await asyncio.to_thread(context.media.open, uri)
    except MediaError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    if playable.redirect is not None:
        return RedirectResponse(playable.redirect, status.HTTP_307_TEMPORARY_REDIRECT)
    if playable.path is not None:
        return FileResponse(playable.path, media_type="video/mp4")
    headers = {"Content-Length": str(playable.size)} if playable.size is not None else {}
    assert playable.chunks is not None  # Playable holds one of the three
    return StreamingResponse(playable.chunks, media_type="video/mp4", headers=headers)
