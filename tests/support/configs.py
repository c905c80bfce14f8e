"""Config documents shared by several tests, and what `render` makes of one."""

from __future__ import annotations

from meshreg import config
from meshreg.render import render

SEVERAL_WRITERS = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: dev}
spec:
  namespace: registry
  trustDomain: example.org
  registry:
    deleteEnabled: true
    storage: {size: 50Gi, storageClassName: fast}
  readers: ["apps/*", "ci/runner"]
  writers:
    - serviceAccount: builds/kaniko
      repositories: ["*"]
      delete: true
    - serviceAccount: team-a/builder
      repositories: ["team-a/"]
    - serviceAccount: ci/buildkit
      repositories: ["team-b", "shared/base/"]
"""


def rendered(text: str | None = None, *, name: str = "m.yaml") -> dict:
    """The objects `render` makes of config `text` (None: the built-in default), by (kind, name)."""
    cfg = config.DEFAULT if text is None else config.from_text(text, name=name)
    return {(o["kind"], o["metadata"]["name"]): o for o in render(cfg)}


def minimal(spec: str = "") -> str:
    """A valid config with `spec` (YAML, indented two spaces) appended under `spec:`."""
    return "apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {name: dev}\nspec:\n" + (spec or "  {}\n")


# SEVERAL_WRITERS in Istio's ambient mode, with a revision tag for the waypoint and the node proxy.
AMBIENT = SEVERAL_WRITERS + "  mesh: ambient\n  istioRevision: stable\n"

# Runtime config for both runtimes, two registry ports, only on some nodes.
RUNTIME_CONFIG = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: dev}
spec:
  namespace: registry
  nodeProxy:
    runtimeConfig:
      containerd: {enabled: true}
      crio: {enabled: true, registriesDir: /etc/containers/registries.conf.d}
      nodeSelector: {example.com/pulls-from-localhost: "true"}
  registries:
    - name: images
      default: true
      port: 5000
      writers: [{serviceAccount: builds/kaniko}]
    - name: cache
      role: mirror
      port: 5001
      mirror: {upstream: "https://ghcr.io"}
"""

# Garbage collection, retention, S3 storage and replicas across four registries.
GC_CONFIG = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: dev}
spec:
  namespace: registry
  registries:
    - name: workspace-images
      default: true
      port: 5000
      deleteEnabled: true
      gc: {schedule: "0 3 * * 0", timeZone: Europe/Berlin, deleteUntagged: true}
      retention:
        rules:
          - {repositories: [workspace/], keepNewerThan: 14d}
          - {repositories: ["*"], keepNewest: 10}
        protectedTags: [latest]
      writers: [{serviceAccount: gitpod/image-builder}]
    - name: service-images
      role: readonly
      publisher: gitpod/airgap-loader
      port: 5001
      deleteEnabled: true
      storage: {s3: {bucket: service-images, region: eu-central-1, credentialsSecret: service-images-s3}}
      replicas: 3
      gc: {schedule: "@weekly"}
      retention: {rules: [{keepNewest: 5}], protectedTags: ["release-*"]}
    - name: cache
      port: 5002
      storage:
        s3: {bucket: cache, region: us-east-1, credentialsSecret: minio, endpoint: "http://minio.storage.svc:9000"}
      replicas: 2
    - name: local
      port: 5003
      storage:
        s3: {bucket: local, region: us-east-1, credentialsSecret: s3, endpoint: "https://10.1.2.3:9000", redirect: true}
"""
