"""`-o json` and `-o yaml`: every report as one versioned document, the same shape in both formats.

A document starts with `apiVersion: meshreg.dev/v1alpha1` and `kind: <the report>`, as Kubernetes objects do, so a
script can check what it reads; docs/output.md documents every kind key by key. Within an apiVersion keys are only
ever added; a key removed or changing meaning means a new apiVersion. Every key of a kind is always present (null
where it does not apply), so `jq .key` and `doc["key"]` never depend on the cluster's state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ["API_VERSION", "FORMATS", "document", "dump"]

API_VERSION = "meshreg.dev/v1alpha1"
FORMATS = ("text", "json", "yaml")


def document(kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """`body` under apiVersion and kind."""
    return {"apiVersion": API_VERSION, "kind": kind, **body}


def dump(doc: Mapping[str, Any], output: str) -> str:
    """`doc` as JSON (indented by 2) or YAML (block style, keys in their order), without a trailing newline."""
    if output == "json":
        return json.dumps(doc, indent=2)
    if output != "yaml":
        raise ValueError(f"not a data format: {output!r}")
    plain = json.loads(json.dumps(doc))  # tuples become lists: YAML carries exactly what JSON carries
    return yaml.safe_dump(plain, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120).rstrip("\n")
