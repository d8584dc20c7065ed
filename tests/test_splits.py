"""Split protocols against SpikingJelly (CIFAR10DVSTEBNSplit, split_to_train_test_set) on the same files."""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np
import pytest

from ckdsnn_events.data.event_folders import CIFAR10DVS_CLASSES, find_event_folder
from ckdsnn_events.data.splits import SplitProtocol, natural_key, parse_protocol, split_by_protocol
from ckdsnn_events.errors import UserError

PER_CLASS = 150  # files 0-149: TEBN's test part whole, the start of its train part


@pytest.fixture(scope="module")
def sj():
    """SpikingJelly's dataset helpers, without its package __init__ (which needs torchaudio)."""
    spikingjelly = pytest.importorskip("spikingjelly")
    pytest.importorskip("loguru")
    saved = sys.modules.get("spikingjelly.datasets")
    pkg = types.ModuleType("spikingjelly.datasets")
    pkg.__path__ = [spikingjelly.__path__[0] + "/datasets"]
    sys.modules["spikingjelly.datasets"] = pkg
    try:
        yield (importlib.import_module("spikingjelly.datasets.cifar10_dvs"),
               importlib.import_module("spikingjelly.datasets.utils"))
    finally:
        for name in [m for m in sys.modules if m.startswith("spikingjelly.datasets")]:
            del sys.modules[name]
        if saved is not None:
            sys.modules["spikingjelly.datasets"] = saved


@pytest.fixture(scope="module")
def npz_release(tmp_path_factory):
    """SpikingJelly's converted CIFAR10-DVS layout, 150 (empty) files per class: names are all a split sees."""
    root = tmp_path_factory.mktemp("events_np")
    for name in CIFAR10DVS_CLASSES:
        (root / name).mkdir()
        for i in range(PER_CLASS):
            (root / name / f"cifar10_{name}_{i}.npz").touch()
    return root


def listing(root):
    folder = find_event_folder(root, "cifar10dvs", "npz")
    return folder.labels, [r.relpath for r in folder.recordings]


def test_tebn_picks_spikingjellys_files(sj, npz_release, tmp_path):
    cifar10_dvs, _ = sj
    import shutil

    processed = tmp_path / "processed"
    shutil.copytree(npz_release, processed)
    cifar10_dvs._move_data(processed)  # SpikingJelly's TEBN split: symlinks under processed/{train,test}/<class>
    labels, rels = listing(npz_release)
    train, test = split_by_protocol(parse_protocol("tebn"), labels, rels, dataset="cifar10dvs")
    for split, idx in (("train", train), ("test", test)):
        # SpikingJelly links names 0-999 whether they exist or not: compare the links to existing files
        theirs = sorted(f"{p.parent.name}/{p.name}" for p in (processed / split).glob("*/*.npz") if p.exists())
        assert sorted(rels[i] for i in idx) == theirs
    assert len(test) == 10 * 100 and len(train) == 10 * (PER_CLASS - 100)
    # "sample i" is the number in the file name, not the listing position (cifar10_airplane_10 is listed 3rd)
    assert rels[2] == "airplane/cifar10_airplane_10.npz" and 2 in test
    assert "airplane/cifar10_airplane_100.npz" in [rels[i] for i in train]


def test_listing_order_is_lexicographic_as_spikingjellys_folder(npz_release):
    from torchvision.datasets.folder import make_dataset

    _, rels = listing(npz_release)
    theirs = make_dataset(str(npz_release), {c: i for i, c in enumerate(CIFAR10DVS_CLASSES)}, extensions=(".npz",))
    assert rels == [f"{CIFAR10DVS_CLASSES[label]}/{path.rsplit('/', 1)[1]}" for path, label in theirs]
    assert rels[:4] == [f"airplane/cifar10_airplane_{i}.npz" for i in ("0", "1", "10", "100")]
    natural = sorted(rels[:PER_CLASS], key=natural_key)
    assert natural[:3] == [f"airplane/cifar10_airplane_{i}.npz" for i in (0, 1, 2)] and natural != rels[:PER_CLASS]


@pytest.mark.parametrize("protocol, random_split", [("ratio:0.9", False), ("random:0.9:0", True), ("random:0.9:7", True)])
def test_ratio_and_random_equal_split_to_train_test_set(sj, npz_release, protocol, random_split):
    _, utils = sj
    labels, rels = listing(npz_release)
    label_idx = [list(np.flatnonzero(labels == c)) for c in range(10)]
    if random_split:
        np.random.seed(int(protocol.rsplit(":", 1)[1]))  # how SpikingJelly's scripts seed it
    theirs_train, theirs_test = utils._split_class_indices(label_idx, 0.9, random_split)
    train, test = split_by_protocol(parse_protocol(protocol), labels, rels, dataset="cifar10dvs")
    assert train.tolist() == sorted(int(i) for i in theirs_train)
    assert test.tolist() == sorted(int(i) for i in theirs_test)


def test_ratio_rounds_down_where_spikingjelly_rounds_up():
    labels = np.repeat(np.arange(2), 3)
    train, test = split_by_protocol(SplitProtocol("ratio", 0.9), labels, [str(i) for i in range(6)])
    assert train.tolist() == [0, 1, 3, 4] and test.tolist() == [2, 5]  # SpikingJelly: ceil(2.7) = 3, no test file


@pytest.mark.parametrize("text", ["foo", "ratio", "ratio:x", "ratio:0", "ratio:1", "ratio:1.5", "ratio:-0.1",
                                  "random:0.9", "random:0.9:x", "random:2:0", "tebn:1", "official:0.5", "ratio:nan"])
def test_bad_protocols(text):
    with pytest.raises(UserError, match="--split-protocol"):
        parse_protocol(text)


def test_protocol_text_round_trips():
    for text in ("ratio:0.9", "random:0.8:3", "tebn", "official"):
        assert str(parse_protocol(text)) == text


def test_tebn_needs_numbered_files():
    with pytest.raises(UserError, match="has none"):
        split_by_protocol(parse_protocol("tebn"), np.zeros(2, int), ["a/x.npz", "a/y_1.npz"], dataset="cifar10dvs")
