#!/usr/bin/python3
"""Reference numbers for shoal's video clip loader: PyAV and torchvision's
read_video in PyTorch's DataLoader, on a folder of video files.

    /usr/bin/python3 benchmarks/pyav_clip_bench.py DIR [--mode pyav,read_video]
        [--workers 2] [--batch 4] [--frames 16] [--size 112]
        [--clips-per-video 1] [--epochs 10] [--warmup 2] [--seed 0]
        [--thread-type default] [--cpus 0-1] [--json]
    /usr/bin/python3 benchmarks/pyav_clip_bench.py --verify VIDEO [--frames 16]
        [--size 112] [--json]

DIR holds the videos (.mp4, .mkv, .mov, .avi, .webm; class subfolders are
walked, files sorted by path), e.g. one made by scripts/make-photo-videos.sh;
`shoal ingest videos DIR DS` makes the matching shoal dataset, which
`shoal bench loader DS --batch 4 --threads 2 --clip-size 112x112` loads the
same way. benchmarks/video_peer_bench.sh runs both, interleaved.

The work (the same as shoal's loader's): one clip = F (--frames, 16)
consecutive frames (step 1) of one video, from a random start drawn
uniformly over [0, frames - F], each frame converted to RGB and resized to
--size x --size (112x112, the aspect ratio is not kept), stacked as a uint8
[F, size, size, 3] tensor; batches of --batch (4) clips. Item i of the
Dataset (length N videos x K --clips-per-video) is clip i // N of video
i % N, so an epoch takes every video K times. Its start is drawn from
numpy.random.default_rng([seed, epoch, i]): reproducible and different every
epoch. (The sampler is a seeded torch.randperm per epoch, what shuffle=True
with a seeded generator does, but it yields (epoch, i) pairs: persistent
workers cannot see an epoch counter kept in the main process.)

Modes:
  pyav        What a PyTorch user who knows PyAV writes. The Dataset's
              constructor demuxes every video once (no decoding: packets
              only, like torchvision's VideoClips) for the sorted list of its
              frames' pts, so frame index n -> pts is exact (display order:
              index 0 is the smallest pts), B-frames and variable frame rates
              included. __getitem__ opens the file (av.open), seeks to the
              keyframe at or before the clip's first pts
              (container.seek(pts, stream=stream, backward=True,
              any_frame=False)), decodes forward, drops the frames before the
              clip, converts each clip frame with
              frame.to_ndarray(format="rgb24", width=size, height=size)
              (swscale, SWS_BILINEAR: PyAV's default interpolation, the same
              as shoal's) into a preallocated array and stops at the clip's
              last frame. If a seek lands after the clip's first frame (a
              demuxer that seeks by dts on B-frame streams can), it seeks
              again to the keyframe before the one it landed on, and counts
              it (reseeks). The decoder's threading is left at PyAV's default
              (PyAV 10: stream.thread_type "SLICE", thread_count 0 = FFmpeg's
              auto, cores + 1): slice threads, which do nothing for x264's
              one slice per frame, so each worker decodes on one core; see
              --thread-type.
  read_video  torchvision.io.read_video(path, start, end, pts_unit="sec")
              with start and end the clip's first and last frame times as
              exact Fractions (pts x time_base, from the same index), then
              a resize to size x size: the [F, H, W, 3] uint8 frames are
              permuted to [F, 3, H, W], converted to float,
              torch.nn.functional.interpolate(mode="bilinear",
              align_corners=False), rounded and clamped back to uint8 and
              permuted to [F, size, size, 3]. read_video (torchvision's
              default "pyav" backend) seeks to the keyframe at or before
              start - 6 ticks, decodes up to 5 frames past the clip's end (a
              reorder buffer for DivX packed B-frames, kept for every file),
              keeps every decoded frame until it returns, and converts the
              clip's frames to RGB at full size (frame.to_rgb()). The frames
              decoded per clip shown for it are computed from the index with
              those rules (--verify checks the rule against a count).
  pyav_nonref pyav, plus the one trick an FFmpeg expert adds (and shoal's
              reader does): frames before the clip that no other frame
              references (x264's non-reference B-frames) need not be
              decoded. It demuxes packet by packet and sets
              stream.codec_context.skip_frame = "NONREF" for packets before
              the clip's first pts (keyframes excepted), "DEFAULT" from
              there on; the decoder itself judges what is a reference, so
              the clip's frames are unchanged (--verify checks it). Not in
              the default --mode list.

Measurement: the DataLoader has --workers (comma list, default 2) worker
processes (fork, persistent: start-up is not timed; each worker runs
torch.set_num_threads(1)), default_collate (a [B, F, size, size, 3] uint8
tensor in shared memory, plus each clip's count of decoded frames),
prefetch_factor 2, no pin_memory, drop_last=False. First --warmup batches
are drawn and thrown away (starts the workers, imports, warms the page cache
and the code); the iterator of each timed epoch is made before its clock
starts. clips/s = clips of the --epochs timed epochs / their wall time; the
median epoch is reported too, and the CPU time (user + system) of the main
process and its workers per clip (psutil; else getrusage of the process and
its reaped children plus /proc of the live ones), which shows the work done
when other jobs share the cores and make the wall-clock rate noisy. Workers
= 0 decodes in the main process. An epoch of a few clips is dominated by the
fill and drain of the pipeline (the first batch waits for 4 whole decodes):
make the timed clips (N x K x epochs) a few hundred at least.

Fairness: --cpus pins the run, workers included, to those CPUs. shoal's
`bench loader --threads 2` decodes on 2 threads; --workers 2 is the peer
(plus the main process, which only collates). shoal times its run from the
loader's start (its pipeline fill included, once); this script times whole
epochs after the warm-up, whose in-flight batches are waited out first.
--thread-type AUTO (or FRAME) makes FFmpeg add frame threads per decoder,
which only pays with fewer workers than cores. With --clips-per-video K > 1,
shoal decodes the K clips of a video in one pass where it can (its JSON's
video_frames.clips_shared); here each clip is an item decoded on its own.

--verify VIDEO checks that the pyav path is frame-exact: for clip starts
around the keyframes and the ends it decodes clips at native size
(to_ndarray(format="rgb24"), no resize) and compares every frame with the
frames `ffmpeg -i VIDEO -map 0:v:0 -vsync 0 -pix_fmt rgb24 -f rawvideo -`
decodes from the start (frame n of ffmpeg's output = display index n), and
reports for each frame which ffmpeg frame it equals (exact, or the nearest
by mean absolute difference). read_video's frames are checked the same way,
and its decoded frame count against the rule above (counted by wrapping the
av module torchvision uses, only in --verify), and pyav_nonref's frames as
pyav's. Then one clip at --size (112) is compared with ffmpeg's
`-vf select=... -sws_flags bilinear -s 112x112` frames (the same swscale
resize). Exit status 1 if a pyav or pyav_nonref clip is not exact.
On scripts/make-photo-videos.sh videos (x264, 3 B-frames with B-pyramid,
GOP 250; PyAV 10.0.0, libavformat 59.27, libavcodec 59.37) every seek lands
at or before the clip (no reseek: the mp4 demuxer finds the keyframe by pts
here), the pyav, pyav_nonref and read_video clips equal ffmpeg's frames bit
for bit at native size, in every thread type, and the 112x112 frames equal
ffmpeg's with -sws_flags bilinear bit for bit. read_video's seek to
start - 6 ticks goes back a whole GOP when a clip starts on a keyframe
(frame 250: 271 frames decoded where pyav decodes 16).

--json prints one JSON document on stdout (the tables go to stderr).
"""

