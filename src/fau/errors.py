"""One exception type for bad input: its message is one line that names the
file (or config key) and the problem. The CLI prints it and exits non-zero."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any, Optional


class FauError(Exception):
    """A user-facing error: `str(err)` is a single line naming what and where."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


# OSErrors that are the user's environment, not a bug: a folder they cannot
# write (or read), a read-only or full disk.
USER_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def user_os_error(e: BaseException) -> Optional[str]:
    """One line for an OSError caused by the environment (permissions, a
    read-only or full disk) naming the file; None for any other exception."""
    if not isinstance(e, OSError) or e.errno not in USER_ERRNOS:
        return None
    where = e.filename if e.filename is not None else "a file"
    extra = f" -> {e.filename2}" if getattr(e, "filename2", None) else ""
    hint = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space",
            errno.EROFS: "choose a writable folder"}.get(e.errno, "check the folder's permissions")
    return f"{where}{extra}: {e.strerror} ({hint})"


def read_json(path: str | Path, missing: str) -> Any:
    """A JSON file an earlier stage wrote; FauError naming it when it is
    missing (`missing`: what makes it, e.g. "run the folds stage first") or
    not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FauError(f"{path}: missing ({missing})") from None
    except json.JSONDecodeError as e:
        raise FauError(f"{path}: not valid JSON ({e.msg})") from None
