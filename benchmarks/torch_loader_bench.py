#!/usr/bin/python3
"""Reference numbers for shoal's loader: PyTorch's DataLoader on an ImageFolder.

    /usr/bin/python3 benchmarks/torch_loader_bench.py DIR [--workers 0,1,2]
        [--transform decode,train] [--batch 256] [--size 224] [--epochs 2]
        [--warmup 2] [--threads 1] [--cpus 0-1] [--limit N] [--seed 0]
        [--raw-decode | --raw-only] [--json]

DIR is an ImageFolder tree (DIR/<class>/<image>), e.g. one made by
scripts/make-image-dataset.py. Runs one measurement per (transform, workers)
pair given (comma lists) and prints samples/s for each.

Transforms (applied by torchvision's ImageFolder, whose loader is
`Image.open(f).convert("RGB")`, i.e. a full-size libjpeg-turbo decode):
  decode  PILToTensor(): the decoded image as a uint8 CxHxW tensor. The images
          have different sizes, so a batch is collated as a *list* of tensors
          (plus a label tensor), not stacked: no copy beyond PILToTensor's.
          With workers, each image then crosses to the main process as its
          own shared-memory tensor (one file descriptor each): this costs
          ~0.8 ms of CPU per 500x400 image here, more than its decode
          (~0.6 ms): see the CPU ms/img column.
  train   RandomResizedCrop(size) + RandomHorizontalFlip() + PILToTensor(),
          torchvision's default ImageNet training augmentation without the
          float conversion and normalisation; the batch is stacked by
          default_collate into a uint8 [B, 3, size, size] tensor (in shared
          memory when workers > 0, as in training).
No ToTensor()/Normalize: float conversion belongs to the GPU side of a
training pipeline and would only add the same cost to every loader.

Measurement: the DataLoader shuffles (seeded), drop_last=False, workers are
persistent (start-up is not counted), prefetch_factor is PyTorch's default
(2), pin_memory is off. First --warmup batches are drawn and thrown away (this
starts the workers and imports, and warms the caches); the iterator of each
timed epoch is made before its clock starts (which also waits out the
warm-up's in-flight batches). samples/s = images of the timed epochs / their
time; the median epoch is reported too, and the CPU time (user + system) of
the main process and the workers per sample, which shows the work done even
when other jobs share the cores and make the wall-clock rate noisy. The files
are read through the page cache: run once to warm it, or use a dataset
smaller than RAM. An epoch of 2,000 images is only 8 batches of 256, so with
workers the pipeline's fill (the first batch takes a whole batch's decode)
and drain weigh on the rate: use more images or a smaller --batch to see the
steady state.
Workers = 0 decodes in the main process; workers = N uses N worker processes
plus the main process, which only receives and collates batches.

Fairness: --threads sets torch.set_num_threads in the main process (workers
always use 1 thread: the DataLoader sets it), and --cpus pins the whole run,
workers included, to those CPUs (os.sched_setaffinity), so that shoal and this
reference can be compared on the same cores (e.g. `--cpus 0` for one core).
Pillow decodes each image with one thread.

--raw-decode adds a single-process Pillow baseline (no DataLoader, no
torch): the same files decoded in a plain loop, (a) from bytes already in
memory, (b) from the files (open + read + decode, as ImageFolder does), and
(c) from memory with Image.draft("RGB", (w/2, h/2)), libjpeg-turbo's DCT
scaling to half size: what a decoder can save when the consumer needs less
than full resolution (torchvision never uses draft; RandomResizedCrop decodes
the full image, crops, then resizes). Best epoch of --epochs. --raw-only runs
just this baseline.

--json prints one JSON document on stdout (the tables go to stderr).
"""

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time


