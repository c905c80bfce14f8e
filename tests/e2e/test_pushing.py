"""Pushes with skopeo through the registry's mTLS sidecar: writers inside their scope only."""

from __future__ import annotations

from support.e2e_cases import NON_WRITER, SCOPED, WRITER
from support.lab.clients import manifest_digest, skopeo_copy


def pushed(lab, image, repository: str, who: str) -> None:
    """Push as `who` and check the registry holds the identical manifest."""
    result = skopeo_copy(image.ref, f"docker://{lab.sidecar}/{repository}:v1", dest_ident=lab.identity(who))
    assert result.returncode == 0, result.stderr
    assert manifest_digest(lab.direct, repository, "v1") == image.digest


def refused(lab, image, repository: str, who: str) -> None:
    """Push as `who`, expect 403, and check the repository never appeared."""
    result = skopeo_copy(image.ref, f"docker://{lab.sidecar}/{repository}:v1", dest_ident=lab.identity(who))
    assert result.returncode != 0
    assert "StatusCode: 403" in result.stderr, result.stderr
    assert repository not in lab.repositories()


def test_a_writer_pushes_and_the_registry_holds_the_identical_manifest(lab, image):
    pushed(lab, image, "builds/app", WRITER)


def test_a_non_writer_push_is_refused_with_403(lab, image):
    refused(lab, image, "apps/web", NON_WRITER)


def test_a_scoped_writer_pushes_inside_its_prefix(lab, image):
    pushed(lab, image, "team-a/app", SCOPED)


def test_a_scoped_writer_cannot_push_to_another_prefix(lab, image):
    refused(lab, image, "team-b/app", SCOPED)


def test_a_scoped_writer_cannot_push_to_a_prefix_that_merely_starts_like_its_own(lab, image):
    refused(lab, image, "team-ab/app", SCOPED)
