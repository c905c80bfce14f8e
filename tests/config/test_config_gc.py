"""gc, retention, object storage and replicas in the config: what is read, and every bad input as one line."""

from __future__ import annotations

import pytest

from meshreg import config
from meshreg.config import Writer
from meshreg.config.gc import check_schedule
from meshreg.errors import ConfigError
from support.configs import minimal

S3 = "{s3: {bucket: images, region: eu-central-1, credentialsSecret: registry-s3}}"


def registry(body: str) -> str:
    """A single-registry config whose spec.registry holds `body` (YAML lines, indented four spaces)."""
    return minimal("  registry:\n" + body + "  writers: [{serviceAccount: builds/kaniko}]\n")


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        config.from_text(text, name="meshreg.yaml")
    assert "\n" not in str(e.value)
    return str(e.value)


GC_CONFIG = registry("""\
    deleteEnabled: true
    gc: {schedule: "0 3 * * 0", timeZone: Europe/Berlin, deleteUntagged: true, timeout: 2h}
    retention:
      rules:
        - {repositories: [workspace], keepNewerThan: 14d}
        - {repositories: [release/], keepNewest: 5}
      protectedTags: [latest, "release-*"]
""")


def test_gc_and_retention_are_read_with_normalized_prefixes():
    reg = config.from_text(GC_CONFIG, name="m.yaml").registry
    assert (reg.gc.schedule, reg.gc.time_zone, reg.gc.delete_untagged, reg.gc.timeout) == (
        "0 3 * * 0", "Europe/Berlin", True, 7200)
    assert [r.repositories for r in reg.retention.rules] == [("workspace/",), ("release/",)]
    assert reg.retention.protected_tags == ("latest", "release-*")


def test_the_retention_identity_writes_with_delete_only_where_its_rules_apply():
    cfg = config.from_text(GC_CONFIG, name="m.yaml")
    assert cfg.writers_of(cfg.registry)[-1] == Writer(
        "meshreg/registry-gc", repositories=("release/", "workspace/"), delete=True, push=False)
    assert [w.service_account for w in cfg.writers] == ["builds/kaniko"]  # not one of the user's writers


def test_without_retention_there_is_no_retention_identity():
    cfg = config.from_text(registry('    gc: {schedule: "@weekly"}\n'), name="m.yaml")
    assert [w.service_account for w in cfg.writers_of(cfg.registry)] == ["builds/kaniko"]


def test_s3_storage_with_replicas():
    reg = config.from_text(registry(f"    storage: {S3}\n    replicas: 3\n"), name="m.yaml").registry
    assert reg.replicas == 3 and reg.storage.s3.bucket == "images" and not reg.storage.s3.redirect
    assert reg.storage.s3.host == "images.s3.eu-central-1.amazonaws.com" and not reg.storage.s3.in_cluster


@pytest.mark.parametrize(("endpoint", "host", "port", "in_cluster"), [
    ("http://minio.storage.svc:9000", "minio.storage.svc", 9000, True),
    ("https://minio.storage.svc.cluster.local", "minio.storage.svc.cluster.local", 443, True),
    ("https://s3.example.com", "s3.example.com", 443, False),
    ("http://127.0.0.1:9000", "127.0.0.1", 9000, False),
])
def test_an_s3_endpoint_is_in_the_cluster_only_when_it_names_a_service(endpoint, host, port, in_cluster):
    text = registry(f"    storage: {{s3: {{bucket: b-1, region: r, credentialsSecret: s, endpoint: '{endpoint}'}}}}\n")
    s3 = config.from_text(text, name="m.yaml").registry.storage.s3
    assert (s3.host, s3.port, s3.in_cluster) == (host, port, in_cluster)


def test_several_registries_take_the_same_keys():
    text = minimal("""\
  registries:
    - {name: images, port: 5000, default: true, deleteEnabled: true, gc: {schedule: "@daily"},
       retention: {rules: [{keepNewest: 2}]}}
    - {name: cache, port: 5001, storage: """ + S3 + """, replicas: 2}
""")
    images, cache = config.from_text(text, name="m.yaml").registries
    assert images.retention.prefixes == ("*",) and cache.replicas == 2


