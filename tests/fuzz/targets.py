"""Fuzz targets: a seed input per target, seeded mutants of it, the code under test, an oracle.

Every case ends in one of:

- ``clean``: a UserError whose message names the file;
- ``ok``: a success whose result passes the oracle (events on the sensor, non-decreasing t,
  EVENT_DTYPE; for inputs whose meaning is known, exactly the expected content);
- ``unnamed``: a UserError that does not name the file;
- ``traceback``: any other exception;
- ``wrong``: a success whose result fails the oracle.

The last three are failures. Targets build their seeds in a work folder once (``setup``).
"""

from __future__ import annotations

import io
import json
import os
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ckdsnn_events.errors import UserError
from ckdsnn_events.events.types import EVENT_DTYPE, make_events
from mutate import mutate

REAL = Path(os.environ.get("CKDSNN_REAL_FIXTURES", Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real"))
FAILURES = ("unnamed", "traceback", "wrong")


@dataclass
class Outcome:
    kind: str
    detail: str = ""


def events_problem(events, sensor_size) -> str:
    """Why ``events`` is not a valid recording of a ``sensor_size`` sensor ('' if it is)."""
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
        return f"not a 1-D EVENT_DTYPE array: {type(events).__name__} {getattr(events, 'dtype', None)}"
    if len(events) == 0:
        return "no events"
    if int(events["x"].max()) >= sensor_size[0] or int(events["y"].max()) >= sensor_size[1]:
        return f"coordinates off the {sensor_size[:2]} sensor"
    if len(events) > 1 and (np.diff(events["t"].astype(np.float64)) < 0).any() or (events["t"][1:] < events["t"][:-1]).any():
        return "timestamps decrease"
    return ""


def run_case(call, path: Path, oracle) -> Outcome:
    """``call(path)`` classified as above; ``oracle(result)`` returns '' or what is wrong."""
    try:
        result = call(path)
    except UserError as err:
        return Outcome("clean") if str(path) in str(err) else Outcome("unnamed", str(err)[:300])
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # noqa: B036 - a PanicException is what we look for
        return Outcome("traceback", f"{type(err).__name__}: {str(err)[:300]}")
    problem = oracle(result)
    return Outcome("wrong", problem) if problem else Outcome("ok")


class Target:
    name = ""
    suffix = ""
    cost = 1  # make fuzz runs cases // cost of this target (the slow ones run fewer)

    def setup(self, work: Path) -> None:
        raise NotImplementedError

    def case(self, rng: random.Random, path: Path) -> Outcome:
        """Write one mutant to ``path`` and run it."""
        raise NotImplementedError


# --- .aedat (AER-DAT 2.0) --------------------------------------------------------------------------


class Aedat2Target(Target):
    name, suffix = "aedat", ".aedat"

    def setup(self, work: Path) -> None:
        from ckdsnn_events.events.aedat2 import _header_end, read_aedat2, write_aedat2
        from conftest import random_events

        write_aedat2(work / "seed.aedat", random_events(300, seed=1), comment="fuzz seed")
        seeds = [(work / "seed.aedat").read_bytes()]
        real = REAL / "neal_walking.aedat"
        if real.is_file():  # jAER's own header (chip preferences as XML), 500 of its records
            data = real.read_bytes()
            seeds.append(data[: _header_end(data, "real") + 8 * 500])
        self.seeds = []
        for i, data in enumerate(seeds):
            (work / "s.aedat").write_bytes(data)
            self.seeds.append((data, _header_end(data, "seed"), read_aedat2(work / "s.aedat")))

    def case(self, rng: random.Random, path: Path) -> Outcome:
        from ckdsnn_events.events.aedat2 import read_aedat2
        from ckdsnn_events.events.types import DVS128_SENSOR_SIZE

        data, header_end, expected = rng.choice(self.seeds)
        header_only = rng.random() < 0.5
        # header-only edits leave every record intact: a success must return all of them
        hi = header_end if header_only else (header_end + 16 if rng.random() < 0.5 else len(data))
        path.write_bytes(mutate(data, rng, 0, hi))

        def oracle(events):
            problem = events_problem(events, DVS128_SENSOR_SIZE)
            if not problem and header_only and not np.array_equal(events, expected):
                problem = f"{len(events)} events read, the records hold {len(expected)} (header-only edit)"
            return problem

        return run_case(read_aedat2, path, oracle)


# --- .aedat4 ---------------------------------------------------------------------------------------


class Aedat4Target(Target):
    name, suffix = "aedat4", ".aedat4"
    sensor_size = (320, 240, 2)

    def setup(self, work: Path) -> None:
        real = REAL / "tonic_sample.aedat4"
        if not real.is_file():
            raise FileNotFoundError(f"the .aedat4 fuzz seed {real} is not available")
        self.data = real.read_bytes()

    def case(self, rng: random.Random, path: Path) -> Outcome:
        from ckdsnn_events.events.aedat4 import read_aedat4

        # half the mutants hit the header and first packets, where the decoder parses structure
        hi = 4096 if rng.random() < 0.5 else len(self.data)
        path.write_bytes(mutate(self.data, rng, 0, hi))
        return run_case(lambda p: read_aedat4(p, self.sensor_size), path,
                        lambda events: events_problem(events, self.sensor_size))


# --- .npz (SpikingJelly) ---------------------------------------------------------------------------


def _npy_bytes(array: np.ndarray, shape_override: str | None = None) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    data = buffer.getvalue()
    if shape_override is not None:  # a header that lies about the shape, padding kept
        header_len = int.from_bytes(data[8:10], "little")
        header = data[10 : 10 + header_len].decode("latin1")
        start, end = header.index("'shape': (") + len("'shape': "), header.index("), ") + 1
        new = (header[:start] + shape_override + header[end:]).rstrip("\n ")
        new = new + " " * (header_len - 1 - len(new)) + "\n" if len(new) < header_len else new + "\n"
        data = data[:8] + len(new).to_bytes(2, "little") + new.encode("latin1") + data[10 + header_len :]
    return data


class NpzTarget(Target):
    name, suffix = "npz", ".npz"
    sensor_size = (128, 128, 2)

    def setup(self, work: Path) -> None:
        from conftest import random_events

        events = random_events(200, seed=2)
        self.arrays = {k: events[k].astype(np.int64) for k in ("t", "x", "y", "p")}
        seeds = []
        for compress in (False, True):
            buffer = io.BytesIO()
            (np.savez_compressed if compress else np.savez)(buffer, **self.arrays)
            seeds.append(buffer.getvalue())
        self.seeds = seeds

    def _semantic(self, rng: random.Random) -> bytes:
        """A well-formed archive whose arrays are wrong in one way a converter or user gets wrong."""
        arrays = {k: v.copy() for k, v in self.arrays.items()}
        field = rng.choice(list(arrays))
        overrides: dict[str, str] = {}
        edit = rng.randrange(10)
        if edit == 0:  # another dtype
            kind = rng.choice(["U5", "S5", "M8[s]", "c16", "f2", "f4", "f8", "u1", "i1", "u8", "?", "O"])
            arrays[field] = arrays[field].astype(kind) if kind != "O" else arrays[field].astype(object)
        elif edit == 1:  # a structured array
            arrays[field] = np.zeros(len(arrays[field]), dtype=[("a", "<i8"), ("b", "<f4")])
        elif edit == 2:  # values past the field's range or odd floats
            value = rng.choice([65536, 65541, -1, 2**63, 2**64, 2**64 + 5, float("nan"), float("inf"), 0.5, 1e30])
            dtype = np.float64 if isinstance(value, float) or value >= 2**63 or value < 0 and rng.random() < 0.5 else np.int64
            if value >= 2**64 and dtype is np.int64:
                dtype = np.float64
            arrays[field] = arrays[field].astype(dtype)
            arrays[field][rng.randrange(len(arrays[field]))] = value
        elif edit == 3:  # other shapes
            arrays[field] = rng.choice([arrays[field].reshape(2, -1), arrays[field][:5], np.asarray(3)])
        elif edit == 4:  # a header that claims another shape than its data
            overrides[field] = rng.choice(["(2199023255552,)", "(0,)", "(201,)", "(100, 2)", "(-1,)", "(1, 1, 1)"])
        elif edit == 5:  # a member missing or renamed
            arrays.pop(field)
            if rng.random() < 0.5:
                arrays["q"] = self.arrays[field]
        elif edit == 6:  # a plain .npy under the .npz name
            return _npy_bytes(self.arrays[field])
        elif edit == 7:  # floats that are whole numbers (accepted, exactly)
            arrays[field] = arrays[field].astype(np.float64)
        elif edit == 8:  # t of uint64 near the top of its range (accepted)
            arrays["t"] = arrays["t"].astype(np.uint64) + np.uint64(2**64 - 2**40)
        else:  # bool polarities (accepted)
            arrays["p"] = arrays["p"].astype(bool)
        buffer = io.BytesIO()
        method = zipfile.ZIP_DEFLATED if rng.random() < 0.5 else zipfile.ZIP_STORED
        with zipfile.ZipFile(buffer, "w", method) as archive:
            for k, v in arrays.items():
                archive.writestr(f"{k}.npy", _npy_bytes(v, overrides.get(k)))
        return buffer.getvalue()

    def case(self, rng: random.Random, path: Path) -> Outcome:
        from ckdsnn_events.events.npz import read_npz

        if rng.random() < 0.5:
            data = self._semantic(rng)
            if rng.random() < 0.2:
                data = mutate(data, rng)
        else:
            data = mutate(rng.choice(self.seeds), rng)
        path.write_bytes(data)

        def oracle(events):
            problem = events_problem(events, self.sensor_size)
            if problem:
                return problem
            # the reference: numpy's own .npy reader on each member (zipfile, like numpy, accepts junk
            # before the archive, so np.load's check of the first bytes is not used)
            with zipfile.ZipFile(path) as archive:
                for k in ("t", "x", "y", "p"):
                    with archive.open(f"{k}.npy") as member:
                        reference = np.lib.format.read_array(member, allow_pickle=False)
                    if not np.array_equal(reference.reshape(-1).astype(object), events[k].astype(object)):
                        return f"'{k}' read as other values than the file holds"
            return ""

        return run_case(lambda p: read_npz(p, self.sensor_size), path, oracle)


TARGETS = {t.name: t for t in (Aedat2Target, Aedat4Target, NpzTarget)}


def register(target_cls) -> None:
    TARGETS[target_cls.name] = target_cls


def run_target(name: str, cases: int, seed: int, work: Path, keep_failures: int = 20) -> dict:
    """Run ``cases`` mutants of target ``name``; counts per outcome and up to ``keep_failures`` failures."""
    target = TARGETS[name]()
    work.mkdir(parents=True, exist_ok=True)
    target.setup(work)
    counts = {k: 0 for k in ("clean", "ok", *FAILURES)}
    failures = []
    for i in range(cases):
        case_seed = seed * 1_000_003 + i
        path = work / f"case{target.suffix}"
        outcome = target.case(random.Random(case_seed), path)
        counts[outcome.kind] += 1
        if outcome.kind in FAILURES and len(failures) < keep_failures:
            failures.append({"case_seed": case_seed, "kind": outcome.kind, "detail": outcome.detail})
    return {"target": name, "cases": cases, "seed": seed, "counts": counts, "failures": failures}


def describe(result: dict) -> str:
    c = result["counts"]
    return (f"{result['target']}: {result['cases']} cases, {c['clean']} clean errors, {c['ok']} valid successes, "
            f"{c['traceback']} tracebacks, {c['unnamed']} errors without the file, {c['wrong']} wrong successes")


def dump(results: list[dict], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2))
