"""Builds the bundled GPUDrive/Nocturne fixtures from the 15 real scenes in ../shared/gpudrive.

    python tests/testdata/gpudrive/make_fixtures.py [--source=../shared/gpudrive]

The originals are 0.35-3.9 MB each (34 MB in all), mostly road geometry. Each fixture is its
original with every field kept byte for byte (objects, tl_states, metadata, names, road types and
ids) except road geometry, which keeps every `_KEEP_EVERY`-th point plus each road's end points
and the points at its x/y extremes -- so the bounding box of the road points (the map centre the
reader's SDC rule uses) is the original's exactly. Written gzip-compressed (the reader reads
`.json.gz`); `fixtures.json` records each fixture's source size and sha1.
"""

import argparse
import glob
import gzip
import hashlib
import json
import os

_KEEP_EVERY = 5
HERE = os.path.dirname(os.path.abspath(__file__))


def _thin(points: list) -> list:
    if len(points) <= 2:
        return points
    keep = set(range(0, len(points), _KEEP_EVERY)) | {len(points) - 1}
    for axis in ("x", "y"):
        values = [p[axis] for p in points]
        keep |= {values.index(min(values)), values.index(max(values))}
    return [points[i] for i in sorted(keep)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--source", default=os.path.join(HERE, "..", "..", "..", "..", "shared", "gpudrive")
    )
    args = parser.parse_args()
    index = {}
    for path in sorted(glob.glob(os.path.join(args.source, "*.json"))):
        with open(path, "rb") as f:
            data = f.read()
        scenario = json.loads(data)
        for road in scenario.get("roads", []):
            road["geometry"] = _thin(road.get("geometry", []))
        name = os.path.basename(path)
        out = os.path.join(HERE, name + ".gz")
        payload = json.dumps(scenario, separators=(",", ":")).encode()
        with open(out, "wb") as f:  # mtime=0: the same input gives the same bytes
            f.write(gzip.compress(payload, compresslevel=9, mtime=0))
        index[name] = {
            "source_bytes": len(data),
            "source_sha1": hashlib.sha1(data).hexdigest(),
            "fixture_bytes": os.path.getsize(out),
        }
    with open(os.path.join(HERE, "fixtures.json"), "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    print(
        json.dumps(
            {"files": len(index), "fixture_bytes": sum(v["fixture_bytes"] for v in index.values())}
        )
    )


if __name__ == "__main__":
    main()
