"""The model of meshreg.yaml's opt-in features, one module each: object storage, gc, mirrors, push proxies and the
ingress. meshreg.config.model names their classes too and imports a module when one of its classes is first asked
for, so a config without the feature never builds them (building a dataclass costs about a millisecond)."""
