"""Static image datasets: CIFAR layout checks, ImageFolder errors, the embedded digits, transforms."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T

from ckdsnn_events.data import static
from ckdsnn_events.errors import UserError

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# --- fake datasets (shared with test_loaders) ----------------------------------------------------------

def _cifar_rows(first: int, n: int, rng) -> np.ndarray:
    """(n, 3072) uint8 CIFAR rows whose red and green pixel (0, 0) spell the sample's global index."""
    data = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
    index = np.arange(first, first + n)
    data[:, 0], data[:, 1024] = index % 256, index // 256
    return data


def write_fake_cifar(root: Path, name: str = "cifar10", per_batch: int = 24, n_test: int = 30) -> Path:
    """CIFAR-10 (5 training batches of ``per_batch``) or CIFAR-100 in torchvision's pickle layout.

    Labels cycle through the classes (balanced); pixel (0, 0) encodes the index (see _cifar_rows).
    """
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        for b in range(5):
            rows = _cifar_rows(b * per_batch, per_batch, rng)
            labels = [(b * per_batch + i) % 10 for i in range(per_batch)]
            pickle.dump({"data": rows, "labels": labels}, open(folder / f"data_batch_{b + 1}", "wb"))
        pickle.dump({"data": _cifar_rows(0, n_test, rng), "labels": [i % 10 for i in range(n_test)]},
                    open(folder / "test_batch", "wb"))
        pickle.dump({"label_names": CIFAR10_CLASSES}, open(folder / "batches.meta", "wb"))
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        n_train = 5 * per_batch
        pickle.dump({"data": _cifar_rows(0, n_train, rng), "fine_labels": [i % 100 for i in range(n_train)],
                     "coarse_labels": [0] * n_train}, open(folder / "train", "wb"))
        pickle.dump({"data": _cifar_rows(0, n_test, rng), "fine_labels": [i % 100 for i in range(n_test)],
                     "coarse_labels": [0] * n_test}, open(folder / "test", "wb"))
        pickle.dump({"fine_label_names": [f"c{i:02d}" for i in range(100)]}, open(folder / "meta", "wb"))
    return root


@pytest.fixture
def no_cifar_md5(monkeypatch):
    """Let torchvision's CIFAR classes accept fake files: only their md5 check is replaced."""
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)


def write_image_folder(root: Path, classes=("cat", "dog"), per_class=(3, 2), size=(20, 14)) -> Path:
    """ROOT/train/<class>/*.png and ROOT/val/<class>/*.png of random RGB images (W x H = size)."""
    rng = np.random.default_rng(0)
    for split, counts in (("train", per_class), ("val", (2,) * len(classes))):
        for name, n in zip(classes, counts):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i:03d}.png")
    return root


# --- CIFAR ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, cls, n_classes", [
    ("cifar10", torchvision.datasets.CIFAR10, 10),
    ("cifar100", torchvision.datasets.CIFAR100, 100),
])
def test_cifar_is_read_by_torchvision(tmp_path, no_cifar_md5, name, cls, n_classes):
    write_fake_cifar(tmp_path, name)
    train = static.cifar_dataset(name, tmp_path, train=True)
    test = static.cifar_dataset(name, tmp_path, train=False)
    assert type(train) is cls and len(train) == 120 and len(test) == 30
    assert len(train.classes) == n_classes
    image, label = train[37]
    assert image.size == (32, 32) and label == 37 % n_classes
    assert image.getpixel((0, 0))[:2] == (37, 0)


def test_cifar_missing_root_names_the_layout_and_download(tmp_path):
    with pytest.raises(UserError) as err:
        static.cifar_dataset("cifar10", tmp_path / "nowhere", train=True)
    message = str(err.value)
    assert "does not exist" in message and "cifar-10-batches-py" in message and "--download" in message
    with pytest.raises(UserError, match="cifar-100-python.*--download"):
        static.cifar_dataset("cifar100", tmp_path, train=False)


def test_cifar_wrong_layout_names_the_missing_files(tmp_path, no_cifar_md5):
    write_fake_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(UserError, match="lacks cifar-10-batches-py/data_batch_3"):
        static.cifar_dataset("cifar10", tmp_path, train=True)
    write_fake_cifar(tmp_path / "other")
    with pytest.raises(UserError, match="folder itself; point --root at its parent"):
        static.cifar_dataset("cifar10", tmp_path / "other" / "cifar-10-batches-py", train=True)


def test_cifar_files_failing_the_checksum_are_a_clear_error(tmp_path):
    write_fake_cifar(tmp_path)  # real md5 check: the fake files fail it
    with pytest.raises(UserError, match="checksum.*--download"):
        static.cifar_dataset("cifar10", tmp_path, train=True)


def test_cifar_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    def offline(self):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    with pytest.raises(UserError, match="could not download cifar10.*network unreachable"):
        static.cifar_dataset("cifar10", tmp_path, train=True, download=True)


