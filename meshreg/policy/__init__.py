"""The policy part: Istio's AuthorizationPolicy semantics, evaluated offline on rendered objects.

`rules` decides one request at one workload as Istio would; `evaluate` follows a request hop by hop to the
registry; `normalize` is the path normalization Envoy applies first; `requests` lists what a push or a pull sends.
"""
