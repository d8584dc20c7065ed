"""One loader builder for both worlds: event frame stores and static images -> time-major Batches.

``build_loaders(config)`` returns ``(train, val or None, test, info)``. Every loader yields
:class:`~ckdsnn_events.data.batch.Batch` objects (inputs (T, B, C, H, W) float32, teacher_inputs
(B, C, H, W) float32, labels (B,) int64), whichever kind of dataset is behind it, so the trainer
does not need to know.

Splits. The test split is the dataset's own (``test.h5``, CIFAR's test batch, ImageFolder's
``val/``, the digits' last 20% per class). The validation split is carved from the training split
by :func:`train_val_split`: per class, the last ``n_c - floor(n_c * (1 - val_fraction))`` of its
samples in dataset order (a pure function of the labels, independent of every seed).

Order. The training loader uses ``DistributedSampler(shuffle=True, seed=config.seed)`` for one
process and for N alike: the global order of an epoch is ``randperm(n)`` from a generator seeded
with ``seed + epoch`` (:meth:`BatchLoader.set_epoch`), and rank r takes every world_size-th index
of it. So rank r's batch k of size b holds positions ``k*b*W + r, k*b*W + r + W, ...`` of the
global order and the W ranks' batch k together are exactly the single-process batch k of size
``W*b`` (DistributedSampler pads the order with its first indices when n is not a multiple of W).
Validation/test loaders do not shuffle; under N processes rank r gets ``indices[r::W]``, without
padding, so summing counts over ranks counts every sample once.

Randomness inside an epoch (augmentation, rate coding, worker seeds) comes from torch's global RNG:
DataLoader draws its workers' base seed from it at ``iter()``, and the trainer seeds it per epoch.
Rate coding in validation/test loaders is seeded by ``(seed, first index of the batch)`` instead,
so evaluating a checkpoint twice gives the same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, Sampler

from ckdsnn_events.data import static
from ckdsnn_events.data.augment import RandomFlipShift
from ckdsnn_events.data.batch import Batch, collate_event_frames
from ckdsnn_events.data.encoders import ENCODERS, SpikeEncoder, build_encoder
from ckdsnn_events.data.event_datasets import EVENT_DATASETS as ALL_EVENT_DATASETS
from ckdsnn_events.data.event_folders import split_indices
from ckdsnn_events.data.frame_store import FrameStoreDataset
from ckdsnn_events.errors import UserError
from ckdsnn_events.limits import check_fits

EVENT_DATASETS = tuple(d for d in ALL_EVENT_DATASETS if d != "event-folder")  # trained from frame stores
IMAGE_DATASETS = ("cifar10", "cifar100", "imagefolder", "digits")
DATASETS = EVENT_DATASETS + IMAGE_DATASETS
DEFAULT_IMAGE_TIMESTEPS = 4


@dataclass
class DataConfig:
    """The ``[data]`` section of a run: which dataset, how it is batched, encoded and augmented.

    Attributes:
        dataset: cifar10dvs | digits-dvs | dvsgesture | nmnist | ncaltech101 | asldvs | pokerdvs (event frame stores) | cifar10 | cifar100 | imagefolder |
            digits (static images).
        root: events: the folder holding ``train.h5``/``test.h5`` from ``ckd-events preprocess``;
            cifar10/cifar100: the folder holding ``cifar-10-batches-py/`` / ``cifar-100-python/``;
            imagefolder: the folder holding ``train/<class>/*`` and ``val/<class>/*``; digits: unused.
        batch_size: samples per batch and process.
        workers: DataLoader worker processes (0: load in the training process).
        timesteps: T of encoded images (None: 4). Event stores fix their own T at preprocessing;
            None uses it, a different value is an error.
        encoder: direct | rate | latency (images only; see :mod:`ckdsnn_events.data.encoders`).
        val_fraction: fraction of each class of the training split held out for validation, in
            [0, 1); 0: no validation loader.
        image_size: side of the square input. imagefolder: the crop (default 224); digits: the
            upsampled size (default 32); cifar: 32, fixed; events: fixed by the store.
        resize_size: imagefolder evaluation resize before the centre crop (default
            round(image_size * 256 / 224)).
        download: cifar10/cifar100 only: download into ``root`` if missing.
        augment: master switch of all training augmentation below.
        random_crop, hflip, autoaugment, random_erasing: CIFAR training transforms (RandomCrop(32,
            padding=4), RandomHorizontalFlip, AutoAugment(CIFAR10 policy), RandomErasing).
            imagefolder uses random_crop (RandomResizedCrop) and hflip; digits uses random_crop only.
        normalize: mean/std-normalise images (the teacher's input and the direct encoding).
        event_flip, event_shift: events: random horizontal flip, random shift of up to this many
            pixels, the same for all T frames of a sample.
        split_protocol: events: the protocol the stores were made with (``ckd-events preprocess
            --split-protocol``); runs fill it in from the stores, a different value is refused.
        seed: seed of the training order (the trainer sets it to the run's seed).
        distributed, world_size, rank: set by the trainer under torchrun.
    """

    dataset: str = "cifar10dvs"
    root: str | None = None
    batch_size: int = 64
    workers: int = 2
    timesteps: int | None = None
    encoder: str = "direct"
    val_fraction: float = 0.1
    image_size: int | None = None
    resize_size: int | None = None
    download: bool = False
    augment: bool = True
    random_crop: bool = True
    hflip: bool = True
    autoaugment: bool = True
    random_erasing: bool = True
    normalize: bool = True
    event_flip: bool = True
    event_shift: int = 4
    split_protocol: str | None = None  # events: the stores' split protocol (filled in from them; set: insist on it)
    seed: int = 0
    distributed: bool = False
    world_size: int = 1
    rank: int = 0

    @property
    def is_events(self) -> bool:
        return self.dataset in EVENT_DATASETS

    def validate(self) -> None:
        """Raise UserError naming the first invalid setting and how to fix it."""
        if self.dataset not in DATASETS:
            raise UserError(f"data.dataset '{self.dataset}' is unknown; choose one of {', '.join(DATASETS)}.")
        if self.dataset != "digits" and not self.root:
            raise UserError(f"data.root is not set: pass --root with the {self.dataset} "
                            + ("frame stores (the --out of ckd-events preprocess)." if self.is_events
                               else "dataset folder."))
        if self.batch_size < 1:
            raise UserError(f"data.batch_size must be at least 1, got {self.batch_size}.")
        if self.workers < 0:
            raise UserError(f"data.workers must be >= 0 (0: load in the training process), got {self.workers}.")
        if self.timesteps is not None and self.timesteps < 1:
            raise UserError(f"data.timesteps (-T) must be at least 1, got {self.timesteps}.")
        if self.encoder not in ENCODERS:
            raise UserError(f"data.encoder '{self.encoder}' is not a spike encoder; choose one of {', '.join(ENCODERS)}.")
        if self.is_events and self.encoder != "direct":
            raise UserError(f"data.encoder '{self.encoder}' applies to static images only; {self.dataset} frames "
                            "are spike counts already. Leave data.encoder at 'direct'.")
        if not 0 <= self.val_fraction < 1:
            raise UserError(f"data.val_fraction must be in [0, 1) (0: no validation split), got {self.val_fraction}.")
        for name in ("image_size", "resize_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"data.{name} must be at least 1 pixel, got {value}.")
        if self.dataset in ("cifar10", "cifar100") and self.image_size not in (None, 32):
            raise UserError(f"data.image_size: {self.dataset} images are 32x32; leave it unset (got {self.image_size}).")
        if self.resize_size is not None and self.resize_size < (self.image_size or 224) and self.dataset == "imagefolder":
            raise UserError(f"data.resize_size ({self.resize_size}) must be at least data.image_size "
                            f"({self.image_size or 224}): images are resized, then centre-cropped.")
        if not self.is_events and self.timesteps is not None:  # bounded before anything is allocated
            side = self.image_size or (224 if self.dataset == "imagefolder" else 32)
            check_fits(4.0 * self.timesteps * self.batch_size * 3 * side * side,
                       f"-T {self.timesteps} with --batch-size {self.batch_size} (one batch of encoded {side}x{side} "
                       "images, the student's input alone)", "Use fewer time steps (-T) or a smaller --batch-size.")
        if self.download and self.dataset not in ("cifar10", "cifar100"):
            raise UserError(f"--download (data.download) fetches cifar10/cifar100 only; {self.dataset} has to be "
                            "put under --root by hand.")
        if self.event_shift < 0:
            raise UserError(f"data.event_shift must be >= 0 pixels, got {self.event_shift}.")
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise UserError(f"data.rank must be in [0, world_size) and world_size >= 1; got rank {self.rank}, "
                            f"world_size {self.world_size}.")


@dataclass(frozen=True)
class DatasetInfo:
    """What the models and reports need to know about the data ``build_loaders`` serves.

    ``n_train``/``n_val``/``n_test`` count samples over all processes; ``encoder`` is "frames" for
    event datasets; ``input_size`` is (H, W).
    """

    name: str
    kind: str  # "events" | "images"
    classes: tuple[str, ...]
    num_classes: int
    in_channels: int
    input_size: tuple[int, int]
    timesteps: int
    encoder: str
    n_train: int
    n_val: int
    n_test: int


# --- splits and samplers ------------------------------------------------------------------------------

def train_val_split(labels, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the first ``floor(n_c * (1 - val_fraction))`` samples train, the rest validate.

    A pure function of ``labels`` (in dataset order); returns ascending int64 index arrays.
    """
    labels = np.asarray(labels)
    if val_fraction <= 0:
        return np.arange(len(labels), dtype=np.int64), np.empty(0, dtype=np.int64)
    return split_indices(labels, 1.0 - val_fraction)


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...`` of ``range(n)``: disjoint shards, no padding, no shuffle."""

    def __init__(self, n: int, world_size: int = 1, rank: int = 0):
        self.n, self.world_size, self.rank = n, world_size, rank

    def __iter__(self):
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))


# --- collate --------------------------------------------------------------------------------------------

def _mixed_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed % 2**32, index]).generate_state(1, np.uint64)[0] >> 1)


@dataclass(frozen=True)
class StaticCollate:
    """Collate ``(image (C, H, W) in [0, 1], label, index)`` samples into a time-major Batch.

    teacher_inputs = the images, mean/std-normalised (if ``mean`` is given); inputs =
    ``encoder(teacher_inputs)`` for the direct encoder, ``encoder(images in [0, 1])`` for rate and
    latency. Runs in the DataLoader workers, so the encoding overlaps with training.

    Args:
        eval_seed: None (training): rate coding draws from torch's RNG (per-worker seeded). An int
            (evaluation): each batch is encoded with a generator seeded by (eval_seed, the batch's
            first dataset index), so evaluation is repeatable whatever the RNG state.
    """

    encoder: SpikeEncoder
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    eval_seed: int | None = None

    def __call__(self, samples: list) -> Batch | static.UnreadableImage:
        for sample in samples:
            if isinstance(sample, static.UnreadableImage):
                return sample  # raised as a UserError by BatchLoader in the main process
        images = torch.stack([s[0] for s in samples])
        labels = torch.as_tensor([s[1] for s in samples], dtype=torch.int64)
        teacher = images
        if self.mean is not None:
            mean = torch.as_tensor(self.mean, dtype=images.dtype).view(1, -1, 1, 1)
            std = torch.as_tensor(self.std, dtype=images.dtype).view(1, -1, 1, 1)
            teacher = (images - mean).div_(std)
        generator = None
        if self.eval_seed is not None:
            generator = torch.Generator().manual_seed(_mixed_seed(self.eval_seed, samples[0][2]))
        inputs = self.encoder(images if self.encoder.unit_interval else teacher, generator=generator)
        return Batch(inputs, teacher, labels)


# --- the loader -----------------------------------------------------------------------------------------

class BatchLoader:
    """A DataLoader over one split, iterated as Batches; ``set_epoch`` fixes the shuffling order.

    ``len(loader)`` is the number of batches this process sees per epoch. Worker processes are
    started at every ``iter()`` (no persistent workers), with seeds drawn from torch's global RNG.
    """

    def __init__(self, dataset, sampler: Sampler, batch_size: int, collate_fn, workers: int, pin_memory: bool):
        self.dataset = dataset
        self.sampler = sampler
        self.loader = DataLoader(
            dataset,
            batch_sampler=BatchSampler(sampler, batch_size, drop_last=False),
            num_workers=workers,
            collate_fn=collate_fn,
            pin_memory=pin_memory,  # Batch.pin_memory keeps stride-0 inputs
            persistent_workers=False,
        )

    def set_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch``'s order (training loaders; a no-op for unshuffled ones)."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for item in self.loader:
            if isinstance(item, static.UnreadableImage):
                raise UserError(f"cannot read image '{item.path}' ({item.reason}). Replace or remove the file.")
            yield item


def _loaders(config: DataConfig, train, val, test, train_collate, eval_collate):
    pin = torch.cuda.is_available()
    shuffled = DistributedSampler(train, num_replicas=config.world_size, rank=config.rank, shuffle=True,
                                  seed=config.seed, drop_last=False)

    def make(dataset, sampler, collate):
        return BatchLoader(dataset, sampler, config.batch_size, collate, config.workers, pin)

    return (
        make(train, shuffled, train_collate),
        make(val, ShardSampler(len(val), config.world_size, config.rank), eval_collate) if val is not None else None,
        make(test, ShardSampler(len(test), config.world_size, config.rank), eval_collate),
    )


# --- datasets -------------------------------------------------------------------------------------------

def _event_splits(config: DataConfig):
    root = Path(config.root)
    paths = {split: root / f"{split}.h5" for split in ("train", "test")}
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        where = f"data.root '{root}' does not exist" if not root.exists() else f"'{root}' has no {' / '.join(missing)}"
        raise UserError(f"{where}: {config.dataset} trains from frame stores. Make them with: ckd-events preprocess "
                        f"--dataset {config.dataset} --root RAW_RECORDINGS --out {root}")
    full = FrameStoreDataset(paths["train"])
    test = FrameStoreDataset(paths["test"])
    made_with = full.config.get("split_protocol")
    if config.split_protocol is not None and made_with is not None and config.split_protocol != made_with:
        raise UserError(f"data.split_protocol is {config.split_protocol}, but the stores in '{root}' were made with "
                        f"{made_with}. Re-run ckd-events preprocess --split-protocol {config.split_protocol} "
                        f"--out {root} --overwrite, or leave data.split_protocol unset.")
    shape = full.frame_shape
    if tuple(test.frame_shape) != tuple(shape):
        raise UserError(f"'{paths['train']}' holds frames of shape {shape} but '{paths['test']}' {test.frame_shape}; "
                        f"re-create both with one ckd-events preprocess --out {root} --overwrite.")
    if len(full) == 0:
        raise UserError(f"'{paths['train']}' holds no samples; re-run ckd-events preprocess on the recordings.")
    timesteps, channels, height, width = shape
    if config.timesteps is not None and config.timesteps != timesteps:
        raise UserError(f"data.timesteps (-T) is {config.timesteps}, but the frame stores in '{root}' hold T={timesteps}: "
                        f"event frames are made at preprocessing. Re-run ckd-events preprocess --dataset "
                        f"{config.dataset} --root RAW_RECORDINGS --out {root} -T {config.timesteps} --overwrite, or "
                        f"leave -T out to use T={timesteps}.")
    if config.image_size is not None and config.image_size != height:
        raise UserError(f"data.image_size is {config.image_size}, but the frame stores in '{root}' hold "
                        f"{height}x{width} frames. Re-run ckd-events preprocess with --size {config.image_size}, "
                        "or leave data.image_size unset.")
    train_idx, val_idx = train_val_split(full.labels_all, config.val_fraction)
    augment = None
    if config.augment and (config.event_flip or config.event_shift > 0):
        augment = RandomFlipShift(flip_p=0.5 if config.event_flip else 0.0, max_shift=config.event_shift)
    train = FrameStoreDataset(paths["train"], indices=train_idx, transform=augment)
    val = FrameStoreDataset(paths["train"], indices=val_idx) if len(val_idx) else None
    classes = tuple(full.classes) or tuple(str(c) for c in range(int(full.labels_all.max()) + 1))
    info = DatasetInfo(config.dataset, "events", classes, len(classes), channels, (height, width), timesteps,
                       "frames", len(train), len(val) if val is not None else 0, len(test))
    return train, val, test, collate_event_frames, collate_event_frames, info


def store_split_protocol(config: DataConfig) -> str | None:
    """The split protocol recorded in an event dataset's ``train.h5`` (None: images, or no store yet)."""
    from ckdsnn_events.data.frame_store import read_store_attrs

    path = Path(config.root or "") / "train.h5"
    if not config.is_events or not path.is_file():
        return config.split_protocol
    return read_store_attrs(path).get("config", {}).get("split_protocol", config.split_protocol)


def _image_splits(config: DataConfig):
    aug = static.Augmentation(config.random_crop, config.hflip, config.autoaugment, config.random_erasing) \
        if config.augment else static.Augmentation.off()
    name = config.dataset
    if name in ("cifar10", "cifar100"):
        base_train = static.cifar_dataset(name, config.root, True, config.download)
        base_test = static.cifar_dataset(name, config.root, False, config.download)
        mean, std = (static.CIFAR10_MEAN, static.CIFAR10_STD) if name == "cifar10" else (
            static.CIFAR100_MEAN, static.CIFAR100_STD)
        size = 32
        train_tf, eval_tf = static.cifar_train_transform(mean, aug), static.to_tensor_transform()
    elif name == "imagefolder":
        base_train = static.image_folder_dataset(config.root, "train")
        base_test = static.image_folder_dataset(config.root, "val")
        if base_train.classes != base_test.classes:
            only = sorted(set(base_train.classes) ^ set(base_test.classes))
            raise UserError(f"'{Path(config.root) / 'train'}' and '{Path(config.root) / 'val'}' must hold the same "
                            f"class folders; only one of them has: {', '.join(only)}.")
        mean, std = static.IMAGENET_MEAN, static.IMAGENET_STD
        size = config.image_size or 224
        resize = config.resize_size or round(size * 256 / 224)
        train_tf = static.imagefolder_train_transform(size, aug)
        eval_tf = static.imagefolder_test_transform(size, resize)
    else:  # digits
        size = config.image_size or 32
        base_train, base_test = static.Digits(True, size), static.Digits(False, size)
        mean, std = static.DIGITS_MEAN, static.DIGITS_STD
        train_tf, eval_tf = static.digits_train_transform(size, aug), static.to_tensor_transform()
    train_idx, val_idx = train_val_split(base_train.targets, config.val_fraction)
    train = static.ImageSamples(base_train, train_idx, train_tf)
    val = static.ImageSamples(base_train, val_idx, eval_tf) if len(val_idx) else None
    test = static.ImageSamples(base_test, None, eval_tf)
    timesteps = config.timesteps or DEFAULT_IMAGE_TIMESTEPS
    encoder = build_encoder(config.encoder, timesteps)
    if not config.normalize:
        mean = std = None
    train_collate = StaticCollate(encoder, mean, std, eval_seed=None)
    eval_collate = StaticCollate(encoder, mean, std, eval_seed=config.seed)
    classes = tuple(str(c) for c in base_train.classes)
    channels = 1 if name == "digits" else 3
    info = DatasetInfo(name, "images", classes, len(classes), channels, (size, size), timesteps, config.encoder,
                       len(train), len(val) if val is not None else 0, len(test))
    return train, val, test, train_collate, eval_collate, info


def build_loaders(config: DataConfig):
    """``(train_loader, val_loader or None, test_loader, info)`` for ``config``.

    Raises:
        UserError: an invalid setting, a missing or malformed dataset (naming the file or folder
            and what to do).
    """
    config.validate()
    split = _event_splits if config.is_events else _image_splits
    train, val, test, train_collate, eval_collate, info = split(config)
    train_loader, val_loader, test_loader = _loaders(config, train, val, test, train_collate, eval_collate)
    return train_loader, val_loader, test_loader, info
