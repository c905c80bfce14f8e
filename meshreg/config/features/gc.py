"""spec.registries[].gc: when and how a registry's gc CronJob runs."""

from __future__ import annotations

from dataclasses import dataclass

from meshreg.config.model import Scheduling


@dataclass(frozen=True)
class GC:
    """Garbage collection (and retention, when the registry has rules) run by a CronJob."""

    schedule: str
    time_zone: str | None = None
    delete_untagged: bool = False
    image: str = "docker.io/library/python:3.13-alpine"  # runs meshreg's retention and coordination (stdlib only)
    timeout: int = 3600  # seconds: the Job's activeDeadlineSeconds
    scheduling: Scheduling = Scheduling()  # noqa: RUF009 (frozen) by default the registry's nodeSelector and tolerations
