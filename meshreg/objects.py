"""The type of a Kubernetes object as JSON, for the pure parts that build (render) and read (policy) them.

`meshreg.cluster.api.Object` is the same type on the cluster side; both are plain dicts, so one flows into the other.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Labels", "Object"]

Object = dict[str, Any]  # a Kubernetes object (or a part of one) as JSON: what render returns and policy reads
Labels = dict[str, str]  # labels, selectors' matchLabels, annotations