def test_cifar_training_transform_is_the_reference_pipeline():
    mean = static.CIFAR10_MEAN
    steps = static.cifar_train_transform(mean, static.Augmentation()).transforms
    assert [type(s) for s in steps] == [T.RandomCrop, T.RandomHorizontalFlip, T.AutoAugment, T.ToTensor, T.RandomErasing]
    assert steps[0].size == (32, 32) and steps[0].padding == 4
    assert steps[2].policy == T.AutoAugmentPolicy.CIFAR10
    assert steps[4].value == mean  # erased pixels become 0 after normalisation, as in the reference
    off = static.cifar_train_transform(mean, static.Augmentation(random_crop=False, autoaugment=False)).transforms
    assert [type(s) for s in off] == [T.RandomHorizontalFlip, T.ToTensor, T.RandomErasing]
    assert [type(s) for s in static.cifar_train_transform(mean, static.Augmentation.off()).transforms] == [T.ToTensor]
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    out = static.cifar_train_transform(mean, static.Augmentation())(image)
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1


# --- ImageFolder ----------------------------------------------------------------------------------------

def test_image_folder_reads_train_and_val(tmp_path):
    write_image_folder(tmp_path)
    train = static.image_folder_dataset(tmp_path, "train")
    val = static.image_folder_dataset(tmp_path, "val")
    assert train.classes == ["cat", "dog"] and len(train) == 5 and len(val) == 4
    x = static.imagefolder_train_transform(12, static.Augmentation())(train[0][0])
    assert x.shape == (3, 12, 12)
    y = static.imagefolder_test_transform(12, 13)(val[0][0])
    assert y.shape == (3, 12, 12) and 0 <= y.min() and y.max() <= 1


def test_image_folder_missing_or_malformed(tmp_path):
    with pytest.raises(UserError, match="does not exist.*train/<class>"):
        static.image_folder_dataset(tmp_path / "nowhere", "train")
    (tmp_path / "train").mkdir()
    with pytest.raises(UserError, match="val' does not exist"):
        static.image_folder_dataset(tmp_path, "val")
    with pytest.raises(UserError, match="holds no class folders"):
        static.image_folder_dataset(tmp_path, "train")


def test_empty_class_folder_is_named(tmp_path):
    write_image_folder(tmp_path)
    (tmp_path / "train" / "emu").mkdir()
    (tmp_path / "train" / "emu" / "notes.txt").write_text("no images here")
    with pytest.raises(UserError) as err:
        static.image_folder_dataset(tmp_path, "train")
    assert str(tmp_path / "train" / "emu") in str(err.value) and "no images" in str(err.value)


def test_unreadable_image_becomes_a_named_marker(tmp_path):
    write_image_folder(tmp_path)
    bad = tmp_path / "train" / "dog" / "001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    samples = static.ImageSamples(static.image_folder_dataset(tmp_path, "train"),
                                  transform=static.imagefolder_test_transform(8, 8))
    outcomes = [samples[i] for i in range(len(samples))]
    marks = [o for o in outcomes if isinstance(o, static.UnreadableImage)]
    assert len(marks) == 1 and marks[0].path == str(bad) and marks[0].reason
    good = [o for o in outcomes if not isinstance(o, static.UnreadableImage)]
    assert all(o[0].shape == (3, 8, 8) for o in good) and [o[2] for o in good] == [0, 1, 2, 3]


# --- digits ---------------------------------------------------------------------------------------------

def test_digits_are_sklearns_images_with_a_fixed_per_class_split():
    from sklearn.datasets import load_digits

    digits = load_digits()
    train, test = static.Digits(True, 8), static.Digits(False, 8)
    assert len(train) + len(test) == 1797 and len(test) == 364
    # per class: the first floor(0.8 n) in scikit-learn's order train, the rest test; both kept in that order
    expected_test = np.sort(np.concatenate([
        np.flatnonzero(digits.target == c)[int(np.sum(digits.target == c) * 0.8):] for c in range(10)]))
    assert test.targets == digits.target[expected_test].tolist()
    assert train.targets == np.delete(digits.target, expected_test).tolist()
    # at 8x8, pixels are the original values scaled 0..16 -> 0..255
    for i in (0, 100, 363):
        image, label = test[i]
        assert image.mode == "L" and label == digits.target[expected_test[i]]
        np.testing.assert_array_equal(np.asarray(image), np.round(digits.images[expected_test[i]] * 255 / 16))
    big = static.Digits(True, 32)
    assert big[0][0].size == (32, 32) and big.targets == train.targets


def test_digits_training_transform_crops_only():
    steps = static.digits_train_transform(32, static.Augmentation()).transforms
    assert [type(s) for s in steps] == [T.RandomCrop, T.ToTensor] and steps[0].padding == 4
    assert [type(s) for s in static.digits_train_transform(32, static.Augmentation.off()).transforms] == [T.ToTensor]
