"""Retention keeps what is newest, with real pushes to the real registry and the rendered gc Job: an image without a
build time (or stamped with the epoch, as reproducible builds do) is as old as its tag's last push, read from the
registry's storage; tags compare naturally (v9 before v10) only when times tie."""

from __future__ import annotations

import time
from contextlib import closing

import pytest

from support.e2e_cases import TRUST_DOMAIN, WRITER
from support.lab import images
from support.lab.clients import manifest_digest, skopeo_copy
from support.lab.gcjob import GcJob
from support.lab.mesh import Lab

CONFIG = f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: gc}}
spec:
  namespace: registry
  trustDomain: {TRUST_DOMAIN}
  registry:
    deleteEnabled: true
    gc: {{schedule: "0 3 * * 0"}}
    retention:
      rules:
        - {{repositories: [untimed/], keepNewest: 2}}
        - {{repositories: [tied/], keepNewest: 1}}
        - {{repositories: [recent/], keepNewerThan: 1h}}
  writers: [{{serviceAccount: {WRITER}}}]
"""
EPOCH = "1970-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def gc(real_parts, tmp_path_factory):
    with closing(Lab(CONFIG, tmp_path_factory.mktemp("order"))) as lab, closing(GcJob(lab)) as job:
        yield job


def push(gc, tmp, repo: str, tag: str, *, created: str | None = None, image: images.Image | None = None):
    image = image or images.build(tmp / f"{repo.replace('/', '-')}-{tag}", layer_sizes=(2000,), created=created)
    result = skopeo_copy(image.ref, f"docker://{gc.lab.sidecar}/{repo}:{tag}", dest_ident=gc.lab.identity(WRITER))
    assert result.returncode == 0, result.stderr
    time.sleep(0.05)  # distinct receipt times even on a coarse clock
    return image


def tags(gc, repo: str) -> list[str]:
    return sorted(t for t in ("r1", "r2", "r3", "r4", "r5", "r7", "r8", "v9", "v10", "old", "new", "again")
                  if manifest_digest(gc.lab.direct, repo, t))


@pytest.fixture(scope="module")
def ran(gc, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("order-images")
    # untimed/: r7 and r8 first, then r1..r5 (the report's case: by name, r7 and r8 looked newest); r7 pushed again
    # last, as a copy of the same image: a tag pushed again is new again.
    r7 = push(gc, tmp, "untimed/app", "r7")
    push(gc, tmp, "untimed/app", "r8", created=EPOCH)
    for n in range(1, 6):
        push(gc, tmp, "untimed/app", f"r{n}", created=EPOCH if n % 2 else None)
    push(gc, tmp, "untimed/app", "r7", image=r7)
    # tied/: the same build time: v10 is newer than v9 (pushed first so receipt cannot decide for it)
    push(gc, tmp, "tied/app", "v10", created="2026-03-01T00:00:00Z")
    push(gc, tmp, "tied/app", "v9", created="2026-03-01T00:00:00Z")
    # recent/: pushed now; "old" carries a build time of 2020 (its age), "new" none (its receipt: now)
    push(gc, tmp, "recent/app", "old", created="2020-01-01T00:00:00Z")
    push(gc, tmp, "recent/app", "new")
    run = gc.run()
    assert set(run.codes.values()) == {0}, run.logs
    return run


def test_untimed_images_are_as_old_as_their_last_push_and_the_newest_pushes_are_kept(gc, ran):
    assert tags(gc, "untimed/app") == ["r5", "r7"]  # the last two pushes, whatever their names say


def test_equal_build_times_are_ordered_naturally_v10_after_v9(gc, ran):
    assert tags(gc, "tied/app") == ["v10"]


def test_keep_newer_than_counts_an_untimed_image_from_its_push_and_a_timed_one_from_its_build(gc, ran):
    assert tags(gc, "recent/app") == ["new"]
