"""The NumPy half of region_numpy_test.sh.

  region_numpy.py make DIR   arrays of every dtype (images: H x W x C and
                             H x W; a 4-d volume) with seeded random values,
                             each as DIR/NAME.bin plus DIR/manifest.json
  region_numpy.py check DIR  every read format_region_fixture wrote
                             (DIR/out/reads.json) equals NumPy slicing of
                             its source array
"""
import json
import os
import sys

import numpy as np

DTYPES = ["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32",
          "uint64", "int64", "float16", "float32", "float64"]
# Odd sizes, so that tiles and blocks end in the middle of rows.
SHAPES = {"rgb": (61, 83, 3), "gray": (71, 97), "rgba": (37, 45, 4)}


def make(out_dir):
    rng = np.random.default_rng(16)
    manifest = []
    for dtype in DTYPES:
        for kind, shape in SHAPES.items():
            if dtype == "bool":
                a = rng.integers(0, 2, size=shape).astype(np.bool_)
            elif np.dtype(dtype).kind in "iu":
                info = np.iinfo(dtype)
                a = rng.integers(info.min, info.max, size=shape,
                                 dtype=dtype, endpoint=True)
            else:
                a = (rng.standard_normal(size=shape) * 1000).astype(dtype)
            # Runs of equal values too, so that the codecs compress blocks.
            a[: shape[0] // 3] = a[0]
            name = f"{kind}-{dtype}"
            a.astype(a.dtype.newbyteorder("<")).tofile(
                os.path.join(out_dir, name + ".bin"))
            manifest.append({"name": name, "dtype": dtype,
                             "shape": list(shape)})
    a = rng.integers(0, 255, size=(5, 19, 23, 3), dtype=np.uint8)
    a.tofile(os.path.join(out_dir, "volume-uint8.bin"))
    manifest.append({"name": "volume-uint8", "dtype": "uint8",
                     "shape": list(a.shape)})
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)


def check(out_dir):
    with open(os.path.join(out_dir, "manifest.json")) as f:
        arrays = {m["name"]: m for m in json.load(f)}
    with open(os.path.join(out_dir, "out", "reads.json")) as f:
        reads = json.load(f)
    sources = {}
    bad = 0
    for r in reads:
        m = arrays[r["array"]]
        if r["array"] not in sources:
            sources[r["array"]] = np.fromfile(
                os.path.join(out_dir, r["array"] + ".bin"),
                dtype=np.dtype(m["dtype"]).newbyteorder("<")).reshape(
                    m["shape"])
        want = sources[r["array"]][tuple(
            slice(a, b) for a, b in zip(r["lo"], r["hi"]))]
        got = open(os.path.join(out_dir, "out", r["file"]), "rb").read()
        if got != np.ascontiguousarray(want).tobytes():
            bad += 1
            if bad <= 10:
                print(f"region_numpy: {r['array']} {r['layout']} "
                      f"[{r['lo']}, {r['hi']}): differs from NumPy",
                      file=sys.stderr)
    layouts = {r["layout"] for r in reads}
    if len(reads) < 1000 or len(layouts) < 8 or len(sources) != len(arrays):
        print(f"region_numpy: only {len(reads)} reads of {len(sources)} "
              f"arrays in {len(layouts)} layouts", file=sys.stderr)
        return 1
    print(f"region_numpy: {len(reads) - bad} of {len(reads)} reads of "
          f"{len(sources)} arrays in {len(layouts)} layouts equal NumPy")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "check"):
        sys.exit(__doc__)
    sys.exit(make(sys.argv[2]) if sys.argv[1] == "make" else check(sys.argv[2]))
