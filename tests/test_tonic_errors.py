"""Bad input for tonic's datasets and the new preprocess options: one Error line, exit 2, nothing half-written."""

from __future__ import annotations

import shutil

import h5py
import pytest
from click.testing import CliRunner
from conftest import assert_user_error
from tonic_layouts import write_dvsgesture, write_nmnist, write_pokerdvs

from ckdsnn_events.cli.main import main


def preprocess(*args):
    return CliRunner().invoke(main, ["preprocess", "--workers", "0", *map(str, args)])


@pytest.fixture()
def nmnist(tmp_path):
    write_nmnist(tmp_path / "raw")
    return tmp_path / "raw"


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """Any download attempt fails the test: without --download nothing may be fetched."""
    import tonic.dataset
    import tonic.download_utils

    def fail(*args, **kwargs):
        pytest.fail("a download was started")

    monkeypatch.setattr(tonic.download_utils, "download_url", fail)
    monkeypatch.setattr(tonic.download_utils, "download_and_extract_archive", fail)
    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", fail)


def test_missing_root_names_files_place_and_md5_and_downloads_nothing(tmp_path):
    import tonic

    for root in (tmp_path / "absent", tmp_path):
        result = preprocess("--dataset", "nmnist", "--root", root, "--out", tmp_path / "out")
        assert_user_error(result, "train.zip", tonic.datasets.NMNIST.train_md5, tonic.datasets.NMNIST.test_md5,
                          "NMNIST/Train", "--download")
    assert not (tmp_path / "out").exists()


def test_root_of_another_dataset(nmnist, tmp_path):
    result = preprocess("--dataset", "pokerdvs", "--root", nmnist, "--out", tmp_path / "out")
    assert_user_error(result, "pips_train.tar.gz", "is it --dataset nmnist")


def test_foreign_folder_inside_the_layout(tmp_path):
    write_dvsgesture(tmp_path)
    (tmp_path / "DVSGesture" / "ibmGestureTrain" / "notes").mkdir()
    (tmp_path / "DVSGesture" / "ibmGestureTrain" / "notes" / "x.npy").write_bytes(b"")
    result = preprocess("--dataset", "dvsgesture", "--root", tmp_path, "--out", tmp_path / "out", "--size", 32)
    assert_user_error(result, "cannot list it", "layout")


def test_class_folder_missing(nmnist, tmp_path):
    shutil.rmtree(nmnist / "NMNIST" / "Test" / "3")
    result = preprocess("--dataset", "nmnist", "--root", nmnist, "--out", tmp_path / "out")
    assert_user_error(result, "lacks the class folder(s) 3", "Test", "test.zip")


def test_checksum_mismatch(tmp_path):
    write_pokerdvs(tmp_path)
    shutil.rmtree(tmp_path / "POKERDVS" / "pips_test")
    (tmp_path / "POKERDVS" / "pips_test.tar.gz").write_bytes(b"not the archive")
    result = preprocess("--dataset", "pokerdvs", "--root", tmp_path, "--out", tmp_path / "out")
    assert_user_error(result, "checksum mismatch", "eef2bf7d0d3defae89a6fa98b07c17af", "pips_test.tar.gz")


