"""The local API server fixtures, for the tests of what status sends."""

from support.local_api import api, cluster  # noqa: F401 (fixtures)
