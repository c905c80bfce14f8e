"""Checks for the names meshreg accepts: Kubernetes names, NS/SA identities, repository prefixes, quantities."""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# distribution's repository name grammar: path components separated by "/".
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_QUANTITY = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_IMAGE = re.compile(r"[a-z0-9][a-z0-9._\-/:]*[a-z0-9](?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")  # a label value, or a key after its prefix

# Namespaces of the cluster and of Istio, never one of meshreg's own.
RESERVED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "istio-system")
# Ports the Istio sidecar and gateway proxies keep for themselves.
ISTIO_RESERVED_PORTS = frozenset({15000, 15001, 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090})


def is_label(value: str) -> bool:
    """A lowercase RFC 1123 label (namespace names, label values we generate)."""
    return len(value) <= 63 and _LABEL.fullmatch(value) is not None


def is_subdomain(value: str) -> bool:
    """A lowercase RFC 1123 subdomain (most object names, ServiceAccount names)."""
    return len(value) <= 253 and _SUBDOMAIN.fullmatch(value) is not None


def check_label(value: str) -> str | None:
    """None if `value` is a label, else what is wrong."""
    if is_label(value):
        return None
    return f"{value!r} is not a valid name (lowercase RFC 1123 label: a-z, 0-9 and '-', at most 63 characters)"


def check_subdomain(value: str) -> str | None:
    if is_subdomain(value):
        return None
    return f"{value!r} is not a valid name (lowercase RFC 1123 subdomain: a-z, 0-9, '-' and '.')"


def check_label_key(value: str, *, expected: str) -> str | None:
    """None if `value` is a Kubernetes label key (an optional DNS prefix and '/', then a name), else what is wrong;
    `expected` closes the message (each field explains it in its own words)."""
    prefix, _, name = value.rpartition("/")
    if (prefix and not is_subdomain(prefix)) or not _LABEL_NAME.fullmatch(name):
        return f"{value!r} is not a label key ({expected})"
    return None


def check_label_value(value: str, *, expected: str) -> str | None:
    """None if `value` is a Kubernetes label value (empty, or a name of at most 63 characters), else what is wrong."""
    if value and not _LABEL_NAME.fullmatch(value):
        return f"{value!r} is not a label value ({expected})"
    return None


def check_identity(value: str, *, allow_wildcard: bool = False) -> str | None:
    """None if `value` is NS/SA (or, with allow_wildcard, NS/* or *), else what is wrong."""
    if allow_wildcard and value == "*":
        return None
    want = "NS/SA or NS/*" if allow_wildcard else "NS/SA"
    parts = value.split("/")
    if len(parts) != 2:
        return f"{value!r} is not a workload identity (expected {want}, e.g. builds/kaniko)"
    ns, sa = parts
    if not is_label(ns):
        return f"{value!r}: namespace {ns!r} is not a valid name (lowercase RFC 1123 label)"
    if allow_wildcard and sa == "*":
        return None
    if not is_subdomain(sa):
        return f"{value!r}: service account {sa!r} is not a valid name (lowercase RFC 1123 subdomain)"
    return None


def check_repository_prefix(value: str) -> str | None:
    """None if `value` is "*" or a repository name with an optional trailing "/"."""
    if value == "*":
        return None
    if _REPOSITORY.fullmatch(value.removesuffix("/")) is None:
        return (
            f"{value!r} is not a repository prefix (\"*\" or a repository name such as team-a/ or "
            "team-a/app: lowercase components separated by '/')"
        )
    return None


def normalize_prefix(value: str) -> str:
    """Repository prefixes are kept with one trailing slash: "team-a" and "team-a/" mean the same."""
    return value if value == "*" else value.removesuffix("/") + "/"


def is_repository(value: str) -> bool:
    return len(value) <= 255 and _REPOSITORY.fullmatch(value) is not None


def is_tag(value: str) -> bool:
    return _TAG.fullmatch(value) is not None


def check_quantity(value: str) -> str | None:
    if _QUANTITY.fullmatch(value) is None:
        return f"{value!r} is not a Kubernetes quantity (e.g. 10Gi, 500Mi, 250m)"
    return None


def check_image(value: str) -> str | None:
    if _IMAGE.fullmatch(value) is None:
        return f"{value!r} is not an image reference (e.g. docker.io/library/registry:2.8.3)"
    return None


def check_trust_domain(value: str) -> str | None:
    if "/" in value:
        return f"{value!r} is not a trust domain: it must not contain '/' (e.g. cluster.local)"
    if not is_subdomain(value.lower()) or value != value.lower():
        return f"{value!r} is not a trust domain (a lowercase DNS name such as cluster.local)"
    return None


def check_loopback(value: str) -> str | None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return f"{value!r} is not an IP address"
    if not address.is_loopback:
        return (
            f"{value!r} is not a loopback address: the node proxy serves unauthenticated reads, "
            "so it listens on the node's loopback only (127.0.0.1 or ::1)"
        )
    return None
