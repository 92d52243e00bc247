"""What every `workflow/scripts/*.py` shares: run one Snakemake job's stage.

    with job(snakemake) as cfg:
        print(stages.folds(cfg, snakemake.input[0], snakemake.output[0]))

`job` sends the job's stdout and stderr (Python, tqdm, C libraries, child
processes: the file descriptors themselves) to the rule's `log:` file,
builds the typed config from the rule's `params.cfg` (the config sections
the rule reads), and turns bad input (`FauError`) into one line,
`error: <message>`, in the log and on Snakemake's console, with exit status
1 and no traceback; so is an OSError of the environment (a folder the user
cannot write, a read-only or full disk: `fau.errors.user_os_error`). Any
other exception is a bug: its traceback goes to the log.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .config import Config, from_dict
from .errors import FauError, user_os_error


def _redirect(log: Path) -> int:
    """Point fds 1 and 2 (and sys.stdout / sys.stderr) at `log`; return a
    duplicate of the original stderr."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    console = os.dup(2)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    return console


@contextmanager
def job(smk: Any) -> Iterator[Config]:
    """Run the body as the Snakemake job `smk` (the `snakemake` object of a
    `script:`); yields the job's typed config."""
    rule = getattr(smk, "rule", "job")
    console = _redirect(Path(smk.log[0])) if len(smk.log) else os.dup(2)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr,
                        force=True)
    try:
        yield from_dict(dict(smk.params.cfg))
    except (FauError, OSError) as e:
        msg = str(e) if isinstance(e, FauError) else user_os_error(e)  # OSError: permissions, full disk
        if msg is None:
            raise
        line = f"error: {msg}"
        print(line, file=sys.stderr, flush=True)
        os.write(console, f"{rule}: {line}\n".encode())
        raise SystemExit(1) from None
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def optional_input(smk: Any, name: str) -> str | None:
    """The one file of a named input that may be empty (an input function
    returning [] or [path]), or None."""
    value = getattr(smk.input, name, None)
    if value is None:
        return None
    files = [value] if isinstance(value, str) else [str(v) for v in value]
    return files[0] if files else None
