"""tonic's datasets through preprocess: frames equal tonic's ToFrame on tonic's own reader's events,
labels equal tonic's targets, splits follow the protocol; offline-first errors."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import tonic
import tonic.transforms as tt
from tonic_layouts import T_DIVISOR, WRITERS, write_nmnist

from ckdsnn_events.data.event_datasets import DEFAULT_COMPRESSION
from ckdsnn_events.data.tonic_datasets import find_tonic_dataset, tonic_spec
from ckdsnn_events.events.transforms import ToCountFrames
from ckdsnn_events.pipelines.preprocess import PreprocessConfig, run_preprocess
from conftest import REAL_FIXTURES

T = T_DIVISOR
SIZES = {"nmnist": (34, 34), "ncaltech101": (48, 48), "dvsgesture": (32, 32), "asldvs": (45, 60), "pokerdvs": (35, 35)}


def tonic_reference(name, save_to, monkeypatch, transform=None):
    """tonic's own dataset objects over our small files: {relative path: (events, target)} per part.

    tonic's existence check wants the archive and a full release; it is switched off (never its reader).
    """
    spec = tonic_spec(name)
    cls = getattr(tonic.datasets, spec.tonic_class)
    monkeypatch.setattr(cls, "_check_exists", lambda self: True)
    monkeypatch.setattr(cls, "download", lambda self: pytest.fail("tonic tried to download"))
    location = save_to / spec.tonic_class
    out = {}
    for part in spec.parts:
        kwargs = {"train": part.split == "train"} if spec.has_official_split else {}
        ds = cls(save_to=str(save_to), transform=transform, **kwargs)
        if name == "pokerdvs":  # tonic keeps arrays, not paths: walk as its __init__ does
            paths = []
            for path, _dirs, files in os.walk(location / part.folder):
                paths += [os.path.join(path, f) for f in sorted(files) if f.endswith("npy")]
        else:
            paths = ds.data
        for i, path in enumerate(paths):
            rel = os.path.relpath(path, location).replace(os.sep, "/")
            out[rel] = ds[i] + (part.split,)
    return out


def tonic_frames(events, sensor_size, size, timesteps):
    height, width = size
    transform = tt.Compose([tt.Downsample(spatial_factor=(width / sensor_size[0], height / sensor_size[1])),
                            tt.ToFrame(sensor_size=(width, height, 2), n_event_bins=timesteps)])
    return transform(events.copy())


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """Each dataset written once, and preprocessed once with its default protocol."""
    made = {}
    for name, writer in WRITERS.items():
        save_to = tmp_path_factory.mktemp(name)
        kwargs = {"real_sample": REAL_FIXTURES / "tonic_sample_nmnist.bin"} if name == "nmnist" and (
            REAL_FIXTURES / "tonic_sample_nmnist.bin").is_file() else {}
        writer(save_to, **kwargs)
        out = tmp_path_factory.mktemp(f"{name}-frames")
        height, width = SIZES[name]
        run_preprocess(PreprocessConfig(dataset=name, root=str(save_to), out=str(out), timesteps=T,
                                        size=(width, height), workers=0), progress=False)
        made[name] = (save_to, out)
    return made


def read_store(path):
    with h5py.File(path, "r") as f:
        return (f["frames"][:], f["labels"][:], [s.decode() if isinstance(s, bytes) else s for s in f["source_files"][:]],
                dict(f.attrs))


@pytest.mark.parametrize("name", list(WRITERS))
def test_store_equals_tonic_toframe_and_labels(name, layouts, monkeypatch):
    save_to, out = layouts[name]
    spec = tonic_spec(name)
    reference = tonic_reference(name, save_to, monkeypatch)
    classes = sorted({str(t) for t, in [(v[1],) for v in reference.values()]}) if name == "ncaltech101" else None
    seen = set()
    for split in ("train", "test"):
        if not (out / f"{split}.h5").exists():
            continue
        frames, labels, files, attrs = read_store(out / f"{split}.h5")
        assert attrs["split_protocol"] == ("official" if spec.has_official_split else "ratio:0.9")
        assert attrs["compression"] == DEFAULT_COMPRESSION
        for j, rel in enumerate(files):
            events, target, tonic_split = reference[rel]
            expected_label = classes.index(target) if classes else int(target)
            assert labels[j] == expected_label, rel
            np.testing.assert_array_equal(frames[j], tonic_frames(events, spec.sensor_size, SIZES[name], T), err_msg=rel)
            if spec.has_official_split:
                assert tonic_split == split, rel
            seen.add(rel)
    assert seen == set(reference)  # every file tonic lists is in one store, once


def test_real_nmnist_sample_is_in_the_store(layouts, monkeypatch):
    sample = REAL_FIXTURES / "tonic_sample_nmnist.bin"
    if not sample.is_file():
        pytest.skip("real N-MNIST sample not available")
    frames, labels, files, _ = read_store(layouts["nmnist"][1] / "train.h5")
    j = files.index("Train/3/00000.bin")
    events = tonic.io.read_mnist_file(str(sample), dtype=tonic.datasets.NMNIST.dtype)
    assert len(events) == 4325
    np.testing.assert_array_equal(frames[j], tonic_frames(events, (34, 34, 2), (34, 34), T))
    assert labels[j] == 3


@pytest.mark.parametrize("name", ["nmnist", "asldvs", "ncaltech101"])
def test_tonic_compose_with_our_transform_equals_the_store(name, layouts, monkeypatch):
    save_to, out = layouts[name]
    spec = tonic_spec(name)
    transform = tonic.transforms.Compose([ToCountFrames(sensor_size=spec.sensor_size, size=SIZES[name], timesteps=T)])
    reference = tonic_reference(name, save_to, monkeypatch, transform=transform)
    frames, _, files, _ = read_store(out / "train.h5")
    for j, rel in enumerate(files):
        np.testing.assert_array_equal(frames[j], reference[rel][0], err_msg=rel)


def test_ratio_split_takes_the_first_files_of_each_class(layouts):
    save_to, out = layouts["ncaltech101"]
    _, _, train_files, _ = read_store(out / "train.h5")
    _, _, test_files, _ = read_store(out / "test.h5")
    for cls in ("Faces_easy", "accordion", "airplanes"):  # 3 files per class: floor(2.7) = 2 train
        assert [f for f in train_files if f"/{cls}/" in f] == [f"Caltech101/{cls}/image_000{i}.bin" for i in (1, 2)]
        assert [f for f in test_files if f"/{cls}/" in f] == [f"Caltech101/{cls}/image_0003.bin"]


def test_listing_is_by_label_then_lexicographic(tmp_path):
    write_nmnist(tmp_path, per_class=12)
    folder = find_tonic_dataset(tmp_path, "nmnist")
    rels = [r.relpath for r in folder.recordings]
    labels = [r.label for r in folder.recordings]
    assert labels == sorted(labels)
    assert rels == sorted(rels, key=lambda r: (int(r.split("/")[1]), r))
    assert folder.sensor_size == (34, 34, 2) and len(folder.classes) == 10


def test_random_protocol_is_seeded_and_recorded(layouts, tmp_path):
    save_to, _ = layouts["asldvs"]
    stores = []
    for seed, out in ((0, tmp_path / "a"), (0, tmp_path / "b"), (1, tmp_path / "c")):
        run_preprocess(PreprocessConfig(dataset="asldvs", root=str(save_to), out=str(out), timesteps=T, size=60,
                                        workers=0, split_protocol=f"random:0.5:{seed}"), progress=False)
        stores.append(read_store(out / "train.h5"))
    assert stores[0][2] == stores[1][2] and stores[0][2] != stores[2][2]
    assert stores[0][3]["split_protocol"] == "random:0.5:0"
    assert stores[0][0].shape[-2:] == (45, 60)  # --size 60 on the 240x180 sensor keeps the aspect


def test_trains_like_cifar10dvs_and_the_run_records_the_protocol(tmp_path):
    import tomllib

    from conftest import TINY_TRAINING

    from ckdsnn_events.pipelines.train import resolve_config, run_train_teacher

    write_nmnist(tmp_path / "raw")
    frames = tmp_path / "frames"
    run_preprocess(PreprocessConfig(dataset="nmnist", root=str(tmp_path / "raw"), out=str(frames), timesteps=3,
                                    size=16, workers=0), progress=False)
    options = {**TINY_TRAINING, "data.root": str(frames), "runs_root": str(tmp_path / "runs"), "data.val_fraction": 0.5}
    result = run_train_teacher(resolve_config("nmnist", options=options), progress=False, run_dir=tmp_path / "run")
    recorded = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert recorded["data"]["split_protocol"] == "official"
    assert result is not None and (tmp_path / "run" / "best.pt").is_file()
