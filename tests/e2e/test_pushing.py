"""Pushes with skopeo through the registry's mTLS sidecar: writers inside their scope only."""

from __future__ import annotations

from e2e_cases import NON_WRITER, SCOPED, WRITER
from lab.clients import manifest_digest, skopeo_copy


def test_a_writer_pushes_and_the_registry_holds_the_identical_manifest(lab, image):
    result = skopeo_copy(image.ref, f"docker://{lab.sidecar}/builds/app:v1", dest_ident=lab.identity(WRITER))
    assert result.returncode == 0, result.stderr
    assert manifest_digest(lab.direct, "builds/app", "v1") == image.digest


def test_a_non_writer_push_is_refused_with_403(lab, image):
    result = skopeo_copy(image.ref, f"docker://{lab.sidecar}/apps/web:v1", dest_ident=lab.identity(NON_WRITER))
    assert result.returncode != 0
    assert "StatusCode: 403" in result.stderr, result.stderr
    assert "apps/web" not in lab.repositories()


def test_a_scoped_writer_pushes_inside_its_prefix(lab, image):
    result = skopeo_copy(image.ref, f"docker://{lab.sidecar}/team-a/app:v1", dest_ident=lab.identity(SCOPED))
    assert result.returncode == 0, result.stderr
    assert manifest_digest(lab.direct, "team-a/app", "v1") == image.digest


def test_a_scoped_writer_cannot_push_to_another_prefix(lab, image):
    result = skopeo_copy(image.ref, f"docker://{lab.sidecar}/team-b/app:v1", dest_ident=lab.identity(SCOPED))
    assert result.returncode != 0
    assert "StatusCode: 403" in result.stderr, result.stderr
    assert "team-b/app" not in lab.repositories()


def test_a_scoped_writer_cannot_push_to_a_prefix_that_merely_starts_like_its_own(lab, image):
    result = skopeo_copy(image.ref, f"docker://{lab.sidecar}/team-ab/app:v1", dest_ident=lab.identity(SCOPED))
    assert result.returncode != 0
    assert "StatusCode: 403" in result.stderr, result.stderr
    assert "team-ab/app" not in lab.repositories()
