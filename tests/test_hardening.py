"""Regression tests for the fuzzing campaign's findings (issue 15): readers, stores, checkpoints, CLI."""

from __future__ import annotations

import io
import os
import random
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ckdsnn_events.checkpoints import load_checkpoint, recover_run_dir, save_checkpoint
from ckdsnn_events.cli.main import main
from ckdsnn_events.data.frame_store import FrameStoreDataset
from ckdsnn_events.errors import UserError
from ckdsnn_events.events.aedat2 import _header_end, read_aedat2, write_aedat2
from ckdsnn_events.events.aedat4 import read_aedat4
from ckdsnn_events.events.isolated import IsolatedWorker
from ckdsnn_events.events.npz import read_npz
from ckdsnn_events.pipelines.preprocess import PreprocessConfig, run_preprocess
from conftest import assert_user_error, random_events, real_fixture

sys.path.insert(0, str(Path(__file__).parent / "fuzz"))
from mutate import mutate  # noqa: E402


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# --- readers -----------------------------------------------------------------------------------------


def test_aedat4_decoder_panic_is_a_user_error(tmp_path):
    # fuzz case: a header mutation that makes the Rust decoder panic (a BaseException)
    data = mutate(real_fixture("tonic_sample.aedat4").read_bytes(), random.Random(45), 0, 4096)
    path = tmp_path / "panic.aedat4"
    path.write_bytes(data)
    with pytest.raises(UserError, match="out of range for slice") as info:
        read_aedat4(path, (320, 240, 2))
    assert str(path) in str(info.value)


def test_a_decoder_that_aborts_the_process_is_a_user_error():
    worker = IsolatedWorker(lambda arg: os.abort() if arg == "abort" else arg.encode())
    assert worker.call("fine", lambda how: UserError(how)) == b"fine"
    with pytest.raises(UserError, match="SIGABRT"):
        worker.call("abort", lambda how: UserError(f"crashed: {how}"))
    assert worker.call("again", lambda how: UserError(how)) == b"again"  # a new helper


def _zip(members: dict[str, bytes], method=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _npy(array, shape: str | None = None) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array))
    data = buffer.getvalue()
    if shape is not None:
        data = data.replace(f"'shape': {np.asarray(array).shape}".encode(), f"'shape': {shape}".encode().ljust(
            len(f"'shape': {np.asarray(array).shape}")))
    return data


GOOD = {"t": np.array([1, 2, 3]), "x": np.array([1, 2, 3]), "y": np.array([4, 5, 6]), "p": np.array([0, 1, 0])}


@pytest.mark.parametrize("edit, message", [
    (lambda: _npy(GOOD["t"]), "single .npy array"),
    (lambda: _zip({**{f"{k}.npy": _npy(v) for k, v in GOOD.items()}, "t.npy": _npy(GOOD["t"], "(2199023255552,)")}),
     "claims shape"),
    (lambda: _zip({**{f"{k}.npy": _npy(v) for k, v in GOOD.items()}, "x.npy": _npy(np.array(["a", "b", "c"]))}), "dtype"),
    (lambda: _zip({**{f"{k}.npy": _npy(v) for k, v in GOOD.items()},
                   "y.npy": _npy(np.zeros(3, dtype=[("a", "<i4")]))}), "dtype"),
    (lambda: _zip({**{f"{k}.npy": _npy(v) for k, v in GOOD.items()},
                   "t.npy": _npy(np.array([1, 2], dtype="M8[s]"))}), "dtype"),
    (lambda: _zip({**{f"{k}.npy": _npy(v) for k, v in GOOD.items()}, "x.npy": _npy(np.array([1, 65541, 3]))}), "reaches 65541"),
    (lambda: _zip({**{f"{k}.npy": _npy(v) for k, v in GOOD.items()}, "x.npy": _npy(np.array([1.0, np.nan, 3.0]))}), "NaN"),
    (lambda: _zip({**{f"{k}.npy": _npy(v) for k, v in GOOD.items()}, "y.npy": _npy(np.array([1.0, np.inf, 3.0]))}), "NaN or infinite"),
    (lambda: _zip({**{f"{k}.npy": _npy(v) for k, v in GOOD.items()}, "x.npy": _npy(np.array([1.0, 2.5, 3.0]))}), "fractional"),
    (lambda: _zip({**{f"{k}.npy": _npy(v) for k, v in GOOD.items()}, "t.npy": _npy(np.array([1.0, 2.0, 2.0**64]))}), "reaches"),
])
def test_npz_bad_forms(tmp_path, edit, message):
    path = tmp_path / "bad.npz"
    path.write_bytes(edit())
    with pytest.raises(UserError, match=message) as info:
        read_npz(path, (128, 128, 2))
    assert str(path) in str(info.value)


