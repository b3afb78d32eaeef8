"""Structured logs for every `cctv` process: `ts level logger event key=value...`.

Configured once by the command that runs; library modules only log.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%dT%H:%M:%S%z"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter stays at warning unless we ask for debug.
    for noisy in ("gmqtt", "uvicorn.error", "amqtt", "transitions", "passlib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
