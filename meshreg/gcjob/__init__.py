"""Code that runs inside a registry's gc Job: retention, the read-only switch and garbage collection.

Standard library only: the renderer ships these modules in a ConfigMap and the Job runs them with a plain Python
image, so what the tests run here is byte for byte what runs in the cluster.
"""
