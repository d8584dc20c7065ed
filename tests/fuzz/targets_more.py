"""Fuzz targets beyond the readers: frame stores, checkpoints, recipes (registered into TARGETS)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from mutate import mutate
from targets import Outcome, Target, register, run_case

# --- frame stores ----------------------------------------------------------------------------------


def make_store(work: Path, n: int = 6, shape=(3, 2, 8, 8)):
    """A small store made the way preprocess makes one; returns (path bytes, frames, labels)."""
    from ckdsnn_events.data.frame_store import STATUS_DONE, ProgressLog, assemble_store, encode_chunk

    rng = np.random.default_rng(3)
    frames = rng.integers(0, 9, (n, *shape)).astype(np.uint16)
    labels = np.arange(n) % 3
    log = ProgressLog(work / "seed.log")
    for i in range(n):
        log.append(i, STATUS_DONE, 10 + i, encode_chunk(frames[i]))
    config = {"timesteps": shape[0], "size": [shape[2], shape[3]], "split": "train"}
    assemble_store(work / "seed.h5", log, range(n), labels, [f"c/{i}.aedat" for i in range(n)], shape,
                   {"config": config, "fingerprint": "f", "classes": ["a", "b", "c"]})
    log.close()
    return (work / "seed.h5").read_bytes(), frames, labels


def _h5_edit(path: Path, rng: random.Random) -> None:
    """One structural edit of the kind a crash, a script or a hand made to a store."""
    import h5py

    with h5py.File(path, "r+") as f:
        edit = rng.randrange(8)
        n = f["frames"].shape[0]
        if edit == 0:
            f["labels"][rng.randrange(n)] = rng.choice([99, -1, 3, 2**40])
        elif edit == 1:
            del f[rng.choice(["frames", "labels", "checksums", "source_files"])]
        elif edit == 2:
            labels = f["labels"][:]
            del f["labels"]
            f["labels"] = labels[: rng.randrange(n)]
        elif edit == 3:
            f.attrs[rng.choice(["config", "classes", "skipped"])] = rng.choice(["{bad json", "3", "[]", '"x"', "null"])
        elif edit == 4:  # two chunks swapped
            i, j = rng.sample(range(n), 2)
            a, b = f["frames"].id.read_direct_chunk((i, 0, 0, 0, 0))[1], f["frames"].id.read_direct_chunk((j, 0, 0, 0, 0))[1]
            f["frames"].id.write_direct_chunk((i, 0, 0, 0, 0), b)
            f["frames"].id.write_direct_chunk((j, 0, 0, 0, 0), a)
        elif edit == 5:  # a chunk replaced by another valid chunk of other frames
            from ckdsnn_events.data.frame_store import encode_chunk

            other = np.full(f["frames"].shape[1:], rng.randrange(5), dtype=np.uint16)
            f["frames"].id.write_direct_chunk((rng.randrange(n), 0, 0, 0, 0), encode_chunk(other))
        elif edit == 6:
            f["checksums"][rng.randrange(n)] = rng.randrange(2**32)
        else:
            f.attrs["classes"] = '["a"]'


class StoreTarget(Target):
    name, suffix, cost = "store", ".h5", 5

    def setup(self, work: Path) -> None:
        self.data, self.frames, self.labels = make_store(work)

    def case(self, rng: random.Random, path: Path) -> Outcome:
        from ckdsnn_events.data.frame_store import FrameStoreDataset

        path.write_bytes(self.data)
        if rng.random() < 0.5:
            _h5_edit(path, rng)
        else:
            path.write_bytes(mutate(self.data, rng))

        def load(p):
            ds = FrameStoreDataset(p)
            return ds, [ds[i] for i in range(len(ds))]

        def oracle(result):
            ds, items = result
            if len(items) != len(self.frames):
                return f"{len(items)} samples loaded of {len(self.frames)}"
            for i, (x, y) in enumerate(items):
                if y != self.labels[i] or not np.array_equal(x.numpy(), self.frames[i]):
                    return f"sample {i} loaded with other frames or label"
            return ""

        return run_case(load, path, oracle)


register(StoreTarget)


# --- checkpoints -----------------------------------------------------------------------------------

JUNK = (None, -1, 0, 2**62, 1e308, float("nan"), "x", "", [], [1, "a"], {}, {"a": 1}, True)


def checkpoint_payload() -> dict:
    from ckdsnn_events.models import build_teacher

    model = build_teacher("resnet20", num_classes=3, in_channels=2, width=4)
    return {"kind": "teacher", "arch": "resnet20", "width": 4, "num_classes": 3, "in_channels": 2, "neuron": None,
            "dataset": {"name": "d", "classes": ["a", "b", "c"], "input_size": [8, 8], "timesteps": 2},
            "epoch": 1, "best_val": 0.5, "best_epoch": 1, "metrics": {"epoch": 1}, "model": model.state_dict(),
            "config": {"data": {}, "model": {}, "optim": {}}}


def open_checkpoint(path: Path):
    """What evaluate does with a checkpoint before the data: load, check, build the model it names."""
    from ckdsnn_events.checkpoints import build_for_state, load_checkpoint
    from ckdsnn_events.models import build_teacher

    payload = load_checkpoint(path)
    if payload["arch"] != "resnet20":  # another architecture name: the registry's own error
        return payload
    build_for_state(lambda: build_teacher("resnet20", num_classes=payload["num_classes"],
                                          in_channels=payload["in_channels"], width=payload["width"]),
                    payload["model"], path, "--checkpoint")
    return payload


class CheckpointTarget(Target):
    name, suffix, cost = "checkpoint", ".pt", 5

    def setup(self, work: Path) -> None:
        from ckdsnn_events.checkpoints import content_hash, save_checkpoint

        self.payload = checkpoint_payload()
        save_checkpoint(work / "seed.pt", self.payload)
        self.data = (work / "seed.pt").read_bytes()
        self.hash = content_hash({"format": "ckdsnn-events/1", **self.payload})

    def case(self, rng: random.Random, path: Path) -> Outcome:
        from ckdsnn_events.checkpoints import content_hash, save_checkpoint

        edited = rng.random() < 0.5
        if edited:  # a field edited and the file re-saved with a valid hash: the schema must hold
            payload = dict(self.payload)
            key = rng.choice(list(payload))
            if key == "model" and rng.random() < 0.5:
                model = dict(payload["model"])
                name = rng.choice(list(model))
                model[name] = rng.choice([model[name] * float("nan"), model[name].reshape(-1)[:1], model[name].double(), "w"])
                payload["model"] = model
            elif key == "dataset" and rng.random() < 0.5:
                payload["dataset"] = {**payload["dataset"], rng.choice(["classes", "input_size", "timesteps"]): rng.choice(JUNK)}
            else:
                payload[key] = rng.choice(JUNK)
            save_checkpoint(path, payload)
        else:
            path.write_bytes(mutate(self.data, rng))

        def oracle(payload):
            if not edited and content_hash(payload) != self.hash:
                return "a damaged file loaded with other content"
            return ""

        return run_case(open_checkpoint, path, oracle)


# --- recipes ---------------------------------------------------------------------------------------


class RecipeTarget(Target):
    name, suffix, cost = "recipe", ".toml", 5

    def setup(self, work: Path) -> None:
        from ckdsnn_events.pipelines.train import recipe_path

        self.text = recipe_path("digits-dvs").read_text()
        self.lines = self.text.splitlines()

    def case(self, rng: random.Random, path: Path) -> Outcome:
        from ckdsnn_events.pipelines.train import resolve_config

        if rng.random() < 0.5:  # one value replaced by a wrong one
            lines = list(self.lines)
            keyed = [i for i, line in enumerate(lines) if "=" in line and not line.startswith("#")]
            i = rng.choice(keyed)
            key = lines[i].split("=")[0].strip()
            value = rng.choice(["-1", "0", "1e308", "nan", "inf", '"x"', "[]", "{}", "true", "99999999999999999999",
                                "-0.5", '""', "1.5"])
            lines[i] = f"{key} = {value}"
            path.write_text("\n".join(lines) + "\n")
        else:
            path.write_bytes(mutate(self.text.encode(), rng))

        def oracle(config):
            try:
                config.validate()
                config.data.validate()
            except Exception as err:  # noqa: BLE001 - a resolved config must validate
                return f"resolved config fails validation: {err}"
            o = config.optim
            if not (o.epochs >= 1 and o.lr > 0 and o.lr < float("inf") and config.data.batch_size >= 1):
                return f"out-of-range optim/data values accepted: {o}"
            return ""

        return run_case(lambda p: resolve_config("digits-dvs", recipe=str(p)), path, oracle)


register(CheckpointTarget)
register(RecipeTarget)
