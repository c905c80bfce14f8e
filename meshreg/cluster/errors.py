"""API errors as meshreg errors: one line that keeps the server's own reason and says who refused.

The API server answers 403 Forbidden both when RBAC denies the caller and when an admission plugin refuses the object
(ResourceQuota, PVC resize, Pod Security, a namespace being deleted, ValidatingAdmissionPolicy); a validating webhook's
denial comes with whatever code the webhook chose, a ValidatingAdmissionPolicy's with 422 or 403. The Status `message`
and `details` tell them apart, so each becomes its own class and reads differently: a user must never go looking for
a missing permission when a quota or a policy said no.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from meshreg.errors import ClusterError

Status = dict[str, Any]  # a Kubernetes Status body

LONGEST = 600  # characters of a server message kept in one line (Kyverno's reports run to pages)

_RBAC = re.compile(r'\bUser "[^"]*" cannot \S+ ')
_OBJECT_PREFIX = re.compile(r'^[\w.-]+(?: "[^"]*")? is (?:forbidden|invalid): ')
_WEBHOOK_DENIED = re.compile(r'admission webhook "([^"]+)" denied the request:?\s*(.*)')
_WEBHOOK_FAILED = re.compile(r'failed calling webhook "([^"]+)":\s*(.*)')
_POLICY_DENIED = re.compile(r"ValidatingAdmissionPolicy '([^']+)' with binding '([^']+)' denied request:\s*(.*)")


class ApiError(ClusterError):
    """The API server refused a request; `code` is the HTTP status and `status` the Status body it sent."""

    def __init__(self, message: str, *, code: int = 0, status: Status | None = None, subject: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.status = status or {}
        self.subject = subject


class Unauthorized(ApiError):
    """401: the server did not accept the credentials at all."""


class PermissionDenied(ApiError):
    """403 from RBAC (or another authorizer): the credentials lack a permission."""


class AdmissionDenied(ApiError):
    """An admission plugin, webhook or policy refused the object: a permission would not help."""


class InvalidObject(ApiError):
    """422: the object fails validation (schema, CEL rules, immutable fields)."""


class ConflictError(ApiError):
    """409 from server-side apply: fields owned by another field manager would change."""

    def __init__(self, message: str, managers: Iterable[str] = (), *, code: int = 0, status: Status | None = None,
                 subject: str = "") -> None:
        super().__init__(message, code=code, status=status, subject=subject)
        self.managers = list(managers)


class NotFound(ApiError):
    """404 where the object, its namespace or its API is expected to exist."""


class ServerError(ApiError):
    """Any other answer: overload (429), timeouts, internal errors."""


def one_line(text: str) -> str:
    """Server text on one line (webhooks send several), without the object diff some validation messages append
    (`\n@@ -6,7 +6,7 @@ ...`), cut to a readable length."""
    text = " ".join(str(text).split("\n@@ ")[0].split())
    return text if len(text) <= LONGEST else text[:LONGEST - 1] + "…"


def server_reason(status: Status) -> str:
    """The Status message without the `<resource> "<name>" is forbidden:` prefix that repeats the subject."""
    message = one_line(status.get("message") or status.get("reason") or "")
    return _OBJECT_PREFIX.sub("", message)


def translate(code: int, status: Status, *, subject: str) -> ApiError:
    """An error answer as the ApiError subclass that says who refused, in a line that starts with `subject`."""
    def make(cls: type[ApiError], message: str) -> ApiError:
        return cls(message, code=code, status=status, subject=subject)

    reason = server_reason(status) or f"HTTP {code}"
    if code in (401, 409):  # the credentials, or the object's own state: never an admission controller
        found = _credentials_or_state(code, reason, status, subject, make)
        if found is not None:
            return found
    admission = _admission(reason, status, subject)
    if admission:
        return make(AdmissionDenied, admission)
    return _by_code(code, reason, status, subject, make)


Make = Callable[[type[ApiError], str], ApiError]


def _credentials_or_state(code: int, reason: str, status: Status, subject: str, make: Make) -> ApiError | None:
    if code == 401:
        return make(Unauthorized, f"unauthorized: the server rejected the credentials ({reason})")
    if status.get("reason") == "Conflict":
        return _conflict(reason, status, code=code, subject=subject)
    if status.get("reason") == "AlreadyExists":
        return make(ServerError, f"{subject}: already exists")
    return None


def _by_code(code: int, reason: str, status: Status, subject: str, make: Make) -> ApiError:
    if code == 403:
        return _forbidden(reason, subject, make)
    if code == 422:
        return make(InvalidObject, f"{subject}: invalid: {_causes(status) or reason}")
    if code == 404:
        return make(NotFound, f"{subject}: {_missing(status, reason)}")
    answer = " ".join(str(part) for part in (code, status.get("reason")) if part)
    return make(ServerError, f"{subject}: the API server answered {answer}: {reason}")


def _forbidden(reason: str, subject: str, make: Make) -> ApiError:
    """403: RBAC, or one of the admission plugins that answer 403 too."""
    if _RBAC.search(reason):
        return make(PermissionDenied, f"{subject}: not permitted (RBAC): {reason}")
    if "exceeded quota" in reason:
        return make(AdmissionDenied, f"{subject}: refused by a ResourceQuota (not a permission problem): {reason}")
    if "PodSecurity" in reason:
        return make(AdmissionDenied, f"{subject}: refused by Pod Security admission: {reason}")
    return make(AdmissionDenied, f"{subject}: refused by admission (not a permission problem): {reason}")


def _admission(reason: str, status: Status, subject: str) -> str | None:
    """The line for refusals that name their admission controller, whatever the HTTP code."""
    if m := _WEBHOOK_DENIED.search(reason):
        return f'{subject}: refused by admission webhook "{m[1]}": {m[2] or "(no reason given)"}'
    if m := _WEBHOOK_FAILED.search(reason):
        return (f'{subject}: admission webhook "{m[1]}" could not be called, and it is set to fail closed '
                f"(failurePolicy: Fail), so every matching request is refused until it answers: {m[2]}")
    if m := _POLICY_DENIED.search(reason):
        return f"{subject}: refused by ValidatingAdmissionPolicy {m[1]} (binding {m[2]}): {m[3]}"
    namespace = _terminating(status)
    if namespace is not None:
        return (f"{subject}: refused: namespace {namespace} is being deleted; wait until it is gone "
                f"(kubectl get namespace {namespace}), then run meshreg up again")
    return None


def _terminating(status: Status) -> str | None:
    """The namespace a NamespaceTerminating refusal names ("" when it names none), or None for other refusals."""
    causes = [c for c in (status.get("details") or {}).get("causes") or [] if c.get("reason") == "NamespaceTerminating"]
    if not causes:
        return None
    return next((words[1] for c in causes if len(words := c.get("message", "").split()) > 1), "")


def _conflict(reason: str, status: Status, *, code: int, subject: str) -> ConflictError:
    causes = (status.get("details") or {}).get("causes") or []
    managers = sorted({m for c in causes for m in re.findall(r'conflicts? with "([^"]+)"', c.get("message", ""))})
    fields = ", ".join(c["field"] for c in causes if c.get("field"))
    if not managers:
        return ConflictError(f"{subject}: conflict: {reason}", code=code, status=status, subject=subject)
    return ConflictError(f"{subject}: conflict: fields {fields} are owned by {', '.join(managers)}; "
                         "rerun with --force-conflicts to take them over", managers, code=code, status=status,
                         subject=subject)


def _causes(status: Status) -> str:
    """422 causes as `field: message` pairs (they leave out the object diff some messages carry)."""
    out = []
    for cause in (status.get("details") or {}).get("causes") or []:
        message, field = one_line(cause.get("message", "")), cause.get("field")
        out.append(f"{field}: {message}" if field and not message.startswith(field) else message)
    return "; ".join(m for m in out if m)


def _missing(status: Status, reason: str) -> str:
    details = status.get("details") or {}
    if details.get("kind") == "namespaces" and details.get("name"):
        return f"namespace {details['name']} does not exist"
    return f"not found: {reason}"


def warning_texts(header: str) -> list[str]:
    """Every warning in one HTTP `Warning: 299 - "text"` header the API server sends (deprecations, Pod Security):
    one header per warning, but a proxy may join several into one, comma-separated."""
    found = [one_line(re.sub(r"\\(.)", r"\1", m[1])) for m in re.finditer(r'\d{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"', header)]
    return found or [one_line(header)]
