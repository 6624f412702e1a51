"""The one exception type for bad input that every package raises and every CLI prints."""

from __future__ import annotations


class LabcoreError(ValueError):
    """Bad input or an unusable environment, with a message meant for the user.

    CLIs built with :func:`labcore.cli.run` print it as one line (no traceback) and exit with
    status 2. It subclasses :class:`ValueError` so callers can catch it as such.
    """