import argparse
import bisect
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from fractions import Fraction

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Shared with the image reference: comma lists, CPU lists, and the CPU time
# of this process and its workers.
from torch_loader_bench import cpu_seconds, parse_cpus, parse_list  # noqa: E402

VIDEO_EXTS = (".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm")
READ_VIDEO_SEEK_BACK = 6     # read_video seeks to max(start - 1 - 5, 0) ticks
READ_VIDEO_EXTRA_FRAMES = 5  # ... and decodes up to 5 frames past its end


def list_videos(root):
    files = []
    for d, dirs, names in os.walk(root):
        dirs.sort()
        files.extend(os.path.join(d, n) for n in names if n.lower().endswith(VIDEO_EXTS))
    return sorted(files)


class VideoIndex:
    """The frames of one video's first video stream, from its packets (no
    decoding): pts in display order (pts[n] = frame n) and the keyframes."""

    def __init__(self, path):
        import av
        self.path = path
        with av.open(path) as container:
            stream = container.streams.video[0]
            self.time_base = stream.time_base
            self.average_rate = stream.average_rate
            pts, keys = [], []
            for packet in container.demux(stream):
                if packet.pts is None:  # the flush packet at the end
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        self.pts = sorted(pts)
        self.key_pts = sorted(keys)
        if len(set(self.pts)) != len(self.pts):
            raise RuntimeError(f"{path}: packets with the same pts")

    @property
    def frames(self):
        return len(self.pts)

    def index_of(self, pts):
        i = bisect.bisect_left(self.pts, pts)
        return i if i < len(self.pts) and self.pts[i] == pts else None

    def key_at_or_before(self, pts):
        """The pts of the last keyframe with pts <= `pts` (None if none)."""
        i = bisect.bisect_right(self.key_pts, pts)
        return self.key_pts[i - 1] if i else None

    def is_cfr(self):
        """Whether pts[n] == pts[0] + n / average_rate / time_base exactly."""
        if not self.average_rate:
            return False
        step = 1 / (self.average_rate * self.time_base)
        return all(p == self.pts[0] + n * step for n, p in enumerate(self.pts))


