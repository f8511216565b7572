"""Mask citizen ID numbers (GB 11643) in every log record this process creates.

Why here and not at each call site: the default licence number is "T" + the holder's ID
number, so identifiers, file names and URLs (``GET /v1/licences/<identifier>/status`` in
uvicorn's access log) carry it, and any library may log them. `install` wraps the logging
record factory once per process, so every record -- any logger, any handler, including
uvicorn's access log and records created later by code that does not know about us --
has its message, string arguments and exception text masked before a handler sees it.
Argument *shapes* are kept (uvicorn's access formatter unpacks ``record.args``).

A match is anything shaped like an 18-character ID number (6 digits, a birth date
18xx-20xx, 3 digits, check digit or X) not inside a longer run of digits; the check digit
is not required, so a mistyped ID is masked too. The mask is the one reports and the QR use
(`ofd.licence.idcard.mask_id_number`, address code and last four kept), so a log line shows
no more of a person than the licence's own public QR does.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from ofd.licence.idcard import mask_id_number

ID_NUMBER_RE = re.compile(
    r"(?<![0-9])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?![0-9])"
)
_installed = False


def mask_id_numbers(text: str) -> str:
    """``text`` with every ID-number-shaped run replaced by its masked form ``110105********003X``."""
    return ID_NUMBER_RE.sub(lambda m: mask_id_number(m.group()), text)


def _mask_arg(value: Any) -> Any:
    if isinstance(value, str):
        return mask_id_numbers(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    try:
        shown = str(value)
    except Exception:  # an object whose __str__ fails: leave it to logging's own error path
        return value
    return mask_id_numbers(shown) if ID_NUMBER_RE.search(shown) else value


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask ``record`` in place (message, arguments, exception and stack text); returns it."""
    if isinstance(record.msg, str):
        record.msg = mask_id_numbers(record.msg)
    elif record.msg is not None and ID_NUMBER_RE.search(str(record.msg)):
        record.msg = mask_id_numbers(str(record.msg))
    args = record.args
    if isinstance(args, tuple):
        record.args = tuple(_mask_arg(a) for a in args)
    elif isinstance(args, dict):
        record.args = {k: _mask_arg(v) for k, v in args.items()}
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask_id_numbers(record.exc_text)
    if record.stack_info:
        record.stack_info = mask_id_numbers(record.stack_info)
    return record


class RedactIdNumbers(logging.Filter):
    """The same masking as a filter, for a handler configured elsewhere (e.g. a logging dictConfig)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def install() -> None:
    """Mask every record created from now on in this process (idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    _installed = True
