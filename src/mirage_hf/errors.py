"""The one exception type that the CLI turns into a single line of error and a non-zero exit."""


class MirageError(Exception):
    """A user-facing error: bad input, a missing file, an inconsistent checkpoint or dataset."""
