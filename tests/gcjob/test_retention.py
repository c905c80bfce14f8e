"""Retention selection (meshreg/gcjob/retention.py) as properties over random repositories (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meshreg.gcjob.retention import Tag, referenced, select
from meshreg.retention import Retention, Rule, parse_duration

NOW = 1_000_000.0
DIGESTS = [f"sha256:{i:064x}" for i in range(8)]
PATTERNS = ["latest", "release-*", "v1.?"]
TAG_NAMES = ["latest", "release-1", "release-2", "v1.0", "v1.1", "v2.0", "dev", "main", "pr-7", "nightly"]


@st.composite
def repositories(draw):
    """(tags, children): tags over a small pool of digests; an index only lists digests after its own."""
    names = draw(st.lists(st.sampled_from(TAG_NAMES), unique=True, max_size=10))
    times = st.one_of(st.none(), st.integers(0, 40).map(lambda d: NOW - d * 86400.0))
    tags = [Tag(n, draw(st.sampled_from(DIGESTS)), draw(times)) for n in names]
    children = {}
    for i, digest in enumerate(DIGESTS[:-1]):
        if draw(st.booleans()):
            children[digest] = draw(st.lists(st.sampled_from(DIGESTS[i + 1:]), unique=True, min_size=1, max_size=3))
    return tags, children


rules = st.builds(Rule, repositories=st.just(("*",)), keep_newest=st.one_of(st.none(), st.integers(1, 6)),
                  keep_newer_than=st.sampled_from([None, "3d", "10d", "30d"])).filter(
    lambda r: r.keep_newest or r.keep_newer_than)
policies = st.builds(lambda rule, protected: Retention(rules=(rule,), protected_tags=tuple(protected)),
                     rules, st.lists(st.sampled_from(PATTERNS), unique=True, max_size=2))
PROPERTY = settings(max_examples=300, deadline=None)


def remaining(tags, plan):
    return [t for t in tags if t.name not in plan.delete_tags]


@PROPERTY
@given(policies, repositories())
def test_never_deletes_a_protected_tag(retention, repo):
    tags, children = repo
    plan = select(retention, "team/app", tags, children=children, now=NOW)
    for tag in tags:
        if retention.protects(tag.name):
            assert tag.name not in plan.delete_tags and tag.digest not in plan.delete_manifests


@PROPERTY
@given(policies, repositories())
def test_never_deletes_a_manifest_a_remaining_tag_or_index_still_references(retention, repo):
    tags, children = repo
    plan = select(retention, "team/app", tags, children=children, now=NOW)
    still = referenced((t.digest for t in remaining(tags, plan)), children)
    assert still.isdisjoint(plan.delete_manifests)


@PROPERTY
@given(policies, repositories())
def test_the_deleted_tags_are_exactly_those_whose_manifest_is_deleted(retention, repo):
    """distribution 2.8 deletes a manifest with every tag on it: the plan must say so, not hope otherwise."""
    tags, children = repo
    plan = select(retention, "team/app", tags, children=children, now=NOW)
    assert set(plan.delete_tags) == {t.name for t in tags if t.digest in plan.delete_manifests}


@PROPERTY
@given(st.integers(1, 6), st.lists(st.sampled_from(TAG_NAMES), unique=True, max_size=10), st.randoms())
def test_keep_newest_keeps_exactly_the_newest_n(n, names, random):
    """Distinct manifests, no protected tags, no indexes: exactly min(N, tags) remain, and they are the newest."""
    tags = [Tag(name, DIGESTS[0][:-2] + f"{i:02x}", NOW - random.randint(0, 10**6)) for i, name in enumerate(names)]
    plan = select(Retention(rules=(Rule(keep_newest=n),)), "a", tags, children={}, now=NOW)
    kept = remaining(tags, plan)
    assert len(kept) == min(n, len(tags))
    assert all(k.created >= d.created for k in kept for d in tags if d.name in plan.delete_tags)


@PROPERTY
@given(policies, repositories())
def test_a_second_run_deletes_nothing_more(retention, repo):
    tags, children = repo
    plan = select(retention, "team/app", tags, children=children, now=NOW)
    again = select(retention, "team/app", remaining(tags, plan), children=children, now=NOW)
    assert again.delete_manifests == () and again.delete_tags == ()


@PROPERTY
@given(policies, repositories())
def test_an_index_is_deleted_before_the_manifests_it_lists(retention, repo):
    tags, children = repo
    order = select(retention, "team/app", tags, children=children, now=NOW).delete_manifests
    for i, digest in enumerate(order):
        assert not set(children.get(digest, ())) & set(order[:i])


@PROPERTY
@given(policies, repositories())
def test_tags_newer_than_the_duration_and_tags_of_unknown_age_stay(retention, repo):
    tags, children = repo
    rule = retention.rules[0]
    plan = select(retention, "team/app", tags, children=children, now=NOW)
    if rule.keep_newer_than:
        young = [t for t in tags if t.created is None or NOW - t.created < parse_duration(rule.keep_newer_than)]
        assert not {t.name for t in young} & set(plan.delete_tags)


def test_a_repository_no_rule_covers_is_left_alone():
    retention = Retention(rules=(Rule(repositories=("team-a/",), keep_newest=1),))
    tags = [Tag("a", DIGESTS[0], 1.0), Tag("b", DIGESTS[1], 2.0)]
    assert select(retention, "team-b/app", tags, children={}, now=NOW).delete_manifests == ()
    assert select(retention, "team-a", tags, children={}, now=NOW).delete_manifests == (DIGESTS[0],)


def test_tags_compare_naturally_numbers_as_numbers():
    from meshreg.gcjob.retention import natural

    assert sorted(["v10", "v9", "v1.10", "v1.9", "rc10", "rc2", "1.0.0-rc.10", "1.0.0-rc.9"], key=natural) == [
        "1.0.0-rc.9", "1.0.0-rc.10", "rc2", "rc10", "v1.9", "v1.10", "v9", "v10"]


def test_without_a_build_time_the_push_decides_and_names_only_break_ties():
    keep_two = Retention(rules=(Rule(keep_newest=2),))
    pushed = [Tag(name, DIGESTS[i], None, received=100.0 + i) for i, name in enumerate(["r7", "r8", "r1", "r2"])]
    assert select(keep_two, "a", pushed, children={}, now=NOW).delete_tags == ("r7", "r8")
    tied = [Tag("v9", DIGESTS[0], 50.0, received=90.0), Tag("v10", DIGESTS[1], 50.0, received=80.0)]
    assert select(Retention(rules=(Rule(keep_newest=1),)), "a", tied, children={}, now=NOW).delete_tags == ("v9",)


def test_a_build_time_beats_the_push_time_and_unknown_ages_stay_newest():
    keep_one = Retention(rules=(Rule(keep_newest=1),))
    built_long_ago = Tag("copied", DIGESTS[0], 10.0, received=NOW)  # an old release copied in just now
    pushed_earlier = Tag("fresh", DIGESTS[1], None, received=NOW - 60)
    assert select(keep_one, "a", [built_long_ago, pushed_earlier], children={}, now=NOW).delete_tags == ("copied",)
    unknown = Tag("unknown", DIGESTS[2])  # neither time readable: never deleted for its age
    assert select(keep_one, "a", [pushed_earlier, unknown], children={}, now=NOW).keep == ("unknown",)


@PROPERTY
@given(st.integers(1, 6), st.lists(st.sampled_from(TAG_NAMES), unique=True, max_size=10), st.randoms())
def test_keep_newest_of_untimed_images_keeps_exactly_the_last_pushed(n, names, random):
    tags = [Tag(name, DIGESTS[0][:-2] + f"{i:02x}", None, received=NOW - random.randint(0, 10**6))
            for i, name in enumerate(names)]
    plan = select(Retention(rules=(Rule(keep_newest=n),)), "a", tags, children={}, now=NOW)
    kept = remaining(tags, plan)
    assert len(kept) == min(n, len(tags))
    assert all(k.received >= d.received for k in kept for d in tags if d.name in plan.delete_tags)
