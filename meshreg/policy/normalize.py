"""The path an Istio sidecar compares with `paths`/`notPaths` under its default normalization (BASE).

BASE is Envoy's `normalize_path` (RFC 3986) plus backslash-to-slash: percent-encoded unreserved characters
(letters, digits, `-`, `.`, `_`, `~`) are decoded once, `\\` becomes `/`, `.` and `..` segments are resolved.
`%2F` and `%5C` are left encoded (only DECODE_AND_MERGE_SLASHES decodes them), `//` is not merged (only
MERGE_SLASHES does that), `%00` and a fragment are rejected with 400, and the query string is not matched.
Checked against a real Envoy (tests/policy/test_normalization.py): a segment starting with a literal `.;` or
`..;` is a dot segment too, leading slashes stay as they are (`//v2/x` is compared as `//v2/x`, so it matches no
`/v2/*` rule; the real stack's istiod-configured sidecars deny `//v2/team-a/...` under `/v2/team-a/*` too, see
tests/realstack/test_writers.py), other escapes keep their case, and ``"<>^`{|}`` are percent-encoded.
"""

from __future__ import annotations

import re

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_ENCODED = frozenset('"<>^`{|}')
_DOTS = re.compile(r"(?i)(?:\.|%2e){1,2}|\.\.?;.*")


class Rejected(ValueError):
    """Envoy refuses the request before any policy runs (HTTP 400)."""


def normalize(raw: str) -> str:
    """The normalized path, without its query string, as Istio's BASE normalization leaves it."""
    path = raw.split("?", 1)[0]
    if "%00" in path:
        raise Rejected("Envoy rejects a path containing %00 with 400")
    if "#" in raw:
        raise Rejected("Envoy rejects a path with a fragment (#) with 400")
    segments = path.replace("\\", "/").split("/")  # `//` stays, leading ones too: BASE does not merge slashes
    return remove_dot_segments("/".join(_segment(s) for s in segments))


def _segment(raw: str) -> str:
    """One segment: dot segments spelled `%2e` or `..;x` become plain dots; unreserved escapes are decoded."""
    if _DOTS.fullmatch(raw):
        return "." * len(_ESCAPE.sub(".", raw.split(";", 1)[0]))
    decoded = _ESCAPE.sub(_decode_unreserved, raw)
    return "".join(f"%{ord(c):02X}" if c in _ENCODED else c for c in decoded)


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else match.group(0)


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 on an absolute path; `..` above the root stays at the root."""
    segments = path.split("/")[1:]
    out: list[str] = []
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)
