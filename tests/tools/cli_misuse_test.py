#!/usr/bin/python3
"""The command line under misuse, table-driven (issue 18, part 4).

Every command's options are read from its own --help, so a new flag is
tried without touching this file. Each option that takes a value gets
missing, empty, negative, non-numeric, huge and malformed values; each
command also gets non-existent, unreadable-as-dataset and unwritable paths.
The answer must be an exit status of 0 (the value was fine), 1 (failure) or
2 (usage), never a signal or a hang; a refusal says so on stderr in a line
or two, with no stack, and a usage error (2) names the flag. Valid values
are not the point, so values that would make a run long (in-range huge
counts) are not tried.

Usage: cli_misuse_test.py PATH/TO/shoal
"""
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

SHOAL = os.path.abspath(sys.argv[1])
WORK = tempfile.mkdtemp(prefix="shoal-misuse.")
failures = []

# Values every option with an argument is given. "" is an empty argument;
# None leaves the argument out (the flag last on the line).
BAD_VALUES = [None, "", "-1", "abc", "1e400", "18446744073709551616",
              "0x10", "1,2,,3", "\x01"]


calls = [0]


def run(args, timeout=60):
    # Each call in a folder of its own: a misuse that writes a file (a
    # profile named "abc") must not feed the next (--config abc).
    calls[0] += 1
    cwd = f"{WORK}/calls/{calls[0]}"
    os.makedirs(cwd)
    for name in ("ds", "images.idx", "a.npy", "folder", "videos",
                 "job.yaml", "a-file"):
        if os.path.exists(f"{WORK}/{name}"):
            os.symlink(f"{WORK}/{name}", f"{cwd}/{name}")
    try:
        p = subprocess.run([SHOAL] + args, cwd=cwd, capture_output=True,
                           text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "", "timed out"
    return p.returncode, p.stdout, p.stderr


def check(args, want=(0, 1, 2), flag=None, name_in_error=None):
    code, out, err = run(args)
    what = "shoal " + " ".join(repr(a) if a == "" or " " in a else a
                               for a in args)
    if code is None:
        failures.append(f"{what}: hung (no exit in 60 s)")
        return None
    if code < 0 or code not in want:
        failures.append(f"{what}: exit {code}; stderr: {err[-400:]}")
        return code
    if code != 0:
        lines = [l for l in err.splitlines() if l.strip()]
        if not lines:
            failures.append(f"{what}: exit {code} with nothing on stderr")
        elif len(lines) > 3 and not any("Run with --help" in l
                                        for l in lines):
            failures.append(f"{what}: {len(lines)} lines on stderr: "
                            f"{err[:400]}")
        for bad in ("terminate called", "Assertion", "Segmentation",
                    "AddressSanitizer", "runtime error", "what():"):
            if bad in err:
                failures.append(f"{what}: '{bad}' on stderr: {err[:400]}")
        if code == 2 and flag is not None and flag not in err:
            failures.append(f"{what}: usage error does not name {flag}: "
                            f"{err[:300]}")
        if name_in_error is not None and name_in_error not in err:
            failures.append(f"{what}: error does not name "
                            f"'{name_in_error}': {err[:300]}")
    return code


def options_of(command):
    """(flag, takes_value) of a command, from its --help."""
    code, out, _ = run(command + ["--help"])
    assert code == 0, command
    flags = []
    section = None
    for line in out.splitlines():
        if re.match(r"^\S.*:$", line):
            section = line
            continue
        if section != "Options:":
            continue
        m = re.match(r"^  (?:-\w,)?(--[a-z0-9-]+)(?: (\S+))?", line)
        if not m or m.group(1) in ("--help", "--version"):
            continue
        token = m.group(2) or ""
        takes = token != "" and not token.startswith("Excludes") and \
            not token.startswith("Needs")
        flags.append((m.group(1), takes))
    return flags


def setup():
    """Small inputs and a dataset for the commands to work on."""
    import numpy as np
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (20, 8, 8), dtype=np.uint8)
    with open(f"{WORK}/images.idx", "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, 3) + struct.pack(">III", 20, 8, 8))
        f.write(images.tobytes())
    np.save(f"{WORK}/a.npy", images)
    os.makedirs(f"{WORK}/folder/cat")
    os.makedirs(f"{WORK}/videos/clips")
    data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "data")
    shutil.copy(f"{data}/pngsuite/basn2c08.png", f"{WORK}/folder/cat/a.png")
    shutil.copy(f"{data}/video/bt709_full_range.mp4",
                f"{WORK}/videos/clips/a.mp4")
    code, _, err = run(["ingest", "idx", f"{WORK}/images.idx",
                        f"{WORK}/ds"])
    assert code == 0, err
    with open(f"{WORK}/job.yaml", "w") as f:
        f.write("loader:\n  batch_size: 4\n")
    with open(f"{WORK}/a-file", "w") as f:
        f.write("not a dataset\n")


# Each command with positionals that work; {new} is a fresh path.
COMMANDS = [
    (["ingest", "idx"], ["images.idx", "{new}"]),
    (["ingest", "npy"], ["a.npy", "{new}"]),
    (["ingest", "images"], ["folder", "{new}"]),
    (["ingest", "videos"], ["videos", "{new}"]),
    (["info"], ["ds"]),
    (["get"], ["ds", "images", "0", "-o", "{new}.npy"]),
    (["verify"], ["ds"]),
    (["bench", "loader"], ["ds"]),
    (["bench", "read"], ["ds"]),
    (["copy"], ["ds", "{new}"]),
    (["config", "check"], ["job.yaml"]),
    (["config", "keys"], []),
]


def main():
    setup()
    fresh = [0]

    def fill(positionals):
        fresh[0] += 1
        return [p.replace("{new}", f"new{fresh[0]}") for p in positionals]

    tried = 0
    for command, positionals in COMMANDS:
        flags = options_of(command)
        assert flags, command
        for flag, takes in flags:
            if not takes:
                continue
            for value in BAD_VALUES:
                # A flag that starts a file (a profile, an output) is given
                # one in the work folder at most.
                args = command + fill(positionals) + [flag]
                if value is not None:
                    args.append(value)
                check(args, flag=flag)
                tried += 1
        # Paths: missing, a file where a dataset goes, unwritable, and a
        # dataset path inside its source.
        for i, p in enumerate(positionals):
            if p in ("ds", "images.idx", "a.npy", "folder", "videos",
                     "job.yaml"):
                for bad in ("missing/nowhere", "a-file", "/proc/shoal-x"):
                    args = command + fill(positionals)
                    args[len(command) + i] = bad
                    check(args, want=(1, 2), name_in_error=bad)
                    tried += 1
            if p == "{new}":
                for bad in ("/proc/shoal-x/ds", "a-file", "ds/inside"):
                    args = command + fill(positionals)
                    args[len(command) + i] = bad
                    if args[-1].endswith(".npy") and bad != "a-file":
                        continue
                    code = check(args, want=(1, 2))
                    tried += 1
    print(f"cli_misuse: {tried} misuses of {len(COMMANDS)} commands, "
          f"{len(failures)} wrong answers")
    for f in failures:
        print("FAIL:", f, file=sys.stderr)
    shutil.rmtree(WORK, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
