"""`pushProxy`: opt-in per registry, a namespace of its own, a port that names only its registry, a scope."""

from __future__ import annotations

import pytest

from meshreg import config
from meshreg.errors import ConfigError
from support.configs import minimal

SINGLE = "  pushProxy: {enabled: true, repositories: [dev/]}\n  writers: [{serviceAccount: builds/kaniko}]\n"
REGISTRIES = """\
  registries:
    - name: workspace-images
      port: 5000
      default: true
      pushProxy: {repositories: [dev]}
    - name: service-images
      role: readonly
      port: 5001
      publisher: meshreg-push-service-images/push-proxy
      pushProxy: {repositories: ["*"]}
    - name: other
      port: 5002
"""


def cfg_of(spec: str):
    return config.from_text(minimal(spec), name="m.yaml")


def error_of(spec: str) -> str:
    with pytest.raises(ConfigError) as e:
        cfg_of(spec)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_without_the_section_there_is_no_push_proxy():
    assert cfg_of("  {}\n").registry.push_proxy is None


def test_enabled_false_means_no_push_proxy_and_no_extra_writer():
    cfg = cfg_of("  pushProxy: {enabled: false, repositories: [dev/]}\n")
    assert cfg.registry.push_proxy is None and cfg.writers_of(cfg.registry) == ()


def test_the_single_registry_shape_takes_namespace_push_and_the_node_proxy_port():
    cfg = cfg_of(SINGLE + "  namespace: reg\n  nodeProxy: {port: 5007}\n")
    proxy = cfg.registry.push_proxy
    assert (proxy.namespace, proxy.port, proxy.repositories) == ("reg-push", 5007, ("dev/",))
    assert proxy.identity == "reg-push/push-proxy"


def test_the_push_proxy_is_a_writer_limited_to_its_repositories_and_without_delete():
    cfg = cfg_of(SINGLE)
    writers = {w.service_account: w for w in cfg.writers_of(cfg.registry)}
    assert set(writers) == {"builds/kaniko", "meshreg-push/push-proxy"}
    assert writers["meshreg-push/push-proxy"].repositories == ("dev/",)
    assert not writers["meshreg-push/push-proxy"].delete
    assert cfg.registry.writers == (writers["builds/kaniko"],)  # the config's own list is unchanged


def test_each_registry_gets_a_namespace_named_after_it():
    cfg = cfg_of(REGISTRIES)
    proxies = {r.name: r.push_proxy for r in cfg.registries}
    assert proxies["workspace-images"].namespace == "meshreg-push-workspace-images"
    assert proxies["workspace-images"].repositories == ("dev/",)
    assert proxies["service-images"].port == 5001
    assert proxies["other"] is None


def test_a_readonly_registry_whose_publisher_is_the_push_proxy_is_written_by_it_in_its_scope_only():
    cfg = cfg_of(REGISTRIES.replace('["*"]', "[airgap/]"))
    reg = cfg.get_registry("service-images")
    assert [(w.service_account, w.repositories) for w in cfg.writers_of(reg)] == [
        ("meshreg-push-service-images/push-proxy", ("airgap/",))]


def test_namespace_and_port_can_be_set():
    cfg = cfg_of(SINGLE.replace("[dev/]", "[dev/], namespace: laptops, port: 5100"))
    assert (cfg.registry.push_proxy.namespace, cfg.registry.push_proxy.port) == ("laptops", 5100)


