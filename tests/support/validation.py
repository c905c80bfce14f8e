"""Offline checks of rendered objects: kubernetes-validate for built-in kinds, CRD schemas and CEL rules for the
rest."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import functools
import ipaddress
import pathlib
import re
import urllib.parse

import celpy
import jsonschema
import kubernetes_validate
import referencing
import yaml
from celpy import celtypes
from celpy.evaluation import base_functions
from kubernetes_validate import utils as kv_utils
from packaging.version import Version

OLDEST_KUBERNETES = "1.29"
SCHEMAS = pathlib.Path(__file__).resolve().parents[3] / "shared" / "schemas"
MISSING_SCHEMAS = (f"CRD schemas not found at {SCHEMAS}: put the Istio and Gateway API CRD files there "
                   "(see ../shared/schemas/README.md) to validate Istio objects")
CRD_GROUPS = ("istio.io", "gateway.networking.k8s.io", "gateway.networking.x-k8s.io")
_OBJECT_META = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def kubernetes_versions() -> list[str]:
    """Minor versions from 1.29 to the newest that the installed kubernetes-validate has schemas for."""
    minors = {kv_utils.major_minor(v) for v in kv_utils.all_versions()}
    return sorted((m for m in minors if Version(m) >= Version(OLDEST_KUBERNETES)), key=Version)


def describe(obj: dict) -> str:
    """`Kind/name` of an object, for messages."""
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def is_custom(obj: dict) -> bool:
    """Whether obj is an Istio or Gateway API object (checked against CRDs, not kubernetes-validate)."""
    group = obj.get("apiVersion", "").rpartition("/")[0]
    return any(group == g or group.endswith("." + g) for g in CRD_GROUPS)


def validate_kubernetes(obj: dict, version: str) -> list[str]:
    """Errors from kubernetes-validate in strict mode (unknown fields are errors); it reports the best match only."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kv_utils.ValidationError as e:
        path = ".".join(str(p) for p in e.path) or "<root>"
        return [f"{describe(obj)}: {path}: {e.message} (Kubernetes {e.version}, strict)"]
    except (kv_utils.SchemaNotFoundError, kv_utils.VersionNotSupportedError) as e:
        return [f"{describe(obj)}: {e.message}"]
    return []


def validate(obj: dict, version: str) -> list[str]:
    """Errors from the validator that fits obj: its CRD for Istio and Gateway API kinds, else kubernetes-validate."""
    return validate_crd_object(obj) if is_custom(obj) else validate_kubernetes(obj, version)


def errors_in(objects: list[dict], versions: list[str]) -> list[str]:
    """Every error in `objects`, each named KIND/NAME; built-in kinds checked against each of `versions`."""
    out = []
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        for version in (versions[:1] if is_custom(obj) else versions):
            out += [f"{name} ({version}): {e}" for e in validate(obj, version)]
    return out


# --- CRD schemas -------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class CrdResult:
    """Outcome of checking one object against its CRD: errors, and the CEL rules evaluated and skipped."""

    errors: list[str] = dataclasses.field(default_factory=list)
    evaluated: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)


def validate_crd_object(obj: dict) -> list[str]:
    """Errors of an Istio or Gateway API object against its CRD's structural schema and CEL rules."""
    return check_crd_object(obj).errors


def check_crd_object(obj: dict) -> CrdResult:
    """Check obj against the served version of its CRD; CEL rules run only when the structure is valid."""
    result = CrdResult()
    key = _find_crd(obj, result.errors)
    if key is None:
        return result
    for error in sorted(_validator(*key).iter_errors(obj), key=lambda e: [str(p) for p in e.path]):
        result.errors.append(f"{describe(obj)}: {_json_path(error.path)}: {_shorten(error.message)}")
    if not result.errors:
        _check_cel(_crd_index()[key[:2]][key[2]], obj, path="", result=result)
        result.errors = [f"{describe(obj)}: {e}" for e in result.errors]
    return result


