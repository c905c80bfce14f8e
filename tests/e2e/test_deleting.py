"""DELETE reaches the registry only when the registry allows deletes and the writer was granted them."""

from __future__ import annotations

from support.e2e_cases import SCOPED, WRITER
from support.lab.clients import manifest_digest, mtls_client, skopeo_copy


def _push_then_delete(lab, image, repo: str, who: str):
    """Push `repo:v1` as `who`, then DELETE its manifest as `who`; the response."""
    result = skopeo_copy(image.ref, f"docker://{lab.sidecar}/{repo}:v1", dest_ident=lab.identity(who))
    assert result.returncode == 0, result.stderr
    with mtls_client(lab.sidecar, lab.identity(who), ca=lab.ca.ca_file) as client:
        return client.delete(f"/v2/{repo}/manifests/{image.digest}")


def _exists(lab, repo: str, digest: str) -> bool:
    return manifest_digest(lab.direct, repo, digest) == digest


def test_a_writer_granted_delete_deletes_when_the_registry_allows_it(lab, image):
    response = _push_then_delete(lab, image, "builds/doomed", WRITER)
    assert response.status_code == 202, response.text
    assert not _exists(lab, "builds/doomed", image.digest)


def test_a_writer_without_the_delete_grant_cannot_delete(lab, image):
    response = _push_then_delete(lab, image, "team-a/kept", SCOPED)
    assert response.status_code == 403
    assert _exists(lab, "team-a/kept", image.digest)


def test_no_writer_can_delete_when_the_registry_disallows_deletes(nodelete_lab, image):
    response = _push_then_delete(nodelete_lab, image, "builds/kept", WRITER)
    assert response.status_code == 403
    assert _exists(nodelete_lab, "builds/kept", image.digest)
