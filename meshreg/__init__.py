"""meshreg: a private container registry in an Istio mesh, where only named writers push over mTLS."""

__version__ = "0.1.0"
