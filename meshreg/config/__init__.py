"""The config part: the `meshreg.yaml` model, reading it with file/line positions, and editing it in place.

Callers use `config.load(path)` / `config.from_text(text, name=...)` and the model's classes from here.
"""

from typing import TYPE_CHECKING

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
    NodeProxy,
    Registry,
    Resources,
    Storage,
    Writer,
)

__all__ = ["API_VERSION", "DEFAULT", "DEFAULT_FILE", "DEFAULT_IMAGE", "KIND", "PUSH_PROXY", "REGISTRY_PORT", "ROLES",
           "Config", "LocalRegistryHosting", "Mirror", "NodeProxy", "PushProxy", "Registry", "Resources", "Storage",
           "Writer", "from_text", "load"]

if TYPE_CHECKING:
    from meshreg.config.model import Mirror, PushProxy
else:
    def __getattr__(name: str) -> object:  # the opt-in features' classes load on first use (meshreg.config.model)
        if name not in ("Mirror", "PushProxy"):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from meshreg.config import model

        return getattr(model, name)
