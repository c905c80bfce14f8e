"""Code that runs inside a registry's gc Job: retention, the read-only switch and garbage collection.

Standard library only: the renderer ships these modules (with meshreg/__init__.py and the retention model they
import, meshreg/retention.py) in a ConfigMap, laid out as in the source tree, and the Job runs them with a plain
Python image, so what the tests run here is byte for byte what runs in the cluster.
"""
