"""The cluster part: the only code that talks to a Kubernetes API server (and the only importer of `kubernetes`).

`client` wraps the API, `apply` applies, prunes and removes, `preflight` checks before writing, `wait` follows
rollouts, `status` reports what is deployed, `doctor` checks the cluster read-only, `verify` tests it end to end.
"""
