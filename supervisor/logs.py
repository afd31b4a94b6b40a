"""Logging for every treasury process: one line per record, optionally JSON, never a secret.

`TREASURY_LOG_FORMAT=json` gives structured lines (time, level, logger, role, pid, message) for a
log pipeline; the default is readable text. Whatever the format, a filter masks anything shaped
like a Purple Flea API key or a bearer token before the record is written, so a key that slips
into an exception message or a debug line never reaches the log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time

SECRET = re.compile(r"\b(sk_live_|sk_trade_|pk_live_)[0-9A-Za-z]{6,}|(?i:bearer)\s+[0-9A-Za-z_.\-]{8,}")


def redact(text: str) -> str:
    return SECRET.sub(lambda m: (m.group(1) or "Bearer ") + "…(hidden)", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = redact(message), ()
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str):
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname, "logger": record.name, "role": self.role, "pid": record.process,
                "msg": record.getMessage()}
        if record.exc_text:
            line["exc"] = record.exc_text
        return json.dumps(line)


def configure_logging(role: str, *, level: str | None = None, fmt: str | None = None, stream=None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    if (fmt or os.environ.get("TREASURY_LOG_FORMAT", "text")) == "json":
        handler.setFormatter(JsonFormatter(role))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {role}[%(process)d] %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("TREASURY_LOG", "WARNING"))
    return handler
