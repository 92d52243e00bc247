"""Subject-exclusive folds: k-fold, explicit parts, or explicit train/test lists.

- `explicit` (if set): each item `{name, train, test}` is one fold (FERA 2015).
- `parts` (if set): fold i (named `fold<i+1>`) tests parts[i] and trains on
  the other parts (the JAA-Net 3-fold partitions).
- otherwise k folds over the sorted subject IDs: fold i tests every k-th
  subject starting at the i-th (`sorted[i::k]`), so each subject is tested once.
  With `group_by: person` the unit is a group of subjects instead: the
  synthetic subjects whose dominant source photo shows the same person (from
  the synthetic dataset's manifest), so no person dominates subjects on both
  sides of a fold; groups go, largest first, to the fold with the fewest
  subjects so far (ties: the lower fold).

Subjects named in the config but absent from the data are dropped with a
warning; a fold left without train or test subjects is an error.

`folds.json` (`[{"name", "train", "test"}]`) is written by `write_folds` and
read by `read_folds` / `find_fold` only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from . import atomic
from .config import FoldsConfig
from .errors import FauError, read_json

log = logging.getLogger(__name__)


def fold_names(cfg: FoldsConfig) -> list[str]:
    """The fold names `make_folds` will return (known before any data)."""
    if cfg.explicit:
        return [str(f.get("name") or f"fold{i + 1}") for i, f in enumerate(cfg.explicit)]
    if cfg.parts:
        return [f"fold{i + 1}" for i in range(len(cfg.parts))]
    return [f"fold{i + 1}" for i in range(cfg.k)]


def _present(listed, have: set[str], what: str) -> list[str]:
    keep = [s for s in listed if s in have]
    gone = [s for s in listed if s not in have]
    if gone:
        log.warning("%s: %d subjects not in the data are dropped: %s", what, len(gone), " ".join(gone))
    return keep


def person_groups(manifest: str | Path) -> dict[str, str]:
    """subject -> the person of its dominant source photo, from a synthetic
    dataset's manifest (`<root>/.synth/manifest.json`)."""
    path = Path(manifest)
    try:
        data = json.loads(path.read_text())
        return {str(sid): str(rec["dominant_person"]) for sid, rec in data["subjects"].items()}
    except FileNotFoundError:
        raise FauError(f"{path}: missing; config key 'folds.group_by: person' needs a synthetic dataset's "
                       "manifest") from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise FauError(f"{path}: not a synthetic dataset manifest with subjects and their dominant person") from None


def _grouped(subjects: list[str], groups: dict[str, str], k: int) -> list[list[str]]:
    """k test sets of whole groups, balanced by subject count."""
    missing = [s for s in subjects if s not in groups]
    if missing:
        raise FauError(f"subjects {' '.join(missing[:5])} have no person in the synthetic manifest "
                       "(config key 'folds.group_by: person')")
    members: dict[str, list[str]] = {}
    for s in subjects:
        members.setdefault(groups[s], []).append(s)
    if len(members) < k:
        raise FauError(f"config key 'folds.k' is {k} but the data has only {len(members)} people "
                       "(folds.group_by: person)")
    tests: list[list[str]] = [[] for _ in range(k)]
    for _, group in sorted(members.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        i = min(range(k), key=lambda j: (len(tests[j]), j))
        tests[i].extend(group)
    return [sorted(t) for t in tests]


def make_folds(subjects: list[str], cfg: FoldsConfig, groups: dict[str, str] | None = None) -> list[dict]:
    """[{"name", "train", "test"}] for the data's `subjects`; `groups`
    (subject -> person) is needed for `group_by: person`."""
    subjects = sorted(set(subjects))
    have = set(subjects)
    names = fold_names(cfg)
    folds = []
    if cfg.explicit:
        for name, f in zip(names, cfg.explicit):
            unknown = [k for k in f if k not in ("name", "train", "test")]
            if unknown or "train" not in f or "test" not in f:
                raise FauError(f"config key 'folds.explicit' item {name!r} needs train and test lists only")
            folds.append({"name": name, "train": _present(f["train"], have, f"folds.explicit {name} train"),
                          "test": _present(f["test"], have, f"folds.explicit {name} test")})
    elif cfg.parts:
        parts = [_present(p, have, f"folds.parts[{i}]") for i, p in enumerate(cfg.parts)]
        seen: dict[str, int] = {}
        for i, p in enumerate(parts):
            for s in p:
                if s in seen and seen[s] != i:
                    raise FauError(f"config key 'folds.parts' lists subject {s} in parts {seen[s]} and {i}")
                seen[s] = i
        for i, name in enumerate(names):
            folds.append({"name": name, "test": list(parts[i]),
                          "train": [s for j, p in enumerate(parts) if j != i for s in p]})
    elif cfg.group_by == "person":
        if groups is None:
            raise FauError("config key 'folds.group_by' is 'person': the folds need the synthetic manifest")
        for name, test in zip(names, _grouped(subjects, groups, cfg.k)):
            folds.append({"name": name, "test": test, "train": [s for s in subjects if s not in test]})
    else:
        if len(subjects) < cfg.k:
            raise FauError(f"config key 'folds.k' is {cfg.k} but the data has only {len(subjects)} subjects")
        for i, name in enumerate(names):
            test = subjects[i::cfg.k]
            folds.append({"name": name, "test": test, "train": [s for s in subjects if s not in test]})
    for f in folds:
        overlap = set(f["train"]) & set(f["test"])
        if overlap:
            raise FauError(f"fold {f['name']}: subjects in both train and test: {' '.join(sorted(overlap))}")
        if not f["train"] or not f["test"]:
            raise FauError(f"fold {f['name']}: no {'train' if not f['train'] else 'test'} subject present in the data")
    return folds


def write_folds(folds: list[dict], path: str | Path) -> None:
    atomic.write_text(Path(path), json.dumps(folds, indent=1) + "\n")


def read_folds(path: str | Path) -> list[dict]:
    """The folds of `folds.json`; FauError naming the file if it is missing or malformed."""
    path = Path(path)
    folds = read_json(path, "run the folds stage first")
    if not isinstance(folds, list) or not all(isinstance(f, dict) and {"name", "train", "test"} <= set(f)
                                              for f in folds):
        raise FauError(f"{path}: expected a list of {{name, train, test}} objects")
    return folds


def find_fold(path: str | Path, name: str) -> dict:
    """The fold called `name` in `folds.json`."""
    folds = read_folds(path)
    for f in folds:
        if f["name"] == name:
            return f
    raise FauError(f"{path}: no fold named '{name}' (has {', '.join(f['name'] for f in folds)})")
