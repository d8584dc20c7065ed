"""build_loaders: Batches for every dataset kind, splits, shuffling, sharding, seeding, bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from test_static import no_cifar_md5, write_fake_cifar, write_image_folder  # noqa: F401 (fixture)

from ckdsnn_events.config import from_dict, load_toml
from ckdsnn_events.data.batch import Batch, is_constant_in_time
from ckdsnn_events.data.frame_store import STATUS_DONE, ProgressLog, assemble_store, encode_chunk
from ckdsnn_events.data.loaders import (
    DATASETS,
    DataConfig,
    DatasetInfo,
    ShardSampler,
    build_loaders,
    train_val_split,
)
from ckdsnn_events.errors import UserError

RECIPES = Path(__file__).resolve().parents[1] / "pipelines" / "recipes"


def write_stores(root: Path, n_train=18, n_test=7, shape=(3, 2, 8, 8), classes=("a", "b", "c")) -> Path:
    """train.h5 / test.h5 as ckd-events preprocess writes them: labels sorted by class, random counts."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        frames = rng.integers(0, 6, (n, *shape)).astype(np.uint16)
        labels = np.sort(np.arange(n) % len(classes))
        log = ProgressLog(root / f".{split}.log")
        for i in range(n):
            log.append(i, STATUS_DONE, 1, encode_chunk(frames[i]))
        assemble_store(root / f"{split}.h5", log, range(n), labels, [f"{labels[i]}/{i}.aedat" for i in range(n)],
                       shape, {"config": {"dataset": "digits-dvs", "timesteps": shape[0], "split": split},
                               "fingerprint": "f", "classes": list(classes)})
        log.close()
    return root


@pytest.fixture
def cifar_root(tmp_path, no_cifar_md5):  # noqa: F811
    return write_fake_cifar(tmp_path / "cifar")


def ids(batch: Batch) -> list[int]:
    """The fake CIFAR index spelled by red/green pixel (0, 0) (unnormalised teacher view)."""
    pixel = (batch.teacher_inputs[:, :2, 0, 0] * 255).round().long()
    return (pixel[:, 0] + 256 * pixel[:, 1]).tolist()


def cifar_config(root, **kw) -> DataConfig:
    defaults = dict(dataset="cifar10", root=str(root), batch_size=16, workers=0, augment=False, normalize=False)
    return DataConfig(**{**defaults, **kw})


# --- configuration --------------------------------------------------------------------------------------

def test_recipes_data_sections_load_into_data_config():
    for recipe in sorted(RECIPES.glob("*.toml")):
        # a recipe is named after its dataset, or <dataset>-<variant> (e.g. cifar100-spikformer)
        dataset = recipe.stem if recipe.stem in DATASETS else recipe.stem.split("-")[0]
        data = {**load_toml(recipe).get("data", {}), "dataset": dataset}
        config = from_dict(DataConfig, data, "data")
        config.validate()
        assert config.dataset in DATASETS


@pytest.mark.parametrize("changes, fragment", [
    ({"dataset": "mnist"}, "data.dataset 'mnist' is unknown"),
    ({"root": None}, "data.root is not set"),
    ({"batch_size": 0}, "data.batch_size must be at least 1"),
    ({"workers": -1}, "data.workers"),
    ({"timesteps": 0}, "data.timesteps (-T) must be at least 1"),
    ({"encoder": "poisson"}, "data.encoder 'poisson'"),
    ({"val_fraction": 1.0}, "data.val_fraction must be in [0, 1)"),
    ({"val_fraction": -0.1}, "data.val_fraction must be in [0, 1)"),
    ({"image_size": 0}, "data.image_size must be at least 1"),
    ({"image_size": 64}, "32x32"),
    ({"dataset": "imagefolder", "image_size": 224, "resize_size": 200}, "data.resize_size (200)"),
    ({"dataset": "imagefolder", "download": True}, "cifar10/cifar100 only"),
    ({"dataset": "cifar10dvs", "encoder": "rate"}, "static images only"),
    ({"event_shift": -1}, "data.event_shift"),
    ({"rank": 2, "world_size": 2}, "data.rank"),
])
def test_invalid_settings_are_user_errors(tmp_path, changes, fragment):
    config = dataclasses.replace(DataConfig(dataset="cifar10", root=str(tmp_path)), **changes)
    with pytest.raises(UserError) as err:
        build_loaders(config)
    assert fragment in str(err.value)


