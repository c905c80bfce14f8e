"""DELETE reaches the registry only when the registry allows deletes and the writer was granted them."""

from __future__ import annotations

from e2e_cases import SCOPED, WRITER
from lab.clients import manifest_digest, mtls_client, skopeo_copy


def _push(lab, image, repo: str, who: str) -> None:
    result = skopeo_copy(image.ref, f"docker://{lab.sidecar}/{repo}", dest_ident=lab.identity(who))
    assert result.returncode == 0, result.stderr


def _exists(lab, repo: str, digest: str) -> bool:
    return manifest_digest(lab.direct, repo, digest) == digest


def test_a_writer_granted_delete_deletes_when_the_registry_allows_it(lab, image):
    _push(lab, image, "builds/doomed:v1", WRITER)
    with mtls_client(lab.sidecar, lab.identity(WRITER), ca=lab.ca.ca_file) as client:
        response = client.delete(f"/v2/builds/doomed/manifests/{image.digest}")
    assert response.status_code == 202, response.text
    assert not _exists(lab, "builds/doomed", image.digest)


def test_a_writer_without_the_delete_grant_cannot_delete(lab, image):
    _push(lab, image, "team-a/kept:v1", SCOPED)
    with mtls_client(lab.sidecar, lab.identity(SCOPED), ca=lab.ca.ca_file) as client:
        response = client.delete(f"/v2/team-a/kept/manifests/{image.digest}")
    assert response.status_code == 403
    assert _exists(lab, "team-a/kept", image.digest)


def test_no_writer_can_delete_when_the_registry_disallows_deletes(nodelete_lab, image):
    _push(nodelete_lab, image, "builds/kept:v1", WRITER)
    with mtls_client(nodelete_lab.sidecar, nodelete_lab.identity(WRITER), ca=nodelete_lab.ca.ca_file) as client:
        response = client.delete(f"/v2/builds/kept/manifests/{image.digest}")
    assert response.status_code == 403
    assert _exists(nodelete_lab, "builds/kept", image.digest)
