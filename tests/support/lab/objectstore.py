"""A registry on object storage with several replicas, on loopback: moto's S3 server, one distribution process
per replica with the rendered config and the environment its Deployment gives it, and one Envoy with a sidecar
listener per replica plus a Service listener that spreads requests over the replicas that pass a health check.

moto (PyPI, `moto[server]`) is the S3 server: a maintained, pure-Python implementation of the S3 API that runs as
a standalone HTTP server, installs with pip like the rest of the test tools, and that distribution 2.8's S3
driver works against, cross-replica uploads included.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import httpx

from meshreg.config import from_text
from meshreg.render import render

from . import envoy, rbac
from .envoy import _address
from .mesh import one
from .pki import Authority, Identity, spiffe
from .processes import NO_AWS, Server, free_port, start_envoy

SECRET = {"accessKey": "lab-access", "secretKey": "lab-secret", "httpSecret": "shared-upload-secret"}


def moto_server() -> str | None:
    beside = Path(sys.executable).parent / "moto_server"  # the venv running the tests, activated or not
    return str(beside) if beside.exists() else shutil.which("moto_server")


class S3:
    """moto's server on a free port, with one bucket."""

    def __init__(self, root: Path, bucket: str):
        self.port = free_port()
        self.server = Server([moto_server(), "-H", "127.0.0.1", "-p", str(self.port)], log=root / "moto.log")
        try:
            self.server.wait_http(f"{self.url}/moto-api/")
            response = httpx.put(f"{self.url}/{bucket}")
            assert response.status_code == 200, response.text
        except BaseException:
            self.server.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def objects(self, bucket: str) -> list[str]:
        """Keys in the bucket (moto lists without credentials)."""
        text = httpx.get(f"{self.url}/{bucket}?list-type=2&max-keys=10000").text
        return [part.split("</Key>")[0] for part in text.split("<Key>")[1:]]


class Replicas:
    """Everything for one config whose default registry is on S3 (the endpoint is the lab's moto)."""

    def __init__(self, config_text: str, root: Path, s3: S3):
        self.root, self.s3 = root, s3
        self.cfg = from_text(config_text, name=str(root / "meshreg.yaml"))
        self.objects = render(self.cfg)
        self.reg = self.cfg.registry
        self.servers: list[Server] = []
        self.ca = Authority(root / "pki", "mesh")
        try:
            self.ports = [self._start_replica(i) for i in range(self.reg.replicas)]
            self._start_envoy()
        except BaseException:
            self.close()
            raise

    def identity(self, ns_sa: str) -> Identity:
        return self.ca.workload(self.cfg.trust_domain, ns_sa)

    def _env(self) -> dict:
        """The registry container's environment from its Deployment, Secrets resolved as the kubelet would."""
        [container] = one(self.objects, "Deployment", self.reg.name)["spec"]["template"]["spec"]["containers"]
        env = {}
        for e in container.get("env", []):
            ref = e["valueFrom"]["secretKeyRef"]
            assert ref["name"] == self.reg.storage.s3.credentials_secret
            env[e["name"]] = SECRET[ref["key"]]
        return env

    def _start_replica(self, i: int) -> int:
        config = self.root / "config.yml"
        config.write_text(one(self.objects, "ConfigMap", f"{self.reg.name}-config")["data"]["config.yml"])
        port = free_port()
        env = {**NO_AWS, **self._env(), "REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}"}
        server = Server(["docker-registry", "serve", str(config)], log=self.root / f"replica-{i}.log", env=env)
        self.servers.append(server)
        server.wait_http(f"http://127.0.0.1:{port}/v2/")
        return port

    def _start_envoy(self) -> None:
        pod = one(self.objects, "Deployment", self.reg.name)["spec"]["template"]
        labels, account = pod["metadata"]["labels"], pod["spec"]["serviceAccountName"]
        policies = [o for o in self.objects if rbac.selects(o, namespace=self.cfg.namespace, pod_labels=labels)]
        self.policies = policies
        server = self.ca.issue(spiffe(self.cfg.trust_domain, f"{self.cfg.namespace}/{account}"), label="registry",
                               server=True)
        self.sidecars = [free_port() for _ in self.ports]
        self.service, admin = free_port(), free_port()
        self.admin = f"http://127.0.0.1:{admin}"
        listeners, clusters = [], []
        for i, (port, listen) in enumerate(zip(self.ports, self.sidecars, strict=True)):
            listeners.append(envoy.sidecar_listener(port=listen, server=server, trust_domain=self.cfg.trust_domain,
                                                    rbac=rbac.http_filters(policies), tuning=envoy.Tuning(),
                                                    cluster=f"replica-{i}", name=f"sidecar-{i}"))
            clusters.append(envoy.registry_cluster(port, envoy.Tuning(), name=f"replica-{i}"))
        listeners.append(envoy.sidecar_listener(port=self.service, server=server, trust_domain=self.cfg.trust_domain,
                                                rbac=rbac.http_filters(policies), tuning=envoy.Tuning(),
                                                cluster="service", name="service"))
        clusters.append(self._service_cluster())
        self.servers.append(start_envoy(envoy.bootstrap(admin_port=admin, listeners=listeners, clusters=clusters),
                                        self.root / "envoy.json"))

    def _service_cluster(self) -> dict:
        """The registry Service: every replica, only while it answers (a readiness probe's part)."""
        cluster = envoy.registry_cluster(self.ports[0], envoy.Tuning(), name="service")
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"] = [
            {"endpoint": {"address": _address(p)}} for p in self.ports]
        cluster["health_checks"] = [{"timeout": "1s", "interval": "0.5s", "no_traffic_interval": "0.5s",
                                     "unhealthy_threshold": 1,
                                     "healthy_threshold": 1, "http_health_check": {"path": "/v2/"}}]
        return cluster

    def healthy(self) -> int:
        """How many replicas the Service cluster currently sends requests to."""
        text = httpx.get(f"{self.admin}/clusters").text
        return sum(1 for line in text.splitlines() if line.startswith("service::") and "::health_flags::healthy"
                   in line)

    def sidecar(self, i: int) -> str:
        return f"127.0.0.1:{self.sidecars[i]}"

    @property
    def service_address(self) -> str:
        return f"127.0.0.1:{self.service}"

    def kill(self, i: int) -> None:
        """A replica dies at once (SIGKILL, no draining)."""
        import os
        import signal

        os.killpg(self.servers[i].proc.pid, signal.SIGKILL)
        self.servers[i].proc.wait()

    def close(self) -> None:
        for server in reversed(self.servers):
            server.stop()
