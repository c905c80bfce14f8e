"""Config documents shared by several tests."""

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


def minimal(spec: str = "") -> str:
    """A valid config with `spec` (YAML, indented two spaces) appended under `spec:`."""
    return "apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {name: dev}\nspec:\n" + (spec or "  {}\n")

# SEVERAL_WRITERS in Istio's ambient mode, with a revision tag for the waypoint and the node proxy.
AMBIENT = SEVERAL_WRITERS + "  mesh: ambient\n  istioRevision: stable\n"
