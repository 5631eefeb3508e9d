#!/usr/bin/python3
"""Makes an ImageNet-like ImageFolder tree of JPEGs cropped from real photos.

    /usr/bin/python3 scripts/make-image-dataset.py OUT_DIR --count N
        [--classes C] [--size 500x400] [--jitter 0.1] [--portrait-fraction 0.2]
        [--grain 3] [--quality 90] [--png-fraction F] [--seed S] [--jobs J]
        [--force] [--sources DIR_OR_FILE ...]

OUT_DIR/class_0000/class_0000_0000000.jpg, ... : image i goes to class i % C.
Every image is a distinct random crop (position, side 50..100 % of the
largest box of its aspect ratio), horizontal flip, and colour jitter
(brightness, contrast, saturation, per-channel gain) of one of the source
photos, resized to about --size (each side jittered by +-jitter, and a
--portrait-fraction of the images have width and height swapped, as ImageNet's
~500x375 landscape and ~375x500 portrait images), plus a light Gaussian grain
(--grain, sigma in 8-bit levels, like a camera's sensor noise). The content is
real photographic texture, not noise or flat colour. These wallpaper photos
are smoother than the average ImageNet photo (shallow depth of field): the
default 500x400 q90 JPEGs average ~45 KB (25..95 KB for 98 %), ~0.23 byte/pixel,
where ImageNet's train JPEGs average ~110 KB at ~400x350 (their qualities
vary); the pixel work of a decode (IDCT, upsampling, colour conversion) is
the same, the entropy decoding is lighter.

JPEGs are written by Pillow (libjpeg-turbo) as baseline (not progressive),
4:2:0 chroma subsampling, --quality (default 90), no EXIF, standard Huffman
tables (no optimize). --png-fraction F writes that fraction of the images as
8-bit RGB PNG instead (same names with .png), for mixed-format tests. Labels
are the class folders only: the classes are arbitrary, not tied to a photo.

Output is deterministic for a given --seed (and Pillow/libjpeg/zlib/numpy
versions), whatever --jobs is: image i draws from its own generator seeded by
(seed, i). Speed: ~5.5 ms per image on one core here (5,000 images in ~30 s),
after ~1.5 s loading the sources; --jobs J splits the images over J processes.

Default sources (install with scripts/install-bench-deps.sh, or
`apt-get install lomiri-wallpapers-16.04 mate-backgrounds`); their licences
allow redistribution of modified copies with attribution (CC-BY/CC-BY-SA:
derived images stay under the photo's licence, GPL-2+: under GPL-2+), and
OUT_DIR/.ATTRIBUTION.txt lists the photos used:
  lomiri-wallpapers-16.04 /usr/share/backgrounds/*_by_*.jpg (Ubuntu 16.04
    wallpaper contest photos, 1365x1074 .. 5312x2988): CC-BY-4.0,
    CC-BY-SA-4.0, CC0-1.0 (see /usr/share/doc/lomiri-wallpapers-16.04/copyright)
  mate-backgrounds /usr/share/backgrounds/mate/nature/*.jpg (nature photos,
    1280x1024 .. 2560x1920): GPL-2+
    (see /usr/share/doc/mate-backgrounds/copyright)
umang_by_Abhishek_Mudgal.jpg (a colour gradient, not a photo) is left out.

Needs Pillow and numpy only (Debian: python3-pil python3-numpy).
"""

import argparse
import multiprocessing
import os
import re
import shutil
import sys
import time

try:
    import numpy as np
    from PIL import Image, ImageEnhance
except ImportError as e:  # pragma: no cover
    sys.exit(f"make-image-dataset: {e}: run it with /usr/bin/python3 and "
             "`apt-get install python3-pil python3-numpy`")

