"""Random meshreg configs and requests for the differential test of `meshreg policy check` against Envoy.

A scenario is one config (seeded, so a failure can be replayed), rendered as `meshreg render` renders it (and now and
then with the registry's policies split into the smallest objects that still render), the identities worth
asking about (its writers, readers, publisher, the proxies and gateway meshreg deploys, strangers, a plain-text
client), and requests built to probe Envoy's path handling: leading and inner `//`, `.` and `..` segments spelled
plainly, as `%2e` or with `;`, `%2F` and `%5C`, backslashes, `/V2`, query strings, fragments, `%00` and every method.

The target is always the registry `registry` of instance `pe-diff` in namespace `pe-diff`, so one pod (labels from
the render) serves every scenario.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from meshreg import config
from meshreg.config import Config
from meshreg.errors import ConfigError
from meshreg.policy.evaluate import evaluate
from support import wire
from support.splitting import rendered

NAMESPACE = "pe-diff"
INSTANCE = "pe-diff"
TARGET = "registry"
ANONYMOUS = "anonymous"
NODE_PROXY = f"{NAMESPACE}/node-proxy"
PUSH_PROXY = f"{NAMESPACE}-push/push-proxy"
GATEWAY = "istio-system/istio-ingressgateway-service-account"
GC = f"{NAMESPACE}/{TARGET}-gc"

NAMESPACES = ["builds", "ci", "team-a", "team-b", "apps"]
ACCOUNTS = ["kaniko", "builder", "web"]
PREFIXES = ["team-a/", "team-ab/", "team-a/app/", "team-b/", "shared/base/", "dev/", "a/"]
REPOSITORIES = ["team-a/app", "team-ab/app", "team-a/app/sub", "team-b/app", "shared/base/img", "dev/app", "a/b",
                "team-a", "other/app", "ab/c"]
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "MKCOL", "LOCK", "PURGE",
           "FOO-BAR"]
DIGEST = "sha256:" + "ab" * 32
UPLOAD = "0f3a5c2e-1b2d-4e6f-8a9b-0c1d2e3f4a5b"
SUFFIXES = ["blobs/uploads/", f"blobs/uploads/{UPLOAD}", "manifests/v1", f"manifests/{DIGEST}", f"blobs/{DIGEST}",
            "tags/list", "", "blobs/uploads"]
QUERIES = [f"?mount={DIGEST}&from=team-b/app", f"?digest={DIGEST}", "?n=10&last=x", "?x=/../team-b/",
           "?_state=abc%2Fdef", "?", "?a=%2e%2e/"]
# The methods Envoy's HTTP/1 codecs (balsa and http-parser) accept; any other gets 400 before a filter runs, while
# over HTTP/2 it reaches the policies (which deny it: no rendered rule allows a method outside these). So for such a
# method "Envoy answered 400 itself" and "a policy denied it" are the same decision, counted apart.
ENVOY_HTTP1_METHODS = frozenset({
    "ACL", "BIND", "CHECKOUT", "CONNECT", "COPY", "DELETE", "GET", "HEAD", "LINK", "LOCK", "MERGE", "MKACTIVITY",
    "MKCALENDAR", "MKCOL", "MOVE", "MSEARCH", "NOTIFY", "OPTIONS", "PATCH", "POST", "PROPFIND", "PROPPATCH", "PURGE",
    "PUT", "REBIND", "REPORT", "SEARCH", "SOURCE", "SUBSCRIBE", "TRACE", "UNBIND", "UNLINK", "UNLOCK", "UNSUBSCRIBE"})
JWKS = json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "kid": "diff",
                             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]})


@dataclass(frozen=True)
class Probe:
    identity: str  # NS/SA (a certificate with that SPIFFE name) or "anonymous" (plain text)
    method: str
    path: str


@dataclass(frozen=True)
class Scenario:
    seed: int
    text: str
    cfg: Config
    objects: list[dict]
    split: bool
    probes: tuple[Probe, ...]

    @property
    def identities(self) -> list[str]:
        return sorted({p.identity for p in self.probes})

    def expected(self, probe: Probe) -> str:
        """What `meshreg policy check` says, as the outcome a sidecar would show (wire.ALLOW, DENY, REJECT, REFUSE)."""
        decision = evaluate(self.objects, identity=probe.identity, method=probe.method, path=probe.path,
                            trust_domain=self.cfg.trust_domain, registry=TARGET)
        if decision.allowed:
            return wire.ALLOW
        if (decision.policy or "").startswith("PeerAuthentication/"):
            return wire.REFUSE
        if decision.reason.startswith("Envoy rejects"):
            return wire.REJECT
        return wire.DENY

    def policies(self) -> list[dict]:
        """The AuthorizationPolicies that go where the target pod is (other namespaces hold other workloads')."""
        return [o for o in self.objects if o["kind"] == "AuthorizationPolicy"
                and o["metadata"].get("namespace") == NAMESPACE]


def _identity(rnd: random.Random) -> str:
    return f"{rnd.choice(NAMESPACES)}/{rnd.choice(ACCOUNTS)}"


def _prefixes(rnd: random.Random) -> list[str]:
    return ["*"] if rnd.random() < 0.3 else rnd.sample(PREFIXES, rnd.randint(1, 3))


def _writers(rnd: random.Random, *, delete_enabled: bool) -> list[dict]:
    out, seen = [], set()
    for _ in range(rnd.randint(0, 4)):
        who = _identity(rnd)
        if who in seen:
            continue
        seen.add(who)
        out.append({"serviceAccount": who, "repositories": _prefixes(rnd),
                    "delete": delete_enabled and rnd.random() < 0.4})
    return out


def _readers(rnd: random.Random) -> list[str]:
    if rnd.random() < 0.5:
        return ["*"]
    return sorted({_identity(rnd) if rnd.random() < 0.7 else f"{rnd.choice(NAMESPACES)}/*"
                   for _ in range(rnd.randint(1, 3))})


def _registry(rnd: random.Random, name: str, port: int) -> dict:
    role = rnd.choices(["images", "readonly", "mirror"], [7, 2, 1])[0]
    delete_enabled = role != "mirror" and rnd.random() < 0.5
    reg: dict = {"name": name, "port": port, "role": role, "readers": _readers(rnd), "deleteEnabled": delete_enabled}
    if role == "images":
        reg["writers"] = _writers(rnd, delete_enabled=delete_enabled)
    elif role == "readonly" and rnd.random() < 0.6:
        reg["publisher"] = _identity(rnd)
    elif role == "mirror":
        reg["mirror"] = {"upstream": "https://ghcr.io"}
    if role != "mirror" and rnd.random() < 0.25:
        reg["pushProxy"] = {"enabled": True, "repositories": _prefixes(rnd)}
    if delete_enabled and rnd.random() < 0.25:
        reg["gc"] = {"schedule": "0 3 * * 0"}
        reg["retention"] = {"rules": [{"repositories": _prefixes(rnd), "keepNewest": 3}]}
    return reg


def _ingress(rnd: random.Random) -> dict:
    clients = [{"name": f"ci-{i}", "method": "jwt", "subject": f"repo:acme/app{i}:ref:refs/heads/main",
                "repositories": _prefixes(rnd)} for i in range(rnd.randint(1, 2))]
    return {"host": "registry.example.com", "registry": TARGET, "credentialName": "registry-tls",
            "issuers": [{"issuer": "https://issuer.example.com", "audiences": ["registry.example.com"],
                         "jwks": JWKS}],
            "clients": clients}


def config_text(rnd: random.Random) -> str:
    """One random config document with the registry TARGET (as JSON, which is YAML); it may be one meshreg refuses
    (scenario() draws again then)."""
    spec: dict = {"namespace": NAMESPACE, "localRegistryHosting": {"publish": False}}
    target = _registry(rnd, TARGET, 5400)
    if target["role"] == "images" and rnd.random() < 0.6:  # the single-registry shape
        spec["registry"] = {k: v for k, v in target.items() if k in ("deleteEnabled", "gc", "retention")}
        if "pushProxy" in target:
            spec["pushProxy"] = target["pushProxy"]
        spec["readers"], spec["writers"] = target["readers"], target["writers"]
    else:
        names = rnd.sample(["other", "cache"], rnd.randint(0, 2))
        spec["registries"] = [{**target, "default": True}, *(_registry(rnd, n, 5401 + i) for i, n in enumerate(names))]
    if rnd.random() < 0.2:
        spec["ingress"] = _ingress(rnd)
    doc = {"apiVersion": "meshreg.dev/v1alpha1", "kind": "MeshRegistry", "metadata": {"name": INSTANCE},
           "spec": spec}
    return json.dumps(doc, indent=1)


def _mutate(rnd: random.Random, path: str) -> str:
    """One of Envoy's path tricks applied to `path` (which starts with /v2/ or /); still a path (starts with /)."""
    mutated = _trick(rnd, path)
    return mutated if mutated.startswith("/") else path


def _trick(rnd: random.Random, path: str) -> str:
    trick = rnd.randrange(17)
    slashes = [i for i, c in enumerate(path) if c == "/"]
    at = rnd.choice(slashes)
    if trick == 0:
        return "/" * rnd.randint(2, 3) + path.lstrip("/")
    if trick == 1:
        return path[:at] + "//" + path[at + 1:]
    if trick == 2:
        return path[:at] + rnd.choice(["/./", "/%2e/", "/%2E/", "/.;/", "/.;x/"]) + path[at + 1:]
    if trick == 3:
        other = rnd.choice(REPOSITORIES)
        climb = rnd.choice(["..", "%2e%2e", "%2E%2e", ".%2e", "..;", "..;x"])
        return path[:at] + f"/{climb}/{other}/" + path[at + 1:]
    if trick == 4 and at:
        return path[:at] + rnd.choice(["%2F", "%2f"]) + path[at + 1:]
    if trick == 5 and at:
        return path[:at] + rnd.choice(["\\", "%5C", "%5c", "/\\"]) + path[at + 1:]
    if trick == 6:
        return path.replace("/v2", rnd.choice(["/V2", "/v2/..", "/%76%32", "/v%32"]), 1)
    if trick == 7:
        return path + rnd.choice(QUERIES)
    if trick == 8:
        return path + rnd.choice(["#x", "#/../../team-b/app"])
    if trick == 9:
        return path[:at] + "/%00" + path[at:]
    if trick == 10:
        return path + rnd.choice(["/..", "/.", "/%2e%2e", "/..;"])
    if trick == 11:
        return path[:at + 1] + rnd.choice(["..", "%2e%2e"]) + "/" + path[at + 1:]
    if trick == 12:
        return path.replace("team", rnd.choice(["TEAM", "te%61m", "t%65am", "te%41m"]), 1)
    if trick == 13:
        return path[:at] + rnd.choice([";x", ";", "%3B"]) + path[at:]
    if trick == 14:
        return path.replace("-", rnd.choice(["%2d", "%2D", "-"]), 1)
    if trick == 15:
        return path + rnd.choice(["%2F", "%2f..%2f"])
    return path


def _path(rnd: random.Random, identity_prefixes: list[str]) -> str:
    shape = rnd.random()
    if shape < 0.08:
        return rnd.choice(["/v2/", "/v2", "/", "/v2/_catalog", "/debug/vars", "/v2/_catalog?n=1"])
    if identity_prefixes and identity_prefixes != ["*"] and shape < 0.55:
        repo = rnd.choice(identity_prefixes) + rnd.choice(["app", "app/sub", "x"])
    else:
        repo = rnd.choice(REPOSITORIES)
    path = f"/v2/{repo}/{rnd.choice(SUFFIXES)}"
    for _ in range(rnd.choices([0, 1, 2, 3], [3, 4, 2, 1])[0]):
        path = _mutate(rnd, path)
    return path


def _prefixes_of(cfg: Config, identity: str) -> list[str]:
    reg = cfg.get_registry(TARGET)
    for w in cfg.writers_of(reg):
        if w.service_account == identity:
            return list(w.repositories)
    return []


def _identities(rnd: random.Random, cfg: Config) -> list[str]:
    reg = cfg.get_registry(TARGET)
    named = {w.service_account for w in cfg.writers_of(reg)}
    named |= {r.replace("/*", "/" + rnd.choice(ACCOUNTS)) for r in reg.readers if r != "*"}
    if reg.publisher:
        named.add(reg.publisher)
    others = {_identity(rnd) for _ in range(2)} | {NODE_PROXY, rnd.choice([PUSH_PROXY, GATEWAY, GC])}
    return sorted(named | others) + [ANONYMOUS]


def scenario(seed: int, *, per_identity: int = 12) -> Scenario:
    """The scenario of `seed`: the same config, render and requests every time."""
    rnd = random.Random(seed)
    while True:
        text = config_text(rnd)
        try:
            cfg = config.from_text(text, name=f"scenario-{seed}.yaml")
            break
        except ConfigError:
            continue
    split = rnd.random() < 0.15
    objects = rendered(cfg, "finest" if split else None)
    probes = []
    for identity in _identities(rnd, cfg):
        count = 2 if identity == ANONYMOUS else per_identity
        prefixes = _prefixes_of(cfg, identity)
        probes += [Probe(identity, rnd.choice(METHODS) if rnd.random() < 0.5 else rnd.choice(METHODS[:6]),
                         _path(rnd, prefixes)) for _ in range(count)]
    return Scenario(seed, text, cfg, objects, split, tuple(probes))


def pod_labels(objects: list[dict]) -> dict[str, str]:
    """The labels of the target registry's pods, as its Deployment's template has them."""
    [deployment] = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == TARGET]
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def selects(policy: dict, labels: dict[str, str]) -> bool:
    """Whether a policy in NAMESPACE applies to a pod with `labels` (meshreg's policies always have a selector)."""
    wanted = ((policy.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


@dataclass(frozen=True)
class Disagreement:
    seed: int
    probe: Probe
    expected: str  # what policy check says
    seen: str  # what the proxy did
    where: str

    def __str__(self) -> str:
        p = self.probe
        return (f"seed {self.seed}: {p.identity} {p.method} {p.path}: policy check {self.expected}, "
                f"{self.where} {self.seen}")


@dataclass
class Tally:
    """Counts of one differential run, and every disagreement with what it was about."""

    configs: int = 0
    requests: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(wire.OUTCOMES, 0))
    disagreements: list[Disagreement] = field(default_factory=list)
    codec_refusals: int = 0  # custom methods Envoy's HTTP/1 codec refused where policy check says a policy denies

    def add(self, scenario: Scenario, probe: Probe, *, expected: str, seen: str, where: str) -> None:
        self.requests += 1
        self.outcomes[seen] += 1
        if (expected, seen) == (wire.DENY, wire.REJECT) and probe.method not in ENVOY_HTTP1_METHODS:
            self.codec_refusals += 1
        elif expected != seen:
            self.disagreements.append(Disagreement(scenario.seed, probe, expected, seen, where))

    @property
    def decisions_differ(self) -> int:
        """Disagreements on ALLOW or not (the others differ only in which stage refused)."""
        return sum(1 for d in self.disagreements if (d.expected == wire.ALLOW) != (d.seen == wire.ALLOW))

    def summary(self, where: str) -> str:
        shown = ", ".join(f"{k} {v}" for k, v in self.outcomes.items())
        return (f"{where}: {self.configs} configs, {self.requests} requests ({shown}); "
                f"{len(self.disagreements)} disagreements with policy check ({self.decisions_differ} on ALLOW); "
                f"{self.codec_refusals} custom methods refused by the HTTP/1 codec, denied by policy check")

    def report(self, limit: int = 50) -> str:
        return "\n".join(str(d) for d in self.disagreements[:limit])


def probe_all(scenario: Scenario, connect, tally: Tally, *, where: str) -> dict[Probe, str]:
    """Send every probe of `scenario` (one new connection per identity, from `connect(identity)`) and tally them
    against `policy check`; returns what was seen for each probe."""
    tally.configs += 1
    seen: dict[Probe, str] = {}
    for identity in scenario.identities:
        connection = connect(identity)
        try:
            for probe in (p for p in scenario.probes if p.identity == identity):
                seen[probe] = wire.outcome(connection, probe.method, probe.path)
                tally.add(scenario, probe, expected=scenario.expected(probe), seen=seen[probe], where=where)
        finally:
            connection.close()
    return seen