BAD = [
    (registry("    replicas: 2\n"),
     "meshreg.yaml:6: spec.registry.replicas: 2 replicas need object storage (storage.s3)"),
    (registry(f"    storage: {S3}\n    replicas: 0\n"), "spec.registry.replicas: 0 is out of range (1-100)"),
    (registry('    gc: {schedule: "0 3 * *"}\n'), "spec.registry.gc.schedule: '0 3 * *' is not a cron schedule: "
                                                    "expected exactly 5 fields"),
    (registry('    gc: {schedule: "0 3 * * 0 2026"}\n'), "expected exactly 5 fields (minute hour day month weekday), "
                                                          "found 6"),
    (registry('    gc: {schedule: "61 3 * * *"}\n'), "'61 3 * * *' is not a valid cron schedule"),
    (registry('    gc: {schedule: "0 3 30 2 *"}\n'), "'0 3 30 2 *' is not a valid cron schedule"),
    (registry('    gc: {schedule: "0 3 * * 7"}\n'), "day of week is 0-6 (Sunday is 0)"),
    (registry('    gc: {schedule: "5-1 3 * * *"}\n'), "'5-1 3 * * *' is not a valid cron schedule"),
    (registry('    gc: {schedule: "0 3 15W * *"}\n'), "L, W and # are not in the cron syntax Kubernetes accepts"),
    (registry('    gc: {schedule: "0 3 L * *"}\n'), "L, W and # are not in the cron syntax Kubernetes accepts"),
    (registry('    gc: {schedule: "TZ=UTC 0 3 * * *"}\n'), "Kubernetes rejects TZ= and CRON_TZ= in a schedule; "
                                                           "set gc.timeZone instead"),
    (registry('    gc: {schedule: "@reboot"}\n'), "'@reboot' is not a schedule macro"),
    (registry('    gc: {schedule: "@daily", timeZone: Mars/Olympus}\n'), "spec.registry.gc.timeZone: 'Mars/Olympus' "
                                                                           "is not a time zone"),
    (registry('    gc: {schedule: "@daily", timeout: 10s}\n'), "spec.registry.gc.timeout: '10s' is not a duration"),
    (registry("    gc: {}\n"), "spec.registry.gc: missing required key 'schedule'"),
    (registry('    deleteEnabled: true\n    gc: {schedule: "@daily"}\n    retention: {rules: [{keepNewest: 0}]}\n'),
     "spec.registry.retention.rules[0]: this rule would keep nothing but protected tags"),
    (registry('    deleteEnabled: true\n    gc: {schedule: "@daily"}\n    retention: {rules: [{}]}\n'),
     "this rule would keep nothing"),
    (registry('    deleteEnabled: true\n    gc: {schedule: "@daily"}\n'
              '    retention: {rules: [{keepNewerThan: 0d}]}\n'), "'0d' is not a duration"),
    (registry('    deleteEnabled: true\n    gc: {schedule: "@daily"}\n    retention: {rules: []}\n'),
     "spec.registry.retention.rules: expected a non-empty list of rules"),
    (registry('    deleteEnabled: true\n    gc: {schedule: "@daily"}\n'
              '    retention: {rules: [{repositories: [a], keepNewest: 1}, {repositories: [a/], keepNewest: 2}]}\n'),
     "retention.rules[1].repositories: 'a/' already has a rule (rules[0])"),
    (registry('    deleteEnabled: true\n    gc: {schedule: "@daily"}\n'
              '    retention: {rules: [{keepNewest: 1}], protectedTags: ["a b"]}\n'), "'a b' is not a tag pattern"),
    (registry("    deleteEnabled: true\n    retention: {rules: [{keepNewest: 1}]}\n"),
     "spec.registry.retention: retention runs in the gc CronJob: set gc.schedule too"),
    (registry('    gc: {schedule: "@daily"}\n    retention: {rules: [{keepNewest: 1}]}\n'),
     "retention deletes manifests through the registry API, which needs spec.registry.deleteEnabled: true"),
    (registry("    storage: {s3: {bucket: images, region: us-east-1}}\n"),
     "spec.registry.storage.s3: missing required key 'credentialsSecret'"),
    (registry("    storage: {s3: {bucket: My_Bucket, region: us-east-1, credentialsSecret: s}}\n"),
     "spec.registry.storage.s3.bucket: 'My_Bucket' is not a bucket name S3 accepts"),
    (registry("    storage: {s3: {bucket: 192.168.5.4, region: us-east-1, credentialsSecret: s}}\n"),
     "not formatted as an IP address"),
    (registry("    storage: {s3: {bucket: ab, region: us-east-1, credentialsSecret: s}}\n"), "3 to 63 characters"),
    (registry("    storage: {s3: {bucket: a..b, region: us-east-1, credentialsSecret: s}}\n"), "no two adjacent"),
    (registry("    storage: {s3: {bucket: xn--abc, region: us-east-1, credentialsSecret: s}}\n"), "xn--"),
    (registry("    storage: {s3: {bucket: abc-s3alias, region: us-east-1, credentialsSecret: s}}\n"), "-s3alias"),
    (registry("    storage: {s3: {bucket: abc, region: us-east-1, credentialsSecret: S}}\n"),
     "credentialsSecret: 'S' is not a valid name"),
    (registry("    storage: {s3: {bucket: abc, region: us-east-1, credentialsSecret: s, endpoint: 'minio:9000'}}\n"),
     "'minio:9000' is not an S3 endpoint URL"),
    (registry("    storage: {size: 5Gi, s3: {bucket: abc, region: us-east-1, credentialsSecret: s}}\n"),
     "spec.registry.storage.size: belongs to a PersistentVolumeClaim"),
    (minimal("  registries:\n    - {name: m, port: 5000, role: mirror, mirror: {upstream: 'https://ghcr.io'},"
             " gc: {schedule: '@daily'}}\n"), "spec.registries[0].gc: a mirror expires its cache itself"),
    (minimal("  registries:\n    - {name: a, port: 5000, gc: {schedule: '@daily'}}\n"
             "    - {name: a-gc, port: 5001}\n"), "spec.registries[1].name: a-gc names the gc objects of "
                                                  "spec.registries[0]"),
    (minimal("  registry: {deleteEnabled: true, gc: {schedule: '@daily'}, retention: {rules: [{keepNewest: 1}]}}\n"
             "  writers: [{serviceAccount: meshreg/registry-gc}]\n"),
     "spec.writers[0].serviceAccount: 'meshreg/registry-gc' is meshreg's retention identity"),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[e for _, e in BAD])
def test_bad_gc_and_storage_input_is_one_line_naming_the_field(text, expected):
    assert expected in error_of(text)


@pytest.mark.parametrize("schedule", ["0 3 * * 0", "*/15 * * * *", "0 3 * * sun", "0 2 1-7 * mon-fri", "@hourly",
                                      "@weekly", "0 0 * * 0,6", "30 4 ? * *", "0 3 * * 1-5/2",
                                      "0 3 * * wed", "0 3 * jul *", "0 3 * apr-jul sat"])
def test_schedules_a_cronjob_accepts_are_accepted(schedule):
    assert check_schedule(schedule) is None
