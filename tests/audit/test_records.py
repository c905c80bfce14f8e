"""Audit lines: the v1 contract (keys, types, JSON Schema) and reading them out of a proxy's mixed log."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import jsonschema
import pytest

from meshreg.audit import FIELDS, MARKER, RecordError, parse_line, parse_time, provider, schema
from support.audit_lines import PUSH_LINE, REFUSED_LINE, line

ISTIO_TEXT_LOG = ('[2026-12-06T06:33:01.827Z] "POST /v2/team-b%2Fapp/blobs/uploads/ HTTP/1.1" 403 - '
                  'rbac_access_denied_matched_policy[ns[au-reg]-policy[registry-deny-writes]-rule[1]] - "-" 0 19 0 - '
                  '"-" "curl/7.88.1" "8ff45b4e" "registry.au-reg:5000" "-" inbound|5000|| - 10.244.0.9:5000 '
                  '10.244.0.12:43210 outbound_.5000_._.registry.au-reg.svc.cluster.local -')


def test_the_schema_describes_exactly_the_keys_the_format_writes():
    assert set(schema()["properties"]) == set(FIELDS)
    assert set(schema()["required"]) <= set(FIELDS)
    jsonschema.Draft202012Validator.check_schema(schema())


@pytest.mark.parametrize("text", [PUSH_LINE, REFUSED_LINE])
def test_a_line_as_envoy_writes_it_meets_the_schema_and_parses(text):
    jsonschema.validate(json.loads(text), schema(), format_checker=jsonschema.FormatChecker())
    assert parse_line(text) is not None


def test_a_push_record_keeps_every_field():
    record = parse_line(PUSH_LINE)
    assert record.time == datetime(2026, 12, 6, 6, 33, 1, 804000, tzinfo=timezone.utc)
    assert (record.method, record.code, record.details) == ("PUT", 201, "via_upstream")
    assert record.digest == "sha256:" + "2c" * 32
    assert record.peer == "spiffe://cluster.local/ns/builds/sa/kaniko" and record.peer_principal is None
    assert (record.bytes_received, record.duration_ms, record.pod) == (529, 19, "registry-7d9f-abcde")


@pytest.mark.parametrize("text", [ISTIO_TEXT_LOG, "2026-12-06T06:33:01.827Z\tinfo\tEnvoy proxy is ready", "",
                                  '{"level":"info","msg":"meshreg_audit is mentioned in a message"}', "{not json",
                                  '["meshreg_audit"]', '{"start_time": "x", "method": "PUT"}'])
def test_lines_that_are_not_audit_records_are_skipped(text):
    assert parse_line(text) is None


@pytest.mark.parametrize(("changes", "message"), [
    ({MARKER: "v2"}, "meshreg_audit is 'v2': this meshreg reads v1 records"),
    ({"code": "201"}, "code must be a number, got '201'"),
    ({"code": True}, "code must be a number"),
    ({"path": None}, "path is missing"),
    ({"peer": 7}, "peer must be a string, got 7"),
    ({"time": "yesterday"}, "time 'yesterday' is not an RFC 3339 time"),
    ({"time": "2026-12-06T06:33:01"}, "has no time zone"),
])
def test_an_audit_line_that_breaks_the_contract_is_an_error_not_a_guess(changes, message):
    with pytest.raises(RecordError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_line(line(**changes))


def test_a_v1_line_with_a_key_added_later_still_parses():
    assert parse_line(line(upstream_host="10.0.0.1:5000")).code == 201


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-12-06T06:33:01.827Z", datetime(2026, 12, 6, 6, 33, 1, 827000, tzinfo=timezone.utc)),
    ("2026-12-06T06:33:01.123456789Z", datetime(2026, 12, 6, 6, 33, 1, 123456, tzinfo=timezone.utc)),
    ("2026-12-06T07:33:01+01:00", datetime(2026, 12, 6, 6, 33, 1, tzinfo=timezone.utc)),
])
def test_times_from_envoy_and_the_kubelet_parse_to_utc(text, expected):
    assert parse_time(text) == expected


def test_the_mesh_config_provider_writes_the_format_to_stdout_as_json_labels():
    entry = provider("meshreg-audit")
    assert entry["name"] == "meshreg-audit"
    assert entry["envoyFileAccessLog"] == {"path": "/dev/stdout", "logFormat": {"labels": FIELDS}}


def test_envoys_dash_for_no_value_reads_as_absent():
    record = parse_line(line(pod="-", namespace="-", flags="-"))
    assert (record.pod, record.namespace, record.flags) == (None, None, None)