def decoded_frames(container, stream, first, skip_nonref):
    """The frames decoded from the current position: container.decode, or
    with skip_nonref, packet by packet with the decoder's skip_frame set to
    NONREF for the packets before the clip (pts < first, not keyframes)."""
    if not skip_nonref:
        yield from container.decode(stream)
        return
    cc = stream.codec_context
    for packet in container.demux(stream):
        skip = packet.pts is not None and packet.pts < first and not packet.is_keyframe
        cc.skip_frame = "NONREF" if skip else "DEFAULT"
        yield from packet.decode()


def decode_clip_pyav(index, start, frames, size, thread_type=None, stats=None,
                     skip_nonref=False):
    """Frames start .. start+frames-1 of `index`'s video as a uint8
    [frames, H, W, 3] array (H = W = size, or native size if size is None)."""
    import av
    import numpy as np

    want = index.pts[start:start + frames]
    if len(want) != frames:
        raise ValueError(f"{index.path}: clip {start}+{frames} past {index.frames} frames")
    slot = {p: j for j, p in enumerate(want)}
    first, last = want[0], want[-1]
    out = None
    decoded = reseeks = 0
    with av.open(index.path) as container:
        stream = container.streams.video[0]
        if thread_type is not None:
            stream.thread_type = thread_type
        target = first
        while True:
            container.seek(target, stream=stream, backward=True, any_frame=False)
            got = 0
            landed_late = None
            for frame in decoded_frames(container, stream, first, skip_nonref):
                decoded += 1
                pts = frame.pts
                if pts < first:
                    continue
                if got == 0 and pts != first:
                    landed_late = pts  # the seek passed the clip's first frame
                    break
                j = slot.get(pts)
                if j is not None:
                    if size is None:
                        img = frame.to_ndarray(format="rgb24")
                    else:
                        img = frame.to_ndarray(format="rgb24", width=size, height=size)
                    if out is None:
                        out = np.empty((frames,) + img.shape, dtype=np.uint8)
                    out[j] = img
                    got += 1
                if pts >= last:
                    break
            if landed_late is None:
                break
            # Seek again, to the keyframe before the one (at or before) where
            # the decoder started.
            key = index.key_at_or_before(min(landed_late, target) - 1)
            if key is None or reseeks >= 8:
                raise RuntimeError(f"{index.path}: cannot seek to frame {start} (pts {first})")
            target = key
            reseeks += 1
    if got != frames:
        raise RuntimeError(f"{index.path}: clip at frame {start}: {got} of {frames} frames")
    if stats is not None:
        stats["decoded"] = decoded
        stats["reseeks"] = reseeks
    return out


