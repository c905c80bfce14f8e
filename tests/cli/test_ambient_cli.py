"""The CLI in ambient mode: bad input is one line and exit 2; `policy check` names the hop that decided."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from meshreg.cli import main
from support.configs import AMBIENT, SEVERAL_WRITERS, minimal


def invoke(tmp_path, text: str, *args: str):
    path = tmp_path / "meshreg.yaml"
    path.write_text(text)
    return CliRunner().invoke(main, [*args[:1], "-c", str(path), *args[1:]] if args[0] == "render" else
                              [*args[:2], "-c", str(path), *args[2:]])


@pytest.mark.parametrize(("spec", "expected"), [
    ("  mesh: istio\n", "spec.mesh: 'istio' is not a mesh mode (expected one of: sidecar, ambient)"),
    ("  mesh: ambient\n  istioRevision: 1-23\n", "spec.istioRevision: '1-23' names Istio 1.23"),
    ("  mesh: ambient\n  writers: [{serviceAccount: meshreg/waypoint}]\n", "'meshreg/waypoint' is the waypoint"),
])
def test_bad_ambient_input_is_one_line_and_exit_2(tmp_path, spec, expected):
    result = invoke(tmp_path, minimal(spec), "render")
    assert result.exit_code == 2 and expected in result.output
    assert result.output.startswith("meshreg: error: ") and result.output.count("\n") == 1


def test_render_tells_that_writers_must_be_ambient_workloads(tmp_path):
    result = invoke(tmp_path, AMBIENT, "render")
    assert result.exit_code == 0
    assert "writers must themselves be in the ambient mesh" in result.stderr


def test_skip_waypoint_in_sidecar_mode_is_one_line_and_exit_2(tmp_path):
    result = invoke(tmp_path, SEVERAL_WRITERS, "policy", "check", "--skip-waypoint", "--as", "a/b", "GET", "/v2/")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "--skip-waypoint: there is no waypoint in sidecar mode" in result.output


def test_policy_check_json_names_the_hop_in_ambient_mode_only(tmp_path):
    ambient = json.loads(invoke(tmp_path, AMBIENT, "policy", "check", "--as", "team-a/builder", "push", "team-b/x",
                                "-o", "json").output)
    hops = {(r["method"], r["hop"]) for r in ambient["requests"]}
    assert ("POST", "waypoint") in hops and ambient["decision"] == "DENY"
    sidecar = json.loads(invoke(tmp_path, SEVERAL_WRITERS, "policy", "check", "--as", "team-a/builder", "push",
                                "team-b/x", "-o", "json").output)
    assert all(r["hop"] is None for r in sidecar["requests"])


def test_policy_check_text_names_the_hop(tmp_path):
    result = invoke(tmp_path, AMBIENT, "policy", "check", "--skip-waypoint", "--as", "builds/kaniko", "GET", "/v2/")
    assert result.exit_code == 3
    assert "by ztunnel: at ztunnel as example.org/ns/builds/sa/kaniko (the client skips the waypoint)" in \
        result.output


def test_policy_list_shows_the_waypoint_identity_in_ambient_mode_only(tmp_path):
    text = invoke(tmp_path, AMBIENT, "policy", "list").output
    assert "waypoint: enforces the above for in-mesh clients; the registry pods admit only " \
           "example.org/ns/registry/sa/waypoint (mesh: ambient)" in text
    listing = json.loads(invoke(tmp_path, AMBIENT, "policy", "list", "-o", "json").output)
    assert listing["waypoint"] == {"name": "waypoint", "principal": "example.org/ns/registry/sa/waypoint"}
    assert json.loads(invoke(tmp_path, SEVERAL_WRITERS, "policy", "list", "-o", "json").output)["waypoint"] is None
