"""Reading audit records from a proxy container's log: the JSON lines of the audit provider, among everything else
the proxy writes (its own log lines, other access logs).

A line is an audit record when it is a JSON object whose `meshreg_audit` key is present; a record of another version
or with a value of the wrong type is reported, never guessed at. The contract is also a JSON Schema
(`record.schema.json`, printed by `meshreg audit --schema`), which the tests hold this reader to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

from meshreg.audit.format import FIELDS, MARKER, VERSION

SCHEMA_FILE: Final = Path(__file__).with_name("record.schema.json")
_INTEGERS: Final = ("code", "bytes_received", "duration_ms")
_STRINGS: Final = tuple(k for k in FIELDS if k not in (MARKER, "time", *_INTEGERS))


class RecordError(ValueError):
    """A line that claims to be an audit record but is not a valid one (the message says why)."""


@dataclass(frozen=True)
class Record:
    """One request as the proxy that decided it logged it (see meshreg.audit.format for each field's source)."""

    time: datetime
    method: str
    path: str
    code: int  # 0: no response was sent (the connection ended first)
    authority: str | None = None
    details: str | None = None
    flags: str | None = None
    digest: str | None = None
    location: str | None = None
    peer: str | None = None
    peer_principal: str | None = None
    jwt_issuer: str | None = None
    jwt_subject: str | None = None
    source_address: str | None = None
    client_address: str | None = None
    request_id: str | None = None
    user_agent: str | None = None
    bytes_received: int | None = None
    duration_ms: int | None = None
    pod: str | None = None
    namespace: str | None = None


def parse_time(text: str) -> datetime:
    """An RFC 3339 time as Envoy (`2026-12-06T06:33:01.827Z`) and the kubelet (nanoseconds) write it, in UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    head, dot, rest = value.partition(".")
    if dot:  # Python takes at most microseconds: cut longer fractions, keep the offset
        digits = len(rest) - len(rest.lstrip("0123456789"))
        value = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(f"time {text!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise RecordError(f"time {text!r} has no time zone")
    return parsed.astimezone(timezone.utc)


def _value(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if value is None or value == "-":  # Envoy's "no value" where JSON's null is not used (%ENVIRONMENT(...)%)
        return None
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise RecordError(f"{key} must be a number, got {value!r}")
    if kind is str and not isinstance(value, str):
        raise RecordError(f"{key} must be a string, got {value!r}")
    return value


def from_json(data: dict[str, Any]) -> Record:
    """A Record from a decoded audit line; RecordError when it breaks the v1 contract."""
    if data.get(MARKER) != VERSION:
        raise RecordError(f"{MARKER} is {data.get(MARKER)!r}: this meshreg reads {VERSION} records")
    for key in ("time", "method", "path", "code"):
        if data.get(key) is None:
            raise RecordError(f"{key} is missing")
    time = parse_time(_value(data, "time", str))
    fields = {k: _value(data, k, str) for k in _STRINGS}
    numbers = {k: _value(data, k, int) for k in _INTEGERS}
    return Record(time=time, **fields, **numbers)


def parse_line(line: str) -> Record | None:
    """The record on a log line; None for a line that is not an audit record (the proxy logs much else)."""
    text = line.strip()
    if not text.startswith("{") or MARKER not in text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or MARKER not in data:
        return None
    return from_json(data)


def schema() -> dict[str, Any]:
    """The JSON Schema of a v1 audit line."""
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded
