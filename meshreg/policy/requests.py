"""The HTTP requests a registry client sends, as `policy check` evaluates them: one METHOD PATH, a push or a pull."""

from __future__ import annotations

from meshreg.config import names
from meshreg.errors import UsageError

DIGEST = "sha256:" + "0" * 64  # stands for any layer digest: no policy looks at it
UPLOAD = "00000000-0000-4000-8000-000000000000"  # stands for the upload id the registry returns


def registry_requests(first: str, second: str) -> list[tuple[str, str]]:
    """The requests to check: one METHOD PATH, or every request of a push or a pull."""
    if first not in ("push", "pull"):
        return [(first, second)]
    repo, _, tag = second.partition(":")
    tag = tag or "latest"
    if not names.is_repository(repo):
        raise UsageError(f"{repo!r} is not a repository name (lowercase components separated by '/', e.g. team-a/app)")
    if not names.is_tag(tag):
        raise UsageError(f"{tag!r} is not a tag (letters, digits, '_', '.', '-'; at most 128)")
    base = f"/v2/{repo}"
    if first == "pull":
        return [("GET", "/v2/"), ("HEAD", f"{base}/manifests/{tag}"), ("GET", f"{base}/manifests/{tag}"),
                ("GET", f"{base}/blobs/{DIGEST}")]
    return [("GET", "/v2/"), ("HEAD", f"{base}/blobs/{DIGEST}"), ("POST", f"{base}/blobs/uploads/"),
            ("PATCH", f"{base}/blobs/uploads/{UPLOAD}"), ("PUT", f"{base}/blobs/uploads/{UPLOAD}?digest={DIGEST}"),
            ("HEAD", f"{base}/manifests/{tag}"), ("PUT", f"{base}/manifests/{tag}")]