# (package, path, author, licence) of the default source photos.
_LOMIRI = "/usr/share/backgrounds"
_MATE = "/usr/share/backgrounds/mate/nature"
DEFAULT_SOURCES = [
    ("lomiri-wallpapers-16.04", f"{_LOMIRI}/Bridge_by_Sander_Klootwijk.jpg", "Sander Klootwijk, 2018", "CC-BY-SA-4.0"),
    ("lomiri-wallpapers-16.04", f"{_LOMIRI}/Dragonfly_by_Bolly.jpg", "\"Bolly\", 2018", "CC-BY-SA-4.0"),
    ("lomiri-wallpapers-16.04", f"{_LOMIRI}/Picture_0B_by_freespace.jpg", "Trevor \"Freespace\", 2018", "CC-BY-4.0"),
    ("lomiri-wallpapers-16.04", f"{_LOMIRI}/Picture_1A_by_freespace.jpg", "Trevor \"Freespace\", 2018", "CC-BY-4.0"),
    ("lomiri-wallpapers-16.04", f"{_LOMIRI}/Wine_by_Jakkub_Mede.jpg", "Jakub Mede, 2018", "CC-BY-4.0"),
    ("lomiri-wallpapers-16.04", f"{_LOMIRI}/aitzgorri_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, 2018", "CC-BY-4.0"),
    ("lomiri-wallpapers-16.04", f"{_LOMIRI}/analogpattern_by_Peter_Nerlich.jpg", "Peter Nerlich, 2018", "CC-BY-SA-4.0"),
    ("lomiri-wallpapers-16.04", f"{_LOMIRI}/free_by_Peter_Nerlich.jpg", "Peter Nerlich, 2018", "CC-BY-SA-4.0"),
    ("lomiri-wallpapers-16.04", f"{_LOMIRI}/friends_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, 2018", "CC-BY-4.0"),
    ("lomiri-wallpapers-16.04", f"{_LOMIRI}/greentock_by_Peter_Nerlich.jpg", "Peter Nerlich, 2018", "CC-BY-SA-4.0"),
    ("lomiri-wallpapers-16.04", f"{_LOMIRI}/life_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, 2018", "CC-BY-4.0"),
    ("lomiri-wallpapers-16.04", f"{_LOMIRI}/picosdeeuropa_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, 2018", "CC-BY-4.0"),
    ("lomiri-wallpapers-16.04", f"{_LOMIRI}/seeding_by_Clements_Engelhardt.jpg", "Clemens Engelhardt, 2018", "CC0-1.0"),
    ("lomiri-wallpapers-16.04", f"{_LOMIRI}/sunset_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, 2018", "CC-BY-4.0"),
    ("mate-backgrounds", f"{_MATE}/Aqua.jpg", "Charles Barbin, 2008", "GPL-2+"),
    ("mate-backgrounds", f"{_MATE}/Blinds.jpg", "Lennart Poettering, Andrea Cimitan, 2008", "GPL-2+"),
    ("mate-backgrounds", f"{_MATE}/Dune.jpg", "Marco Cogoni 2007, Hylke Bons 2008", "GPL-2+"),
    ("mate-backgrounds", f"{_MATE}/FreshFlower.jpg", "Jens Ansorg, 2005", "GPL-2+"),
    ("mate-backgrounds", f"{_MATE}/Garden.jpg", "Charles Barbin, 2008", "GPL-2+"),
    ("mate-backgrounds", f"{_MATE}/GreenMeadow.jpg", "Timothy Schellhase 2005, Lapo Calamandrei 2008", "GPL-2+"),
    ("mate-backgrounds", f"{_MATE}/LadyBird.jpg", "Charles Barbin, 2008", "GPL-2+"),
    ("mate-backgrounds", f"{_MATE}/RainDrops.jpg", "\"blackcombwhistler07\", 2008", "GPL-2+"),
    ("mate-backgrounds", f"{_MATE}/Storm.jpg", "Sergey Nazarov, 2008", "GPL-2+"),
    ("mate-backgrounds", f"{_MATE}/TwoWings.jpg", "Charles Barbin, Hylke Bons, 2008", "GPL-2+"),
    ("mate-backgrounds", f"{_MATE}/Wood.jpg", "Jean-Francois Fortin Tam, 2008", "GPL-2+"),
    ("mate-backgrounds", f"{_MATE}/YellowFlower.jpg", "Charles Barbin, 2008", "GPL-2+"),
]

