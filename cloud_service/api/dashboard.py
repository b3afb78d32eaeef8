"""The web dashboard: `index.html` at `/` and its files under `/static/`.

It only serves files. It never reads the database and holds no token: the page
signs in with an API token and talks to `/api` like any other client, so these
routes need no authentication and stay out of the OpenAPI document.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Everything the page loads comes from this service; media may be redirected to
# a storage provider's signed URL (https). Nothing is fetched from elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; media-src 'self' https:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# Revalidate on every load so an upgraded service's page is picked up at once.
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

router = APIRouter(include_in_schema=False)
# A mount on an APIRouter is dropped by include_router, so a route hands the
# request to StaticFiles (which does the path checks and conditional requests).
_files = StaticFiles(directory=STATIC_DIR)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                        headers={**_HEADERS, "Content-Security-Policy": CONTENT_SECURITY_POLICY})


@router.get("/static/{path:path}")
async def static_file(path: str, request: Request) -> Response:
    response = await _files.get_response(path, request.scope)
    response.headers.update(_HEADERS)
    return response
