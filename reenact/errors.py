"""The one user-facing error type.

Library code raises `ReenactError` for anything a user can fix (bad input, missing file, bad
config); the CLI turns it into `error: <message>` and exit code 1. Anything else is a bug.
"""

from __future__ import annotations


class ReenactError(Exception):
    """A problem the user can act on; its message is one line that says what and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class UsageError(ReenactError):
    """A mistake in the command line or its options: the CLI exits 2."""
