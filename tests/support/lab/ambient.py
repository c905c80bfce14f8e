"""The ambient data plane on loopback, built from what meshreg renders for `spec.mesh: ambient`.

One Envoy stands in for each proxy on the path, with the configuration Istio derives from the rendered objects:
- "ztunnel" in front of the registry pod: STRICT mTLS, then network RBAC translated from the policies that
  select the registry pods (lab.l4), then the bytes to the registry;
- the waypoint: mTLS from clients (HBONE carries the client's identity the same way), HTTP RBAC translated from
  the policies attached to the registry Service or the waypoint with targetRefs (lab.rbac), Istio's path
  normalization, and mTLS onwards to "ztunnel" as the waypoint's own identity (its Gateway's name);
- the node proxy: plain HTTP on loopback, its selector policies, and mTLS as itself to the waypoint when the
  Service says `istio.io/ingress-use-waypoint: "true"`, else straight to "ztunnel".
HBONE's HTTP/2 CONNECT framing is left out: what the policies see (peer identity, port, inner HTTP request) is not.
"""

from __future__ import annotations

from . import envoy, l4, rbac
from .envoy import TCP_PROXY
from .mesh import Lab, one
from .pki import spiffe
from .processes import free_port, start_envoy

GATEWAY_API = "gateway.networking.k8s.io"


class AmbientLab(Lab):
    """Registry, ztunnel, waypoint and node proxy for one ambient config; `entry` is where mesh clients connect."""

    def _labels(self, obj: dict) -> dict:
        return obj["metadata"].get("labels") or {}

    def _waypoint(self) -> dict:
        """The rendered waypoint the registry Service uses, checked to be what makes Istio deploy one."""
        service = one(self.objects, "Service", "registry")
        name = self._labels(service)["istio.io/use-waypoint"]
        gateway = one(self.objects, "Gateway", name)
        assert gateway["apiVersion"].startswith(GATEWAY_API + "/")
        assert gateway["spec"]["gatewayClassName"] == "istio-waypoint"
        assert gateway["spec"]["listeners"] == [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]
        assert self._labels(gateway).get("istio.io/waypoint-for", "service") in ("service", "all")
        return gateway

    def _attached(self, gateway: dict) -> list[dict]:
        """Policies a waypoint enforces for the registry Service: targetRefs to it or to the waypoint itself."""
        wanted = {("", "Service", "registry"), (GATEWAY_API, "Gateway", gateway["metadata"]["name"])}
        return [o for o in self.objects if o["kind"] == "AuthorizationPolicy"
                and o["metadata"]["namespace"] == self.cfg.namespace
                and any((r.get("group", ""), r["kind"], r["name"]) in wanted
                        for r in o["spec"].get("targetRefs") or [])]

    def _selected(self, labels: dict) -> list[dict]:
        """Policies that select pods with these labels (targetRefs policies are not selected)."""
        def wanted(policy: dict) -> dict:
            return (policy["spec"].get("selector") or {}).get("matchLabels") or {}

        return [o for o in self.objects if o["kind"] == "AuthorizationPolicy"
                and o["metadata"]["namespace"] == self.cfg.namespace and not o["spec"].get("targetRefs")
                and all(labels.get(k) == v for k, v in wanted(o).items())]

    def _strict(self, labels: dict) -> None:
        peers = [o for o in self.objects if o["kind"] == "PeerAuthentication" and all(
            labels.get(k) == v for k, v in o["spec"]["selector"]["matchLabels"].items())]
        assert [p["spec"]["mtls"]["mode"] for p in peers] == ["STRICT"], "the lab models STRICT mTLS only"

    def _start_envoy(self) -> None:
        registry_labels, registry_sa = self._pod("Deployment", "registry")
        self._strict(registry_labels)
        gateway = self._waypoint()
        ns, td = self.cfg.namespace, self.cfg.trust_domain
        self.registry_identity = self.ca.issue(spiffe(td, f"{ns}/{registry_sa}"), label="registry", server=True)
        self.waypoint_identity = self.ca.issue(spiffe(td, f"{ns}/{gateway['metadata']['name']}"), label="waypoint",
                                               server=True)
        self.ztunnel_port, self.waypoint_port, admin = free_port(), free_port(), free_port()
        listeners = [self._ztunnel_listener(registry_labels),
                     envoy.sidecar_listener(port=self.waypoint_port, server=self.waypoint_identity, trust_domain=td,
                                            rbac=rbac.http_filters(self._attached(gateway)), tuning=self.tuning,
                                            name="waypoint", cluster="ztunnel")]
        clusters = [envoy.plain_cluster("registry", self.registry_port),  # ztunnel passes bytes on: no HTTP options
                    envoy.sidecar_cluster(port=self.ztunnel_port, client=self.waypoint_identity,
                                          registry_uri=self.registry_identity.uri, tuning=self.tuning, name="ztunnel")]
        if self.cfg.node_proxy.enabled:
            listeners, clusters = self._with_node_proxy(listeners, clusters)
        self.servers.append(start_envoy(envoy.bootstrap(admin_port=admin, listeners=listeners, clusters=clusters),
                                        self.root / "envoy.json", concurrency=self.tuning.concurrency))

    def _ztunnel_listener(self, registry_labels: dict) -> dict:
        tls = envoy.downstream_tls(self.registry_identity, self.cfg.trust_domain)
        tcp = {"name": "envoy.filters.network.tcp_proxy",
               "typed_config": {"@type": TCP_PROXY, "stat_prefix": "ztunnel", "cluster": "registry"}}
        return {"name": "ztunnel", "address": {"socket_address": {"address": "127.0.0.1",
                                                                  "port_value": self.ztunnel_port}},
                "filter_chains": [{"transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls},
                                   "filters": [*l4.network_filters(self._selected(registry_labels)), tcp]}]}

    def _with_node_proxy(self, listeners: list, clusters: list) -> tuple[list, list]:
        proxy_labels, proxy_sa = self._pod("DaemonSet", "node-proxy")
        self.node_proxy_identity = self.identity(f"{self.cfg.namespace}/{proxy_sa}")
        self.node_proxy_port = free_port()
        through = self._labels(one(self.objects, "Service", "registry")).get("istio.io/ingress-use-waypoint") == "true"
        port, server = (self.waypoint_port, self.waypoint_identity) if through else \
            (self.ztunnel_port, self.registry_identity)
        listeners.append(envoy.node_proxy_listener(
            port=self.node_proxy_port, rbac=rbac.http_filters(self._selected(proxy_labels)),
            route_timeout=self._node_proxy_route(), tuning=self.tuning, cluster="node-proxy-upstream"))
        clusters.append(envoy.sidecar_cluster(port=port, client=self.node_proxy_identity, registry_uri=server.uri,
                                              tuning=self.tuning, name="node-proxy-upstream"))
        return listeners, clusters

    @property
    def entry(self) -> str:
        """Where an in-mesh client's requests to the registry Service go: the waypoint."""
        return f"127.0.0.1:{self.waypoint_port}"

    @property
    def ztunnel(self) -> str:
        """The registry pod's own address, as a client that skips the waypoint dials it."""
        return f"127.0.0.1:{self.ztunnel_port}"