SOURCE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

# Sources are kept in memory downscaled to this longest side: crops of
# 50..100 % of it then shrink by ~1.3..2.6x to ~500x400, like a camera photo
# scaled down to ImageNet's size, and 26 sources take ~80 MB. (Keeping more
# of the source resolution changes nothing visible: the crop covers the same
# part of the photo.)
SOURCE_LONG_SIDE = 1280
MIN_CROP_SCALE = 0.5  # side of the crop box / side of the largest box
GRAIN_TILE = 1024     # grain is cut from a fixed tile at a random offset

CLASS_RE = re.compile(r"^class_\d{4,}$")
ATTRIBUTION = ".ATTRIBUTION.txt"


def parse_size(text):
    m = re.fullmatch(r"(\d+)[xX](\d+)", text)
    if not m or int(m.group(1)) < 8 or int(m.group(2)) < 8:
        raise argparse.ArgumentTypeError(f"'{text}' is not WIDTHxHEIGHT (>= 8x8)")
    return int(m.group(1)), int(m.group(2))


def fraction(text):
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return v


def positive(text):
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text} is not >= 1")
    return v


def resolve_sources(args):
    """[(path, description)] of the source photos, in a fixed order."""
    if not args.sources:
        missing = sorted({pkg for pkg, path, _, _ in DEFAULT_SOURCES
                          if not os.path.isfile(path)})
        if missing:
            sys.exit("make-image-dataset: the default source photos are missing; "
                     "install them with\n  sudo apt-get install "
                     + " ".join(missing)
                     + "\n(or scripts/install-bench-deps.sh), or pass --sources")
        return [(path, f"{os.path.basename(path)} by {author}, {lic}, "
                       f"Debian package {pkg} ({path})")
                for pkg, path, author, lic in DEFAULT_SOURCES]
    paths = []
    for item in args.sources:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item)
                           if f.lower().endswith(SOURCE_EXTENSIONS)
                           and os.path.isfile(os.path.join(item, f)))
            if not found:
                sys.exit(f"make-image-dataset: no images in '{item}'")
            paths.extend(found)
        elif os.path.isfile(item):
            paths.append(item)
        else:
            sys.exit(f"make-image-dataset: source '{item}' does not exist")
    return [(p, f"{p} (licence: that of the file)") for p in paths]


def load_source(path):
    """The photo as RGB, longest side <= SOURCE_LONG_SIDE."""
    try:
        im = Image.open(path)
        # JPEG: let libjpeg-turbo decode at 1/2, 1/4 or 1/8 scale (DCT scaling)
        # as long as the result stays >= the working size; much faster.
        w, h = im.size
        s = SOURCE_LONG_SIDE / max(w, h)
        if s < 1:
            im.draft("RGB", (int(w * s) + 1, int(h * s) + 1))
        im = im.convert("RGB")
    except (OSError, ValueError) as e:
        sys.exit(f"make-image-dataset: cannot read source '{path}': {e}")
    if max(im.size) > SOURCE_LONG_SIDE:
        im.thumbnail((SOURCE_LONG_SIDE, SOURCE_LONG_SIDE), Image.LANCZOS)
    im.load()
    return im


# Filled in main() before the worker processes fork (shared copy-on-write).
_SOURCES = []
_GRAIN = None
_ARGS = None


def make_grain(args):
    """int16 Gaussian noise tile (or None), deterministic for the seed."""
    if args.grain <= 0:
        return None
    big = max(args.size) * (1 + args.jitter) + 2
    side = max(GRAIN_TILE, int(big) + 1)
    rng = np.random.default_rng([args.seed, 0x67726169])
    tile = rng.normal(0.0, args.grain, (side, side, 3))
    return np.rint(tile).astype(np.int16)


def image_path(args, i):
    cls = f"class_{i % args.classes:04d}"
    return cls, f"{cls}_{i:07d}"


