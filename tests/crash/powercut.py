#!/usr/bin/env python3
"""tests/crash/powercut.py — cut the power after a kill -9 (tests/crash/powercut.c).

    powercut.py --dir STATE --log UNDO --seed N

For each file of STATE that tests/crash/powercut.c logged, a power loss may
have kept or lost what was written to it since its last sync: a coin (seeded)
decides, file by file.  A lost file gets its writes undone, last first, and is
cut back to its synced size, or removed if it did not exist at its last sync.
Then the undo logs and SQLite's -shm files (rebuilt from the WAL) go.
Prints one "# ..." line saying what was lost.
"""
import argparse
import os
import random
import struct
import sys

ABSENT = 2**64 - 1


def read_log(path):
    """(synced size, [(offset, old bytes)]) of one undo log; a record cut short is dropped."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 9 or data[0:1] != b"S":
        return None, []
    size = struct.unpack_from("<Q", data, 1)[0]
    pos, records = 9, []
    while pos + 17 <= len(data) and data[pos:pos + 1] == b"W":
        off, n = struct.unpack_from("<QQ", data, pos + 1)
        if pos + 17 + n > len(data):
            break
        records.append((off, data[pos + 17:pos + 17 + n]))
        pos += 17 + n
    return size, records


def undo(path, size, records):
    if size == ABSENT:
        if os.path.exists(path):
            os.unlink(path)
        return
    if not os.path.exists(path):
        return   # removed since: directory operations count as durable
    with open(path, "r+b") as f:
        for off, old in reversed(records):
            f.seek(off)
            f.write(old)
        f.truncate(size)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--seed", type=int, required=True)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    lost, kept = [], []
    for name in sorted(os.listdir(a.log)):
        if not name.endswith(".undo"):
            continue
        logp = os.path.join(a.log, name)
        target = os.path.join(a.dir, name[:-len(".undo")])
        size, records = read_log(logp)
        if size is not None and (records or size == ABSENT):   # something unsynced
            if rng.random() < 0.5:
                undo(target, size, records)
                lost.append("%s (%d writes)" % (name[:-5], len(records)))
            else:
                kept.append(name[:-5])
        os.unlink(logp)
    for name in os.listdir(a.dir):
        if name.endswith("-shm"):
            os.unlink(os.path.join(a.dir, name))
    print("# power cut: unsynced writes lost in %s; kept in %s"
          % (", ".join(lost) or "none", ", ".join(kept) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