def test_npz_damaged_deflate_stream_and_whole_floats(tmp_path):
    data = bytearray(_zip({f"{k}.npy": _npy(v) for k, v in GOOD.items()}, zipfile.ZIP_DEFLATED))
    data[60:64] = b"\xff\xff\xff\xff"  # inside the first member's deflate stream
    path = tmp_path / "deflate.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="cannot read the .npz file"):
        read_npz(path)
    path.write_bytes(_zip({**{f"{k}.npy": _npy(v) for k, v in GOOD.items()}, "x.npy": _npy(np.array([1.0, 2.0, 3.0]))}))
    assert read_npz(path)["x"].tolist() == [1, 2, 3]


def _aedat_with_header(tmp_path, header: bytes, n=300):
    events = random_events(n, seed=3)
    write_aedat2(tmp_path / "a.aedat", events)
    data = (tmp_path / "a.aedat").read_bytes()
    body = data[_header_end(data, "seed") :]
    path = tmp_path / "h.aedat"
    path.write_bytes(b"#!AER-DAT2.0\r\n" + header + body)
    return path, events


def test_aedat2_header_rule(tmp_path):
    path, events = _aedat_with_header(tmp_path, b"# jAER line\r\n#End Of ASCII Header\r\n")
    np.testing.assert_array_equal(read_aedat2(path), events)
    path, _ = _aedat_with_header(tmp_path, b"# a line that ends in a bare CR\r")
    with pytest.raises(UserError, match="bare CR"):
        read_aedat2(path)
    # a first record byte of '#' would let the scanner swallow records: refused, never read short
    path, _ = _aedat_with_header(tmp_path, b"")
    data = bytearray(path.read_bytes())
    data[len(b"#!AER-DAT2.0\r\n")] = ord("#")
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="binary byte|bits above 15"):
        read_aedat2(path)


# --- frame stores ------------------------------------------------------------------------------------


@pytest.fixture()
def stores(digits_dvs_root, tmp_path):
    out = tmp_path / "frames"
    config = PreprocessConfig(dataset="digits-dvs", root=str(digits_dvs_root), out=str(out), workers=0, split=0.67,
                              timesteps=3, size=16)
    run_preprocess(config, progress=False)
    return config, out


def _flip_in_chunk(path: Path, index: int) -> None:
    with h5py.File(path, "r") as f:
        offset = f["frames"].id.get_chunk_info(index).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 5] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_bit_flip_in_a_chunk_is_found_on_load_and_rebuilt(stores):
    config, out = stores
    train = out / "train.h5"
    reference = train.read_bytes()
    _flip_in_chunk(train, 2)
    dataset = FrameStoreDataset(train)
    with pytest.raises(UserError, match="sample 2 does not match its checksum"):
        dataset[2]
    result = cli("verify", train)
    assert_user_error(result, "1 of 20 samples", "2 (")
    rerun = run_preprocess(config, progress=False)
    assert rerun.splits["train"].status == "written" and rerun.splits["test"].status == "up to date"
    assert train.read_bytes() == reference


