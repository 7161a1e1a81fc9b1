"""The accuracy of a land-cover map written earlier by ``eurosat predict``, at labelled reference points, without
mapping again: the same figures ``--maps.reference_points`` gives. Prints the summary; ``--json`` also writes
the assessment (the sidecar's ``areas`` and ``accuracy``) to a new file, never over one (the map's own
sidecar included)::

    python -m eurosat_finetune.map_accuracy maps/scene.classes.tif points.csv --sampling stratified
"""

import argparse
import json
import sys
from pathlib import Path
from typing import get_args

from eurosat_finetune.errors import UserError, first_line
from eurosat_finetune.outputs.map_assessment import Sampling, assess_written_map, unused_lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eurosat_finetune.map_accuracy", description=__doc__.split("\n")[0])
    parser.add_argument("map", type=Path, help="a <name>.classes.tif written by eurosat predict")
    parser.add_argument("points", type=Path, help="a CSV (x, y, class[, crs]) or GeoJSON of labelled points")
    parser.add_argument("--sampling", choices=get_args(Sampling), default="other", help="how the points were drawn")
    parser.add_argument("--crs", default="EPSG:4326", help="the CRS of a CSV without a crs column")
    parser.add_argument("--json", type=Path, help="also write the assessment to this new JSON file")
    args = parser.parse_args(argv)
    if args.json is not None:  # refused before the work, not after it
        if args.json.exists():
            parser.error(f"--json {args.json} already exists; give a new file name (it is never replaced)")
        if not args.json.parent.is_dir():
            parser.error(f"--json {args.json}: no folder {args.json.parent}; create it or give another path")
    try:
        accuracy = assess_written_map(args.map, args.points, args.sampling, args.crs)
    except UserError as err:
        parser.exit(2, f"{parser.prog}: error: {first_line(err)}\n")
    print(accuracy.summary(args.map.name))
    for line in unused_lines(accuracy.points, [accuracy]):
        print(line, file=sys.stderr)
    if args.json is not None:
        record = {"map": str(args.map), "areas": accuracy.areas.as_dict(), "accuracy": accuracy.as_dict()}
        try:
            with open(args.json, "x") as file:  # "x": a file made meanwhile is not replaced either
                file.write(json.dumps(record, indent=2) + "\n")
        except OSError as err:
            parser.exit(2, f"{parser.prog}: error: --json {args.json} cannot be written ({first_line(err)})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
