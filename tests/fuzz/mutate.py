"""Seeded byte-level mutations: the edits a bad disk, a broken copy or a hostile user make.

Every mutation is a pure function of ``(data, rng)``; a case is reproduced from its seed alone.
"""

from __future__ import annotations

import random

INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF, ord("#"), ord("\r"), ord("\n"), ord(" "))


def flip_bits(data: bytearray, rng: random.Random, lo: int, hi: int) -> None:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(lo, hi)
        data[i] ^= 1 << rng.randrange(8)


def set_bytes(data: bytearray, rng: random.Random, lo: int, hi: int) -> None:
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(lo, hi)] = rng.choice(INTERESTING) if rng.random() < 0.7 else rng.randrange(256)


def insert_bytes(data: bytearray, rng: random.Random, lo: int, hi: int) -> None:
    i = rng.randrange(lo, hi + 1)
    junk = bytes(rng.choice(INTERESTING) for _ in range(rng.randint(1, 16)))
    data[i:i] = junk


def delete_range(data: bytearray, rng: random.Random, lo: int, hi: int) -> None:
    i = rng.randrange(lo, hi)
    del data[i : i + rng.randint(1, 64)]


def truncate(data: bytearray, rng: random.Random, lo: int, hi: int) -> None:
    del data[rng.randrange(lo, hi) :]


def copy_range(data: bytearray, rng: random.Random, lo: int, hi: int) -> None:
    """Overwrite one range with another of the same file (a swapped or duplicated block)."""
    n = rng.randint(1, max(1, min(4096, (hi - lo) // 2)))
    src, dst = rng.randrange(lo, max(lo + 1, hi - n)), rng.randrange(lo, max(lo + 1, hi - n))
    data[dst : dst + n] = data[src : src + n]


MUTATORS = (flip_bits, set_bytes, insert_bytes, delete_range, truncate, copy_range)


def mutate(data: bytes, rng: random.Random, lo: int = 0, hi: int | None = None, max_ops: int = 3) -> bytes:
    """1..``max_ops`` random mutations inside ``data[lo:hi]`` (the region shifts as it is edited)."""
    out = bytearray(data)
    hi = len(out) if hi is None else hi
    for _ in range(rng.randint(1, max_ops)):
        if hi <= lo or not out:
            break
        before = len(out)
        rng.choice(MUTATORS)(out, rng, lo, min(hi, len(out)))
        hi = max(lo, hi + len(out) - before)
    return bytes(out)