# --- event frame stores ---------------------------------------------------------------------------------

def test_event_loaders_give_time_major_batches_with_summed_teacher_view(tmp_path):
    root = write_stores(tmp_path / "frames")
    train, val, test, info = build_loaders(DataConfig(dataset="digits-dvs", root=str(root), batch_size=4,
                                                      workers=0, val_fraction=1 / 3))
    assert info == DatasetInfo("digits-dvs", "events", ("a", "b", "c"), 3, 2, (8, 8), 3, "frames", 12, 6, 7)
    assert len(train) == 3 and len(val) == 2 and len(test) == 2
    for loader in (train, val, test):
        for batch in loader:
            assert isinstance(batch, Batch)
            assert batch.inputs.dtype == batch.teacher_inputs.dtype == torch.float32
            assert batch.inputs.shape[0] == 3 and batch.inputs.shape[2:] == (2, 8, 8)
            assert torch.equal(batch.teacher_inputs, batch.inputs.sum(0))
            assert batch.labels.dtype == torch.int64
    # validation: the last third of each class of train.h5, unaugmented
    val_ds = val.dataset
    assert val_ds.indices.tolist() == [4, 5, 10, 11, 16, 17] and val_ds.transform is None
    assert train.dataset.transform is not None  # flip + shift on training frames
    unaugmented = build_loaders(DataConfig(dataset="digits-dvs", root=str(root), augment=False, workers=0))[0]
    assert unaugmented.dataset.transform is None


def test_event_store_errors(tmp_path):
    with pytest.raises(UserError, match="ckd-events preprocess --dataset cifar10dvs --root RAW_RECORDINGS --out"):
        build_loaders(DataConfig(dataset="cifar10dvs", root=str(tmp_path / "none")))
    root = write_stores(tmp_path / "frames")
    (root / "test.h5").unlink()
    with pytest.raises(UserError, match="has no test.h5.*ckd-events preprocess --dataset digits-dvs"):
        build_loaders(DataConfig(dataset="digits-dvs", root=str(root)))
    root = write_stores(tmp_path / "frames2")
    with pytest.raises(UserError, match=r"holds? T=3.*preprocess .* -T 5"):
        build_loaders(DataConfig(dataset="digits-dvs", root=str(root), timesteps=5))
    with pytest.raises(UserError, match="--size 16"):
        build_loaders(DataConfig(dataset="digits-dvs", root=str(root), image_size=16))
    (root / "train.h5").write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a readable frame store"):
        build_loaders(DataConfig(dataset="digits-dvs", root=str(root)))
    info = build_loaders(DataConfig(dataset="digits-dvs", root=str(write_stores(tmp_path / "f3")), timesteps=3))[3]
    assert info.timesteps == 3


# --- static images --------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoder", ["direct", "rate", "latency"])
def test_cifar_loaders_encode_images(cifar_root, encoder):
    train, val, test, info = build_loaders(DataConfig(dataset="cifar10", root=str(cifar_root), batch_size=16,
                                                      workers=0, encoder=encoder, timesteps=3))
    assert (info.kind, info.num_classes, info.in_channels, info.input_size, info.timesteps, info.encoder) == (
        "images", 10, 3, (32, 32), 3, encoder)
    assert (info.n_train, info.n_val, info.n_test) == (100, 20, 30)
    assert info.classes[0] == "airplane"
    batch = next(iter(train))
    assert batch.inputs.shape == (3, 16, 3, 32, 32) and batch.inputs.dtype == torch.float32
    assert batch.teacher_inputs.shape == (16, 3, 32, 32) and batch.teacher_inputs.dtype == torch.float32
    assert batch.labels.shape == (16,) and batch.labels.dtype == torch.int64
    assert is_constant_in_time(batch.inputs) == (encoder == "direct")
    assert batch.teacher_inputs.min() < -0.5  # normalised: the teacher sees mean/std-scaled pixels
    if encoder != "direct":
        assert set(batch.inputs.unique().tolist()) <= {0.0, 1.0}
    else:
        assert torch.equal(batch.inputs[2], batch.teacher_inputs)


