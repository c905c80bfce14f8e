"""Reads a registry's gc: `gc` (when the CronJob runs) and `retention` (which tags it deletes).

Schedules are checked with croniter (a well-kept cron parser) narrowed to what a Kubernetes CronJob accepts:
five fields or one of the documented macros, day of week 0-6, none of croniter's extensions (L, W, #, seconds,
years), and no `TZ=`/`CRON_TZ=` prefix, which the API server rejects (the time zone goes in `gc.timeZone`).
"""

from __future__ import annotations

from meshreg.config import names, scheduling, source
from meshreg.config.model import GC, Registry, Scheduling
from meshreg.config.reader import REQUIRED, Reader
from meshreg.retention import Retention, Rule, parse_duration

MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_GC_KEYS = {"schedule": REQUIRED, "timeZone": None, "deleteUntagged": False, "image": GC.image,
            "timeout": "1h", **scheduling.KEYS}
_RULE_KEYS = {"repositories": ["*"], "keepNewest": None, "keepNewerThan": None}


def read_gc(r: Reader, value: object, path: source.Path, *, registry: Scheduling) -> GC | None:
    """The gc mapping; its Job runs where the registry may (its volume is there): nodeSelector and tolerations
    default to the registry's (`registry`), affinity does not (the Job follows the registry's pod by itself)."""
    if value is None:
        return None
    m = r.mapping(value, path, _GC_KEYS)
    schedule = r.attempt(lambda: r.string(m["schedule"], path + ("schedule",), check_schedule))
    zone = r.attempt(lambda: r.string(m["timeZone"], path + ("timeZone",), check_time_zone, nullable=True))
    untagged = r.attempt(lambda: r.boolean(m["deleteUntagged"], path + ("deleteUntagged",)))
    image = r.attempt(lambda: r.string(m["image"], path + ("image",), names.check_image))
    timeout = r.attempt(lambda: _read_seconds(r, m["timeout"], path + ("timeout",)))
    placed = r.attempt(lambda: scheduling.read(r, m, path, inherit=Scheduling(
        node_selector=registry.node_selector, tolerations=registry.tolerations)))
    return GC(schedule=schedule.value, time_zone=zone.value, delete_untagged=untagged.value, image=image.value,
              timeout=timeout.value, scheduling=placed.value)


def _read_seconds(r: Reader, value: object, path: source.Path) -> int:
    """A duration (`1h`, `14d`) in seconds."""
    seconds = parse_duration(r.string(value, path, _check_duration))
    assert seconds, value  # _check_duration accepts only positive durations
    return seconds


def read_retention(r: Reader, value: object, path: source.Path) -> Retention | None:
    if value is None:
        return None
    m = r.mapping(value, path, {"rules": REQUIRED, "protectedTags": []})
    protected = r.attempt(lambda: r.strings(m["protectedTags"], path + ("protectedTags",), _check_tag_pattern))
    expected = "a non-empty list of rules ({repositories: [...], keepNewest: N, keepNewerThan: 14d})"
    items = r.sequence(m["rules"], path + ("rules",), expected)
    if not items:
        r.fail(path + ("rules",), f"expected {expected}")
    rules = [a.value for a in r.each(items, path + ("rules",), lambda item, p: _read_rule(r, item, p))]
    seen: dict[str, int] = {}
    with r.checks():
        for i, rule in enumerate(rules):
            for prefix in rule.repositories:
                if prefix in seen:
                    r.record(path + ("rules", i, "repositories"),
                             f"{prefix!r} already has a rule (rules[{seen[prefix]}])")
                seen.setdefault(prefix, i)
    return Retention(rules=tuple(rules), protected_tags=tuple(protected.value))


