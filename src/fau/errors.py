"""One exception type for bad input: its message is one line that names the
file (or config key) and the problem. The CLI prints it and exits non-zero."""

from __future__ import annotations


class FauError(Exception):
    """A user-facing error: `str(err)` is a single line naming what and where."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
