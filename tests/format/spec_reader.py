#!/usr/bin/python3
"""An independent reader of shoal datasets, written from format/FORMAT.md alone.

It exists to check the specification against the C++ code: if this reader,
which knows nothing but FORMAT.md, reads every dataset the library writes,
the spec is complete enough to write a reader from. It is strict: every
magic, version, flag, checksum, count and size the spec defines is checked,
and every sample of every tensor (hidden `_shape/` and `_info/` tensors
included) is decoded and cross-checked against the metadata.

Usage (run with Debian's /usr/bin/python3, which has the modules):

    spec_reader.py DATASET [--expect DIR] [--list]

DATASET is a dataset folder as written by a `file://` store (the folder
holding HEAD). Exit status 0 when the dataset is valid (and matches DIR),
1 with one message naming the object, tensor, chunk and sample otherwise.

--expect DIR compares the samples with references, given as any mix of
    DIR/<tensor name>.npz           an archive (numpy.savez) whose member
                                    "<index>.npy" is sample <index>,
    DIR/<tensor name>/<index>.npy   one NumPy array per sample, and
    DIR/<tensor name>/<index>.bin   the stored bytes of a sample kept encoded
                                    (jpeg, png, image, mp4 sample compression).
An array must equal the decoded sample in dtype, shape and bytes. Tensor
names contain '/' (`group/name`, `_shape/images`), which become folders.
The comparison is two-way: every sample of every tensor must have a
reference and every reference must name an existing sample.

--list prints, after the checks, one line per tensor: name, dtype, rank,
sample count, chunk count and compression.

Samples whose sample_compression is an image or video codec are not decoded
(the format does not define pixels for them beyond the codec's own file
format); they are returned as their stored bytes after their signature is
checked.
"""

import argparse
import json
import math
import os
import re
import sys

try:
    import lz4.block
    import numpy as np
    import xxhash
    import zstandard
except ImportError as e:  # pragma: no cover - depends on the machine
    sys.exit(f"spec_reader: missing Python module '{e.name}': "
             "run scripts/install-deps.sh (Debian: python3-lz4 "
             "python3-zstandard python3-xxhash python3-numpy)")

U64_MAX = (1 << 64) - 1

# Limits a reader enforces (FORMAT.md, "Limits a reader enforces").
MAX_RANK = 8
MAX_HEADER = 64 << 20
MIN_HEADER = 20
MAX_SAMPLES_PER_CHUNK = 1 << 40
MAX_CHUNK_DATA = 1 << 46
MAX_BLOCK = 1 << 30
MAX_DECODED_SAMPLE = 2 << 30
MAX_HEAD_KEY = 1024

# name -> (chunk header code, NumPy dtype, bytes per element).
DTYPES = {
    "bool": (1, np.dtype("|b1")),
    "uint8": (2, np.dtype("|u1")),
    "uint16": (3, np.dtype("<u2")),
    "uint32": (4, np.dtype("<u4")),
    "uint64": (5, np.dtype("<u8")),
    "int8": (6, np.dtype("|i1")),
    "int16": (7, np.dtype("<i2")),
    "int32": (8, np.dtype("<i4")),
    "int64": (9, np.dtype("<i8")),
    "float16": (10, np.dtype("<f2")),
    "float32": (11, np.dtype("<f4")),
    "float64": (12, np.dtype("<f8")),
}
HTYPES = {"generic", "class_label", "image", "video", "text", "json", "bbox",
          "embedding"}
IMAGE_CODECS = {"jpeg", "png", "image"}
VIDEO_CODECS = {"mp4"}
JPEG_MAGIC = b"\xff\xd8\xff"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Every key a tensor object of the metadata must have, with its JSON type.
TENSOR_KEYS = {
    "id": int, "name": str, "htype": str, "dtype": str, "rank": int,
    "sample_compression": str, "chunk_compression": str,
    "max_chunk_bytes": int, "block_bytes": int, "tiling_threshold": int,
    "class_names": list, "hidden": bool, "shape_tensor": int,
    "info_tensor": int, "parent": int, "length": int, "index": str,
    "raw_bytes": int, "stored_bytes": int, "num_chunks": int,
    "min_shape": list, "max_shape": list,
}


class FormatError(Exception):
    """The dataset does not match FORMAT.md (or the references)."""


