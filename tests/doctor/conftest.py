"""The local API server fixtures, for the tests of what doctor and verify send."""

from support.local_api import api, cluster  # noqa: F401 (fixtures)
