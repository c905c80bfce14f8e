"""The audit trail: who wrote what to a registry, and who was refused, from the access logs of the proxies that
enforced its policies. Pure: parsing and judging records; reading them from a cluster is meshreg.operations.audit."""

from meshreg.audit.events import Event, event, refused_by
from meshreg.audit.format import FIELDS, MARKER, VERSION, provider
from meshreg.audit.identity import Who, identify
from meshreg.audit.paths import Target, target
from meshreg.audit.records import Record, RecordError, parse_line, parse_time, schema
from meshreg.audit.trail import GATEWAY, Query, trail

__all__ = ["FIELDS", "GATEWAY", "MARKER", "VERSION", "Event", "Query", "Record",
           "RecordError", "Target", "Who", "event", "identify", "parse_line", "parse_time", "provider", "refused_by",
           "schema", "target", "trail"]
