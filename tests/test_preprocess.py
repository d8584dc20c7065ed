"""The preprocess stage end to end: content, idempotence, resume after Ctrl-C and kill -9, bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from ckdsnn_events.data.event_folders import find_event_folder, split_indices
from ckdsnn_events.data.frame_store import FrameStoreDataset
from ckdsnn_events.errors import UserError
from ckdsnn_events.events.framing import to_count_frames
from ckdsnn_events.events.npz import write_npz
from ckdsnn_events.pipelines.preprocess import PreprocessConfig, run_preprocess


def config(root, out, **kw) -> PreprocessConfig:
    defaults = dict(dataset="digits-dvs", root=str(root), out=str(out), workers=0, split=0.67)
    defaults.update(kw)
    return PreprocessConfig(**defaults)


@pytest.fixture(scope="module")
def reference_stores(digits_dvs_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    run_preprocess(config(digits_dvs_root, out), progress=False)
    return out


def test_store_content_equals_direct_framing(digits_dvs_root, reference_stores):
    folder = find_event_folder(digits_dvs_root, "digits-dvs")
    train, test = split_indices(folder.labels, 0.67)
    assert len(train) == 20 and len(test) == 10
    with h5py.File(reference_stores / "test.h5") as f:
        assert f["frames"].shape == (10, 10, 2, 48, 48) and f["frames"].dtype == np.uint16
        np.testing.assert_array_equal(f["labels"][:], folder.labels[test])
        assert list(f["source_files"].asstr()[:]) == [folder.recordings[i].relpath for i in test]
        for j, i in enumerate(test[:3]):
            np.testing.assert_array_equal(f["frames"][j], to_count_frames(folder.read(i)))
        attrs = dict(f.attrs)
    cfg = json.loads(attrs["config"])
    assert cfg["timesteps"] == 10 and cfg["size"] == [48, 48] and cfg["bins"] == "count" and cfg["split"] == "test"
    assert json.loads(attrs["classes"]) == [str(d) for d in range(10)]
    assert json.loads(attrs["skipped"]) == [] and len(attrs["fingerprint"]) == 64 and attrs["tool_version"]
    assert not list(reference_stores.glob(".preprocess*"))  # no leftovers


def test_workers_give_the_same_bytes(digits_dvs_root, reference_stores, tmp_path):
    result = run_preprocess(config(digits_dvs_root, tmp_path, workers=2), progress=False)
    assert result.recordings_done == 30
    for split in ("train", "test"):
        assert (tmp_path / f"{split}.h5").read_bytes() == (reference_stores / f"{split}.h5").read_bytes()


def test_rerun_does_nothing_and_other_config_is_refused(digits_dvs_root, tmp_path):
    run_preprocess(config(digits_dvs_root, tmp_path), progress=False)
    stamp = (tmp_path / "train.h5").stat().st_mtime_ns
    again = run_preprocess(config(digits_dvs_root, tmp_path), progress=False)
    assert again.recordings_done == 0 and {s.status for s in again.splits.values()} == {"up to date"}
    assert (tmp_path / "train.h5").stat().st_mtime_ns == stamp
    with pytest.raises(UserError, match="timesteps: 10 -> 4.*--overwrite"):
        run_preprocess(config(digits_dvs_root, tmp_path, timesteps=4), progress=False)
    assert (tmp_path / "train.h5").stat().st_mtime_ns == stamp
    run_preprocess(config(digits_dvs_root, tmp_path, timesteps=4, overwrite=True), progress=False)
    assert FrameStoreDataset(tmp_path / "train.h5")[0][0].shape == (4, 2, 48, 48)


def test_other_binning_options(digits_dvs_root, tmp_path):
    run_preprocess(config(digits_dvs_root, tmp_path, bins="time", size=32, timesteps=5), progress=False)
    folder = find_event_folder(digits_dvs_root, "digits-dvs")
    frames, label = FrameStoreDataset(tmp_path / "train.h5")[0]
    np.testing.assert_array_equal(frames.numpy(), to_count_frames(folder.read(0), size=(32, 32), timesteps=5, bins="time"))
    run_preprocess(config(digits_dvs_root, tmp_path / "w", bins="window", window_us=50_000, timesteps=6), progress=False)
    assert FrameStoreDataset(tmp_path / "w" / "test.h5")[0][0].shape == (6, 2, 48, 48)


_CHILD = textwrap.dedent(
    """
    import sys, time
    import ckdsnn_events.pipelines.preprocess as pp
    from ckdsnn_events.cli.main import main
    original = pp._process
    def slow(index):
        time.sleep(0.15)
        return original(index)
    pp._process = slow
    main(["preprocess", "--dataset", "digits-dvs", "--root", sys.argv[1], "--out", sys.argv[2],
          "--workers", "0", "--split", "0.67"])
    """
)


def _start_slow_child(root, out):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(root), str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_progress(out: Path, min_bytes: int, child, timeout=60.0):
    log = out / ".preprocess.partial.log"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if log.exists() and log.stat().st_size >= min_bytes:
            return
        assert child.poll() is None, child.communicate()
        time.sleep(0.05)
    raise AssertionError("the child made no progress")


@pytest.mark.parametrize("how", ["kill -9", "ctrl-c"])
def test_interrupted_run_resumes_and_ends_with_the_same_bytes(digits_dvs_root, reference_stores, tmp_path, how):
    child = _start_slow_child(digits_dvs_root, tmp_path)
    _wait_for_progress(tmp_path, 8000, child)
    child.send_signal(signal.SIGKILL if how == "kill -9" else signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert not (tmp_path / "train.h5").exists() and not (tmp_path / "test.h5").exists()
    if how == "ctrl-c":
        assert child.returncode == 130
        assert "Run the same command again to resume" in stderr and "Traceback" not in stderr
    else:
        assert child.returncode == -signal.SIGKILL
    result = run_preprocess(config(digits_dvs_root, tmp_path), progress=False)
    assert 0 < result.recordings_done < 30  # it resumed rather than starting over
    for split in ("train", "test"):
        assert (tmp_path / f"{split}.h5").read_bytes() == (reference_stores / f"{split}.h5").read_bytes()


def test_changed_sources_restart_the_partial_run(digits_dvs_root, tmp_path):
    root = tmp_path / "src"
    shutil.copytree(digits_dvs_root, root)
    child = _start_slow_child(root, tmp_path / "out")
    _wait_for_progress(tmp_path / "out", 8000, child)
    child.kill()
    child.communicate()
    victim = sorted(root.glob("3/*.aedat"))[0]
    victim.write_bytes(sorted(root.glob("4/*.aedat"))[0].read_bytes())
    result = run_preprocess(config(root, tmp_path / "out"), progress=False)
    assert result.recordings_done == 30


def _dataset_with_bad_file(digits_dvs_root, tmp_path, content: bytes) -> Path:
    root = tmp_path / "src"
    shutil.copytree(digits_dvs_root, root)
    bad = sorted(root.glob("5/*.aedat"))[1]
    bad.write_bytes(content)
    return root


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"#!AER-DAT2.0\r\n" + b"\x00" * 13, "truncated"),
        (b"#!AER-DAT2.0\r\n", "no events"),
        (b"junk", "not an AER-DAT file"),
    ],
)
def test_bad_recording_stops_with_its_name_and_writes_nothing(digits_dvs_root, tmp_path, content, message):
    root = _dataset_with_bad_file(digits_dvs_root, tmp_path, content)
    out = tmp_path / "out"
    with pytest.raises(UserError, match=message) as info:
        run_preprocess(config(root, out), progress=False)
    assert "5/5_0001.aedat" in str(info.value) and "--skip-bad" in str(info.value)
    assert not (out / "train.h5").exists() and not (out / "test.h5").exists()


def test_skip_bad_leaves_the_file_out_and_lists_it(digits_dvs_root, tmp_path):
    root = _dataset_with_bad_file(digits_dvs_root, tmp_path, b"#!AER-DAT2.0\r\n" + b"\x00" * 13)
    result = run_preprocess(config(root, tmp_path / "out", skip_bad=True), progress=False)
    assert result.splits["train"].samples == 19 and result.splits["test"].samples == 10
    assert result.splits["train"].skipped[0]["file"] == "5/5_0001.aedat"
    with h5py.File(tmp_path / "out" / "train.h5") as f:
        skipped = json.loads(f.attrs["skipped"])
        assert skipped[0]["file"] == "5/5_0001.aedat" and "truncated" in skipped[0]["error"]
        assert f["frames"].shape[0] == 19 and "5/5_0001.aedat" not in list(f["source_files"].asstr()[:])


def test_same_dataset_in_npz_form_gives_the_same_frames(digits_dvs_root, reference_stores, tmp_path):
    folder = find_event_folder(digits_dvs_root, "digits-dvs")
    for i, rec in enumerate(folder.recordings):
        target = tmp_path / "events_np" / rec.relpath.replace(".aedat", ".npz")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_npz(target, folder.read(i))
    run_preprocess(config(tmp_path, tmp_path / "out"), progress=False)
    with h5py.File(tmp_path / "out" / "train.h5") as a, h5py.File(reference_stores / "train.h5") as b:
        np.testing.assert_array_equal(a["frames"][:], b["frames"][:])


def test_unwritable_output(digits_dvs_root, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write to --out directory"):
        run_preprocess(config(digits_dvs_root, blocker / "sub"), progress=False)
    if os.geteuid() != 0:  # root ignores permissions
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        with pytest.raises(UserError, match="cannot write"):
            run_preprocess(config(digits_dvs_root, locked), progress=False)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"timesteps": 0}, "--timesteps"),
        ({"size": 0}, "--size"),
        ({"bins": "nope"}, "--bins"),
        ({"bins": "window"}, "--window-us"),
        ({"split": 1.5}, "--split"),
        ({"workers": -1}, "--workers"),
        ({"dataset": "cifar10"}, "--dataset"),
    ],
)
def test_bad_options(digits_dvs_root, tmp_path, kw, message):
    with pytest.raises(UserError, match=message):
        run_preprocess(config(digits_dvs_root, tmp_path, **kw), progress=False)