def read_video_decoded_frames(index, start, frames):
    """How many frames torchvision 0.14's pyav read_video decodes for the clip
    (its _read_from_stream): from the keyframe at or before start pts - 6 to
    5 frames past the last one (or the end of the video)."""
    first = index.pts[start]
    key = index.key_at_or_before(max(first - READ_VIDEO_SEEK_BACK, 0))
    k = index.index_of(key) if key is not None else 0
    end = min(start + frames - 1 + READ_VIDEO_EXTRA_FRAMES, index.frames - 1)
    return end - k + 1


def read_clip_read_video(index, start, frames, size):
    """The clip via torchvision.io.read_video, resized to size x size
    (bilinear, float) unless size is None: uint8 [frames, size, size, 3]."""
    import torch
    from torchvision.io import read_video

    t0 = Fraction(index.pts[start]) * index.time_base
    t1 = Fraction(index.pts[start + frames - 1]) * index.time_base
    vframes, _, _ = read_video(index.path, t0, t1, pts_unit="sec")
    if vframes.shape[0] != frames:
        raise RuntimeError(f"{index.path}: read_video at frame {start}: "
                           f"{vframes.shape[0]} of {frames} frames")
    if size is None:
        return vframes
    x = vframes.permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                        align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class ClipDataset:
    """Item (epoch, i): a random clip of video i % N (see the header)."""

    def __init__(self, indexes, mode, clips_per_video, frames, size, seed, thread_type):
        self.indexes = indexes
        self.mode = mode
        self.k = clips_per_video
        self.frames = frames
        self.size = size
        self.seed = seed
        self.thread_type = thread_type
        short = [ix.path for ix in indexes if ix.frames < frames]
        if short:
            raise ValueError(f"videos shorter than {frames} frames: {short[:3]}")

    def __len__(self):
        return len(self.indexes) * self.k

    def start_of(self, epoch, i):
        import numpy as np
        index = self.indexes[i % len(self.indexes)]
        rng = np.random.default_rng([self.seed, epoch, i])
        return index, int(rng.integers(0, index.frames - self.frames + 1))

    def __getitem__(self, item):
        import torch
        epoch, i = item
        index, start = self.start_of(epoch, i)
        if self.mode in ("pyav", "pyav_nonref"):
            stats = {}
            clip = decode_clip_pyav(index, start, self.frames, self.size,
                                    self.thread_type, stats,
                                    skip_nonref=self.mode == "pyav_nonref")
            return torch.from_numpy(clip), stats["decoded"], stats["reseeks"]
        clip = read_clip_read_video(index, start, self.frames, self.size)
        return clip, read_video_decoded_frames(index, start, self.frames), 0


class EpochSampler:
    """A seeded permutation per epoch (what shuffle=True with a generator
    does), yielding (epoch, i): the epoch seeds the clip starts."""

    def __init__(self, n, seed):
        import torch
        self.n = n
        self.g = torch.Generator()
        self.g.manual_seed(seed)
        self.epoch = 0

    def __len__(self):
        return self.n

    def __iter__(self):
        import torch
        epoch = self.epoch
        self.epoch += 1
        for i in torch.randperm(self.n, generator=self.g).tolist():
            yield epoch, i


