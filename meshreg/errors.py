"""meshreg's own exceptions: the CLI turns each into one line and an exit code."""


class MeshregError(Exception):
    """Base for every error a user can cause or fix; never shown as a traceback."""

    exit_code = 1


class ConfigError(MeshregError):
    """The config file is missing, unreadable or invalid."""

    exit_code = 2


class UsageError(MeshregError):
    """Arguments that do not make sense together or are malformed."""

    exit_code = 2


class ClusterError(MeshregError):
    """The cluster refused, failed or could not be reached."""

    exit_code = 1
