"""The retention model (meshreg/retention.py): which rule covers a repository, and the durations rules name."""

from __future__ import annotations

from meshreg.retention import Retention, Rule, parse_duration


def test_the_most_specific_rule_applies():
    retention = Retention(rules=(Rule(keep_newest=5), Rule(repositories=("team-a/",), keep_newest=1),
                                 Rule(repositories=("team-a/app/",), keep_newest=2)))
    assert retention.rule_for("team-a/app/x").keep_newest == 2
    assert retention.rule_for("team-a/web").keep_newest == 1
    assert retention.rule_for("other").keep_newest == 5
    assert retention.prefixes == ("*",)


def test_durations():
    assert [parse_duration(t) for t in ("14d", "36h", "1d12h", "90m", "0d", "1w", "", "d", "5")] == [
        14 * 86400, 36 * 3600, 36 * 3600, 5400, 0, None, None, None, None]
