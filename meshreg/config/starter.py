"""The commented starter config that `meshreg init` writes; its first line names the JSON Schema `init` writes beside
it (`meshreg schema`), so editors check it offline."""

from meshreg.config.model import SCHEMA_FILE

TEXT = f"# yaml-language-server: $schema={SCHEMA_FILE}\n" + """\
# meshreg config: `meshreg render` shows what it deploys, `meshreg up` deploys it.
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata:
  name: dev                        # instance name: a label on every object, so `up` can prune and `down` can find them
spec:
  namespace: meshreg               # created with Istio sidecar injection enabled
  trustDomain: cluster.local       # your mesh's trust domain; principals are <trustDomain>/ns/<ns>/sa/<sa>
  istioRevision: null              # e.g. "1-24" to label for a revisioned control plane instead of istio-injection
  mesh: sidecar                    # or ambient: ztunnel and a waypoint instead of sidecars (Istio 1.24+)
  registry:
    image: docker.io/library/registry:2.8.3
    storage:
      size: 10Gi                   # the PersistentVolumeClaim; it survives `meshreg down` unless --purge
      storageClassName: null       # null: the cluster's default StorageClass
    deleteEnabled: false           # true lets writers granted `delete: true` delete manifests and blobs
  nodeProxy:
    enabled: true                  # a read-only proxy on every node, so pod specs pull from localhost:PORT
    port: 5000
    hostIP: 127.0.0.1              # loopback only: the proxy serves unauthenticated reads
  # Who may pull: "*" is every workload with a mesh identity; or list NS/SA or NS/* entries.
  readers: ["*"]
  # Who may push, over mTLS with their workload identity. Nobody can push until you add a writer, e.g. with
  #   meshreg policy grant builds/kaniko
  #   meshreg policy grant ci/builder --repo team-a/
  writers: []
  #  - serviceAccount: builds/kaniko # NS/SA of the builder workload
  #    repositories: ["*"]           # or repository prefixes such as "team-a/"
  # Push from laptops with `meshreg connect` through a push proxy in a namespace of its own (docs/pushing.md):
  # pushProxy:
  #   enabled: true
  #   repositories: ["dev/"]        # what people may push; who may is RBAC on pods/portforward there
  # Who wrote what: the proxies that enforce the policies log every write and refusal (on by default; the mesh
  # config needs the provider `meshreg audit --mesh-config` prints; docs/audit.md):
  # audit: {enabled: true, provider: meshreg-audit, keepProviders: [envoy]}
"""