def checksum(data):
    """XXH3-64, seed 0."""
    return xxhash.xxh3_64_intdigest(bytes(data), seed=0)


def hex64(x):
    return f"{x:016x}"


class Cursor:
    """Reads the little-endian fields and varints of one byte string."""

    def __init__(self, data, what):
        self.data = memoryview(data)
        self.pos = 0
        self.what = what

    def fail(self, message):
        raise FormatError(f"{self.what}: {message} (at byte {self.pos})")

    def take(self, n):
        if n > len(self.data) - self.pos:
            self.fail(f"truncated: {n} bytes needed, "
                      f"{len(self.data) - self.pos} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, n):
        return int.from_bytes(self.take(n), "little")

    def u8(self):
        return self.uint(1)

    def u64(self):
        return self.uint(8)

    def varint(self):
        value = 0
        for i in range(10):
            byte = self.u8()
            if i == 9 and byte > 1:
                self.fail("varint overflows 64 bits")
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                return value
        self.fail("varint longer than 10 bytes")

    def lpstr(self, limit=None):
        n = self.varint()
        if limit is not None and n > limit:
            self.fail(f"string of {n} bytes exceeds {limit}")
        raw = bytes(self.take(n))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail("string is not UTF-8")

    def end(self):
        if self.pos != len(self.data):
            self.fail(f"{len(self.data) - self.pos} trailing bytes")


# ---- Codecs ----------------------------------------------------------------

CODEC_RE = re.compile(r"^(lz4|lz4hc:(\d+)|zstd:(-?\d+))(\+shuffle)?$")


def parse_byte_codec(spec, what):
    """(name, shuffle) of a canonical byte codec spec; FormatError otherwise."""
    m = CODEC_RE.match(spec)
    if not m:
        raise FormatError(f"{what}: unknown or non-canonical codec spec "
                          f"'{spec}'")
    if m.group(2) is not None and not 1 <= int(m.group(2)) <= 12:
        raise FormatError(f"{what}: lz4hc level out of 1..12 in '{spec}'")
    if m.group(3) is not None:
        level = int(m.group(3))
        if not (-7 <= level <= -1 or 1 <= level <= 22):
            raise FormatError(f"{what}: zstd level out of range in '{spec}'")
    name = "zstd" if m.group(3) is not None else "lz4"
    return name, m.group(4) is not None


def unshuffle(data, elem_size):
    """Inverse of the +shuffle byte transposition over one buffer."""
    if elem_size <= 1:
        return data
    n = len(data)
    m = n // elem_size
    if m == 0:
        return data
    body = np.frombuffer(data, np.uint8, m * elem_size).reshape(elem_size, m)
    return body.T.tobytes() + bytes(data[m * elem_size:])


def decode_zstd_frame(stored, raw_size, what):
    """Exactly one zstd frame, nothing after it, content size as expected."""
    if stored[:4] != ZSTD_MAGIC:
        raise FormatError(f"{what}: not a zstd frame")
    content = zstandard.get_frame_parameters(stored).content_size
    if content != zstandard.CONTENTSIZE_UNKNOWN and content != raw_size:
        raise FormatError(f"{what}: zstd frame holds {content} bytes, "
                          f"expected {raw_size}")
    # decompress() would ignore bytes after the frame; a decompressobj
    # reports them.
    dobj = zstandard.ZstdDecompressor().decompressobj()
    out = dobj.decompress(stored)
    if not dobj.eof or dobj.unused_data:
        raise FormatError(f"{what}: zstd frame truncated or followed by "
                          f"{len(dobj.unused_data)} bytes")
    return out


def decode_bytes(spec, stored, raw_size, elem_size, what):
    """Decodes `stored` with byte codec `spec` into exactly raw_size bytes."""
    name, shuffle = parse_byte_codec(spec, what)
    if not stored:
        # Every codec writes at least one byte, also for an empty input.
        raise FormatError(f"{what}: 0 stored bytes for {spec}")
    try:
        if name == "lz4":
            out = lz4.block.decompress(bytes(stored),
                                       uncompressed_size=raw_size)
        else:
            out = decode_zstd_frame(bytes(stored), raw_size, what)
    except FormatError:
        raise
    except Exception as e:  # the codecs raise their own types
        raise FormatError(f"{what}: {spec} does not decode: {e}") from None
    if len(out) != raw_size:
        raise FormatError(f"{what}: {spec} decodes to {len(out)} bytes, "
                          f"expected {raw_size}")
    return unshuffle(out, elem_size) if shuffle else out


# ---- The reader ------------------------------------------------------------


class Tensor:
    """One tensor of the metadata, with what reading it found."""

    def __init__(self, obj, where):
        for key, typ in TENSOR_KEYS.items():
            if key not in obj:
                raise FormatError(f"{where}: missing key '{key}'")
            value = obj[key]
            ok = isinstance(value, typ) and (typ is bool or
                                            not isinstance(value, bool))
            if not ok:
                raise FormatError(f"{where}: key '{key}' is not "
                                  f"{typ.__name__}")
        self.obj = obj
        self.id = obj["id"]
        self.name = obj["name"]
        self.where = f"tensor '{self.name}'"
        if obj["dtype"] not in DTYPES:
            raise FormatError(f"{self.where}: unknown dtype '{obj['dtype']}'")
        if obj["htype"] not in HTYPES:
            raise FormatError(f"{self.where}: unknown htype '{obj['htype']}'")
        self.code, self.dtype = DTYPES[obj["dtype"]]
        self.rank = obj["rank"]
        if not -1 <= self.rank <= MAX_RANK:
            raise FormatError(f"{self.where}: rank {self.rank} out of range")
        self.sample_codec = obj["sample_compression"]
        self.chunk_codec = obj["chunk_compression"]
        if self.sample_codec and self.chunk_codec:
            raise FormatError(f"{self.where}: both sample and chunk "
                              "compression")
        self.encoded = (self.sample_codec in IMAGE_CODECS or
                        self.sample_codec in VIDEO_CODECS)
        if self.sample_codec and not self.encoded:
            parse_byte_codec(self.sample_codec, self.where)
        if self.chunk_codec:
            parse_byte_codec(self.chunk_codec, self.where)
        self.threshold = obj["tiling_threshold"]
        self.length = obj["length"]
        # Filled while reading.
        self.entries = []
        self.chunk_keys = set()
        self.stored_bytes = 0

    def sample_limit(self):
        """Largest raw size of one stored sample (or tile)."""
        if self.sample_codec:
            return MAX_DECODED_SAMPLE
        return min(self.threshold, MAX_DECODED_SAMPLE)


class Sample:
    """A decoded sample: an ndarray, or the stored bytes when encoded."""

    def __init__(self, shape, array=None, stored=None, codec=""):
        self.shape = tuple(shape)
        self.array = array
        self.stored = stored
        self.codec = codec


class Reader:
    def __init__(self, root):
        self.root = root
        self.tensors = []
        self.by_id = {}
        self.by_name = {}

    # -- objects --

    def read_key(self, key):
        if key.startswith("/") or ".." in key.split("/"):
            raise FormatError(f"key '{key}' escapes the dataset")
        path = os.path.join(self.root, *key.split("/"))
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise FormatError(f"object '{key}': cannot read: "
                              f"{e.strerror}") from None

    def read_envelope(self, key, magic, versions):
        """(version, payload) of a HEAD / metadata / index object."""
        data = self.read_key(key)
        what = f"object '{key}'"
        if len(data) < 24:
            raise FormatError(f"{what}: {len(data)} bytes, shorter than the "
                              "24-byte envelope")
        if data[:4] != magic:
            raise FormatError(f"{what}: magic {data[:4]!r}, expected "
                              f"{magic!r}")
        c = Cursor(data, what)
        c.take(4)
        version = c.uint(2)
        flags = c.uint(2)
        n = c.u64()
        if len(data) != 24 + n:
            raise FormatError(f"{what}: {len(data)} bytes, payload length "
                              f"{n} says {24 + n}")
        stored = int.from_bytes(data[16 + n:], "little")
        if checksum(data[:16 + n]) != stored:
            raise FormatError(f"{what}: checksum mismatch")
        if version not in versions:
            raise FormatError(f"{what}: unknown version {version}")
        if flags != 0:
            raise FormatError(f"{what}: flags {flags}, expected 0")
        return version, data[16:16 + n]

    # -- HEAD and metadata --

    def open(self):
        _, payload = self.read_envelope("HEAD", b"SHHD", {1})
        c = Cursor(payload, "HEAD")
        self.commit = c.u64()
        meta_key = c.lpstr(MAX_HEAD_KEY)
        c.end()
        m = re.fullmatch(r"meta/(\d+)-([0-9a-f]{16})", meta_key)
        if not m or int(m.group(1)) != self.commit:
            raise FormatError(f"HEAD: metadata key '{meta_key}' does not "
                              f"name commit {self.commit}")
        _, payload = self.read_envelope(meta_key, b"SHMD", {1})
        where = f"metadata '{meta_key}'"
        try:
            meta = json.loads(bytes(payload).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FormatError(f"{where}: not UTF-8 JSON: {e}") from None
        if not isinstance(meta, dict):
            raise FormatError(f"{where}: not a JSON object")
        if meta.get("format") != "shoal":
            raise FormatError(f"{where}: format is {meta.get('format')!r}")
        if meta.get("commit") != self.commit:
            raise FormatError(f"{where}: commit {meta.get('commit')} != "
                              f"HEAD's {self.commit}")
        if not isinstance(meta.get("tensors"), list):
            raise FormatError(f"{where}: no tensors array")
        for i, obj in enumerate(meta["tensors"]):
            if not isinstance(obj, dict):
                raise FormatError(f"{where}: tensors[{i}] is not an object")
            t = Tensor(obj, f"{where}: tensors[{i}]")
            if t.id in self.by_id or t.name in self.by_name:
                raise FormatError(f"{where}: duplicate tensor {t.name} "
                                  f"(id {t.id})")
            self.tensors.append(t)
            self.by_id[t.id] = t
            self.by_name[t.name] = t
        next_id = meta.get("next_tensor_id")
        if not isinstance(next_id, int) or any(t.id >= next_id
                                               for t in self.tensors):
            raise FormatError(f"{where}: next_tensor_id {next_id} is not "
                              "above every tensor id")
        self.check_hidden_links()
        for t in self.tensors:
            self.read_index(t)

    def check_hidden_links(self):
        """Every data tensor has its two hidden tensors, linked both ways."""
        for t in self.tensors:
            o = t.obj
            hidden_name = (t.name.startswith("_shape/") or
                           t.name.startswith("_info/"))
            if o["hidden"] != hidden_name:
                raise FormatError(f"{t.where}: hidden={o['hidden']} does not "
                                  "match its name")
            if o["hidden"]:
                parent = self.by_id.get(o["parent"])
                if (parent is None or o["shape_tensor"] != -1 or
                        o["info_tensor"] != -1):
                    raise FormatError(f"{t.where}: bad parent/links")
                continue
            if o["parent"] != -1:
                raise FormatError(f"{t.where}: a data tensor with a parent")
            for kind, key in (("_shape/", "shape_tensor"),
                              ("_info/", "info_tensor")):
                h = self.by_id.get(o[key])
                if (h is None or h.name != kind + t.name or
                        h.obj["parent"] != t.id):
                    raise FormatError(f"{t.where}: {key} {o[key]} is not "
                                      f"'{kind}{t.name}'")
                if h.length != t.length:
                    raise FormatError(f"{h.where}: length {h.length} != "
                                      f"{t.name}'s {t.length}")
                want_dtype = "uint32" if kind == "_shape/" else "uint8"
                if (h.obj["dtype"] != want_dtype or h.rank not in (1, -1) or
                        h.chunk_codec != "lz4"):
                    raise FormatError(f"{h.where}: not {want_dtype}, rank 1, "
                                      "lz4 chunks")
                if kind == "_info/" and h.obj["htype"] != "json":
                    raise FormatError(f"{h.where}: htype is not json")

    # -- chunk index --

    def read_index(self, t):
        key = t.obj["index"]
        if key == "":
            if t.length != 0:
                raise FormatError(f"{t.where}: {t.length} samples but no "
                                  "index")
            return
        m = re.fullmatch(r"index/(\d+)/(\d+)-([0-9a-f]{16})", key)
        if not m or int(m.group(1)) != t.id or int(m.group(2)) > self.commit:
            raise FormatError(f"{t.where}: index key '{key}' does not belong "
                              f"to tensor id {t.id} at commit <= "
                              f"{self.commit}")
        if t.rank < 0:
            raise FormatError(f"{t.where}: has an index but rank -1")
        version, payload = self.read_envelope(key, b"SHIX", {1, 2})
        c = Cursor(payload, f"index '{key}'")

        def chunk_ref():
            chunk_id = c.u64()
            if chunk_id == 0:
                c.fail("chunk id 0")
            ref = {"key": f"chunks/{t.id}/{hex64(chunk_id)}"}
            return ref

        def sizes(ref):
            ref["size"] = c.varint()
            ref["header"] = c.varint()
            ref["header_sum"] = c.u64() if version >= 2 else 0
            return ref

        total = 0
        for _ in range(c.varint()):
            kind = c.u8()
            if kind == 0:
                ref = chunk_ref()
                ref["count"] = c.varint()
                if ref["count"] < 1:
                    c.fail("kind-0 entry with 0 samples")
                t.entries.append(("chunk", sizes(ref)))
                total += ref["count"]
            elif kind == 1:
                shape = [c.varint() for _ in range(t.rank)]
                tile = [c.varint() for _ in range(t.rank)]
                for s, d in zip(shape, tile):
                    if not 1 <= d <= s:
                        c.fail(f"tile shape {tile} does not fit sample shape "
                               f"{shape}")
                grid = [math.ceil(s / d) for s, d in zip(shape, tile)]
                n = c.varint()
                if n != math.prod(grid):
                    c.fail(f"{n} tiles, grid {grid} has {math.prod(grid)}")
                tiles = [sizes(chunk_ref()) for _ in range(n)]
                t.entries.append(("tiled", {"shape": shape, "tile": tile,
                                            "grid": grid, "tiles": tiles}))
                total += 1
            else:
                c.fail(f"unknown entry kind {kind}")
        c.end()
        if total != t.length:
            raise FormatError(f"index '{key}': {total} samples, metadata "
                              f"length {t.length}")

    # -- chunks --

    def read_chunk(self, t, ref):
        """[(shape, stored bytes)] of one chunk, every check done."""
        key = ref["key"]
        what = f"{t.where}: chunk '{key}'"
        if key in t.chunk_keys:
            raise FormatError(f"{what}: referenced twice")
        t.chunk_keys.add(key)
        data = self.read_key(key)
        t.stored_bytes += len(data)
        if len(data) != ref["size"]:
            raise FormatError(f"{what}: {len(data)} bytes, the index says "
                              f"{ref['size']}")
        if len(data) < MIN_HEADER or data[:4] != b"SHCK":
            raise FormatError(f"{what}: bad magic {data[:4]!r}")
        c = Cursor(data, what)
        c.take(4)
        if c.uint(2) != 1:
            c.fail("unknown chunk version")
        if c.uint(2) != 0:
            c.fail("flags are not 0")
        h = c.uint(4)
        if not MIN_HEADER <= h <= MAX_HEADER or h > len(data):
            c.fail(f"header size {h} out of range")
        if h != ref["header"]:
            c.fail(f"header size {h}, the index says {ref['header']}")
        header_sum = int.from_bytes(data[h - 8:h], "little")
        if checksum(data[:h - 8]) != header_sum:
            raise FormatError(f"{what}: header checksum mismatch")
        if ref["header_sum"] != 0 and ref["header_sum"] != header_sum:
            raise FormatError(f"{what}: header checksum differs from the "
                              "index entry's (not the chunk it means)")
        body = Cursor(data[:h - 8], what)
        body.pos = 12
        if body.u8() != t.code:
            body.fail(f"dtype code differs from the tensor's "
                      f"{t.obj['dtype']}")
        rank = body.u8()
        if rank != t.rank:
            body.fail(f"rank {rank}, the tensor's is {t.rank}")
        if body.lpstr() != t.sample_codec:
            body.fail("sample codec differs from the tensor's")
        chunk_codec = body.lpstr()
        if chunk_codec != t.chunk_codec:
            body.fail(f"chunk codec '{chunk_codec}' differs from the "
                      f"tensor's '{t.chunk_codec}'")
        block = body.varint()
        if not 1 <= block <= MAX_BLOCK:
            body.fail(f"block size {block} out of range")
        shapes = []
        for _ in range(body.varint()):
            count = body.varint()
            if count < 1:
                body.fail("shape run of 0 samples")
            dims = [body.varint() for _ in range(rank)]
            if len(shapes) + count > MAX_SAMPLES_PER_CHUNK:
                body.fail("too many samples")
            shapes.extend([dims] * count)
        stored_sizes = []
        for _ in range(body.varint()):
            count = body.varint()
            if count < 1:
                body.fail("size run of 0 samples")
            size = body.varint()
            if len(stored_sizes) + count > MAX_SAMPLES_PER_CHUNK:
                body.fail("too many samples")
            stored_sizes.extend([size] * count)
        if len(shapes) != len(stored_sizes):
            body.fail(f"{len(shapes)} shapes but {len(stored_sizes)} sizes")
        total = sum(stored_sizes)
        if total > MAX_CHUNK_DATA:
            body.fail(f"chunk data of {total} bytes")
        blocks = []
        for _ in range(body.varint()):
            blocks.append((body.varint(), body.u8(), body.u64()))
        body.end()
        if len(blocks) != math.ceil(total / block):
            raise FormatError(f"{what}: {len(blocks)} blocks for {total} "
                              f"bytes of blocks of {block}")
        if len(data) != h + sum(b[0] for b in blocks):
            raise FormatError(f"{what}: {len(data)} bytes, header and blocks "
                              f"say {h + sum(b[0] for b in blocks)}")
        out = bytearray()
        pos = h
        for b, (stored, flags, block_sum) in enumerate(blocks):
            raw = min(block, total - b * block)
            where = f"{what}: block {b}"
            payload = data[pos:pos + stored]
            pos += stored
            if checksum(payload) != block_sum:
                raise FormatError(f"{where}: block checksum mismatch")
            if flags & ~1:
                raise FormatError(f"{where}: unknown flags {flags:#x}")
            if stored > 2 * raw + 1024:
                raise FormatError(f"{where}: {stored} stored bytes for {raw}")
            if flags & 1:
                if not chunk_codec:
                    raise FormatError(f"{where}: compressed without a codec")
                out += decode_bytes(chunk_codec, payload, raw,
                                    t.dtype.itemsize, where)
            else:
                if stored != raw:
                    raise FormatError(f"{where}: raw block of {stored} bytes, "
                                      f"expected {raw}")
                out += payload
        samples = []
        offset = 0
        for shape, size in zip(shapes, stored_sizes):
            samples.append((shape, bytes(out[offset:offset + size])))
            offset += size
        return samples

    def decode_sample(self, t, shape, stored, what):
        """A Sample from one stored sample (or tile) of a chunk."""
        if t.encoded:
            return self.check_encoded(t, shape, stored, what)
        raw = math.prod(shape) * t.dtype.itemsize
        if raw > t.sample_limit():
            raise FormatError(f"{what}: {raw} raw bytes exceed the limit "
                              f"{t.sample_limit()}")
        if t.sample_codec:
            data = decode_bytes(t.sample_codec, stored, raw,
                                t.dtype.itemsize, what)
        else:
            if len(stored) != raw:
                raise FormatError(f"{what}: {len(stored)} stored bytes, shape "
                                  f"{shape} needs {raw}")
            data = stored
        return Sample(shape, array=np.frombuffer(data, t.dtype).reshape(shape))

    def check_encoded(self, t, shape, stored, what):
        codec = t.sample_codec
        if codec == "image":
            if stored.startswith(JPEG_MAGIC):
                codec = "jpeg"
            elif stored.startswith(PNG_MAGIC):
                codec = "png"
            else:
                raise FormatError(f"{what}: neither a JPEG nor a PNG file")
        if codec == "jpeg" and not stored.startswith(JPEG_MAGIC):
            raise FormatError(f"{what}: not a JPEG file")
        if codec == "png" and not stored.startswith(PNG_MAGIC):
            raise FormatError(f"{what}: not a PNG file")
        return Sample(shape, stored=stored, codec=codec)

    def samples(self, t):
        """Yields (index, Sample) for every sample of `t`, in order."""
        index = 0
        for kind, entry in t.entries:
            if kind == "chunk":
                chunk = self.read_chunk(t, entry)
                what = f"{t.where}: chunk '{entry['key']}'"
                if len(chunk) != entry["count"]:
                    raise FormatError(f"{what}: {len(chunk)} samples, the "
                                      f"index says {entry['count']}")
                for j, (shape, stored) in enumerate(chunk):
                    yield index, self.decode_sample(
                        t, shape, stored,
                        f"{what}: sample {index} (#{j} in the chunk)")
                    index += 1
            else:
                yield index, self.read_tiled(t, entry, index)
                index += 1

    def read_tiled(self, t, entry, index):
        shape, tile, grid = entry["shape"], entry["tile"], entry["grid"]
        raw = math.prod(shape) * t.dtype.itemsize
        if raw <= t.threshold:
            raise FormatError(f"{t.where}: sample {index} is tiled but its "
                              f"{raw} bytes do not exceed the threshold "
                              f"{t.threshold}")
        whole = None if t.encoded else np.zeros(shape, t.dtype)
        tiles = []
        for n, ref in enumerate(entry["tiles"]):
            # Row-major grid order: the last grid dimension varies fastest.
            g = np.unravel_index(n, grid) if grid else ()
            lo = [gd * td for gd, td in zip(g, tile)]
            hi = [min(l + td, s) for l, td, s in zip(lo, tile, shape)]
            extent = [h - l for l, h in zip(lo, hi)]
            what = (f"{t.where}: sample {index}, tile {n} "
                    f"(chunk '{ref['key']}')")
            chunk = self.read_chunk(t, ref)
            if len(chunk) != 1 or chunk[0][0] != extent:
                raise FormatError(f"{what}: holds {len(chunk)} samples of "
                                  f"shape {chunk[0][0] if chunk else None}, "
                                  f"expected one of {extent}")
            sample = self.decode_sample(t, extent, chunk[0][1], what)
            if whole is None:
                tiles.append(sample.stored)
            else:
                whole[tuple(slice(l, h) for l, h in zip(lo, hi))] = \
                    sample.array
        if whole is None:
            return Sample(shape, stored=tiles, codec=t.sample_codec)
        return Sample(shape, array=whole)


# ---- Checks across tensors and against references ---------------------------


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


class Reference:
    """One reference sample: where it is, for messages, and how to load it."""

    def __init__(self, label, encoded, load):
        self.label = label
        self.encoded = encoded  # stored bytes (.bin) rather than an array
        self.load = load


def load_references(root):
    """{tensor name: {index: Reference}} of the files under root."""
    if not os.path.isdir(root):
        raise FormatError(f"no reference folder '{root}'")
    refs = {}

    def add(tensor, index, ref):
        if index in refs.setdefault(tensor, {}):
            raise FormatError(f"reference {ref.label}: a second reference "
                              f"for sample {index} of '{tensor}'")
        refs[tensor][index] = ref

    for folder, _, files in os.walk(root):
        for name in sorted(files):
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if name.endswith(".npz"):
                archive = np.load(path, allow_pickle=False)
                for key in archive.files:
                    if not re.fullmatch(r"\d+", key):
                        raise FormatError(f"reference '{path}': member "
                                          f"'{key}' is not <index>.npy")
                    add(rel[:-len(".npz")], int(key), Reference(
                        f"'{path}' member {key}.npy", False,
                        lambda a=archive, k=key: a[k]))
                continue
            m = re.fullmatch(r"(\d+)\.(npy|bin)", name)
            if not m:
                raise FormatError(f"reference '{path}': not <tensor>.npz, "
                                  "<index>.npy or <index>.bin")
            tensor = rel.rsplit("/", 1)[0] if "/" in rel else "."
            if m.group(2) == "npy":
                load = (lambda p=path: np.load(p, allow_pickle=False))
            else:
                load = (lambda p=path: read_bytes(p))
            add(tensor, int(m.group(1)),
                Reference(f"'{path}'", m.group(2) == "bin", load))
    return refs


def compare(t, index, sample, ref):
    what = f"{t.where}: sample {index}: reference {ref.label}"
    if ref.encoded:
        want = ref.load()
        if sample.stored is None or isinstance(sample.stored, list):
            raise FormatError(f"{what}: a .bin reference for a sample that "
                              "is not stored encoded whole")
        if sample.stored != want:
            raise FormatError(f"{what}: stored bytes differ "
                              f"({len(sample.stored)} vs {len(want)} bytes)")
        return
    if sample.array is None:
        raise FormatError(f"{what}: the sample is stored encoded "
                          f"({sample.codec}); give a .bin reference")
    want = ref.load()
    got = sample.array
    if got.dtype != want.dtype:
        raise FormatError(f"{what}: dtype {got.dtype}, expected {want.dtype}")
    if got.shape != want.shape:
        raise FormatError(f"{what}: shape {list(got.shape)}, expected "
                          f"{list(want.shape)}")
    got_bytes, want_bytes = got.tobytes(), want.tobytes()
    if got_bytes != want_bytes:
        diff = np.flatnonzero(np.frombuffer(got_bytes, np.uint8) !=
                              np.frombuffer(want_bytes, np.uint8))
        element = np.unravel_index(diff[0] // got.dtype.itemsize, got.shape)
        raise FormatError(f"{what}: values differ, first at element "
                          f"{[int(e) for e in element]}: {got[element]!r} "
                          f"vs {want[element]!r}")


def check_dataset(root, expect=None):
    reader = Reader(root)
    reader.open()
    refs = load_references(expect) if expect else None
    shapes = {}  # data tensor id -> its samples' shapes, for _shape/ checks
    # Data tensors first, so that their shapes are known when their
    # _shape/ tensors are checked.
    for t in sorted(reader.tensors, key=lambda t: t.obj["hidden"]):
        raw_bytes = 0
        lo = hi = None
        mine = refs.pop(t.name, None) if refs is not None else None
        if refs is not None and mine is None and t.length > 0:
            raise FormatError(f"{t.where}: no references in '{expect}'")
        parent = reader.by_id.get(t.obj["parent"])
        for index, sample in reader.samples(t):
            what = f"{t.where}: sample {index}"
            raw_bytes += math.prod(sample.shape) * t.dtype.itemsize
            lo = list(sample.shape) if lo is None else [
                min(a, b) for a, b in zip(lo, sample.shape)]
            hi = list(sample.shape) if hi is None else [
                max(a, b) for a, b in zip(hi, sample.shape)]
            if not t.obj["hidden"]:
                shapes.setdefault(t.id, []).append(sample.shape)
            elif t.name.startswith("_shape/"):
                dims = [int(d) for d in sample.array]
                if dims != list(shapes.get(parent.id, [])[index]):
                    raise FormatError(f"{what}: dims {dims} differ from the "
                                      f"shape of {parent.name}[{index}]")
            elif sample.array.size:
                try:
                    info = json.loads(sample.array.tobytes().decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    raise FormatError(f"{what}: not UTF-8 JSON: {e}") from None
                if not isinstance(info, dict):
                    raise FormatError(f"{what}: not a JSON object")
            if mine is not None:
                ref = mine.pop(index, None)
                if ref is None:
                    raise FormatError(f"{what}: no reference in '{expect}'")
                compare(t, index, sample, ref)
        if mine:
            first = min(mine)
            raise FormatError(f"{t.where}: reference {mine[first].label} "
                              f"names sample {first} of {t.length}")
        stats = {"raw_bytes": raw_bytes, "stored_bytes": t.stored_bytes,
                 "num_chunks": len(t.chunk_keys), "min_shape": lo or [],
                 "max_shape": hi or []}
        for key, value in stats.items():
            if t.obj[key] != value:
                raise FormatError(f"{t.where}: metadata {key} "
                                  f"{t.obj[key]}, the data gives {value}")
    if refs:
        name = sorted(refs)[0]
        raise FormatError(f"references for tensor '{name}' in '{expect}', "
                          "which the dataset does not have")
    return reader


def main():
    parser = argparse.ArgumentParser(
        description="Check a shoal dataset folder against format/FORMAT.md.")
    parser.add_argument("dataset", help="dataset folder (holds HEAD)")
    parser.add_argument("--expect", metavar="DIR",
                        help="references: DIR/<tensor>/<index>.npy or .bin")
    parser.add_argument("--list", action="store_true",
                        help="print the tensors after checking")
    args = parser.parse_args()
    try:
        reader = check_dataset(args.dataset, args.expect)
    except FormatError as e:
        print(f"spec_reader: {args.dataset}: {e}", file=sys.stderr)
        return 1
    if args.list:
        for t in reader.tensors:
            o = t.obj
            codec = o["sample_compression"] or o["chunk_compression"] or "-"
            print(f"{t.name:24} {o['dtype']:8} rank {t.rank:2} "
                  f"{t.length:6} samples {len(t.chunk_keys):4} chunks "
                  f"{codec}")
    count = sum(t.length for t in reader.tensors)
    print(f"spec_reader: {args.dataset}: ok, commit {reader.commit}, "
          f"{len(reader.tensors)} tensors, {count} samples"
          + (f", all equal to '{args.expect}'" if args.expect else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