@pytest.mark.parametrize("edit, message", [
    (lambda f: f["labels"].__setitem__(0, 99), "labels reach"),
    (lambda f: f["labels"].__setitem__(0, -1), "labels reach"),
    (lambda f: (f.__delitem__("labels"), f.create_dataset("labels", data=np.zeros(3, dtype=np.int64))), "labels"),
    (lambda f: f.__delitem__("frames"), "missing frames"),
    (lambda f: f.attrs.__setitem__("config", "{not json"), "not valid JSON"),
])
def test_damaged_store_structure(stores, edit, message):
    config, out = stores
    train = out / "train.h5"
    with h5py.File(train, "r+") as f:
        edit(f)
    with pytest.raises(UserError, match=message) as info:
        FrameStoreDataset(train)
    assert str(train) in str(info.value)


def test_truncated_store_rebuilt_with_overwrite_and_verify(stores):
    config, out = stores
    train = out / "train.h5"
    reference = train.read_bytes()
    train.write_bytes(reference[: len(reference) // 2])
    with pytest.raises(UserError, match="not a readable frame store"):
        run_preprocess(config, progress=False)
    run_preprocess(PreprocessConfig(**{**config.__dict__, "overwrite": True}), progress=False)
    assert train.read_bytes() == reference
    _flip_in_chunk(train, 4)
    result = cli("verify", "--rebuild", train)
    assert result.exit_code == 0, result.output
    assert "all match their checksums. (rebuilt)" in result.output and train.read_bytes() == reference


def test_stale_temp_files_are_removed(stores):
    config, out = stores
    stale = [out / ".train.h5.abc123.tmp", out / "..preprocess.partial.json.x1.tmp"]  # atomic_path: ".<name>.<random>.tmp"
    for path in stale:
        path.write_bytes(b"left by kill -9")
    run_preprocess(config, progress=False)
    assert not any(p.exists() for p in stale)


# --- checkpoints ---------------------------------------------------------------------------------------


def _payload():
    from ckdsnn_events.models import build_teacher

    model = build_teacher("resnet20", num_classes=3, in_channels=2, width=4)
    return {"kind": "teacher", "arch": "resnet20", "width": 4, "num_classes": 3, "in_channels": 2, "neuron": None,
            "dataset": {"name": "d", "classes": ["a", "b", "c"], "input_size": [8, 8], "timesteps": 2},
            "epoch": 1, "best_val": 0.5, "best_epoch": 1, "metrics": {}, "model": model.state_dict(),
            "config": {"data": {}, "model": {}, "optim": {}}}


def test_checkpoint_content_hash_schema_and_finite_weights(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, _payload())
    assert load_checkpoint(path)["width"] == 4
    # bytes of a weight changed inside the zip: torch.load does not check the CRC, the hash does
    data = bytearray(path.read_bytes())
    name = next(n for n in zipfile.ZipFile(path).namelist() if "/data/" in n)
    with zipfile.ZipFile(path) as archive:
        raw = archive.read(name)
    offset = bytes(data).index(raw)
    data[offset + 3] ^= 0x40
    (tmp_path / "flip.pt").write_bytes(bytes(data))
    with pytest.raises(UserError, match="fails its content hash"):
        load_checkpoint(tmp_path / "flip.pt")
    for change, message in [({"in_channels": "x"}, "in_channels"), ({"config": []}, "config"),
                            ({"model": [1, 2]}, "state_dict"), ({"width": 10**9}, "width"),
                            ({"dataset": {"classes": "abc"}}, "classes")]:
        save_checkpoint(tmp_path / "edit.pt", {**_payload(), **change})
        with pytest.raises(UserError, match=message):
            load_checkpoint(tmp_path / "edit.pt")
    payload = _payload()
    next(iter(payload["model"].values())).view(-1)[0] = float("nan")
    save_checkpoint(tmp_path / "nan.pt", payload)
    with pytest.raises(UserError, match="NaN or infinite weights"):
        load_checkpoint(tmp_path / "nan.pt")


def test_best_pt_repaired_after_a_kill_between_the_two_writes(tmp_path):
    old_best, last = {**_payload(), "epoch": 1, "best_epoch": 1}, {**_payload(), "epoch": 2, "best_epoch": 2,
                                                                   "optimizer": {}}
    save_checkpoint(tmp_path / "best.pt", old_best)
    save_checkpoint(tmp_path / "last.pt", last)  # killed here: best.pt still holds epoch 1
    (tmp_path / ".best.pt.zz9.tmp").write_bytes(b"torn")
    recover_run_dir(tmp_path, load_checkpoint(tmp_path / "last.pt"))
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 2 and not (tmp_path / ".best.pt.zz9.tmp").exists()
    save_checkpoint(tmp_path / "last.pt", {**last, "epoch": 3, "best_epoch": 1})
    with pytest.raises(UserError, match="holds epoch 2, but last.pt records epoch 1"):
        recover_run_dir(tmp_path, load_checkpoint(tmp_path / "last.pt"))


# --- CLI bounds and bad folders ------------------------------------------------------------------------


def test_sizes_bounded_before_allocating(digits_dvs_root, tmp_path):
    base = ["preprocess", "--dataset", "digits-dvs", "--root", digits_dvs_root, "--out", tmp_path / "o", "--workers", "0"]
    assert_user_error(cli(*base, "-T", "1099511627776"), "-T 1099511627776")
    assert_user_error(cli(*base, "--size", "100000"), "--size 100000")
    assert_user_error(cli(*base, "--split", "0.01"), "--split 0.01 leaves no training recording")
    assert not (tmp_path / "o" / "train.h5").exists()
    sim = ["simulate", "--out", tmp_path / "s", "--limit", "1", "--workers", "0"]
    assert_user_error(cli(*sim, "--noise-hz", "1e12"), "--noise-hz")
    assert_user_error(cli(*sim, "--threshold", "inf"), "threshold")


def test_dangling_link_and_folder_named_like_a_recording(digits_dvs_root, tmp_path):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(digits_dvs_root, root)
    os.symlink(tmp_path / "nowhere.aedat", root / "3" / "zz-dangling.aedat")
    (root / "4" / "zz-folder.aedat").mkdir()
    base = ["preprocess", "--dataset", "digits-dvs", "--root", root, "--workers", "0", "-T", "3", "--size", "16"]
    assert_user_error(cli(*base, "--out", tmp_path / "a"), "zz-", "--skip-bad")
    result = cli(*base, "--out", tmp_path / "b", "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "skipped 3/zz-dangling.aedat" in result.output and "skipped 4/zz-folder.aedat" in result.output


def test_config_records_an_absolute_data_root(tmp_path, monkeypatch):
    from ckdsnn_events.pipelines.train import resolve_config

    monkeypatch.chdir(tmp_path)
    assert resolve_config("digits-dvs", options={"data.root": "frames"}).data.root == str(tmp_path / "frames")


def test_a_killed_first_epoch_leaves_no_stale_rows_or_temp_files(trained_student, tiny_frames, tmp_path):
    # found by `make kill9`: a kill between metrics.csv's first row and the first last.pt left that
    # row behind, and the restarted run appended epoch 1 again; a kill inside the curves.png write
    # left its temporary file
    from conftest import tiny_config

    from ckdsnn_events.pipelines.train import run_distill

    config = tiny_config(tiny_frames, tmp_path, teacher_checkpoint=trained_student["teacher_checkpoint"],
                         **{"optim.epochs": 1})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.csv").write_text("epoch,lr\n1,0.05\n")
    (run_dir / ".curves.png.abc123.tmp").write_bytes(b"half a png")
    run_distill(config, resume=True, progress=False, run_dir=run_dir)
    epochs = [line.split(",")[0] for line in (run_dir / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == ["1"]
    assert not list(run_dir.glob(".*.tmp"))


def test_image_timesteps_are_bounded_before_allocating():
    result = cli("distill", "--dataset", "digits", "-T", "1099511627776", "--device", "cpu")
    assert_user_error(result, "-T 1099511627776", "smaller --batch-size")
