# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""``python -m cir_monai.data prepare [--out DIR]``: write the embedded validation/test pairs."""

from __future__ import annotations

import argparse
import sys

from cir_monai.data.embedded import DEFAULT_SHAPE, DEFAULT_SPACING
from cir_monai.data.prepare import prepare_embedded
from cir_monai.defaults import embedded_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cir_monai.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="build the embedded MNI152 data set and write validation/test pairs")
    prep.add_argument("--out", default=None, help="output folder (datalist.json and NIfTI pairs); default: the "
                      "embedded data folder (cir_monai.defaults.embedded_dir: $CIR_MONAI_DATA/embedded "
                      "or the user cache)")
    prep.add_argument("--num-validation", type=int, default=4)
    prep.add_argument("--num-test", type=int, default=8)
    prep.add_argument("--spacing", type=float, default=DEFAULT_SPACING, help="isotropic voxel size, mm")
    prep.add_argument("--shape", default=",".join(map(str, DEFAULT_SHAPE)), help="working grid X,Y,Z")
    args = parser.parse_args(argv)
    try:
        shape = tuple(int(v) for v in args.shape.split(","))
        if len(shape) != 3 or min(shape) < 8:
            raise ValueError
    except ValueError:
        print(f"error: --shape takes three integers >= 8 like 80,96,80, got {args.shape!r}", file=sys.stderr)
        return 2
    try:
        path = prepare_embedded(args.out or embedded_dir(), args.num_validation, args.num_test, args.spacing, shape)
    except (OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"embedded data set ready: {path} "
          f"(validation and test pairs as NIfTI, template in {path.parent / 'template'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