def _read_rule(r: Reader, value: object, path: source.Path) -> Rule:
    m = r.mapping(value, path, _RULE_KEYS)
    repos = r.attempt(lambda: _read_rule_prefixes(r, m["repositories"], path + ("repositories",)))
    newest = r.attempt(lambda: None if m["keepNewest"] is None else r.integer(
        m["keepNewest"], path + ("keepNewest",), low=0, high=1_000_000))
    newer = r.attempt(lambda: r.string(m["keepNewerThan"], path + ("keepNewerThan",), _check_duration, nullable=True))
    if not newest.value and not (newer.value and parse_duration(newer.value)):
        r.fail(path, "this rule would keep nothing but protected tags: set keepNewest (at least 1) or "
                     "keepNewerThan (e.g. 14d)")
    return Rule(repositories=repos.value, keep_newest=newest.value, keep_newer_than=newer.value)


def _read_rule_prefixes(r: Reader, value: object, path: source.Path) -> tuple[str, ...]:
    repos = r.strings(value, path, names.check_repository_prefix)
    if not repos or ("*" in repos and len(repos) > 1):
        r.fail(path, "list \"*\" alone for every repository, or repository prefixes")
    return tuple(sorted(names.normalize_prefix(p) for p in repos))


def check_gc(r: Reader, reg: Registry, path: source.Path, *, delete_switch: str) -> None:
    """What gc and retention need from the rest of a registry's settings."""
    with r.checks():
        _check_gc_settings(r, reg, path, delete_switch=delete_switch)


def _check_gc_settings(r: Reader, reg: Registry, path: source.Path, *, delete_switch: str) -> None:
    if reg.gc and reg.role == "mirror":
        r.record(path + ("gc",), "a mirror expires its cache itself (distribution's proxy scheduler); "
                                 "gc and retention are for images and readonly registries")
    if reg.retention and not reg.gc:
        r.record(path + ("retention",), "retention runs in the gc CronJob: set gc.schedule too")
    if reg.retention and not reg.delete_enabled:
        r.record(path + ("retention",), f"retention deletes manifests through the registry API, which needs "
                                        f"{delete_switch}: true (writers still need delete: true to delete)")


def check_schedule(value: str) -> str | None:
    text = " ".join(value.split())
    if text.split(" ")[0].upper().startswith(("TZ=", "CRON_TZ=")):
        return f"{value!r}: Kubernetes rejects TZ= and CRON_TZ= in a schedule; set gc.timeZone instead"
    if text.startswith("@"):
        return None if text in MACROS else f"{value!r} is not a schedule macro ({', '.join(MACROS)})"
    fields = text.split(" ")
    if len(fields) != 5:
        return f"{value!r} is not a cron schedule: expected exactly 5 fields (minute hour day month weekday), " \
               f"found {len(fields)}"
    if any(c in text.upper() for c in "L#W"):
        return f"{value!r}: L, W and # are not in the cron syntax Kubernetes accepts"
    if any(int(n) > 6 for n in _weekdays(fields[4])):
        return f"{value!r}: day of week is 0-6 (Sunday is 0) for a Kubernetes CronJob"
    from croniter import croniter  # only for a cron expression: a macro (@weekly) never loads it

    if not croniter.is_valid(text, strict=True):
        return f"{value!r} is not a valid cron schedule (minute hour day month weekday, e.g. \"0 3 * * 0\")"
    return None


def _weekdays(field: str) -> list[str]:
    """The day numbers in a weekday field (not the steps after '/')."""
    return [n for chunk in field.split(",") for n in chunk.split("/")[0].split("-") if n.isdigit()]


def check_time_zone(value: str) -> str | None:
    import zoneinfo  # only for a config that names a time zone

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"{value!r} is not a time zone of the tz database (e.g. Etc/UTC, Europe/Berlin)"
    return None


def _check_duration(value: str) -> str | None:
    if parse_duration(value):
        return None
    return f"{value!r} is not a duration (a positive number with d, h or m, e.g. 14d, 36h, 1d12h)"


def _check_tag_pattern(value: str) -> str | None:
    if value and all(c.isalnum() or c in "_.-*?[]!" for c in value) and len(value) <= 128:
        return None
    return f"{value!r} is not a tag pattern (tag characters with * and ? wildcards, e.g. release-*)"
