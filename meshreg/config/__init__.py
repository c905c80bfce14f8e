"""The config part: the `meshreg.yaml` model, reading it with file/line positions, and editing it in place.

Callers use `config.load(path)` / `config.from_text(text, name=...)` and the model's classes from here.
"""

from meshreg.config.loading import from_text, load
from meshreg.config.model import (
    API_VERSION,
    DEFAULT,
    DEFAULT_FILE,
    DEFAULT_IMAGE,
    KIND,
    PUSH_PROXY,
    REGISTRY_PORT,
    ROLES,
    Config,
    LocalRegistryHosting,
    Mirror,
    NodeProxy,
    PushProxy,
    Registry,
    Resources,
    Storage,
    Writer,
)

__all__ = ["API_VERSION", "DEFAULT", "DEFAULT_FILE", "DEFAULT_IMAGE", "KIND", "PUSH_PROXY", "REGISTRY_PORT", "ROLES",
           "Config", "LocalRegistryHosting", "Mirror", "NodeProxy", "PushProxy", "Registry", "Resources", "Storage",
           "Writer", "from_text", "load"]