@pytest.mark.parametrize("content, message", [(b"", "holds no events"), (b"\x01\x02\x03\x04\x05\x06\x07", "truncated")])
def test_bad_recording_with_and_without_skip_bad(nmnist, tmp_path, content, message):
    bad = nmnist / "NMNIST" / "Train" / "5" / "00001.bin"
    bad.write_bytes(content)
    out = tmp_path / "out"
    result = preprocess("--dataset", "nmnist", "--root", nmnist, "--out", out, "-T", 5)
    assert_user_error(result, "00001.bin", message, "--skip-bad")
    assert not (out / "train.h5").exists() and not list(out.glob("*.h5"))
    result = preprocess("--dataset", "nmnist", "--root", nmnist, "--out", out, "-T", 5, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "skipped Train/5/00001.bin" in result.output
    with h5py.File(out / "train.h5") as f:
        assert "Train/5/00001.bin" not in [s.decode() for s in f["source_files"][:]]
        assert len(f["labels"]) == 19


def test_truncated_npy_recording(tmp_path):
    write_dvsgesture(tmp_path)
    victim = tmp_path / "DVSGesture" / "ibmGestureTest" / "user24_lab" / "4.npy"
    victim.write_bytes(victim.read_bytes()[:-9])
    result = preprocess("--dataset", "dvsgesture", "--root", tmp_path, "--out", tmp_path / "out", "--size", 32)
    assert_user_error(result, "4.npy", "tonic's DVSGesture reader failed", "truncated")


@pytest.mark.parametrize("protocol, message", [
    ("nope", "is unknown"), ("ratio:1.5", "in (0, 1)"), ("ratio:0", "in (0, 1)"), ("random:0.5:x", "not an integer"),
    ("tebn", "does not exist for nmnist"),
])
def test_bad_protocol_options(nmnist, tmp_path, protocol, message):
    result = preprocess("--dataset", "nmnist", "--root", nmnist, "--out", tmp_path / "out", "--split-protocol", protocol)
    assert_user_error(result, "--split-protocol", message)
    assert not (tmp_path / "out").exists()


def test_official_where_there_is_none(digits_dvs_root, tmp_path):
    result = preprocess("--dataset", "digits-dvs", "--root", digits_dvs_root, "--out", tmp_path / "o",
                        "--split-protocol", "official")
    assert_user_error(result, "no official train/test split")


@pytest.mark.parametrize("args, message", [
    (["--size", "64"], "only downsamples"), (["--size", "0"], "--size"), (["--size", "3x"], "--size"),
    (["--compression", "zstd"], "--compression"), (["--format", "npz"], "--format"),
])
def test_bad_frame_options(nmnist, tmp_path, args, message):
    result = preprocess("--dataset", "nmnist", "--root", nmnist, "--out", tmp_path / "out", *args)
    assert result.exit_code == 2 and "Traceback" not in result.output and message in result.output, result.output


@pytest.mark.parametrize("first, second, message", [
    (["--split-protocol", "ratio:0.5"], ["--split-protocol", "ratio:0.6"], "split_protocol"),
    (["--compression", "gzip"], ["--compression", "none"], "compression"),
])
def test_store_of_other_protocol_or_compression_is_kept(nmnist, tmp_path, first, second, message):
    out = tmp_path / "out"
    assert preprocess("--dataset", "nmnist", "--root", nmnist, "--out", out, "-T", 5, *first).exit_code == 0
    before = (out / "train.h5").read_bytes()
    result = preprocess("--dataset", "nmnist", "--root", nmnist, "--out", out, "-T", 5, *second)
    assert_user_error(result, message, "--overwrite")
    assert (out / "train.h5").read_bytes() == before


def test_interrupted_run_with_other_compression_is_kept(nmnist, tmp_path, monkeypatch):
    from ckdsnn_events.pipelines import preprocess as stage

    out = tmp_path / "out"
    real = stage._process
    calls = []

    def stop_after_three(index):
        calls.append(index)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return real(index)

    monkeypatch.setattr(stage, "_process", stop_after_three)
    result = preprocess("--dataset", "nmnist", "--root", nmnist, "--out", out, "-T", 5, "--compression", "lzf")
    assert result.exit_code == 130, result.output
    log = out / ".preprocess.partial.log"
    kept = log.read_bytes()
    assert kept
    monkeypatch.setattr(stage, "_process", real)
    result = preprocess("--dataset", "nmnist", "--root", nmnist, "--out", out, "-T", 5, "--compression", "gzip")
    assert_user_error(result, "interrupted preprocess run with other options", "compression", "--overwrite")
    assert log.read_bytes() == kept and not list(out.glob("*.h5"))
    result = preprocess("--dataset", "nmnist", "--root", nmnist, "--out", out, "-T", 5, "--compression", "lzf")
    assert result.exit_code == 0, result.output
    assert "37 recordings" in result.output  # resumed: 3 were done


def test_download_only_for_tonic_datasets(digits_dvs_root, tmp_path):
    result = preprocess("--dataset", "digits-dvs", "--root", digits_dvs_root, "--out", tmp_path / "o", "--download")
    assert_user_error(result, "--download")


def test_archive_with_tonics_md5_is_extracted_offline(tmp_path, monkeypatch):
    """An archive present but not extracted: checked against the md5 tonic knows, then extracted."""
    import tarfile

    import tonic

    write_pokerdvs(tmp_path / "src")
    location = tmp_path / "root" / "POKERDVS"
    shutil.copytree(tmp_path / "src" / "POKERDVS" / "pips_train", location / "pips_train")
    archive = location / "pips_test.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "POKERDVS" / "pips_test", arcname="pips_test")
    from tonic.download_utils import calculate_md5

    monkeypatch.setattr(tonic.datasets.POKERDVS, "test_md5", calculate_md5(str(archive)))
    monkeypatch.setattr("ckdsnn_events.data.tonic_datasets.TONIC_SPECS", {})
    result = preprocess("--dataset", "pokerdvs", "--root", tmp_path / "root", "--out", tmp_path / "out", "-T", 5)
    assert result.exit_code == 0, result.output
    assert (location / "pips_test" / "cl").is_dir()
    with h5py.File(tmp_path / "out" / "test.h5") as f:
        assert len(f["labels"]) == 8


def test_root_is_a_file_and_unknown_label(tmp_path):
    (tmp_path / "file").write_text("x")
    assert_user_error(preprocess("--dataset", "nmnist", "--root", tmp_path / "file", "--out", tmp_path / "o"),
                      "is a file")
    write_dvsgesture(tmp_path / "g")
    shutil.copy(tmp_path / "g" / "DVSGesture" / "ibmGestureTrain" / "user01_fluorescent" / "3.npy",
                tmp_path / "g" / "DVSGesture" / "ibmGestureTrain" / "user01_fluorescent" / "12.npy")
    result = preprocess("--dataset", "dvsgesture", "--root", tmp_path / "g", "--out", tmp_path / "o", "--size", 32)
    assert_user_error(result, "12.npy", "label 12")
