"""The ingress client CA: a small certificate authority in a local directory, for writers outside the cluster."""
