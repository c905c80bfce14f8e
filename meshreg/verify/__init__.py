"""`meshreg verify`: an end-to-end self-test inside the cluster. Short-lived probe Jobs push and pull through the
mesh as real identities (a writer, a writer outside its prefixes, a bystander, a pod with no sidecar), a hostNetwork
probe goes through the node proxy on a node, and a pod makes the kubelet pull from localhost; each expectation is
judged from what a probe printed (or from the kubelet's events), and everything is removed again.

Phases: 1. pushes through the mesh; 2. node proxy and kubelet, pulling what phase 1 pushed; 3. deleting the
probe image where DELETE is enabled and granted."""

from __future__ import annotations

from meshreg.verify.nodes import pick_node
from meshreg.verify.objects import DEFAULT_IMAGE
from meshreg.verify.phases import Interrupted, ready_registries, run
from meshreg.verify.report import VerifyReport
from meshreg.verify.results import FAIL, PASS, SKIP, Verdict
from meshreg.verify.signals import sigterm_interrupts

__all__ = ["DEFAULT_IMAGE", "FAIL", "PASS", "SKIP", "Interrupted", "Verdict", "VerifyReport", "pick_node",
           "ready_registries", "run", "sigterm_interrupts"]