def make_one(i):
    """Writes image i; returns (bytes written, is_png)."""
    args = _ARGS
    rng = np.random.default_rng([args.seed, i])
    src = _SOURCES[int(rng.integers(len(_SOURCES)))]

    # Output size: each side jittered, some images portrait.
    W, H = args.size
    w = max(8, round(W * rng.uniform(1 - args.jitter, 1 + args.jitter)))
    h = max(8, round(H * rng.uniform(1 - args.jitter, 1 + args.jitter)))
    if rng.random() < args.portrait_fraction:
        w, h = h, w

    # Crop box of the output's aspect ratio: a random fraction of the largest
    # such box that fits in the source, at a random position.
    sw, sh = src.size
    aspect = w / h
    bw, bh = (sw, sw / aspect) if sw / aspect <= sh else (sh * aspect, sh)
    scale = rng.uniform(MIN_CROP_SCALE, 1.0)
    cw, ch = bw * scale, bh * scale
    x0 = rng.uniform(0, sw - cw)
    y0 = rng.uniform(0, sh - ch)
    # Crop and resize in one pass (antialiased when shrinking).
    im = src.resize((w, h), Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))

    if rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)

    # Colour jitter: saturation by a blend with the grey image, then one LUT
    # per channel for brightness, contrast (around mid-grey) and a white
    # balance gain.
    saturation = rng.uniform(0.7, 1.3)
    im = ImageEnhance.Color(im).enhance(saturation)
    brightness = rng.uniform(0.8, 1.2)
    contrast = rng.uniform(0.8, 1.2)
    gains = rng.uniform(0.92, 1.08, size=3)
    v = np.arange(256, dtype=np.float64)
    lut = np.concatenate([
        np.clip(((v * g * brightness) - 128.0) * contrast + 128.0 + 0.5, 0, 255)
        for g in gains]).astype(np.uint8)
    im = im.point(lut.tolist())

    if _GRAIN is not None:
        side = _GRAIN.shape[0]
        ox = int(rng.integers(0, side - w + 1))
        oy = int(rng.integers(0, side - h + 1))
        a = np.asarray(im, dtype=np.int16) + _GRAIN[oy:oy + h, ox:ox + w]
        im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")

    is_png = args.png_fraction > 0 and rng.random() < args.png_fraction
    cls, name = image_path(args, i)
    path = os.path.join(args.out_dir, cls, name + (".png" if is_png else ".jpg"))
    if is_png:
        im.save(path, "PNG", compress_level=6)
    else:
        im.save(path, "JPEG", quality=args.quality, subsampling=2,
                progressive=False, optimize=False)
    return os.path.getsize(path), is_png


def init_worker(sources, grain, args):
    global _SOURCES, _GRAIN, _ARGS
    _SOURCES, _GRAIN, _ARGS = sources, grain, args


def prepare_out_dir(args):
    out = args.out_dir
    if os.path.exists(out) and not os.path.isdir(out):
        sys.exit(f"make-image-dataset: '{out}' exists and is not a folder")
    if os.path.isdir(out) and os.listdir(out):
        if not args.force:
            sys.exit(f"make-image-dataset: '{out}' is not empty "
                     "(--force replaces the class_NNNN folders in it)")
        # Only what this script writes: class_NNNN folders and the attribution.
        for entry in os.listdir(out):
            p = os.path.join(out, entry)
            if os.path.isdir(p) and CLASS_RE.match(entry):
                shutil.rmtree(p)
        if os.path.isfile(os.path.join(out, ATTRIBUTION)):
            os.remove(os.path.join(out, ATTRIBUTION))
    os.makedirs(out, exist_ok=True)
    # No empty class folder (torchvision's ImageFolder refuses one).
    for c in range(min(args.classes, args.count)):
        os.makedirs(os.path.join(out, f"class_{c:04d}"), exist_ok=True)


