"""The push proxy on real parts: a plain-HTTP Envoy translated from the render, writing over mTLS as its own
identity; skopeo pushes inside its scope only, it never deletes, and `policy check` agrees with Envoy throughout."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner

from meshreg.cli import main
from support import e2e_cases, push_cases
from support.e2e_cases import NON_WRITER, SCOPED, Case
from support.lab.clients import manifest_digest, skopeo_copy

EVERY_CASE = push_cases.CASES + e2e_cases.CASES  # the bystanders' cases must hold with a push proxy too


def policy_check(lab, case: Case) -> str:
    result = CliRunner().invoke(main, ["policy", "check", "-c", str(lab.config_file), "--as", case.identity,
                                       case.method, case.path, "-o", "json"])
    assert result.exit_code in (0, 3), result.output
    return json.loads(result.output)["decision"]


@pytest.mark.parametrize("case", EVERY_CASE, ids=[c.name for c in EVERY_CASE])
def test_envoy_answers_as_istio_says_and_nothing_lands_outside(push_lab, case):
    status = push_cases.send(push_lab, case).status_code
    if case.denied is not None:
        assert (status == 403) == case.denied, status
    if case.outside:
        assert case.outside not in push_lab.repositories()


@pytest.mark.parametrize("case", EVERY_CASE, ids=[c.name for c in EVERY_CASE])
def test_the_offline_check_agrees_with_envoy(push_lab, case):
    envoy = "DENY" if push_cases.send(push_lab, case).status_code == 403 else "ALLOW"
    assert policy_check(push_lab, case) == envoy


def push(lab, image, repository: str, **idents):
    return skopeo_copy(image.ref, f"docker://{lab.push_proxy}/{repository}:v1", **idents)


def test_a_push_through_the_push_proxy_lands_in_its_scope_unchanged(push_lab, image):
    result = push(push_lab, image, "dev/app")
    assert result.returncode == 0, result.stderr
    assert manifest_digest(push_lab.direct, "dev/app", "v1") == image.digest


@pytest.mark.parametrize("repository", ["team-a/laptop", "devx/laptop", "laptop"])
def test_a_push_through_the_push_proxy_outside_its_scope_is_refused_with_403(push_lab, image, repository):
    result = push(push_lab, image, repository)
    assert result.returncode != 0 and "StatusCode: 403" in result.stderr, result.stderr
    assert repository not in push_lab.repositories()


def test_a_pull_through_the_push_proxy_gets_any_image(push_lab, image, tmp_path):
    assert skopeo_copy(image.ref, f"docker://{push_lab.sidecar}/team-a/pulled:v1",
                       dest_ident=push_lab.identity(SCOPED)).returncode == 0
    result = skopeo_copy(f"docker://{push_lab.push_proxy}/team-a/pulled:v1", f"oci:{tmp_path / 'out'}:v1")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out" / "index.json").read_text())["manifests"][0]["digest"] == image.digest


def test_a_delete_through_the_push_proxy_is_refused_and_the_image_stays(push_lab, image):
    assert push(push_lab, image, "dev/kept").returncode == 0
    response = httpx.delete(f"http://{push_lab.push_proxy}/v2/dev/kept/manifests/{image.digest}")
    assert response.status_code == 403
    assert manifest_digest(push_lab.direct, "dev/kept", image.digest) == image.digest


@pytest.mark.parametrize("who", [NON_WRITER, SCOPED])
def test_the_push_proxys_scope_opens_nothing_for_other_identities(push_lab, image, who):
    result = skopeo_copy(image.ref, f"docker://{push_lab.sidecar}/dev/{who.replace('/', '-')}:v1",
                         dest_ident=push_lab.identity(who))
    assert result.returncode != 0 and "StatusCode: 403" in result.stderr, result.stderr