def test_normalisation_and_encoders_see_the_right_image(cifar_root):
    plain = next(iter(build_loaders(cifar_config(cifar_root, normalize=False))[2]))
    normed = next(iter(build_loaders(cifar_config(cifar_root, normalize=True, encoder="latency", timesteps=6))[2]))
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    torch.testing.assert_close(normed.teacher_inputs, (plain.teacher_inputs - mean) / std)
    # latency reads the unnormalised [0, 1] image: step = round((1 - x) * 5)
    x = plain.teacher_inputs
    assert torch.equal(normed.inputs.argmax(0).float()[x > 0], ((1 - x) * 5).round()[x > 0])


def test_cifar100_and_imagefolder_and_digits_loaders(tmp_path, no_cifar_md5):  # noqa: F811
    write_fake_cifar(tmp_path / "c100", "cifar100")
    _, _, test, info = build_loaders(DataConfig(dataset="cifar100", root=str(tmp_path / "c100"), workers=0,
                                                timesteps=2, batch_size=8))
    assert info.num_classes == 100 and next(iter(test)).inputs.shape == (2, 8, 3, 32, 32)

    write_image_folder(tmp_path / "folder")
    train, val, test, info = build_loaders(DataConfig(dataset="imagefolder", root=str(tmp_path / "folder"),
                                                      image_size=12, workers=0, batch_size=2, val_fraction=0.0))
    assert val is None and (info.n_train, info.n_test, info.classes, info.input_size) == (5, 4, ("cat", "dog"), (12, 12))
    assert next(iter(train)).inputs.shape == (4, 2, 3, 12, 12)
    assert next(iter(test)).teacher_inputs.shape == (2, 3, 12, 12)

    train, val, test, info = build_loaders(DataConfig(dataset="digits", workers=0, batch_size=32, image_size=16,
                                                      encoder="rate", timesteps=5))
    assert (info.in_channels, info.input_size, info.n_train + info.n_val, info.n_test) == (1, (16, 16), 1433, 364)
    batch = next(iter(val))
    assert batch.inputs.shape == (5, 32, 1, 16, 16) and batch.teacher_inputs.shape == (32, 1, 16, 16)


def test_direct_inputs_stay_stride_zero_through_worker_processes(cifar_root):
    train = build_loaders(cifar_config(cifar_root, workers=2, augment=True, normalize=True))[0]
    batches = list(train)
    assert len(batches) == len(train) == 7
    assert all(is_constant_in_time(b.inputs) and b.inputs.shape[0] == 4 for b in batches)
    assert sum(len(b.labels) for b in batches) == 100


def test_pinning_keeps_direct_inputs_stride_zero(monkeypatch):
    """DataLoader's pin-memory thread calls Batch.pin_memory; a stride-0 tensor cannot be pinned directly."""
    from torch.utils.data._utils.pin_memory import pin_memory

    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: self.clone())  # no CUDA here: pinning = copying
    images = torch.rand(2, 3, 4, 4)
    batch = Batch(images.unsqueeze(0).expand(5, 2, 3, 4, 4), images, torch.tensor([0, 1]))
    pinned = pin_memory(batch)
    assert type(pinned) is Batch and pinned.inputs.stride(0) == 0 and pinned.inputs.shape == (5, 2, 3, 4, 4)
    assert torch.equal(pinned.inputs[4], images) and torch.equal(pinned.teacher_inputs, images)
    assert pinned.inputs.data_ptr() == pinned.teacher_inputs.data_ptr() != images.data_ptr()
    spikes = (torch.rand(5, 2, 3, 4, 4) > 0.5).float()
    pinned = pin_memory(Batch(spikes, images, torch.tensor([0, 1])))
    assert torch.equal(pinned.inputs, spikes) and pinned.inputs.data_ptr() != spikes.data_ptr()