def write_attribution(args, sources):
    lines = [
        "Images made by shoal's scripts/make-image-dataset.py "
        f"(seed {args.seed}, {args.count} images).",
        "Each image is a cropped, scaled, possibly mirrored and colour-changed",
        "derivative of one of these photographs, and is under its licence:",
        "",
    ] + [f"  {desc}" for _, desc in sources] + [""]
    with open(os.path.join(args.out_dir, ATTRIBUTION), "w") as f:
        f.write("\n".join(lines))


def main():
    p = argparse.ArgumentParser(
        description="Make an ImageNet-like ImageFolder tree of JPEGs cropped "
                    "from real photos (see the header of this script).")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--count", type=positive, required=True, help="number of images")
    p.add_argument("--classes", type=positive, default=10,
                   help="class folders; image i goes to class i %% C (default 10)")
    p.add_argument("--size", type=parse_size, default=(500, 400),
                   help="typical WIDTHxHEIGHT (default 500x400)")
    p.add_argument("--jitter", type=fraction, default=0.1,
                   help="each side is size * U(1-j, 1+j) (default 0.1)")
    p.add_argument("--portrait-fraction", type=fraction, default=0.2,
                   help="fraction of images with width and height swapped (default 0.2)")
    p.add_argument("--grain", type=float, default=3.0,
                   help="sigma of the Gaussian grain added, in 8-bit levels "
                        "(default 3; 0: none)")
    p.add_argument("--quality", type=int, default=90, choices=range(1, 101),
                   metavar="1..100", help="JPEG quality (default 90)")
    p.add_argument("--png-fraction", type=fraction, default=0.0,
                   help="fraction of images written as PNG (default 0)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--jobs", type=positive, default=1,
                   help="worker processes (default 1; output does not depend on it)")
    p.add_argument("--force", action="store_true",
                   help="replace the class_NNNN folders of a non-empty OUT_DIR")
    p.add_argument("--sources", nargs="+", metavar="DIR_OR_FILE",
                   help="photos to crop from (folders: their image files); "
                        "default: the photos of lomiri-wallpapers-16.04 and "
                        "mate-backgrounds")
    args = p.parse_args()
    if args.seed < 0:
        p.error("--seed must be >= 0")
    if args.grain < 0:
        p.error("--grain must be >= 0")

    sources = resolve_sources(args)
    prepare_out_dir(args)
    t0 = time.monotonic()
    images = [load_source(path) for path, _ in sources]
    t_load = time.monotonic() - t0
    print(f"make-image-dataset: {len(images)} source photos loaded in {t_load:.1f} s",
          file=sys.stderr)

    grain = make_grain(args)
    init_worker(images, grain, args)

    step = max(1, args.count // 20)
    total_bytes = 0
    n_png = 0
    t1 = time.monotonic()

    def report(done):
        dt = time.monotonic() - t1
        rate = done / dt if dt > 0 else 0.0
        print(f"  {done}/{args.count} images, {rate:.0f}/s, "
              f"{total_bytes / max(done, 1) / 1024:.0f} KiB avg",
              file=sys.stderr, flush=True)

    if args.jobs == 1:
        results = map(make_one, range(args.count))
        pool = None
    else:
        ctx = multiprocessing.get_context("fork")
        pool = ctx.Pool(args.jobs, initializer=init_worker,
                        initargs=(images, grain, args))
        results = pool.imap(make_one, range(args.count), chunksize=16)
    try:
        for done, (size, is_png) in enumerate(results, 1):
            total_bytes += size
            n_png += is_png
            if done % step == 0 or done == args.count:
                report(done)
    finally:
        if pool is not None:
            pool.close()
            pool.join()

    write_attribution(args, sources)
    dt = time.monotonic() - t1
    print(f"make-image-dataset: wrote {args.count} images "
          f"({args.count - n_png} JPEG, {n_png} PNG) in {min(args.classes, args.count)} classes, "
          f"{total_bytes / 1e6:.1f} MB, to {args.out_dir} in {dt:.1f} s "
          f"({args.count / dt:.0f} images/s); sources: {args.out_dir}/{ATTRIBUTION}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
