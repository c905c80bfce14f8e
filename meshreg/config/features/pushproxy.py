"""spec.registries[].pushProxy (or spec.pushProxy): the gateway `meshreg connect` forwards to."""

from __future__ import annotations

from dataclasses import dataclass

from meshreg.config.model import PUSH_PROXY, Resources, Scheduling, Writer


@dataclass(frozen=True)
class PushProxy:
    """A gateway people reach with `meshreg connect` (RBAC on pods/portforward in `namespace`), which writes
    `repositories` of its registry as its own identity; see meshreg.config.pushproxy."""

    namespace: str
    repositories: tuple[str, ...]
    port: int = 5000  # where it listens in its pod, the default local port of `meshreg connect`, the published host
    resources: Resources = Resources(requests={"cpu": "50m", "memory": "64Mi"},  # noqa: RUF009 (frozen: shared safely)
                                     limits={"memory": "256Mi"})
    scheduling: Scheduling = Scheduling()  # noqa: RUF009 (frozen: shared safely)

    @property
    def identity(self) -> str:
        return f"{self.namespace}/{PUSH_PROXY}"

    @property
    def writer(self) -> Writer:
        return Writer(self.identity, self.repositories)