def parse_list(text, conv, name):
    try:
        vals = [conv(x) for x in text.split(",") if x.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad {name} list '{text}'")
    if not vals:
        raise argparse.ArgumentTypeError(f"empty {name} list")
    return vals


def parse_cpus(text):
    """'0-1,3' -> {0, 1, 3}."""
    cpus = set()
    try:
        for part in text.split(","):
            if "-" in part:
                a, b = part.split("-")
                cpus.update(range(int(a), int(b) + 1))
            else:
                cpus.add(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad CPU list '{text}' (e.g. 0 or 0-1 or 0,2)")
    return sorted(cpus)


def list_collate(batch):
    """Ragged images: a list of CxHxW uint8 tensors and a label tensor."""
    import torch
    images = [img for img, _ in batch]
    labels = torch.tensor([label for _, label in batch], dtype=torch.int64)
    return images, labels


def batch_pixels(images):
    if isinstance(images, list):
        return sum(int(t.numel()) for t in images)
    return int(images.numel())


def cpu_seconds():
    """User + system CPU time of this process and its live children (the
    persistent workers): the work done, whatever else the machine runs."""
    import psutil  # a dependency of Debian's python3-torch
    me = psutil.Process()
    total = 0.0
    for proc in [me] + me.children(recursive=True):
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def run_loader(args, transform_name, workers):
    import torch
    import torchvision
    from torchvision import transforms as T

    if transform_name == "decode":
        transform = T.PILToTensor()
        collate = list_collate
    else:
        transform = T.Compose([
            T.RandomResizedCrop(args.size),
            T.RandomHorizontalFlip(),
            T.PILToTensor(),
        ])
        collate = None  # default_collate: stacks [B, 3, size, size]

    dataset = torchvision.datasets.ImageFolder(args.dir, transform=transform)
    if args.limit:
        dataset = torch.utils.data.Subset(dataset, range(min(args.limit, len(dataset))))
    n = len(dataset)

    g = torch.Generator()
    g.manual_seed(args.seed)
    torch.manual_seed(args.seed)
    kwargs = dict(batch_size=args.batch, shuffle=True, num_workers=workers,
                  collate_fn=collate, pin_memory=False, drop_last=False,
                  generator=g)
    if workers > 0:
        # Each worker's torch RNG (RandomResizedCrop, RandomHorizontalFlip)
        # is seeded from `g`, so the augmentations are reproducible.
        kwargs.update(persistent_workers=True, multiprocessing_context="fork")
    loader = torch.utils.data.DataLoader(dataset, **kwargs)

    # Warm-up: start the workers, touch the code paths and the files.
    t_start = time.perf_counter()
    it = iter(loader)
    for _ in range(min(args.warmup, len(loader))):
        next(it)
    t_warm = time.perf_counter() - t_start
    del it

    epoch_times = []
    samples = 0
    pixels = 0
    cpu_s = 0.0
    for _ in range(args.epochs):
        it = iter(loader)  # resets persistent workers; not timed
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        for images, labels in it:
            samples += len(labels)
            pixels += batch_pixels(images)
        epoch_times.append(time.perf_counter() - t0)
        cpu_s += cpu_seconds() - c0
        del it
    del loader  # shuts the workers down

    total = sum(epoch_times)
    return {
        "transform": transform_name,
        "workers": workers,
        "images": n,
        "batch": args.batch,
        "epochs": args.epochs,
        "warmup_batches": min(args.warmup, -(-n // args.batch)),
        "warmup_s": round(t_warm, 3),
        "epoch_s": [round(t, 3) for t in epoch_times],
        "samples_per_s": round(samples / total, 1),
        "median_epoch_samples_per_s": round(n / statistics.median(epoch_times), 1),
        "output_mpix_per_s": round(pixels / 3 / total / 1e6, 2),
        "cpu_ms_per_sample": round(cpu_s / samples * 1e3, 3),
    }


def list_images(root, limit):
    exts = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
    files = []
    for cls in sorted(e.name for e in os.scandir(root) if e.is_dir()):
        d = os.path.join(root, cls)
        files.extend(os.path.join(d, f) for f in sorted(os.listdir(d))
                     if f.lower().endswith(exts))
    return files[:limit] if limit else files


def run_raw_decode(args):
    from PIL import Image

    files = list_images(args.dir, args.limit)
    if not files:
        sys.exit(f"torch_loader_bench: no images under {args.dir}")
    blobs = []
    for f in files:
        with open(f, "rb") as fh:
            blobs.append(fh.read())
    nbytes = sum(len(b) for b in blobs)

    def from_memory(blob):
        im = Image.open(io.BytesIO(blob))
        im = im.convert("RGB")  # loads (decodes); a copy for RGB, like pil_loader
        return im.size[0] * im.size[1]

    def from_file(path):
        with open(path, "rb") as fh:
            im = Image.open(fh)
            im = im.convert("RGB")
        return im.size[0] * im.size[1]

    def draft_half(blob):
        im = Image.open(io.BytesIO(blob))
        if im.format == "JPEG":
            w, h = im.size
            # Pillow picks the largest 1/2^k scale with both sides >= the
            # request: floor halves, or an odd side would refuse 1/2.
            im.draft("RGB", (w // 2, h // 2))
        im = im.convert("RGB")
        return im.size[0] * im.size[1]

    results = []
    for name, fn, items in (("memory", from_memory, blobs),
                            ("files", from_file, files),
                            ("memory_draft_half", draft_half, blobs)):
        for x in items[:min(len(items), 16)]:  # warm-up
            fn(x)
        runs = []
        px = 0
        for _ in range(args.epochs):
            t0 = time.perf_counter()
            px = 0
            for x in items:
                px += fn(x)
            runs.append(time.perf_counter() - t0)
        best = min(runs)
        results.append({
            "mode": name,
            "images": len(items),
            "epochs": args.epochs,
            "epoch_s": [round(t, 3) for t in runs],
            "images_per_s": round(len(items) / best, 1),
            "output_mpix_per_s": round(px / best / 1e6, 2),
        })
    return {"files": len(files), "mean_file_bytes": round(nbytes / len(files)),
            "modes": results}


def versions():
    from PIL import Image, features
    v = {"python": platform.python_version(), "pillow": Image.__version__,
         "libjpeg_turbo": bool(features.check_feature("libjpeg_turbo")),
         "libjpeg_api_version": features.version("jpg")}
    try:
        import torch
        import torchvision
        v.update(torch=torch.__version__, torchvision=torchvision.__version__)
    except ImportError:
        pass
    return v


def main():
    p = argparse.ArgumentParser(
        description="PyTorch DataLoader reference benchmark on an ImageFolder "
                    "(see the header of this script).")
    p.add_argument("dir", metavar="DIR", help="ImageFolder root (DIR/<class>/<image>)")
    p.add_argument("--workers", type=lambda s: parse_list(s, int, "workers"),
                   default=[0, 1, 2], help="comma list of num_workers (default 0,1,2)")
    p.add_argument("--transform", type=lambda s: parse_list(s, str, "transform"),
                   default=["decode", "train"],
                   help="comma list of decode, train (default decode,train)")
    p.add_argument("--batch", type=int, default=256, help="batch size (default 256)")
    p.add_argument("--size", type=int, default=224,
                   help="RandomResizedCrop size of train (default 224)")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per run (default 2)")
    p.add_argument("--warmup", type=int, default=2,
                   help="batches drawn before timing (default 2)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads of the main process (default 1)")
    p.add_argument("--cpus", type=parse_cpus, default=None,
                   help="pin the run (workers too) to these CPUs, e.g. 0 or 0-1")
    p.add_argument("--limit", type=int, default=0, help="use only the first N images")
    p.add_argument("--seed", type=int, default=0, help="shuffle/augmentation seed")
    p.add_argument("--raw-decode", action="store_true",
                   help="also run the single-process Pillow decode baseline")
    p.add_argument("--raw-only", action="store_true",
                   help="run only the Pillow baseline (no torch)")
    p.add_argument("--json", action="store_true", help="JSON on stdout")
    args = p.parse_args()

    for t in args.transform:
        if t not in ("decode", "train"):
            p.error(f"unknown transform '{t}' (decode or train)")
    if any(w < 0 for w in args.workers):
        p.error("--workers must be >= 0")
    if args.batch < 1 or args.epochs < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--batch, --epochs, --threads must be >= 1 and --warmup >= 0")
    if not os.path.isdir(args.dir):
        p.error(f"'{args.dir}' is not a folder")

    if args.cpus is not None:
        try:
            os.sched_setaffinity(0, args.cpus)
        except OSError as e:
            p.error(f"--cpus {args.cpus}: {e}")
    out = sys.stderr if args.json else sys.stdout

    report = {
        "benchmark": "torch_loader_bench",
        "dir": os.path.abspath(args.dir),
        "versions": versions(),
        "config": {"batch": args.batch, "size": args.size, "epochs": args.epochs,
                   "warmup_batches": args.warmup, "threads": args.threads,
                   "cpus": sorted(os.sched_getaffinity(0)),
                   "limit": args.limit, "seed": args.seed},
    }
    v = report["versions"]
    print(f"torch_loader_bench: {args.dir}, Pillow {v['pillow']} "
          f"(libjpeg-turbo: {v['libjpeg_turbo']}), torch {v.get('torch', '-')}, "
          f"torchvision {v.get('torchvision', '-')}, CPUs {report['config']['cpus']}",
          file=out, flush=True)

    if args.raw_decode or args.raw_only:
        raw = run_raw_decode(args)
        report["raw_decode"] = raw
        print(f"Pillow decode, one process, {raw['files']} files, "
              f"{raw['mean_file_bytes'] / 1024:.0f} KiB mean (best of {args.epochs}):",
              file=out)
        for m in raw["modes"]:
            print(f"  {m['mode']:18s} {m['images_per_s']:8.1f} images/s "
                  f"{m['output_mpix_per_s']:7.1f} Mpix/s", file=out, flush=True)

    if not args.raw_only:
        import torch
        torch.set_num_threads(args.threads)
        results = []
        print(f"DataLoader, batch {args.batch}, {args.epochs} timed epochs "
              f"after {args.warmup} warm-up batches:", file=out, flush=True)
        print(f"  {'transform':9s} {'workers':>7s} {'samples/s':>10s} "
              f"{'median ep':>10s} {'Mpix/s out':>10s} {'CPU ms/img':>10s}  epoch s",
              file=out, flush=True)
        for t in args.transform:
            for w in args.workers:
                r = run_loader(args, t, w)
                results.append(r)
                print(f"  {t:9s} {w:7d} {r['samples_per_s']:10.1f} "
                      f"{r['median_epoch_samples_per_s']:10.1f} "
                      f"{r['output_mpix_per_s']:10.2f} "
                      f"{r['cpu_ms_per_sample']:10.3f}  "
                      f"{' '.join(f'{s:.2f}' for s in r['epoch_s'])}",
                      file=out, flush=True)
        report["results"] = results

    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
