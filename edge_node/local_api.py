"""The edge node's local HTTP API, for someone at the site (loopback by default).

`GET /health`, `GET /status` (recordings in progress, uploads with progress,
backlog), `GET /schedules` (the applied ScheduleSet) and `POST
/manual-record`. Reads only a snapshot the service thread publishes; a
manual recording is handed to the service as a `record` command and the
reply awaited, so the API never touches the service's state itself.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from schemas.commands import MAX_MANUAL_DURATION_S, CommandReply, RecordCommand
from schemas.ids import CameraId, new_id

logger = logging.getLogger(__name__)
REPLY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class LocalCommand:
    """A command from the local API, with where its reply goes."""

    command: RecordCommand
    reply: concurrent.futures.Future[CommandReply]


class ManualRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    camera_id: CameraId
    duration_s: Annotated[int, Field(ge=1, le=MAX_MANUAL_DURATION_S)]


def create_local_app(snapshot: Callable[[], dict[str, Any]],
                     schedules: Callable[[], dict[str, Any]],
                     submit: Callable[[LocalCommand], None], version: str) -> FastAPI:
    app = FastAPI(title="CCTV edge node", version=version,
                  description="Local status and manual recording for this site.")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/status")
    def node_status() -> dict[str, Any]:
        return snapshot()

    @app.get("/schedules")
    def applied_schedules() -> dict[str, Any]:
        return schedules()

    @app.post("/manual-record")
    def manual_record(body: ManualRecord) -> CommandReply:
        future: concurrent.futures.Future[CommandReply] = concurrent.futures.Future()
        command = RecordCommand(command_id=new_id(), command="record",
                                camera_id=body.camera_id, duration_s=body.duration_s)
        submit(LocalCommand(command, future))
        try:
            reply = future.result(REPLY_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT, "the node did not answer") \
                from None
        if not reply.ok:
            raise HTTPException(status.HTTP_409_CONFLICT, reply.error or "refused")
        return reply

    return app


class LocalApi:
    """uvicorn in a thread of its own."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                                     log_config=None, access_log=False))
        self._thread = threading.Thread(target=self._server.run, name="local-api",
                                        daemon=True)
        self.url = f"http://{host}:{port}/"

    def start(self) -> None:
        self._thread.start()
        logger.info("local_api.serving url=%s", self.url)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