def test_loaders_pin_batches_when_cuda_is_there(cifar_root, monkeypatch):
    train = build_loaders(cifar_config(cifar_root))[0]
    assert not train.loader.pin_memory and type(next(iter(train))) is Batch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    train = build_loaders(cifar_config(cifar_root))[0]
    assert train.loader.pin_memory
    samples = [train.dataset[i] for i in range(3)]
    assert type(train.loader.collate_fn(samples)) is Batch and hasattr(Batch, "pin_memory")


def test_unreadable_image_is_a_user_error_naming_the_file(tmp_path):
    root = write_image_folder(tmp_path / "folder")
    bad = root / "train" / "dog" / "000.png"
    bad.write_bytes(b"garbage")
    for workers in (0, 2):
        train = build_loaders(DataConfig(dataset="imagefolder", root=str(root), image_size=8, workers=workers,
                                         batch_size=2, val_fraction=0.0))[0]
        with pytest.raises(UserError) as err:
            list(train)
        assert f"cannot read image '{bad}'" in str(err.value) and "Traceback" not in str(err.value)


def test_imagefolder_errors_reach_build_loaders(tmp_path):
    with pytest.raises(UserError, match="train/<class>"):
        build_loaders(DataConfig(dataset="imagefolder", root=str(tmp_path / "none")))
    root = write_image_folder(tmp_path / "folder")
    (root / "val" / "emu").mkdir()
    with pytest.raises(UserError, match="emu"):
        build_loaders(DataConfig(dataset="imagefolder", root=str(root)))
    (root / "val" / "emu").rmdir()
    write_image_folder(root, classes=("cat", "dog", "owl"), per_class=(1, 1, 1))
    (root / "val" / "owl" / "000.png").unlink()
    (root / "val" / "owl" / "001.png").unlink()
    (root / "val" / "owl").rmdir()
    with pytest.raises(UserError, match="same class folders.*owl"):
        build_loaders(DataConfig(dataset="imagefolder", root=str(root)))


def test_cifar_missing_root_reaches_build_loaders(tmp_path):
    with pytest.raises(UserError, match="cifar-10-batches-py.*--download"):
        build_loaders(DataConfig(dataset="cifar10", root=str(tmp_path / "none")))


# --- splits, order, shards, seeds ---------------------------------------------------------------------

def test_train_val_split_is_per_class_disjoint_and_seed_free(cifar_root):
    labels = np.arange(120) % 10
    train_idx, val_idx = train_val_split(labels, 0.25)
    assert not set(train_idx) & set(val_idx) and len(train_idx) + len(val_idx) == 120
    for c in range(10):
        mine = np.flatnonzero(labels == c)
        assert val_idx[labels[val_idx] == c].tolist() == mine[9:].tolist()  # the last 3 of 12
    assert train_val_split(labels, 0.0)[1].size == 0
    a = build_loaders(cifar_config(cifar_root, val_fraction=0.1, seed=1))[1]
    b = build_loaders(cifar_config(cifar_root, val_fraction=0.1, seed=2))[1]
    assert a.dataset.indices.tolist() == b.dataset.indices.tolist()
    seen_val = [i for batch in a for i in ids(batch)]
    seen_train = [i for batch in build_loaders(cifar_config(cifar_root, val_fraction=0.1))[0] for i in ids(batch)]
    assert sorted(seen_val) == a.dataset.indices.tolist() and not set(seen_val) & set(seen_train)
    assert len(set(seen_train)) == 100 and set(seen_train) | set(seen_val) == set(range(120))


