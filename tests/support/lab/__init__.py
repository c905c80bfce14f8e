"""A loopback lab of real parts (registry, Envoy, PKI, skopeo) for meshreg's end-to-end tests and benchmarks."""
