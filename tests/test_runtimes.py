"""Judging a node's containerRuntimeVersion: does its runtime need meshreg's runtime config to pull localhost:PORT."""

from __future__ import annotations

import pytest

from meshreg.runtimes import judge, parse


@pytest.mark.parametrize(("reported", "needed"), [
    ("containerd://1.5.9", True),           # config_path set: HTTPS for localhost (issue 7392)
    ("containerd://1.6.8", True),
    ("containerd://1.6.9", False),          # PR 7438: plain HTTP for localhost with config_path
    ("containerd://1.6.20", False),         # tested here: tests/e2e/test_runtime_pull.py
    ("containerd://1.6.24", False),
    ("containerd://1.6.25", True),          # HTTPS first, the first fallback (PR 9182 backport)
    ("containerd://1.6.31", True),
    ("containerd://1.6.32", False),         # fallback reworked (PR 10109 backport)
    ("containerd://1.7.0", False),
    ("containerd://1.7.6", False),
    ("containerd://1.7.7", True),
    ("containerd://1.7.11-k3s2", True),     # k3s/RKE2 builds: issue 10014 was reported there
    ("containerd://1.7.15", True),
    ("containerd://1.7.16", False),
    ("containerd://v1.7.27", False),
    ("containerd://2.0.0", False),
    ("containerd://2.1.3-k3s1", False),
    ("cri-o://1.28.1", True),
    ("cri-o://1.31.0", True),
    ("docker://24.0.7", False),
])
def test_each_runtime_version_is_judged(reported, needed):
    assert judge(reported).needed is needed


def test_the_reason_names_the_containerd_issue_behind_it():
    assert "7392" in judge("containerd://1.6.4").reason
    assert "10014" in judge("containerd://1.7.13").reason
    assert "HTTP error" in judge("containerd://2.0.2").reason


def test_the_setting_says_which_runtime_config_key_applies():
    assert judge("containerd://1.7.13").setting == "containerd"
    assert judge("cri-o://1.29.2").setting == "crio"
    assert judge("docker://25.0.3").setting is None


def test_a_k3s_build_points_at_registries_yaml():
    verdict = judge("containerd://1.7.11-k3s2")
    assert verdict.k3s and "registries.yaml" in verdict.reason
    assert not judge("containerd://1.7.11").k3s


@pytest.mark.parametrize("reported", ["remote://1.0", "containerd://latest", "", "gvisor"])
def test_what_meshreg_does_not_know_is_undecided_not_guessed(reported):
    verdict = judge(reported)
    assert verdict.needed is None and verdict.setting is None and "docs/node-runtimes.md" in verdict.reason


def test_the_runtime_and_version_are_split_from_the_url_like_form():
    assert parse("containerd://1.7.11-k3s2") == ("containerd", "1.7.11-k3s2")
    assert parse("CRI-O://1.28.1") == ("cri-o", "1.28.1")
