"""Istio's Telemetry API -> Envoy access logs for the lab's proxies, as istiod builds them (Istio 1.30:
pilot/pkg/model/telemetry.go `AccessLogging` and `mergeLogs`, pilot/pkg/model/telemetry_logging.go
`telemetryAccessLog`, pilot/pkg/networking/core/accesslog.go `buildAccessLogFromTelemetry`):

- the Telemetry that applies to a proxy is the one whose selector matches its pod's labels in its namespace (one per
  workload; a root-namespace or namespace-wide one is not rendered by meshreg, so the lab has none);
- each accessLogging entry counts when its match mode fits the listener: a sidecar's inbound is SERVER, a gateway's
  listeners are CLIENT (`workloadMode`); its filter applies to its own providers only (Istio 1.18 and later);
- each provider is looked up in the mesh config: the built-in `envoy` (Istio's text format, to stdout), and the
  extension providers the lab's mesh config has (what `meshreg audit --mesh-config` prints, as an admin installs it);
  an envoyFileAccessLog becomes a file access log at its path with the `labels` as a JSON format, and the filter an
  `envoy.access_loggers.extension_filters.cel` extension filter;
- the resulting access logs are sorted by provider name.

`/dev/stdout` stands for the proxy container's log: the lab writes each proxy's to a file of its own (`stdout`).
"""

from __future__ import annotations

from pathlib import Path

from meshreg.audit import provider as audit_provider

FILE_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
CEL_FILTER = "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter"
# Istio's default text format for the built-in `envoy` provider (pilot/pkg/model/telemetry_logging.go).
ISTIO_TEXT = ('[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
              '%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% '
              '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
              '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
              '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
              '%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% '
              '%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n')
STDOUT = "/dev/stdout"


def mesh_providers(audit_name: str = "meshreg-audit") -> dict[str, dict]:
    """The lab's mesh config providers: Istio's built-in `envoy` and meshreg's audit provider."""
    return {"envoy": {"name": "envoy", "envoyFileAccessLog": {"path": STDOUT}}, audit_name: audit_provider(audit_name)}


def _selects(telemetry: dict, namespace: str, pod_labels: dict) -> bool:
    spec = telemetry["spec"]
    if telemetry["metadata"].get("namespace") != namespace or "targetRefs" in spec or "targetRef" in spec:
        return False
    wanted = (spec.get("selector") or {}).get("matchLabels")
    assert wanted, "the lab translates workload Telemetry only (meshreg renders no namespace-wide one)"
    return all(pod_labels.get(k) == v for k, v in wanted.items())


def _file_log(entry: dict, stdout: Path) -> dict:
    log = entry["envoyFileAccessLog"]
    path = str(stdout) if (log.get("path") or STDOUT) == STDOUT else log["path"]
    labels = (log.get("logFormat") or {}).get("labels")
    fmt = {"json_format": labels} if labels else \
        {"text_format_source": {"inline_string": (log.get("logFormat") or {}).get("text") or ISTIO_TEXT}}
    return {"name": "envoy.access_loggers.file", "typed_config": {"@type": FILE_LOG, "path": path,
                                                                  "log_format": fmt}}


def _providers(telemetry: dict, mode: str) -> dict[str, str | None]:
    """provider name -> its filter expression, for the entries whose match mode fits."""
    out: dict[str, str | None] = {}
    for entry in telemetry["spec"].get("accessLogging") or []:
        if (entry.get("match") or {}).get("mode", "CLIENT_AND_SERVER") not in ("CLIENT_AND_SERVER", mode):
            continue
        assert not entry.get("disabled"), "the lab does not translate disabled entries"
        for p in entry.get("providers") or []:
            out[p["name"]] = (entry.get("filter") or {}).get("expression")
    return out


def access_logs(objects: list[dict], *, namespace: str, pod_labels: dict, mode: str, stdout: Path,
                providers: dict[str, dict] | None = None) -> list[dict]:
    """The HCM access_log list istiod would give a proxy of these pods on a listener of `mode` (SERVER: a sidecar's
    inbound; CLIENT: a gateway)."""
    found = [o for o in objects if o["kind"] == "Telemetry" and _selects(o, namespace, pod_labels)]
    assert len(found) <= 1, "Istio allows one Telemetry with a selector per workload"
    if not found:
        return []
    known = providers or mesh_providers()
    out = []
    for name, expression in sorted(_providers(found[0], mode).items()):
        entry = known.get(name)
        assert entry is not None, f"the lab's mesh config has no provider {name}; istiod would skip it"
        log = _file_log(entry, stdout)
        if expression:
            log["filter"] = {"extension_filter": {"name": "envoy.access_loggers.extension_filters.cel",
                                                  "typed_config": {"@type": CEL_FILTER, "expression": expression}}}
        out.append(log)
    return out
