"""The config's imagePullSecrets for verify's probes (a probe image in a private mirror): copied from the registry's
namespace into the run's temporary namespace (and removed with it), and looked for in the writers' namespaces, where
the probes run as the writers and the Secrets must already be."""

from __future__ import annotations

from meshreg.cluster.api import ClusterClient
from meshreg.config import Config
from meshreg.errors import ClusterError
from meshreg.verify.session import Session

_KEEP = ("type", "data")  # what a copy takes of the original


def copy_into(session: Session, cfg: Config, *, namespace: str) -> list[str]:
    """Copy each pull Secret of the config from cfg.namespace into `namespace`; notes for those that could not be."""
    notes = []
    for name in cfg.image_pull_secrets:
        try:
            found = session.cluster.get("v1", "Secret", name, namespace=cfg.namespace)
            if found is None:
                notes.append(f"imagePullSecret {name} is not in namespace {cfg.namespace}: the probes in "
                             f"{namespace} pull their image without it")
                continue
            copy = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                    **{k: found[k] for k in _KEEP if k in found}}
            session.create(copy)
        except ClusterError as e:
            notes.append(f"could not copy imagePullSecret {name} from namespace {cfg.namespace}: {e}")
    return notes


def missing(cluster: ClusterClient, cfg: Config, *, namespaces: set[str]) -> list[str]:
    """Notes for the pull Secrets that are not in the namespaces where probes run as writers."""
    notes = []
    for ns in sorted(namespaces):
        for name in cfg.image_pull_secrets:
            try:
                absent = cluster.get("v1", "Secret", name, namespace=ns) is None
            except ClusterError:
                continue  # no right to read Secrets there: the probe's own pull says whether it works
            if absent:
                notes.append(f"imagePullSecret {name} is not in namespace {ns}: the probe there pulls its image "
                             "without it")
    return notes
