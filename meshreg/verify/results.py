"""Reading a probe's log back and judging each expectation from what it observed. A verdict comes only from a line
the probe printed (or, for the kubelet, from its events); a result that cannot be read is a FAIL, never a PASS."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from meshreg.cluster.api import Object
from meshreg.cluster.wait import PULL_FAILURES
from meshreg.verify.plan import Expectation

PREFIX = "meshreg-probe "
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
RESET = (52, 56)  # curl: empty reply, connection reset: what STRICT mTLS does to plain text


@dataclass(frozen=True)
class Verdict:
    """One row of the table: the expectation, what was expected and observed, and PASS, FAIL or SKIP."""

    registry: str
    expectation: str
    expected: str
    observed: str
    verdict: str
    node: str | None = None  # where the probe that observed it ran (None: it did not run)

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


@dataclass
class Log:
    """What one probe printed: results by step id, and whether it reached its end."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    sidecar_ready: bool | None = None
    ended: bool = False


def parse(text: str) -> Log:
    log = Log()
    for line in text.splitlines():
        if not line.startswith(PREFIX):
            continue
        try:
            item = json.loads(line[len(PREFIX):])
        except ValueError:
            continue  # a torn line: whatever it said is not a result
        if "id" in item:
            log.results[item["id"]] = item
        elif item.get("event") == "sidecar":
            log.sidecar_ready = bool(item.get("ready"))
        elif item.get("event") == "end":
            log.ended = True
    return log


def verdict(exp: Expectation, status: str, observed: str) -> Verdict:
    return Verdict(exp.registry, exp.text, exp.expected, observed, status)


def describe(result: dict[str, Any]) -> str:
    """What a step that stopped saw, in a few words."""
    if result.get("result") == "no-response":
        return f"{result.get('step')}: no HTTP answer ({result.get('error') or 'curl exit ' + str(result.get('curl'))})"
    if result.get("result") == "http-error":
        body = f" ({result['body']})" if result.get("body") else ""
        return f"{result.get('step')}: HTTP {result.get('status')}{body}"
    return f"unexpected result {result.get('result')!r}"


def judge(exp: Expectation, result: dict[str, Any] | None, *, missing: str) -> Verdict:
    """The verdict for one expectation from the probe's result line; `missing` explains a result not there."""
    if result is None:
        return verdict(exp, FAIL, missing)
    rule = JUDGES.get(exp.want)
    return rule(exp, result) if rule else verdict(exp, FAIL, f"cannot judge {exp.want!r}")


def _pushed(exp: Expectation, result: dict[str, Any]) -> Verdict:
    if result.get("result") != "ok":
        return verdict(exp, FAIL, describe(result))
    if result.get("digest") and result.get("digest") == result.get("served"):
        return verdict(exp, PASS, f"pushed {_short(result['digest'])}, served with the same digest")
    return verdict(exp, FAIL, f"pushed {_short(result.get('digest'))}, but the registry serves "
                              f"{_short(result.get('served'))}")


def _denied(exp: Expectation, result: dict[str, Any]) -> Verdict:
    if result.get("result") == "http-error" and result.get("status") == 403:
        return verdict(exp, PASS, describe(result))
    return verdict(exp, FAIL, "pushed: the mesh let it write" if result.get("result") == "ok" else describe(result))


def _refused(exp: Expectation, result: dict[str, Any]) -> Verdict:
    if result.get("result") == "no-response" and result.get("curl") in RESET:
        return verdict(exp, PASS, f"connection closed without an HTTP answer ({result.get('error')})")
    if result.get("result") == "no-response":
        return verdict(exp, FAIL, describe(result) + " (not the reset STRICT mTLS gives: inconclusive)")
    return verdict(exp, FAIL, f"HTTP {result.get('status')}: the registry answered plain text")


def _read(exp: Expectation, result: dict[str, Any]) -> Verdict:
    if result.get("result") != "ok":
        return verdict(exp, FAIL, describe(result))
    if exp.digest and result.get("served") != exp.digest:
        return verdict(exp, FAIL, f"HTTP 200 but digest {_short(result.get('served'))}")
    return verdict(exp, PASS, "HTTP 200" + (f", {_short(exp.digest)}" if exp.digest else ""))


def _deleted(exp: Expectation, result: dict[str, Any]) -> Verdict:
    return verdict(exp, PASS, "deleted") if result.get("result") == "ok" else verdict(exp, FAIL, describe(result))


JUDGES: dict[str, Callable[[Expectation, dict[str, Any]], Verdict]] = {
    "pushed": _pushed, "denied": _denied, "refused": _refused, "read": _read, "deleted": _deleted}


def judge_pull(exp: Expectation, *, events: list[Object], pod: Object | None) -> Verdict | None:
    """The kubelet's pull, from the pod's events (and its status for pull errors); None while undecided."""
    for event in sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or ""):
        found = _pull_event(exp, event)
        if found is not None:
            return found
    return _pull_error(exp, pod)


def _pull_event(exp: Expectation, event: Object) -> Verdict | None:
    """What one event of the pull pod says about the pull, if anything."""
    reason, message = event.get("reason"), (event.get("message") or "").strip()
    if reason == "Pulled" and "already present" not in message:
        return verdict(exp, PASS, f"Pulled on {_node(event)}: {message}")
    if reason == "Pulled":
        return verdict(exp, FAIL, f"the kubelet did not pull ({message}), which proves nothing about "
                                  "localhost")
    if reason == "Failed" and ("pull" in message.lower() or "ErrImage" in message):
        return verdict(exp, FAIL, f"{message}{_hint(message)}")
    return None


def _pull_error(exp: Expectation, pod: Object | None) -> Verdict | None:
    """A pull error the pod's container statuses show (one its events did not)."""
    for cs in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in PULL_FAILURES:
            text = waiting.get("message") or waiting["reason"]
            return verdict(exp, FAIL, f"{waiting['reason']}: {text}{_hint(text)}")
    return None


def _hint(message: str) -> str:
    if "HTTPS client" in message or "https://" in message or "tls" in message.lower():
        return " (the runtime spoke HTTPS to localhost: see meshreg doctor --check nodes)"
    return ""


def _node(event: Object) -> str:
    node: str = (event.get("source") or {}).get("host") or event.get("reportingInstance") or "the node"
    return node


def _short(digest: str | None) -> str:
    return (digest or "none")[:19] + ("…" if digest and len(digest) > 19 else "")
