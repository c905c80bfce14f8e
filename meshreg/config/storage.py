"""Reads where a registry keeps its images (a PersistentVolumeClaim or an S3 bucket) and how many replicas it runs."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from meshreg.config import names
from meshreg.config.model import Storage
from meshreg.config.reader import REQUIRED, Invalid, Reader
from meshreg.config.source import Path

if TYPE_CHECKING:
    from meshreg.config.model import S3

_D = Storage()
_S3_KEYS = {"bucket": REQUIRED, "region": REQUIRED, "credentialsSecret": REQUIRED, "endpoint": None,
            "rootDirectory": None, "redirect": False}
# AWS region names (us-east-1, eu-central-2, us-gov-west-1, ap-southeast-5, ...); S3-compatible servers take any
# non-empty name, but distribution's driver still signs requests with it.
_REGION = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_ROOT = re.compile(r"(/[A-Za-z0-9._-]+)+")
MAX_REPLICAS = 100


def read_storage(r: Reader, value: object, path: Path) -> Storage:
    """`storage: {size, storageClassName}` (a PersistentVolumeClaim) or `storage: {s3: {...}}`."""
    m = r.mapping(value, path, {"size": None, "storageClassName": None, "s3": None})
    if r.given(m["s3"]):
        with r.checks():
            for key in ("size", "storageClassName"):
                if m[key] is not None:
                    r.record(path + (key,), "belongs to a PersistentVolumeClaim; with storage.s3 the images live in "
                                            "the bucket (remove this key)")
            s3 = _read_s3(r, m["s3"], path + ("s3",))
        return Storage(s3=s3)
    storage_class = m["storageClassName"]
    klass = r.attempt(lambda: "" if storage_class == "" else  # "" asks for no class (static binding)
                      r.string(storage_class, path + ("storageClassName",), names.check_subdomain, nullable=True))
    size = r.attempt(lambda: _read_size(r, _D.size if m["size"] is None else m["size"], path + ("size",)))
    return Storage(size=size.value, storage_class_name=klass.value)


def _read_size(r: Reader, value: object, path: Path) -> str:
    size = r.string(value, path, names.check_quantity)
    if _amount(size) <= 0:
        r.fail(path, f"{size!r} must be larger than zero")
    return size


def _amount(quantity: str) -> float:
    """The number in a quantity that names.check_quantity accepted (`10Gi` -> 10.0)."""
    number = re.match(r"[\d.]+", quantity)
    assert number is not None, quantity  # a checked quantity starts with digits or '.'
    return float(number.group())


def _read_s3(r: Reader, value: object, path: Path) -> S3:
    from meshreg.config.model import S3  # its model loads with storage.s3 only

    m = r.mapping(value, path, _S3_KEYS)
    bucket = r.attempt(lambda: r.string(m["bucket"], path + ("bucket",), check_bucket))
    region = r.attempt(lambda: r.string(m["region"], path + ("region",), _check_region))
    secret = r.attempt(lambda: r.string(m["credentialsSecret"], path + ("credentialsSecret",),
                                        names.check_subdomain))
    endpoint = r.attempt(lambda: r.string(m["endpoint"], path + ("endpoint",), _check_endpoint, nullable=True))
    root = r.attempt(lambda: r.string(m["rootDirectory"], path + ("rootDirectory",), _check_root, nullable=True))
    redirect = r.attempt(lambda: r.boolean(m["redirect"], path + ("redirect",)))
    return S3(bucket=bucket.value, region=region.value, credentials_secret=secret.value, endpoint=endpoint.value,
              root_directory=root.value, redirect=redirect.value)


def read_replicas(r: Reader, value: object, path: Path, storage: Storage | None) -> int:
    """How many registry pods; more than one only with object storage (None: the storage did not read)."""
    replicas = r.integer(value, path, low=1, high=MAX_REPLICAS)
    if storage is None:
        raise Invalid
    if replicas > 1 and storage.s3 is None:
        r.fail(path, f"{replicas} replicas need object storage (storage.s3): a PersistentVolumeClaim is "
                     "ReadWriteOnce, so only one registry pod can use it")
    return replicas


def check_bucket(value: str) -> str | None:
    """S3's rules for general purpose bucket names (AWS S3 User Guide, "Bucket naming rules")."""
    why = None
    if not 3 <= len(value) <= 63:
        why = "3 to 63 characters"
    elif not re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", value):
        why = "lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
    elif ".." in value or ".-" in value or "-." in value:
        why = "no two adjacent periods, and no period next to a hyphen"
    elif _is_ip(value):
        why = "not formatted as an IP address"
    elif value.startswith(("xn--", "sthree-", "amzn-s3-demo-")):
        why = "not starting with xn--, sthree- or amzn-s3-demo-"
    elif value.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")):
        why = "not ending with -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3"
    return f"{value!r} is not a bucket name S3 accepts ({why})" if why else None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _check_region(value: str) -> str | None:
    return None if _REGION.fullmatch(value) else f"{value!r} is not a region name (e.g. us-east-1)"


def _check_endpoint(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
        return f"{value!r} is not an S3 endpoint URL (e.g. https://minio.storage.svc:9000, no path)"
    host = parts.hostname
    if not (names.is_subdomain(host) or _is_ip(host)):
        return f"{value!r}: {host!r} is not a host name or IPv4 address"
    return None


def _check_root(value: str) -> str | None:
    if _ROOT.fullmatch(value.rstrip("/") or "/"):
        return None
    return f"{value!r} is not an absolute path inside the bucket (e.g. /registry)"
