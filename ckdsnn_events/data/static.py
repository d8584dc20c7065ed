"""Static image datasets (CIFAR-10/100, ImageFolder, the embedded digits) and their transforms.

The datasets are torchvision's (``CIFAR10``, ``CIFAR100``, ``ImageFolder``), built with
``transform=None`` and wrapped in :class:`ImageSamples`, which applies the transform of a split to
a subset of indices: so the training and the validation split carved from it share one loaded
dataset and still get different transforms.

Every transform here ends in an *unnormalised* float tensor (C, H, W) in [0, 1]. Mean/std
normalisation happens once per batch in the loaders' collate function, because the spike encoders
``rate`` and ``latency`` need the [0, 1] intensities while the teacher (and the ``direct``
encoder) need the normalised image. RandomErasing, which CKDSNN's reference applies after
normalisation with fill 0 (= the mean colour), fills with the dataset mean here: the same pixels
after normalisation.

The embedded digits (:class:`Digits`): scikit-learn's 1797 real 8x8 handwritten digits (values
0..16), scaled to 0..255 and upsampled bilinearly to ``image_size``; one channel. Fixed split: per
class, the first floor(80%) (in scikit-learn's order) train, the rest test (1433 / 364 images).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T

from ckdsnn_events.data.event_folders import split_indices
from ckdsnn_events.errors import UserError

# Per-channel statistics of the training sets (CIFAR: the usual values over the 50k training images;
# ImageFolder: ImageNet's, the common choice for natural images; digits: scikit-learn's 1797 8x8 images / 16).
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DIGITS_MEAN, DIGITS_STD = (0.3053,), (0.3760,)

DIGITS_TEST_FRACTION = 0.2
DIGITS_CLASSES = tuple(str(d) for d in range(10))

_CIFAR = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}


@dataclass(frozen=True)
class Augmentation:
    """Switches of the training transforms (``DataConfig``'s fields of the same names)."""

    random_crop: bool = True
    hflip: bool = True
    autoaugment: bool = True
    random_erasing: bool = True

    @classmethod
    def off(cls) -> "Augmentation":
        return cls(False, False, False, False)


# --- CIFAR ----------------------------------------------------------------------------------------------

def cifar_files(name: str) -> tuple[str, list[str]]:
    """``(folder, file names)`` torchvision's CIFAR class reads under ``root`` for ``name``."""
    cls = _CIFAR[name]
    files = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return cls.base_folder, files


def _cifar_layout_help(name: str, root: Path) -> str:
    folder, files = cifar_files(name)
    return (f"expected {root / folder}/ holding {', '.join(files)} (the python version of "
            f"{'CIFAR-10' if name == 'cifar10' else 'CIFAR-100'}, {_CIFAR[name].url} unpacked), "
            "or pass --download (data.download=true) to fetch it there")


def cifar_dataset(name: str, root: str | os.PathLike, train: bool, download: bool = False):
    """torchvision's CIFAR-10/100 (``name``: cifar10 | cifar100) split from ``root``, no transform.

    The layout is checked first, so that a missing or misplaced dataset ends in a message naming
    what is missing; torchvision then reads the pickles (and checks their md5 sums).

    Raises:
        UserError: files missing (with the expected layout and the --download option), files
            that fail torchvision's checksum, or a failed download.
    """
    cls = _CIFAR[name]
    root = Path(root)
    folder, files = cifar_files(name)
    if download:
        try:
            return cls(str(root), train=train, download=True)
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            raise UserError(f"could not download {name} into '{root}': {err}. Download {cls.url} by hand "
                            f"and unpack it into '{root}'.") from None
    missing = [f for f in files if not (root / folder / f).is_file()]
    if missing:
        if not root.is_dir():
            problem = f"data.root '{root}' does not exist"
        elif all((root / f).is_file() for f in files):
            problem = f"data.root '{root}' is the {folder} folder itself; point --root at its parent"
        else:
            problem = f"data.root '{root}' lacks {', '.join(str(Path(folder) / f) for f in missing)}"
        raise UserError(f"{problem}: {_cifar_layout_help(name, root)}.")
    try:
        return cls(str(root), train=train, download=False)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted" (md5 mismatch)
        raise UserError(f"the {name} files under '{root / folder}' failed torchvision's checksum check "
                        f"({err}); they are damaged or not the official release. Delete '{root / folder}' and "
                        "re-run with --download.") from None
    except (OSError, EOFError, KeyError, ValueError) as err:
        raise UserError(f"cannot read the {name} files under '{root / folder}': {err}. Delete the folder and "
                        "re-run with --download.") from None


def cifar_train_transform(mean: tuple[float, ...], aug: Augmentation) -> Callable:
    """CKDSNN's CIFAR training pipeline (each step switchable), up to normalisation.

    RandomCrop(32, padding=4) -> RandomHorizontalFlip -> AutoAugment(CIFAR10 policy) -> ToTensor ->
    RandomErasing (filled with ``mean``; see the module docstring). PIL image -> (3, 32, 32) in [0, 1].
    """
    steps: list[Callable] = []
    if aug.random_crop:
        steps.append(T.RandomCrop(32, padding=4))
    if aug.hflip:
        steps.append(T.RandomHorizontalFlip())
    if aug.autoaugment:
        steps.append(T.AutoAugment(T.AutoAugmentPolicy.CIFAR10))
    steps.append(T.ToTensor())
    if aug.random_erasing:
        steps.append(T.RandomErasing(value=mean))
    return T.Compose(steps)


def to_tensor_transform() -> Callable:
    """Evaluation transform of CIFAR and digits: PIL image -> (C, H, W) float in [0, 1]."""
    return T.ToTensor()


# --- ImageFolder ----------------------------------------------------------------------------------------

IMAGEFOLDER_SPLITS = ("train", "val")


def image_folder_dataset(root: str | os.PathLike, split: str) -> torchvision.datasets.ImageFolder:
    """torchvision's ImageFolder over ``root/split/<class>/*``, no transform.

    Raises:
        UserError: the folder is missing, has no class folders, or a class folder holds no images.
    """
    root = Path(root)
    folder = root / split
    layout = (f"expected {root}/train/<class>/*.jpg|png|... and {root}/val/<class>/*, one folder per class "
              "with the same class folders in both")
    if not folder.is_dir():
        problem = f"data.root '{root}' does not exist" if not root.is_dir() else f"'{folder}' does not exist"
        raise UserError(f"{problem}: {layout}.")
    try:
        dataset = torchvision.datasets.ImageFolder(str(folder), allow_empty=True)
    except FileNotFoundError:
        raise UserError(f"'{folder}' holds no class folders: {layout}.") from None
    counts = np.bincount(np.asarray(dataset.targets, dtype=np.int64), minlength=len(dataset.classes))
    empty = [dataset.classes[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        extensions = ", ".join(torchvision.datasets.folder.IMG_EXTENSIONS)
        raise UserError(f"class folder(s) {', '.join(repr(str(folder / c)) for c in empty)} hold no images "
                        f"(looked for {extensions}). Add images or remove the folder.")
    return dataset


def imagefolder_train_transform(image_size: int, aug: Augmentation) -> Callable:
    """ImageNet-style training: RandomResizedCrop(image_size) -> RandomHorizontalFlip -> ToTensor.

    Without ``random_crop``: Resize(image_size) -> CenterCrop(image_size). AutoAugment and
    RandomErasing belong to the CIFAR recipe and are not applied here.
    """
    steps: list[Callable] = [T.RandomResizedCrop(image_size)] if aug.random_crop else [
        T.Resize(image_size), T.CenterCrop(image_size)]
    if aug.hflip:
        steps.append(T.RandomHorizontalFlip())
    steps.append(T.ToTensor())
    return T.Compose(steps)


def imagefolder_test_transform(image_size: int, resize_size: int) -> Callable:
    """Resize(resize_size) -> CenterCrop(image_size) -> ToTensor."""
    return T.Compose([T.Resize(resize_size), T.CenterCrop(image_size), T.ToTensor()])


# --- the embedded digits --------------------------------------------------------------------------------

class Digits(torch.utils.data.Dataset):
    """scikit-learn's handwritten digits as a torchvision-style dataset of PIL images.

    Each item is ``(PIL 'L' image of image_size x image_size, label)``. See the module docstring for
    the scaling and the fixed 80/20 per-class split.

    Attributes:
        data: uint8 (N, image_size, image_size); targets: list of int; classes: "0" .. "9".
    """

    classes = list(DIGITS_CLASSES)

    def __init__(self, train: bool = True, image_size: int = 32):
        from sklearn.datasets import load_digits

        digits = load_digits()
        train_idx, test_idx = split_indices(digits.target, 1.0 - DIGITS_TEST_FRACTION)
        idx = train_idx if train else test_idx
        images = np.round(digits.images[idx] * (255.0 / 16.0)).astype(np.uint8)
        self.data = np.stack([
            np.asarray(Image.fromarray(im).resize((image_size, image_size), Image.Resampling.BILINEAR)) for im in images
        ]) if image_size != 8 else images
        self.targets = [int(t) for t in digits.target[idx]]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return Image.fromarray(self.data[index]), self.targets[index]  # 2-D uint8: mode "L"


def digits_train_transform(image_size: int, aug: Augmentation) -> Callable:
    """RandomCrop(image_size, padding=image_size // 8) -> ToTensor.

    Only ``random_crop`` applies: a mirrored digit is another symbol (2 vs 5), and AutoAugment's
    CIFAR policy and RandomErasing wipe out most of a small digit.
    """
    steps: list[Callable] = [T.RandomCrop(image_size, padding=image_size // 8)] if aug.random_crop else []
    return T.Compose([*steps, T.ToTensor()])


# --- one split of a dataset ---------------------------------------------------------------------------

@dataclass(frozen=True)
class UnreadableImage:
    """What :class:`ImageSamples` yields instead of a sample whose file cannot be decoded.

    DataLoader workers pass it to the main process like a sample, where the loader turns it into
    one clear UserError (an exception raised in a worker would reach the user as a traceback).
    """

    path: str
    reason: str


class ImageSamples(torch.utils.data.Dataset):
    """A subset of an image dataset with a transform: items ``(image (C, H, W) float, label, index)``.

    Args:
        base: a dataset of ``(PIL image, label)`` (torchvision's CIFAR / ImageFolder, :class:`Digits`),
            built without a transform; it must have ``targets``.
        indices: the subset (positions in ``base``); None: all.
        transform: PIL image -> (C, H, W) float tensor in [0, 1].

    ``index`` is the position in ``base``; the collate function seeds evaluation-time rate coding
    with it. An image file that cannot be decoded yields an :class:`UnreadableImage`.
    """

    def __init__(self, base, indices=None, transform: Callable | None = None):
        self.base = base
        self.indices = np.arange(len(base)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.transform = transform if transform is not None else T.ToTensor()
        self.targets_all = np.asarray(base.targets, dtype=np.int64)

    @property
    def labels(self) -> np.ndarray:
        return self.targets_all[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int):
        index = int(self.indices[item])
        try:
            image, label = self.base[index]
        except (OSError, SyntaxError) as err:  # PIL: UnidentifiedImageError, truncated file, broken PNG
            samples = getattr(self.base, "samples", None)
            path = samples[index][0] if samples is not None else f"sample {index}"
            return UnreadableImage(str(path), str(err) or type(err).__name__)
        return self.transform(image), int(label), index
