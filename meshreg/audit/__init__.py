"""The audit trail: who wrote what to a registry, and who was refused, from the access logs of the proxies that
enforced its policies. Pure: parsing and judging records; reading them from a cluster is meshreg.operations.audit.

The names below load their module on first use, so a command that needs one part (`up` checks the mesh config with
meshreg.audit.meshconfig) does not pay for the record parser and the trail.
"""

from importlib import import_module
from typing import TYPE_CHECKING

# name -> the module that defines it
_EXPORTS = {
    "Event": "events", "event": "events", "refused_by": "events",
    "FIELDS": "format", "MARKER": "format", "VERSION": "format", "provider": "format",
    "Who": "identity", "identify": "identity",
    "Target": "paths", "target": "paths",
    "Record": "records", "RecordError": "records", "parse_line": "records", "parse_time": "records",
    "schema": "records",
    "GATEWAY": "timeline", "Query": "timeline", "trail": "timeline",
}
__all__ = ["FIELDS", "GATEWAY", "MARKER", "VERSION", "Event", "Query", "Record", "RecordError", "Target", "Who",
           "event", "identify", "parse_line", "parse_time", "provider", "refused_by", "schema", "target", "trail"]

if TYPE_CHECKING:
    from meshreg.audit.events import Event, event, refused_by
    from meshreg.audit.format import FIELDS, MARKER, VERSION, provider
    from meshreg.audit.identity import Who, identify
    from meshreg.audit.paths import Target, target
    from meshreg.audit.records import Record, RecordError, parse_line, parse_time, schema
    from meshreg.audit.timeline import GATEWAY, Query, trail
else:
    def __getattr__(name: str) -> object:
        if name not in _EXPORTS:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
