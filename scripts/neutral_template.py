#!/usr/bin/env python3
"""Write src/fau/assets/neutral_face_68.csv: the 68-point neutral face that
`crops.alignment: rigid` aligns every face to.

The points are dlib's 68 landmarks of the shipped average face
(src/fau/assets/faces/AverageMaleFace.jpg, a computed average of many faces
with a neutral expression), placed in a 256 x 256 crop by the least-squares
similarity that takes its eye centres and mouth centre to the classic
template (86, 100), (170, 100), (128, 178). Run it again after changing the
photo or the template; tests/test_align.py checks the file matches.

    python scripts/neutral_template.py            # rewrite the file
    python scripts/neutral_template.py --check    # exit 1 if it differs
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from fau.align import CLASSIC, TEMPLATE_FILE, alignment, read_template, transform
from fau.synth.faces import photo


def compute_neutral_template() -> np.ndarray:
    """The neutral face (68, 2): dlib's landmarks on the shipped average face,
    mapped by its eyes + mouth onto the classic template."""
    _, pts = photo("AverageMaleFace.jpg")
    return transform(pts, alignment(pts, CLASSIC))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare with the shipped file instead of writing it")
    args = p.parse_args()
    points = compute_neutral_template()
    if args.check:
        shipped = read_template()
        err = float(np.abs(shipped - points).max())
        print(f"{TEMPLATE_FILE}: max difference {err:.3f} px")
        return 0 if err < 0.01 else 1
    lines = ["i,x,y"] + [f"{i},{x:.3f},{y:.3f}" for i, (x, y) in enumerate(points)]
    TEMPLATE_FILE.write_text("\n".join(lines) + "\n")
    print(f"wrote {TEMPLATE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
