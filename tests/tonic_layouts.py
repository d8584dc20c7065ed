"""Small datasets in each tonic dataset's own on-disk format, written by the tests.

Each writer puts files under ``save_to/<tonic class>/`` exactly where tonic's class looks for
them, in the format its reader parses, and returns {relative path: events written}. Every
recording holds a multiple of ``T_DIVISOR`` events, so count bins need no rounding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

T_DIVISOR = 5


def _events(rng, n, width, height, t_scale=1):
    t = np.sort(rng.integers(0, 300_000 // t_scale, n))
    return rng.integers(0, width, n), rng.integers(0, height, n), t, rng.integers(0, 2, n)


def nmnist_bytes(x, y, t, p) -> bytes:
    """N-MNIST / N-Caltech101 40-bit events: x, y, p<<7 | t[22:16], t[15:8], t[7:0]."""
    raw = np.zeros((len(x), 5), dtype=np.uint8)
    raw[:, 0], raw[:, 1] = x, y
    raw[:, 2] = (np.asarray(p) << 7) | ((t >> 16) & 0x7F)
    raw[:, 3], raw[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    return raw.tobytes()


def write_nmnist(save_to: Path, per_class: int = 2, seed: int = 0, real_sample: Path | None = None) -> dict:
    rng = np.random.default_rng(seed)
    files = {}
    for folder in ("Train", "Test"):
        for digit in range(10):
            d = save_to / "NMNIST" / folder / str(digit)
            d.mkdir(parents=True)
            for i in range(per_class):
                name = f"{folder}/{digit}/{i:05d}.bin"
                if real_sample is not None and folder == "Train" and digit == 3 and i == 0:
                    (save_to / "NMNIST" / name).write_bytes(real_sample.read_bytes())
                else:
                    (save_to / "NMNIST" / name).write_bytes(nmnist_bytes(*_events(rng, 40 * (i + 2), 34, 34)))
                files[name] = folder
    return files


def write_ncaltech101(save_to: Path, classes=("Faces_easy", "accordion", "airplanes"), per_class: int = 3,
                      seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    files = {}
    for cls in classes:
        d = save_to / "NCALTECH101" / "Caltech101" / cls
        d.mkdir(parents=True)
        for i in range(per_class):
            x, y, t, p = _events(rng, 50 * (i + 2), 200, 150)
            name = f"Caltech101/{cls}/image_{i + 1:04d}.bin"
            (save_to / "NCALTECH101" / name).write_bytes(nmnist_bytes(x + 7, y + 5, t, p))  # tonic moves them back
            files[name] = cls
    return files


def write_dvsgesture(save_to: Path, seed: int = 2) -> dict:
    """ibmGesture{Train,Test}/user<NN>_<lighting>/<label>.npy, columns x, y, p, t (ms), as tonic's copy."""
    rng = np.random.default_rng(seed)
    files = {}
    for folder, users in (("ibmGestureTrain", ("user01_fluorescent", "user02_led")), ("ibmGestureTest", ("user24_lab",))):
        for user in users:
            d = save_to / "DVSGesture" / folder / user
            d.mkdir(parents=True)
            for label in range(11):
                x, y, t, p = _events(rng, 30 * (label % 3 + 1), 128, 128, t_scale=1000)
                np.save(d / f"{label}.npy", np.stack([x, y, p, t], axis=1).astype(np.int64))
                files[f"{folder}/{user}/{label}.npy"] = label
    return files


def write_asldvs(save_to: Path, per_class: int = 2, seed: int = 3) -> dict:
    """<letter>/<letter>_NNNN.mat with ts, x, y, pol column vectors (24 letters, no j and z)."""
    rng = np.random.default_rng(seed)
    files = {}
    for letter in "abcdefghiklmnopqrstuvwxy":
        d = save_to / "ASLDVS" / letter
        d.mkdir(parents=True)
        for i in range(per_class):
            x, y, t, p = _events(rng, 25 * (i + 1), 240, 180)
            col = lambda a: np.asarray(a, dtype=np.int32).reshape(-1, 1)
            scipy.io.savemat(d / f"{letter}_{i + 1:04d}.mat", {"ts": col(t), "x": col(x), "y": col(y), "pol": col(p)})
            files[f"{letter}/{letter}_{i + 1:04d}.mat"] = letter
    return files


def write_pokerdvs(save_to: Path, per_class: int = 2, seed: int = 4) -> dict:
    """pips_{train,test}/<cl|he|di|sp>/<name>.npy, columns t, x, y, p."""
    rng = np.random.default_rng(seed)
    files = {}
    for folder in ("pips_train", "pips_test"):
        for cls in ("cl", "he", "di", "sp"):
            d = save_to / "POKERDVS" / folder / cls
            d.mkdir(parents=True)
            for i in range(per_class):
                x, y, t, p = _events(rng, 20 * (i + 2), 35, 35)
                np.save(d / f"{cls}{i}_{folder[5:]}.npy", np.stack([t, x, y, p], axis=1).astype(np.int64))
                files[f"{folder}/{cls}/{cls}{i}_{folder[5:]}.npy"] = cls
    return files


WRITERS = {
    "nmnist": write_nmnist,
    "ncaltech101": write_ncaltech101,
    "dvsgesture": write_dvsgesture,
    "asldvs": write_asldvs,
    "pokerdvs": write_pokerdvs,
}
