"""Layout detection for the three on-disk forms, class order, and the split rule."""

from __future__ import annotations

import numpy as np
import pytest

from ckdsnn_events.data.event_folders import CIFAR10DVS_CLASSES, find_event_folder, split_indices
from ckdsnn_events.errors import UserError
from ckdsnn_events.events.aedat2 import write_aedat2
from ckdsnn_events.events.npz import write_npz
from conftest import random_events, real_fixture


def make_cifar_like(root, form, per_class=2, classes=CIFAR10DVS_CLASSES):
    """A CIFAR10-DVS-shaped tree in one of the three forms, recordings 0.. per class."""
    sub = {"aedat": "", "npz": "events_np", "aedat4": "CIFAR10DVS"}[form]
    base = root / sub if sub else root
    for label, name in enumerate(classes):
        (base / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            events = random_events(200 + i, seed=label * 100 + i)
            path = base / name / f"cifar10_{name}_{i}.{form}"
            if form == "aedat":
                write_aedat2(path, events)
            elif form == "npz":
                write_npz(path, events)
            else:
                path.write_bytes(real_fixture("tonic_sample.aedat4").read_bytes())
    return base


@pytest.mark.parametrize("form", ["aedat", "npz", "aedat4"])
def test_each_form_is_detected_with_fixed_class_order(tmp_path, form):
    make_cifar_like(tmp_path, form)
    folder = find_event_folder(tmp_path, "cifar10dvs")
    assert folder.form == form
    assert folder.classes == CIFAR10DVS_CLASSES
    assert list(folder.labels) == [c for c in range(10) for _ in range(2)]
    assert folder.recordings[0].relpath == f"airplane/cifar10_airplane_0.{form}"
    # the root may also be the folder that holds the class folders
    assert find_event_folder(folder.folder, "cifar10dvs").form == form


def test_same_recordings_in_two_forms_give_the_same_events(tmp_path):
    make_cifar_like(tmp_path / "a", "aedat")
    make_cifar_like(tmp_path / "b", "npz")
    a = find_event_folder(tmp_path / "a", "cifar10dvs")
    b = find_event_folder(tmp_path / "b", "cifar10dvs")
    for i in (0, 7, 19):
        np.testing.assert_array_equal(a.read(i), b.read(i))


def test_several_forms_prefer_the_original_unless_forced(tmp_path):
    make_cifar_like(tmp_path, "npz")
    make_cifar_like(tmp_path / "extract", "aedat")  # SpikingJelly keeps both
    assert find_event_folder(tmp_path, "cifar10dvs").form == "aedat"
    assert find_event_folder(tmp_path, "cifar10dvs", form="npz").form == "npz"
    with pytest.raises(UserError, match="--format aedat4"):
        find_event_folder(tmp_path, "cifar10dvs", form="aedat4")


def test_files_are_sorted_and_split_is_a_function_of_the_sorted_list(tmp_path):
    base = make_cifar_like(tmp_path, "aedat", per_class=12)
    folder = find_event_folder(tmp_path, "cifar10dvs")
    names = [r.relpath for r in folder.recordings if r.label == 0]
    assert names == sorted(names)  # cifar10_airplane_10 sorts before _2, as in the release
    train, test = split_indices(folder.labels, 0.9)
    assert len(train) == 10 * 10 and len(test) == 10 * 2
    assert set(train).isdisjoint(test)
    assert [folder.recordings[i].relpath for i in test[:2]] == names[10:]
    assert base.exists()


def test_split_rule():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 1)
    train, test = split_indices(labels, 0.9)
    assert list(test) == [9, 14, 15]
    train, test = split_indices(labels, 1.0)
    assert len(test) == 0
    with pytest.raises(ValueError):
        split_indices(labels, 0.0)


def test_missing_root_shows_layouts_and_download_hint(tmp_path):
    with pytest.raises(UserError) as info:
        find_event_folder(tmp_path / "nowhere", "cifar10dvs")
    message = str(info.value)
    assert "does not exist" in message and "CIFAR10DVS/<class>/*.aedat4" in message
    assert "events_np/<class>/*.npz" in message and "figshare" in message and "airplane" in message


def test_wrong_layout_and_incomplete_datasets(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "a.txt").write_text("x")
    with pytest.raises(UserError, match="no cifar10dvs recordings found"):
        find_event_folder(tmp_path, "cifar10dvs")
    file_root = tmp_path / "file"
    file_root.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        find_event_folder(file_root, "cifar10dvs")
    make_cifar_like(tmp_path / "partial", "aedat", classes=CIFAR10DVS_CLASSES[:3])
    with pytest.raises(UserError, match="lacks the class folder"):
        find_event_folder(tmp_path / "partial", "cifar10dvs")
    base = make_cifar_like(tmp_path / "hole", "aedat")
    for f in (base / "dog").iterdir():
        f.unlink()
    with pytest.raises(UserError, match="holds no .aedat files"):
        find_event_folder(tmp_path / "hole", "cifar10dvs")


def test_event_folder_takes_its_classes_from_the_folders(tmp_path):
    make_cifar_like(tmp_path, "aedat", classes=("zebra", "ant"))
    folder = find_event_folder(tmp_path, "event-folder")
    assert folder.classes == ("ant", "zebra")


def test_fingerprint_changes_with_content(tmp_path):
    base = make_cifar_like(tmp_path, "aedat", per_class=1)
    folder = find_event_folder(tmp_path, "cifar10dvs")
    before = folder.fingerprint()
    assert find_event_folder(tmp_path, "cifar10dvs").fingerprint() == before
    write_aedat2(base / "cat" / "cifar10_cat_0.aedat", random_events(200, seed=999))
    assert find_event_folder(tmp_path, "cifar10dvs").fingerprint() != before