def run_loader(args, indexes, mode, workers, k):
    import torch

    torch.manual_seed(args.seed)
    dataset = ClipDataset(indexes, mode, k, args.frames, args.size, args.seed,
                          args.thread_type)
    n = len(dataset)
    sampler = EpochSampler(n, args.seed)
    kwargs = dict(batch_size=args.batch, sampler=sampler, num_workers=workers,
                  pin_memory=False, drop_last=False)
    if workers > 0:
        kwargs.update(persistent_workers=True, multiprocessing_context="fork")
    loader = torch.utils.data.DataLoader(dataset, **kwargs)

    # Warm-up: start the workers, touch the code paths and the files.
    t_start = time.perf_counter()
    it = iter(loader)
    warm = min(args.warmup, len(loader))
    for _ in range(warm):
        next(it)
    t_warm = time.perf_counter() - t_start
    del it

    epoch_times = []
    clips = decoded = reseeks = 0
    cpu_s = 0.0
    for _ in range(args.epochs):
        it = iter(loader)  # resets persistent workers; not timed
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        for batch, dec, res in it:
            clips += batch.shape[0]
            decoded += int(dec.sum())
            reseeks += int(res.sum())
        epoch_times.append(time.perf_counter() - t0)
        cpu_s += cpu_seconds() - c0
        del it
    shape = list(batch.shape)
    del loader  # shuts the workers down

    total = sum(epoch_times)
    return {
        "mode": mode,
        "workers": workers,
        "videos": len(indexes),
        "clips_per_video": k,
        "clips_per_epoch": n,
        "batch": args.batch,
        "batch_shape": shape,
        "epochs": args.epochs,
        "clips": clips,
        "warmup_batches": warm,
        "warmup_s": round(t_warm, 3),
        "epoch_s": [round(t, 3) for t in epoch_times],
        "seconds": round(total, 3),
        "clips_per_s": round(clips / total, 2),
        "median_epoch_clips_per_s": round(n / statistics.median(epoch_times), 2),
        "frames_per_s": round(clips * args.frames / total, 1),
        "cpu_ms_per_clip": round(cpu_s / clips * 1e3, 2),
        "decoded_frames_per_clip": round(decoded / clips, 2),
        "decoded_frames_counted": mode != "read_video",
        "reseeks": reseeks,
    }


# ---------------------------------------------------------------- --verify

def ffmpeg_frames(path, width, height):
    """Every frame of the first video stream as rgb24 at native size, from
    the ffmpeg CLI (display order, no frame dropped or duplicated)."""
    import numpy as np
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-map", "0:v:0",
           "-vsync", "0", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"]
    raw = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout
    fsize = width * height * 3
    if len(raw) % fsize:
        raise RuntimeError(f"ffmpeg gave {len(raw)} bytes, not whole {width}x{height} frames")
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3), cmd


def match_frames(clip, ref, start):
    """For each clip frame: the ffmpeg frame it equals (or the nearest by
    mean absolute difference near the expected one), its max abs diff."""
    import numpy as np
    out = []
    for j, img in enumerate(clip):
        n = start + j
        d = np.abs(ref[n].astype(np.int16) - img.astype(np.int16))
        if not d.any():
            out.append((n, 0, 0.0))
            continue
        lo, hi = max(0, n - 20), min(len(ref), n + 21)
        mads = [float(np.abs(ref[m].astype(np.int16) - img.astype(np.int16)).mean())
                for m in range(lo, hi)]
        best = lo + int(np.argmin(mads))
        out.append((best, int(d.max()), float(d.mean())))
    return out


