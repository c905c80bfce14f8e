"""What `meshreg verify` expects of each registry, and which probe (identity, namespace, sidecar or not) runs which
step: pure data from the config, no cluster."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meshreg.config import Config, Registry, Writer

NODE_PROXY = "node-proxy"
BYSTANDER = "bystander"
NO_SIDECAR = "no-sidecar"
KUBELET = "kubelet"


@dataclass(frozen=True)
class Step:
    """One line of PROBE_STEPS: `ID VERB BASE REPO [REF]`."""

    id: str
    verb: str  # push, pull, ping, delete
    base: str
    repo: str = "-"
    ref: str = ""

    def line(self) -> str:
        return " ".join(p for p in (self.id, self.verb, self.base, self.repo, self.ref) if p)


@dataclass
class Probe:
    """One probe Job: who it runs as, where, with or without a sidecar, and its steps."""

    name: str
    namespace: str
    service_account: str
    sidecar: bool = True
    host_network: bool = False
    steps: list[Step] = field(default_factory=list)


@dataclass
class Expectation:
    """One row of the table. `want`: pushed | denied | refused | read | pulled. `skip`: why it does not apply."""

    id: str
    registry: str
    text: str
    expected: str
    want: str
    probe: str = ""
    skip: str = ""
    blocked: str = ""  # why it fails without being run
    repo: str = ""
    digest: str = ""  # what a read must serve (set once a push succeeded)
    identity: str = ""  # the writer that pushes (for `pushed`)


def base(cfg: Config, reg: Registry) -> str:
    return f"http://{cfg.service_host(reg)}"


def chosen_writer(cfg: Config, reg: Registry, as_identity: str | None) -> Writer | None:
    """The writer whose identity pushes into `reg`: --as when it writes reg, else an unscoped one, else the first."""
    writers = list(cfg.writers_of(reg))
    for w in writers:
        if w.service_account == as_identity:
            return w
    return next((w for w in writers if not w.scoped), writers[0] if writers else None)


def repository(writer: Writer, run: str) -> str:
    """A repository the writer may write: inside its first prefix, or meshreg-verify/RUN."""
    return f"{writer.repositories[0]}meshreg-verify-{run}" if writer.scoped else f"meshreg-verify/{run}"


def outside(writer: Writer, run: str) -> str:
    """A repository outside every prefix of a scoped writer."""
    name = f"meshreg-verify-outside/{run}"
    return name if not any(name.startswith(p) for p in writer.repositories) else f"x{run}/outside"


class Planner:
    """Builds the expectations and the probes that check them, for one run."""

    def __init__(self, cfg: Config, *, run: str, namespace: str, as_identity: str | None = None):
        self.cfg, self.run, self.namespace, self.as_identity = cfg, run, namespace, as_identity
        self.expectations: list[Expectation] = []
        self.probes: dict[str, Probe] = {}

    def _probe(self, name: str, namespace: str, sa: str, **kw: Any) -> Probe:
        if name not in self.probes:
            self.probes[name] = Probe(name, namespace, sa, **kw)
        return self.probes[name]

    def _expect(self, reg: Registry, text: str, expected: str, want: str, *, probe: Probe | None = None,
                step: tuple[str, ...] | None = None, skip: str = "", blocked: str = "", repo: str = "") -> Expectation:
        exp = Expectation(f"e{len(self.expectations) + 1}", reg.name, text, expected, want,
                          probe.name if probe else "", skip, blocked, repo)
        self.expectations.append(exp)
        if probe and step:
            verb, url, *rest = step
            probe.steps.append(Step(exp.id, verb, url, *rest))
        return exp

    def _as(self, identity: str) -> Probe:
        ns, sa = identity.split("/")
        for probe in self.probes.values():
            if (probe.namespace, probe.service_account, probe.sidecar) == (ns, sa, True):
                return probe
        return self._probe(f"writer-{sum(p.startswith('writer-') for p in self.probes) + 1}", ns, sa)

    def phase_one(self) -> list[Expectation]:
        """Pushes through the mesh: writers, writers outside their scope, a bystander, a pod with no sidecar."""
        for reg in sorted(self.cfg.registries, key=lambda r: (not r.default, r.name)):
            self._writers(reg)
            url = base(self.cfg, reg)
            self._expect(reg, f"a bystander ({self.namespace}/{BYSTANDER}, injected) pushes", "403 from the mesh",
                         "denied", probe=self._probe(BYSTANDER, self.namespace, BYSTANDER),
                         step=("push", url, f"meshreg-verify/{self.run}-bystander"))
            plain = self._probe(NO_SIDECAR, self.namespace, BYSTANDER, sidecar=False)
            self._expect(reg, "a pod with no sidecar pushes", "refused (STRICT mTLS)", "refused", probe=plain,
                         step=("push", url, f"meshreg-verify/{self.run}-plaintext"))
            self._expect(reg, "a pod with no sidecar pulls", "refused (STRICT mTLS)", "refused", probe=plain,
                         step=("ping", url))
        return self.expectations

    def _writers(self, reg: Registry) -> None:
        """A registry's writer pushes; a writer of another registry may not (unless it holds images); a scoped writer
        pushes inside its prefixes and may not outside them."""
        url, writer = base(self.cfg, reg), chosen_writer(self.cfg, reg, self.as_identity)
        if writer:
            self._pushes(reg, writer, url=url, text=f"writer {writer.service_account} pushes")
        elif reg.role == "images":
            self._expect(reg, "a writer pushes", "pushed", "pushed", skip="no writers configured")
        if reg.role != "images":
            self._other_pushes(reg, url)
        scoped = [w for w in self.cfg.writers_of(reg) if w.scoped]
        if scoped:
            w = writer if writer in scoped else scoped[0]
            if w is not writer:  # both sides of its prefixes
                self._pushes(reg, w, url=url, text=f"scoped writer {w.service_account} pushes")
            repo = outside(w, self.run)
            self._expect(reg, f"scoped writer {w.service_account} pushes {repo}", "403 (outside its prefixes)",
                         "denied", probe=self._as(w.service_account), step=("push", url, repo))

    def _pushes(self, reg: Registry, writer: Writer, *, url: str, text: str) -> None:
        """`writer` pushes into a repository it may write (`text`, then the repository, is the row's text)."""
        repo = repository(writer, self.run)
        exp = self._expect(reg, f"{text} {repo}", "pushed, digest matches", "pushed",
                           probe=self._as(writer.service_account), step=("push", url, repo), repo=repo)
        exp.identity = writer.service_account

    def _other_pushes(self, reg: Registry, url: str) -> None:
        """A writer of another registry pushes into one only its publisher writes."""
        other = self._other_writer(reg)
        text = f"writer {other} of another registry pushes" if other else "another registry's writer pushes"
        self._expect(reg, text, f"403 ({reg.role}: nobody but its publisher writes)", "denied",
                     probe=self._as(other) if other else None,
                     step=("push", url, f"meshreg-verify/{self.run}-other"),
                     skip="" if other else "no other registry has a writer")

    def _other_writer(self, reg: Registry) -> str | None:
        found = [w.service_account for r in self.cfg.registries if r is not reg for w in self.cfg.writers_of(r)
                 if w.service_account != (reg.publisher or "")]
        return self.as_identity if self.as_identity in found else (sorted(found)[0] if found else None)

    def phase_two(self, pushed: dict[str, Expectation]) -> list[Expectation]:
        """Through the node proxy on one node (pull, push) and the kubelet's own pull; `pushed`: registry -> the
        writer expectation that succeeded (its repo and digest)."""
        if not self.cfg.node_proxy.enabled:
            return []
        out = []
        proxy = self._probe(NODE_PROXY, self.namespace, BYSTANDER, sidecar=False, host_network=True)
        for reg in sorted(self.cfg.registries, key=lambda r: (not r.default, r.name)):
            local, done = f"http://localhost:{reg.port}", pushed.get(reg.name)
            if done:
                read = self._expect(reg, f"node proxy: pull {done.repo} from localhost:{reg.port}",
                                    "200, same digest", "read", probe=proxy,
                                    step=("pull", local, done.repo, done.digest))
                read.digest = done.digest
            else:
                read = self._expect(reg, f"node proxy: GET /v2/ on localhost:{reg.port}", "200", "read",
                                    probe=proxy, step=("ping", local))
            out.append(read)
            out.append(self._expect(reg, f"node proxy: push to localhost:{reg.port}", "403", "denied", probe=proxy,
                                    step=("push", local, f"meshreg-verify/{self.run}-node")))
            out.append(self._kubelet(reg, done))
        return out

    def _kubelet(self, reg: Registry, done: Expectation | None) -> Expectation:
        if done:
            exp = self._expect(reg, f"kubelet pulls localhost:{reg.port}/{done.repo}@{done.digest[:19]}…",
                               "image pulled (event Pulled)", "pulled", repo=done.repo)
            exp.probe, exp.digest = KUBELET, done.digest
            return exp
        text = f"kubelet pulls from localhost:{reg.port}"
        if chosen_writer(self.cfg, reg, self.as_identity):
            return self._expect(reg, text, "image pulled (event Pulled)", "pulled",
                                blocked="not run: the writer's push did not succeed, so there is nothing to pull")
        return self._expect(reg, text, "image pulled (event Pulled)", "pulled",
                            skip=f"nobody writes {reg.name} (role {reg.role}): no image of ours to pull")

    def deletion(self, reg: Registry, pushed: Expectation) -> Expectation:
        """Not a row of the table: the step that deletes a pushed probe image again, as its writer."""
        ns, sa = pushed.identity.split("/")
        probe = next((p for n, p in self.probes.items() if n.startswith("delete-")
                      and (p.namespace, p.service_account) == (ns, sa)), None)
        probe = probe or self._probe(f"delete-{sum(n.startswith('delete-') for n in self.probes) + 1}", ns, sa)
        exp = Expectation(f"{pushed.id}-delete", reg.name, f"delete {pushed.repo}", "202", "deleted", probe.name)
        probe.steps.append(Step(exp.id, "delete", base(self.cfg, reg), pushed.repo, pushed.digest))
        return exp
