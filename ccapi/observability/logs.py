"""Structured log lines: JSON (the default) or logfmt, one line per record.

Every logger of the process (ours, uvicorn's, libraries') goes through one
handler on the root logger. A record's `fields` (as `extra={"fields": {...}}`)
become top-level keys: the access line is made of them.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, Literal

import orjson

LogFormat = Literal["json", "logfmt"]


class _Seconds:
    """The `YYYY-MM-DDTHH:MM:SS` part of the timestamp, formatted once per second
    (strftime is the dearest part of a line otherwise)."""

    second = -1
    text = ""

    @classmethod
    def of(cls, created: float) -> str:
        second = int(created)
        if second != cls.second:
            cls.text, cls.second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)), second
        return cls.text


def _base(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts": f"{_Seconds.of(record.created)}.{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    fields = getattr(record, "fields", None)
    if isinstance(fields, dict):
        out.update(fields)
    if record.exc_info:
        out["exc"] = formatter.formatException(record.exc_info)
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(_base(record, self), default=str).decode()


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={logfmt_value(value)}" for key, value in _base(record, self).items())


def logfmt_value(value: Any) -> str:
    """A logfmt value: bare when it can be, else a double-quoted, escaped string."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    text = value if isinstance(value, str) else str(value)
    if text and _NEEDS_QUOTES.search(text) is None:
        return text
    return '"' + text.translate(_LOGFMT_ESCAPES) + '"'


_NEEDS_QUOTES = re.compile(r'[\s="\\]')
_LOGFMT_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})

FORMATTERS: dict[str, type[logging.Formatter]] = {"json": JsonFormatter, "logfmt": LogfmtFormatter}


def configure_logging(level: str, fmt: LogFormat) -> None:
    """One stderr handler on the root logger, in the chosen format, at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FORMATTERS[fmt]())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # No line shows the caller, thread or process: skip collecting them for every
    # record (the Logging HOWTO's "Optimization" section; findCaller walks the
    # stack and was a fifth of the access line's cost).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(root.level, logging.INFO))


# Libraries whose debug lines are noise at CCAPI_LOG_LEVEL=debug: aiosqlite
# logs two lines per database call (about 25 per proxied request), with the
# statement's parameters.
QUIET_LOGGERS = ("aiosqlite",)