def verify(args):
    import av
    import numpy as np

    path = args.verify
    if os.path.isdir(path):
        vids = list_videos(path)
        if not vids:
            sys.exit(f"pyav_clip_bench: no videos in {path}")
        path = vids[0]
    index = VideoIndex(path)
    with av.open(path) as c:
        s = c.streams.video[0]
        w, h = s.codec_context.width, s.codec_context.height
        info = {"thread_type": str(s.thread_type), "thread_count": s.thread_count}
        next(c.decode(s))
        info["thread_count_after_open"] = s.codec_context.thread_count
    ref, cmd = ffmpeg_frames(path, w, h)
    F = args.frames
    print(f"verify: {path}: {index.frames} frames {w}x{h}, time_base {index.time_base}, "
          f"average_rate {index.average_rate}, constant frame rate: {index.is_cfr()}, "
          f"keyframes at frames {[index.index_of(p) for p in index.key_pts]}; "
          f"ffmpeg decoded {len(ref)} frames", flush=True)
    print(f"  PyAV {av.__version__} default decoder threading: thread_type "
          f"{info['thread_type']}, thread_count {info['thread_count']} "
          f"(after opening: {info['thread_count_after_open']})", flush=True)
    ok = len(ref) == index.frames
    if not ok:
        print(f"  FAIL: ffmpeg gave {len(ref)} frames, the index {index.frames}")
    last = index.frames - F
    starts = {0, 1, 2, 3, 5, last, last - 1, (last) // 2}
    for p in index.key_pts:
        n = index.index_of(p)
        starts.update(range(n - 3, n + 4))
        starts.update(range(n - F - 1, n - F + 3))
    starts = sorted(s for s in starts if 0 <= s <= last)

    # A decoded-frame counter for read_video: wrap the av module that
    # torchvision.io.video uses (only here, never in the timed runs).
    import torchvision.io.video as tvv
    real_av = tvv.av
    counter = {"n": 0}

    class CountingContainer:
        def __init__(self, c):
            self._c = c

        def __enter__(self):
            self._c.__enter__()
            return self

        def __exit__(self, *a):
            return self._c.__exit__(*a)

        def __getattr__(self, name):
            return getattr(self._c, name)

        def decode(self, *a, **kw):
            for f in self._c.decode(*a, **kw):
                counter["n"] += 1
                yield f

    class CountingAv:
        def __getattr__(self, name):
            return getattr(real_av, name)

        @staticmethod
        def open(*a, **kw):
            return CountingContainer(real_av.open(*a, **kw))

    report = {"video": path, "frames": index.frames, "width": w, "height": h,
              "cfr": index.is_cfr(), "pyav_defaults": info, "ffmpeg": " ".join(cmd),
              "clips": []}
    print(f"  {'start':>5s} {'pyav':>18s} {'decoded':>7s} {'reseek':>6s} "
          f"{'pyav_nonref':>18s} {'decoded':>7s} "
          f"{'read_video':>18s} {'decoded':>7s} {'(rule)':>6s}", flush=True)
    for s in starts:
        stats = {}
        clip = decode_clip_pyav(index, s, F, None, args.thread_type, stats)
        m = match_frames(clip, ref, s)
        exact = all(best == s + j and mx == 0 for j, (best, mx, _) in enumerate(m))
        nr_stats = {}
        nr_clip = decode_clip_pyav(index, s, F, None, args.thread_type, nr_stats,
                                   skip_nonref=True)
        mn = match_frames(nr_clip, ref, s)
        nr_exact = all(best == s + j and mx == 0 for j, (best, mx, _) in enumerate(mn))
        tvv.av = CountingAv()
        counter["n"] = 0
        try:
            rv = read_clip_read_video(index, s, F, None).numpy()
            rv_err = None
        except RuntimeError as e:
            rv, rv_err = None, str(e)
        finally:
            tvv.av = real_av
        rv_count = counter["n"]
        rule = read_video_decoded_frames(index, s, F)
        if rv is not None:
            mr = match_frames(rv, ref, s)
            rv_exact = all(best == s + j and mx == 0 for j, (best, mx, _) in enumerate(mr))
        else:
            mr, rv_exact = [], False

        def desc(e, mm, err=None):
            if err:
                return "ERROR"
            if e:
                return "exact"
            idx = [b for b, _, _ in mm]
            return f"{idx[0]}..{idx[-1]} d<={max(x for _, x, _ in mm)}"

        print(f"  {s:5d} {desc(exact, m):>18s} {stats['decoded']:7d} {stats['reseeks']:6d} "
              f"{desc(nr_exact, mn):>18s} {nr_stats['decoded']:7d} "
              f"{desc(rv_exact, mr, rv_err):>18s} {rv_count:7d} {rule:6d}", flush=True)
        ok = ok and exact and nr_exact
        report["clips"].append({
            "start": s, "pyav_exact": exact, "pyav_decoded": stats["decoded"],
            "pyav_reseeks": stats["reseeks"],
            "pyav_max_abs_diff": max(x for _, x, _ in m),
            "pyav_matched_frames": [b for b, _, _ in m],
            "pyav_nonref_exact": nr_exact, "pyav_nonref_decoded": nr_stats["decoded"],
            "read_video_exact": rv_exact, "read_video_error": rv_err,
            "read_video_decoded": rv_count, "read_video_decoded_rule": rule,
            "read_video_matched_frames": [b for b, _, _ in mr]})

    # At the benchmark's size: the same frames through swscale's bilinear
    # resize in PyAV and in the ffmpeg CLI (-sws_flags bilinear).
    if args.size:
        s = starts[len(starts) // 2]
        small = decode_clip_pyav(index, s, F, args.size, args.thread_type)
        cmd2 = ["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-map", "0:v:0",
                "-vf", f"select=between(n\\,{s}\\,{s + F - 1})", "-vsync", "0",
                "-sws_flags", "bilinear", "-s", f"{args.size}x{args.size}",
                "-pix_fmt", "rgb24", "-f", "rawvideo", "-"]
        raw = subprocess.run(cmd2, check=True, stdout=subprocess.PIPE).stdout
        ref2 = np.frombuffer(raw, dtype=np.uint8).reshape(-1, args.size, args.size, 3)
        if ref2.shape[0] != F:
            d2 = None
        else:
            d2 = np.abs(ref2.astype(np.int16) - small.astype(np.int16))
        msg = ("ffmpeg gave %d frames" % ref2.shape[0]) if d2 is None else \
            f"max abs diff {int(d2.max())}, mean {float(d2.mean()):.4f}, " \
            f"{float((d2 > 0).mean()) * 100:.3f}% of values differ"
        print(f"  at {args.size}x{args.size}, clip at {s}: PyAV to_ndarray vs "
              f"`{' '.join(cmd2)}`: {msg}", flush=True)
        report["resized"] = {"start": s, "ffmpeg": " ".join(cmd2),
                             "max_abs_diff": None if d2 is None else int(d2.max()),
                             "mean_abs_diff": None if d2 is None else float(d2.mean())}
    print(f"verify: pyav clips {'all frame-exact' if ok else 'NOT all frame-exact'} "
          f"({len(starts)} clips)", flush=True)
    report["pyav_all_exact"] = ok
    return report, ok


def versions():
    import av
    import numpy
    v = {"python": platform.python_version(), "av": av.__version__,
         "numpy": numpy.__version__,
         "libavcodec": ".".join(map(str, av.library_versions["libavcodec"]))}
    try:
        import torch
        import torchvision
        v.update(torch=torch.__version__, torchvision=torchvision.__version__,
                 torchvision_video_backend=torchvision.get_video_backend())
    except ImportError:
        pass
    return v


def main():
    p = argparse.ArgumentParser(
        description="PyAV / read_video DataLoader reference benchmark for shoal's "
                    "video clip loader (see the header of this script).")
    p.add_argument("dir", metavar="DIR", nargs="?", help="folder of videos")
    p.add_argument("--mode", type=lambda s: parse_list(s, str, "mode"),
                   default=["pyav", "read_video"],
                   help="comma list of pyav, read_video, pyav_nonref (default pyav,read_video)")
    p.add_argument("--workers", type=lambda s: parse_list(s, int, "workers"),
                   default=[2], help="comma list of num_workers (default 2)")
    p.add_argument("--clips-per-video", type=lambda s: parse_list(s, int, "clips-per-video"),
                   default=[1], help="clips of each video per epoch, comma list (default 1)")
    p.add_argument("--batch", type=int, default=4, help="clips per batch (default 4)")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument("--size", type=int, default=112,
                   help="output frames are size x size (default 112)")
    p.add_argument("--epochs", type=int, default=10, help="timed epochs per run (default 10)")
    p.add_argument("--warmup", type=int, default=2,
                   help="batches drawn before timing (default 2)")
    p.add_argument("--seed", type=int, default=0, help="shuffle and clip-start seed")
    p.add_argument("--thread-type", default="default",
                   help="decoder threading of the pyav mode: default (leave PyAV's, "
                        "SLICE), NONE, SLICE, FRAME or AUTO")
    p.add_argument("--cpus", type=parse_cpus, default=None,
                   help="pin the run (workers too) to these CPUs, e.g. 0 or 0-1")
    p.add_argument("--verify", metavar="VIDEO",
                   help="check the clips against the ffmpeg CLI's frames (a video "
                        "file, or a folder: its first video) and exit")
    p.add_argument("--json", action="store_true", help="JSON on stdout")
    args = p.parse_args()

    args.thread_type = None if args.thread_type.lower() == "default" else args.thread_type.upper()
    if args.thread_type not in (None, "NONE", "SLICE", "FRAME", "AUTO"):
        p.error("--thread-type: default, NONE, SLICE, FRAME or AUTO")
    if args.frames < 1 or args.size < 0 or args.batch < 1 or args.epochs < 1 or args.warmup < 0:
        p.error("--frames, --batch, --epochs must be >= 1, --size and --warmup >= 0")
    if args.cpus is not None:
        try:
            os.sched_setaffinity(0, args.cpus)
        except OSError as e:
            p.error(f"--cpus {args.cpus}: {e}")
    out = sys.stderr if args.json else sys.stdout

    if args.verify:
        if not os.path.exists(args.verify):
            p.error(f"'{args.verify}' does not exist")
        sys.stdout, saved = out, sys.stdout
        try:
            report, ok = verify(args)
        finally:
            sys.stdout = saved
        if args.json:
            report["versions"] = versions()
            json.dump(report, sys.stdout, indent=2)
            sys.stdout.write("\n")
        sys.exit(0 if ok else 1)

    if not args.dir:
        p.error("DIR is required (or --verify VIDEO)")
    for m in args.mode:
        if m not in ("pyav", "pyav_nonref", "read_video"):
            p.error(f"unknown mode '{m}' (pyav, pyav_nonref or read_video)")
    if any(w < 0 for w in args.workers) or any(k < 1 for k in args.clips_per_video):
        p.error("--workers must be >= 0 and --clips-per-video >= 1")
    if args.size == 0:
        p.error("--size must be >= 1 for the benchmark (clips are stacked)")
    if not os.path.isdir(args.dir):
        p.error(f"'{args.dir}' is not a folder")
    paths = list_videos(args.dir)
    if not paths:
        p.error(f"no videos ({', '.join(VIDEO_EXTS)}) under '{args.dir}'")

    import torch
    torch.set_num_threads(1)  # the main process only collates
    t0 = time.perf_counter()
    indexes = [VideoIndex(f) for f in paths]
    t_index = time.perf_counter() - t0
    frames = [ix.frames for ix in indexes]

    report = {
        "benchmark": "pyav_clip_bench",
        "dir": os.path.abspath(args.dir),
        "versions": versions(),
        "config": {"batch": args.batch, "frames": args.frames, "size": args.size,
                   "epochs": args.epochs, "warmup_batches": args.warmup,
                   "seed": args.seed, "thread_type": args.thread_type or "default",
                   "cpus": sorted(os.sched_getaffinity(0))},
        "videos": len(paths),
        "video_frames": {"min": min(frames), "max": max(frames),
                         "total": sum(frames)},
        "all_cfr": all(ix.is_cfr() for ix in indexes),
        "index_s": round(t_index, 3),
    }
    v = report["versions"]
    print(f"pyav_clip_bench: {args.dir}: {len(paths)} videos, {min(frames)}-{max(frames)} "
          f"frames (indexed in {t_index:.2f} s); PyAV {v['av']} (libavcodec "
          f"{v['libavcodec']}), torch {v.get('torch', '-')}, torchvision "
          f"{v.get('torchvision', '-')}, CPUs {report['config']['cpus']}", file=out, flush=True)
    print(f"DataLoader, {args.frames}-frame clips at {args.size}x{args.size}, batch "
          f"{args.batch}, {args.epochs} timed epochs after {args.warmup} warm-up batches:",
          file=out, flush=True)
    print(f"  {'mode':10s} {'workers':>7s} {'K':>3s} {'clips':>6s} {'clips/s':>8s} "
          f"{'median ep':>9s} {'CPU ms/clip':>11s} {'decoded/clip':>12s}  epoch s",
          file=out, flush=True)
    results = []
    for k in args.clips_per_video:
        for m in args.mode:
            for w in args.workers:
                r = run_loader(args, indexes, m, w, k)
                results.append(r)
                dec = f"{r['decoded_frames_per_clip']:.1f}" + ("" if r["decoded_frames_counted"] else "*")
                eps = " ".join(f"{s:.2f}" for s in r["epoch_s"][:12])
                print(f"  {m:10s} {w:7d} {k:3d} {r['clips']:6d} {r['clips_per_s']:8.2f} "
                      f"{r['median_epoch_clips_per_s']:9.2f} {r['cpu_ms_per_clip']:11.2f} "
                      f"{dec:>12s}  {eps}{' ...' if len(r['epoch_s']) > 12 else ''}",
                      file=out, flush=True)
    if any(not r["decoded_frames_counted"] for r in results):
        print("  * computed from the index by read_video's seek and buffer rules", file=out)
    report["results"] = results
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
