"""AU centre points from 68 landmarks (the default table: docs/formats.md).

Each AU has two points; each point is a spec (a mapping, YAML-friendly):

- base, exactly one of: `{at: i}` landmark i (0-based dlib index);
  `{mean: [i, j, ...]}` the mean of landmarks; `{lerp: [i, j, t]}` the point
  a fraction t of the way from landmark i to landmark j;
- optional offsets, in units of s = |p39 - p42| (inner eye corners):
  `up` / `down` along the face's vertical axis (perpendicular to the line
  through the eye centres, down = towards the mouth), `out` / `in` along the
  horizontal axis (eye line) away from / towards the face's vertical midline
  (through the mean of the eye centres, perpendicular to the eye line).

`CropsConfig.au_points` overrides AUs of the default: `{12: [{at: 48}, {at: 54}]}`.
"""

from __future__ import annotations

import numpy as np

from .errors import FauError

DEFAULT_AU_POINTS: dict[int, list[dict]] = {
    1: [{"at": 21}, {"at": 22}],
    2: [{"at": 18}, {"at": 25}],
    4: [{"at": 19, "down": 1 / 3}, {"at": 24, "down": 1 / 3}],
    5: [{"mean": [37, 38]}, {"mean": [43, 44]}],
    6: [{"mean": [1, 41, 31]}, {"mean": [15, 46, 35]}],
    9: [{"at": 31}, {"at": 35}],
    10: [{"at": 50}, {"at": 52}],
    12: [{"at": 48}, {"at": 54}],
    14: [{"at": 48, "out": 0.25}, {"at": 54, "out": 0.25}],
    15: [{"at": 48, "down": 0.25}, {"at": 54, "down": 0.25}],
    17: [{"lerp": [57, 8, 1 / 3]}, {"lerp": [57, 8, 2 / 3]}],
    20: [{"at": 48, "out": 0.5}, {"at": 54, "out": 0.5}],
    25: [{"at": 62}, {"at": 66}],
    26: [{"at": 57}, {"at": 8}],
}
_BASES = ("at", "mean", "lerp")
_OFFSETS = ("up", "down", "out", "in")


def _index(v, key: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or not 0 <= int(v) < 68:
        raise FauError(f"config key '{key}' must hold landmark indices 0..67, got {v!r}")
    return int(v)


def check_spec(spec, key: str) -> None:
    """FauError naming `key` unless `spec` is a valid point spec."""
    if not isinstance(spec, dict):
        raise FauError(f"config key '{key}' must be a mapping like {{at: 48}}, got {spec!r}")
    bases = [k for k in spec if k in _BASES]
    unknown = [k for k in spec if k not in _BASES + _OFFSETS]
    if unknown or len(bases) != 1:
        raise FauError(f"config key '{key}' needs exactly one of {', '.join(_BASES)} plus optional "
                       f"{', '.join(_OFFSETS)}, got {spec!r}")
    base = bases[0]
    val = spec[base]
    if base == "at":
        _index(val, key)
    elif base == "mean":
        if not isinstance(val, (list, tuple)) or not val:
            raise FauError(f"config key '{key}.mean' must be a list of landmark indices")
        for v in val:
            _index(v, key)
    else:
        if not isinstance(val, (list, tuple)) or len(val) != 3:
            raise FauError(f"config key '{key}.lerp' must be [i, j, t]")
        _index(val[0], key), _index(val[1], key)
    for k in _OFFSETS:
        if k in spec and (isinstance(spec[k], bool) or not isinstance(spec[k], (int, float))):
            raise FauError(f"config key '{key}.{k}' must be a number (a fraction of s)")


def au_table(aus, overrides: dict | None = None) -> dict[int, list[dict]]:
    """Point specs for `aus`: the default table updated with `overrides` (checked)."""
    table = dict(DEFAULT_AU_POINTS)
    for k, v in (overrides or {}).items():
        try:
            au = int(str(k).upper().removeprefix("AU"))
        except ValueError:
            raise FauError(f"config key 'crops.au_points.{k}' is not an AU number") from None
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise FauError(f"config key 'crops.au_points.{k}' must be a list of two point specs")
        for i, spec in enumerate(v):
            check_spec(spec, f"crops.au_points.{k}[{i}]")
        table[au] = list(v)
    missing = [a for a in aus if a not in table]
    if missing:
        raise FauError(f"config key 'crops.au_points' has no points for AU{missing[0]} (and there is no default)")
    return {a: table[a] for a in aus}


def point(spec: dict, pts68: np.ndarray) -> np.ndarray:
    """One spec evaluated on landmarks (68, 2) -> (2,)."""
    if "at" in spec:
        p = pts68[int(spec["at"])].copy()
    elif "mean" in spec:
        p = pts68[[int(i) for i in spec["mean"]]].mean(axis=0)
    else:
        i, j, t = spec["lerp"]
        p = pts68[int(i)] + float(t) * (pts68[int(j)] - pts68[int(i)])
    le, re = pts68[36:42].mean(axis=0), pts68[42:48].mean(axis=0)
    u = (re - le) / np.linalg.norm(re - le)  # horizontal axis, image-left eye -> image-right eye
    v = np.array([-u[1], u[0]])  # vertical axis, pointing down (towards the mouth)
    s = float(np.linalg.norm(pts68[39] - pts68[42]))
    side = 1.0 if float((p - (le + re) / 2) @ u) >= 0 else -1.0
    p = p + s * (float(spec.get("down", 0.0)) - float(spec.get("up", 0.0))) * v
    p = p + s * (float(spec.get("out", 0.0)) - float(spec.get("in", 0.0))) * side * u
    return p


def au_points(pts68: np.ndarray, table: dict[int, list[dict]]) -> dict[int, np.ndarray]:
    """AU -> its two points (2, 2) for landmarks (68, 2) (any coordinate frame)."""
    return {au: np.stack([point(s, pts68) for s in specs]) for au, specs in table.items()}