def _json_path(path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "<root>"


def _shorten(message: str) -> str:
    message = message.replace("Additional properties are not allowed",
                              "unknown field (the API server would prune it)")
    return message if len(message) <= 300 else message[:300] + "..."


def _find_crd(obj: dict, errors: list[str]) -> tuple[str, str, str] | None:
    group, _, version = obj.get("apiVersion", "").rpartition("/")
    served = _crd_index().get((group, obj.get("kind")))
    if served is None:
        errors.append(f"{describe(obj)}: no CRD in {SCHEMAS} for kind {obj.get('kind')} in group {group!r}")
        return None
    if version not in served:
        errors.append(f"{describe(obj)}: {group}/{version} is not served; served versions: {sorted(served)}")
        return None
    return group, obj["kind"], version


@functools.cache
def _crd_index() -> dict[tuple[str, str], dict[str, dict]]:
    """(group, kind) -> {served version: openAPIV3Schema}; standard Gateway API files win over experimental."""
    if not SCHEMAS.is_dir():
        raise FileNotFoundError(MISSING_SCHEMAS)
    index: dict[tuple[str, str], dict[str, dict]] = {}
    for path in sorted(SCHEMAS.glob("*.yaml"), key=lambda p: ("experimental" in p.name, p.name)):
        for doc in yaml.load_all(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            served = index.setdefault((doc["spec"]["group"], doc["spec"]["names"]["kind"]), {})
            for v in doc["spec"]["versions"]:
                if v.get("served") and v["name"] not in served:
                    served[v["name"]] = v["schema"]["openAPIV3Schema"]
    return index


@functools.cache
def _validator(group: str, kind: str, version: str) -> jsonschema.Draft202012Validator:
    root = _structural(_crd_index()[group, kind][version])
    root["properties"] = {**root.get("properties", {}), **_embedded_fields()}
    return jsonschema.Draft202012Validator(root, registry=_metadata_registry(),
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _embedded_fields() -> dict:
    """apiVersion, kind and metadata, which the API server knows for every object (ObjectMeta from
    kubernetes-validate)."""
    return {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"$ref": _OBJECT_META}}


@functools.cache
def _metadata_registry() -> referencing.Registry:
    newest = kv_utils.all_versions()[-1]
    defs = kv_utils.schema_contents(f"kubernetes-json-schema/v{newest}-local-strict/_definitions.json", newest)
    return referencing.Resource.from_contents(defs) @ referencing.Registry()


def _structural(s: dict) -> dict:
    """A JSON-schema copy of a structural schema, with the API server's rules made explicit."""
    out = dict(s)
    if "properties" in s:
        out["properties"] = {k: _structural(v) for k, v in s["properties"].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(s.get(key), dict):
            out[key] = _structural(s[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in s:
            out[key] = [_structural(v) for v in s[key]]
    if s.get("nullable") and "type" in s:
        out["type"] = [s["type"], "null"]
    if s.get("x-kubernetes-int-or-string") and "anyOf" not in s:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if s.get("x-kubernetes-embedded-resource"):
        out["properties"] = {**out.get("properties", {}), **_embedded_fields()}
    if s.get("type") == "object" and "additionalProperties" not in s \
            and not s.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False  # the API server prunes unknown fields: a silent loss, so an error here
    return out


# --- CEL rules (x-kubernetes-validations) --------------------------------------------------------------------------

_MACROS = {"has", "all", "exists", "exists_one", "map", "filter"}
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_CALL = re.compile(r"([A-Za-z_]\w*)\s*\(")


def _check_cel(schema: dict, value, *, path: str, result: CrdResult) -> None:
    """Evaluate the rules at every schema node that has a value, with `self` bound to that value."""
    if value is None:
        return
    for rule in schema.get("x-kubernetes-validations", ()):
        _check_rule(rule, value, path=path, result=result)
    if isinstance(value, dict):
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, sub in value.items():
            if key in props:
                _check_cel(props[key], sub, path=f"{path}.{key}", result=result)
            elif isinstance(extra, dict):
                _check_cel(extra, sub, path=f"{path}[{key}]", result=result)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _check_cel(schema["items"], item, path=f"{path}[{i}]", result=result)


def _check_rule(rule: dict, value, *, path: str, result: CrdResult) -> None:
    text = rule["rule"]
    if unsupported_functions(text) or "oldSelf" in text:  # oldSelf: a transition rule, needs the stored object
        result.skipped.append(text)
        return
    result.evaluated.append(text)
    try:
        outcome = _program(text).evaluate({"self": celpy.json_to_cel(value)})
    except celpy.CELEvalError as e:
        outcome = e
    if not (isinstance(outcome, celtypes.BoolType) and bool(outcome)):
        where = (path + rule.get("fieldPath", "")).lstrip(".") or "<root>"
        detail = f"; evaluation error: {_cause(outcome)}" if isinstance(outcome, celpy.CELEvalError) else ""
        result.errors.append(f"{where}: {rule.get('message', 'failed rule')} (CEL rule {text!r}{detail})")


def _cause(error: celpy.CELEvalError) -> str:
    """The message of the exception behind a celpy evaluation error (celpy's own wording can mislead)."""
    inner = error.args[2] if len(error.args) > 2 and error.args[2] else None
    return str(inner[0]) if isinstance(inner, tuple) and inner else str(error.args[0])


def unsupported_functions(rule: str) -> set[str]:
    """Functions a CEL rule calls that neither celpy nor this module provides."""
    called = set(_CALL.findall(_STRING_LITERAL.sub('""', rule)))
    return called - _MACROS - set(base_functions) - set(_KUBERNETES_FUNCTIONS)


@functools.cache
def _program(text: str) -> celpy.Runner:
    env = _environment()
    return env.program(env.compile(text), functions=_KUBERNETES_FUNCTIONS)


@functools.cache
def _environment() -> celpy.Environment:
    return celpy.Environment()


# Kubernetes CEL functions the CRDs use and celpy lacks (or, for duration, parses unlike Go). celpy calls them with
# positional arguments, so they cannot take keyword-only ones.
_NANOS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_GO_DURATION_PART = r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)"


def _duration(text) -> celtypes.DurationType:
    """Go's time.ParseDuration ("300ms", "1h30m", "0"); celpy would also take "1d", which Kubernetes rejects."""
    if isinstance(text, datetime.timedelta):
        return celtypes.DurationType(text)
    body = str(text).lstrip("+-")
    if body != "0" and not re.fullmatch(f"(?:{_GO_DURATION_PART})+", body):
        raise ValueError(f"invalid duration {str(text)!r}")
    nanos = sum(decimal.Decimal(n) * _NANOS[u] for n, u in re.findall(_GO_DURATION_PART, body))
    sign = -1 if str(text).startswith("-") else 1
    return celtypes.DurationType(datetime.timedelta(microseconds=int(sign * nanos / 1000)))


class _URL:
    """The value of Kubernetes' url(): a parsed absolute URI or absolute path."""

    def __init__(self, text: str):
        self.parts = urllib.parse.urlsplit(text)


def _is_url(text) -> bool:
    """Like Go's url.ParseRequestURI: an absolute path, or a scheme followed by a parseable rest."""
    text = str(text)
    if not text or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return False
    if text.startswith("/"):
        return True
    if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", text):
        return False
    parts = urllib.parse.urlsplit(text)
    try:
        parts.port  # noqa: B018 (raises on a non-numeric port)
    except ValueError:
        return False
    return " " not in parts.netloc


def _url(text) -> _URL:
    if not _is_url(text):
        raise ValueError(f"not a valid URL: {str(text)!r}")
    return _URL(str(text))


def _substring(text, start, end=None) -> celtypes.StringType:
    """Kubernetes' strings library: code-point indexes, an error when out of range."""
    end = len(text) if end is None else end
    if not 0 <= start <= end <= len(text):
        raise ValueError(f"substring({start}, {end}) out of range for a string of length {len(text)}")
    return celtypes.StringType(text[start:end])


def _split(text, separator, limit=-1) -> celtypes.ListType:
    if limit == 0:
        return celtypes.ListType([])
    parts = str(text).split(str(separator), -1 if limit < 0 else limit - 1)
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


def _is_ip(text) -> celtypes.BoolType:
    try:
        ipaddress.ip_address(str(text))
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType("%" not in str(text))


_KUBERNETES_FUNCTIONS = {
    "duration": _duration,
    "isURL": lambda text: celtypes.BoolType(_is_url(text)),
    "url": _url,
    "getScheme": lambda url: celtypes.StringType(url.parts.scheme),
    "substring": _substring,
    "split": _split,
    "isIP": _is_ip,
}