def test_set_epoch_reshuffles_deterministically(cifar_root):
    train = build_loaders(cifar_config(cifar_root, seed=3))[0]
    order = lambda: [i for batch in train for i in ids(batch)]  # noqa: E731
    train.set_epoch(0)
    epoch0 = order()
    train.set_epoch(1)
    epoch1 = order()
    train.set_epoch(0)
    assert order() == epoch0 and epoch1 != epoch0 and sorted(epoch1) == sorted(epoch0)
    other = build_loaders(cifar_config(cifar_root, seed=4))[0]
    assert [i for batch in other for i in ids(batch)] != epoch0


@pytest.mark.parametrize("kind", ["images", "events"])
def test_two_ranks_see_the_global_batches_of_one_process(cifar_root, tmp_path, kind):
    if kind == "images":
        config = cifar_config(cifar_root)
        n_batches, key = 7, ids
    else:  # 21 stored samples, 3 x 4 train after the per-class validation split: global batches of 8 and 4
        config = DataConfig(dataset="digits-dvs", root=str(write_stores(tmp_path / "f", n_train=21)), workers=0,
                            augment=False, val_fraction=0.34)
        n_batches = 2

        def key(batch):  # a sample's frames identify it
            return [hash(frames.numpy().tobytes()) for frames in batch.teacher_inputs]
    one = build_loaders(dataclasses.replace(config, batch_size=8 if kind == "events" else 16))[0]
    ranks = [build_loaders(dataclasses.replace(config, batch_size=4 if kind == "events" else 8, world_size=2,
                                               rank=r, distributed=True))[0] for r in (0, 1)]
    for epoch in (0, 1):
        for loader in (one, *ranks):
            loader.set_epoch(epoch)
        global_batches = [key(b) for b in one]
        shards = [[key(b) for b in loader] for loader in ranks]
        assert len(ranks[0]) == len(ranks[1]) == len(one) == n_batches
        for k, batch in enumerate(global_batches):
            assert shards[0][k] == batch[0::2] and shards[1][k] == batch[1::2]


def test_val_and_test_loaders_cover_each_sample_once_across_ranks(cifar_root):
    for world in (1, 3, 4):
        test_seen, val_seen = [], []
        for rank in range(world):
            _, val, test, _ = build_loaders(cifar_config(cifar_root, batch_size=4, world_size=world, rank=rank))
            test_seen += [i for b in test for i in ids(b)]
            val_seen += [i for b in val for i in ids(b)]
        assert sorted(test_seen) == list(range(30))  # 30 test samples, no padding duplicates
        assert sorted(val_seen) == sorted(val.dataset.indices.tolist())
    assert list(ShardSampler(7, 3, 1)) == [1, 4] and len(ShardSampler(7, 3, 0)) == 3


def test_training_batches_are_reproducible_from_torch_seed(cifar_root):
    train = build_loaders(cifar_config(cifar_root, workers=2, augment=True, normalize=True, encoder="rate"))[0]

    def epoch(seed):
        torch.manual_seed(seed)
        return list(train)

    a, b, c = epoch(7), epoch(7), epoch(8)
    assert all(torch.equal(x.inputs, y.inputs) and torch.equal(x.teacher_inputs, y.teacher_inputs)
               for x, y in zip(a, b))
    assert not all(torch.equal(x.teacher_inputs, y.teacher_inputs) for x, y in zip(a, c))  # augmentation moved
    assert [x.labels.tolist() for x in a] == [y.labels.tolist() for y in c]  # the order is set_epoch's alone


def test_evaluation_rate_coding_does_not_depend_on_the_rng_state(cifar_root):
    test = build_loaders(cifar_config(cifar_root, encoder="rate", batch_size=8))[2]
    torch.manual_seed(0)
    a = [b.inputs for b in test]
    torch.manual_seed(1)
    b = [b.inputs for b in test]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0][0], a[0][1])  # still random across steps
