"""doctor's audit check: the mesh config's extension provider that writes the audit records, with meshreg's format,
to stdout; a shared ingress gateway that records nobody; and `up` saying so before it applies."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from meshreg.audit import FIELDS, provider
from meshreg.audit.meshconfig import FIX
from meshreg.cli import main
from support import fakes
from support.configs import minimal
from support.doctor_helpers import check, cluster_with_istio
from support.fakes import MESH
from support.ingress_configs import CLIENTS, ingress_text, load


def with_mesh(fake, **extra) -> None:
    mesh = {**yaml.safe_load(MESH["data"]["mesh"]), **extra}
    fake.put({**MESH, "data": {"mesh": yaml.safe_dump(mesh)}})


def audit_lines(fake, text=None) -> list[tuple[str, str]]:
    return [(r.status, r.message) for r in check(fake, "audit", text)]


def test_a_mesh_config_with_meshregs_provider_is_ok():
    fake = cluster_with_istio()
    with_mesh(fake, extensionProviders=[{"name": "otel", "envoyOtelAls": {"service": "x", "port": 4317}},
                                        provider("meshreg-audit")])
    assert audit_lines(fake) == [("OK", "ConfigMap istio-system/istio defines extension provider meshreg-audit with "
                                        "meshreg's audit format")]


def test_istio_finds_providers_ignoring_case_and_so_does_doctor():
    fake = cluster_with_istio()
    with_mesh(fake, extensionProviders=[provider("MeshReg-Audit")])
    assert audit_lines(fake)[0][0] == "OK"


def test_without_the_provider_doctor_warns_and_says_how_to_add_it():
    [result] = check(cluster_with_istio(), "audit")
    assert result.status == "WARN"
    assert result.message == ("ConfigMap istio-system/istio: the mesh config has no extension provider "
                              "'meshreg-audit', so the audit Telemetry logs nothing: writes and refusals are not "
                              "recorded")
    assert "meshreg audit --mesh-config" in result.fix and "docs/audit.md" in result.fix


@pytest.mark.parametrize(("entry", "said"), [
    ({"name": "meshreg-audit", "envoyOtelAls": {"service": "x", "port": 1}},
     "extension provider 'meshreg-audit' is envoyOtelAls, not envoyFileAccessLog"),
    ({"name": "meshreg-audit", "envoyFileAccessLog": {"path": "/dev/stdout"}}, "it has no logFormat.labels"),
    ({"name": "meshreg-audit", "envoyFileAccessLog": {"path": "/var/log/audit.log", "logFormat": {
        "labels": FIELDS}}}, "it writes to /var/log/audit.log, not /dev/stdout"),
    ({"name": "meshreg-audit", "envoyFileAccessLog": {"logFormat": {"labels": {
        **{k: v for k, v in FIELDS.items() if k != "digest"}, "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
        "extra": "%UPSTREAM_HOST%"}}}},
     "its format is not meshreg's v1 (missing keys: digest; other values for: path; extra keys: extra)"),
])
def test_a_provider_that_would_not_write_meshregs_records_is_named_with_what_is_wrong(entry, said):
    fake = cluster_with_istio()
    with_mesh(fake, extensionProviders=[entry])
    [(status, message)] = audit_lines(fake)
    assert status == "WARN" and said in message


def test_audit_disabled_is_ok_and_reads_nothing():
    fake = cluster_with_istio()
    fake.requests.clear()
    text = minimal("  audit: {enabled: false}\n")
    assert audit_lines(fake, text) == [("OK", "audit records are off (spec.audit.enabled: false)")]
    assert not [r for r in fake.requests if r[0] == "get" and r[1][1] == "ConfigMap"]


def test_an_ingress_on_a_shared_gateway_is_a_warning_of_its_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the CA directory is found next to the config
    fake = cluster_with_istio()
    with_mesh(fake, extensionProviders=[provider("meshreg-audit")])
    load(tmp_path, ingress_text(clients=CLIENTS))
    results = audit_lines(fake, (tmp_path / "meshreg.yaml").read_text())
    assert results[1] == ("WARN", "the ingress gateway (istio-system) is shared, so it keeps no audit record: the "
                                  "registry's records name the gateway, not the client")


def test_up_prints_the_audit_warning_before_it_applies_and_goes_ahead(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    fake = fakes.connected(monkeypatch)
    result = CliRunner().invoke(main, ["up", "-q", "--no-wait"])
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if line.startswith("meshreg: warning: audit:")]
    assert warning == ["meshreg: warning: audit: ConfigMap istio-system/istio: the mesh config has no extension "
                       "provider 'meshreg-audit', so the audit Telemetry logs nothing: writes and refusals are not "
                       f"recorded ({FIX})"]
    assert [k[3] for k in fake.objects if k[1] == "Telemetry"] == ["registry-audit"]  # applied all the same