@pytest.mark.parametrize(("spec", "expected"), [
    ("  pushProxy: {enabled: true}\n", "m.yaml:5: spec.pushProxy: missing required key 'repositories'"),
    ("  pushProxy: {repositories: []}\n", "spec.pushProxy.repositories: empty"),
    ("  pushProxy: {repositories: [Dev/]}\n", "spec.pushProxy.repositories[0]: 'Dev/' is not a repository prefix"),
    ("  pushProxy: {repositories: ['*', dev/]}\n", "'*' already covers every repository"),
    ("  pushProxy: {repositories: [dev, dev/]}\n", "lists the same prefix twice"),
    ("  pushProxy: {repositories: [dev/], port: 15020}\n", "spec.pushProxy.port: 15020 collides with a port the "
                                                           "Istio proxy keeps"),
    ("  pushProxy: {repositories: [dev/], port: 80}\n", "spec.pushProxy.port: 80 is out of range"),
    ("  pushProxy: {repositories: [dev/], prot: 5000}\n", "spec.pushProxy.prot: unknown key (did you mean 'port'?)"),
    ("  pushProxy: {repositories: [dev/], enabled: 'yes'}\n", "spec.pushProxy.enabled: expected true or false"),
    ("  pushProxy: {repositories: [dev/], namespace: meshreg}\n",
     "spec.pushProxy.namespace: 'meshreg' is the registry's namespace: the push proxy needs a namespace of its own"),
    ("  pushProxy: {repositories: [dev/], namespace: kube-system}\n", "'kube-system' is reserved"),
    ("  pushProxy: {repositories: [dev/], namespace: Laptops}\n", "'Laptops' is not a valid name"),
    ("  pushProxy: {repositories: [dev/], namespace: builds}\n  writers: [{serviceAccount: builds/kaniko}]\n",
     "spec.pushProxy: namespace 'builds' also holds builds/kaniko (of registry registry)"),
    ("  pushProxy: {repositories: [dev/], namespace: apps}\n  readers: [apps/web]\n", "also holds apps/web"),
    ("  pushProxy: {repositories: [dev/]}\n  writers: [{serviceAccount: meshreg-push/push-proxy}]\n",
     "spec.writers[0].serviceAccount: 'meshreg-push/push-proxy' is the push proxy: what it may write is "
     "pushProxy.repositories"),
    ("  namespace: " + "n" * 60 + "\n  pushProxy: {repositories: [dev/]}\n", "the default namespace 'nnn"),
])
def test_bad_push_proxy_settings_are_one_line_naming_the_field(spec, expected):
    assert expected in error_of(spec)


ENTRIES = """\
  registries:
    - {name: a, port: 5000, default: true, pushProxy: {repositories: [dev/]%s}}
    - {name: b, port: 5001%s}
"""


@pytest.mark.parametrize(("a", "b", "expected"), [
    (", port: 5001", "", "spec.registries[0].pushProxy.port: 5001 is the node-proxy port of registry b: "
                         "localhost:5001 would name another registry on the nodes"),
    ("", ", pushProxy: {repositories: [x/], port: 5000}",
     "spec.registries[1].pushProxy.port: 5000 is already the push-proxy port of registry a"),
    (", namespace: laptops", ", pushProxy: {repositories: [x/], namespace: laptops}",
     "spec.registries[1].pushProxy.namespace: 'laptops' is already the push-proxy namespace of registry a"),
    ("", ", role: mirror, mirror: {upstream: 'https://ghcr.io'}, pushProxy: {repositories: [x/]}",
     "spec.registries[1].pushProxy: a mirror is a read-only cache of its upstream: nobody writes it, so it has no "
     "push proxy"),
    ("", ", role: readonly, pushProxy: {repositories: [x/]}",
     "spec.registries[1].pushProxy: registry b is readonly: only its publisher writes it. To load images through "
     "the push proxy, make the push proxy its publisher (publisher: meshreg-push-b/push-proxy)"),
    ("", ", role: readonly, publisher: ops/loader, pushProxy: {repositories: [x/]}", "registry b is readonly"),
])
def test_push_proxies_of_several_registries_are_checked_against_each_other(a, b, expected):
    assert expected in error_of(ENTRIES % (a, b))


def test_a_port_of_another_registry_is_fine_when_there_is_no_node_proxy():
    cfg = cfg_of(ENTRIES % (", port: 5001", "") + "  nodeProxy: {enabled: false}\n")
    assert cfg.get_registry("a").push_proxy.port == 5001


def test_with_registries_a_top_level_push_proxy_is_refused():
    assert "spec.pushProxy: with spec.registries, set pushProxy on each registry" in \
        error_of(ENTRIES % ("", "") + "  pushProxy: {repositories: [dev/]}\n")


def test_push_proxy_is_a_reserved_registry_name():
    assert "'push-proxy' is reserved" in error_of("  registries: [{name: push-proxy, port: 5000}]\n")
