"""examples/tilt and examples/skaffold as the real Tilt v0.37.6 and Skaffold v2.24.0 read them (no cluster, no
docker daemon needed): each Tiltfile loads, skaffold.yaml parses at its schema with both profiles. Skipped, saying
how to build them, where ../shared/lab-devtools has not built the binaries."""

from __future__ import annotations

import json
import subprocess

import pytest

from support import devloop
from support.paths import ROOT

EXAMPLES = ROOT / "examples"


def run(tool, *args, cwd, tmp_path) -> subprocess.CompletedProcess:
    why = devloop.tools_missing(tool)
    if why:
        pytest.skip(why)
    env = {"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none"), "TILT_DISABLE_ANALYTICS": "1",
           "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(tool), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.parametrize("folder", ["tilt", "tilt/in-cluster"])
def test_each_tiltfile_loads_in_the_real_tilt(folder, tmp_path):
    result = run(devloop.TILT, "alpha", "tiltfile-result", cwd=EXAMPLES / folder, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["Error"] is None
    [manifest] = loaded["Manifests"]
    assert manifest["Name"] == "hello"


@pytest.mark.parametrize("profile", [[], ["-p", "in-cluster"]], ids=["laptop", "in-cluster"])
def test_skaffold_yaml_parses_at_its_schema_in_the_real_skaffold(profile, tmp_path):
    result = run(devloop.SKAFFOLD, "diagnose", "--yaml-only", *profile, cwd=EXAMPLES / "skaffold", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("apiVersion: skaffold/v4beta14\n")
