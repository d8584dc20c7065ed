"""The DVS simulator: determinism, the pixel model, the options, and the simulate stage."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ckdsnn_events.errors import UserError
from ckdsnn_events.events.aedat2 import read_aedat2
from ckdsnn_events.events.simulate import SimulatorConfig, fit_image, saccade_path, simulate_recording
from ckdsnn_events.pipelines.simulate import SimulateJob, image_folder_sources, run_simulate


@pytest.fixture(scope="module")
def square():
    image = np.zeros((16, 16))
    image[4:12, 4:12] = 1.0
    return image


def test_deterministic_and_seeded(square):
    config = SimulatorConfig(image_px=16, noise_hz=1.0)
    a = simulate_recording(square, config, index=3)
    b = simulate_recording(square, config, index=3)
    np.testing.assert_array_equal(a, b)
    c = simulate_recording(square, config, index=4)
    assert len(a) != len(c) or not np.array_equal(a, c)


def test_events_are_sorted_inside_the_sensor_and_balanced(square):
    events = simulate_recording(square, SimulatorConfig(image_px=16), 0)
    assert len(events) > 100
    assert (np.diff(events["t"].astype(np.int64)) >= 0).all()
    assert events["x"].max() < 128 and events["y"].max() < 128
    # a closed eye path brings every edge back: ON and OFF events nearly balance
    assert 0.35 < events["p"].mean() < 0.65
    # only pixels near the square's edges fire: the image sits centred on the sensor
    assert events["x"].min() >= 56 - 6 and events["x"].max() <= 72 + 6


def test_one_pixel_follows_the_log_intensity_model():
    """A pixel whose log intensity rises by k thresholds emits k ON events, nothing else."""
    config = SimulatorConfig(sensor_width=8, sensor_height=8, image_px=4, saccades=1, amplitude_px=2.0,
                             threshold=0.5, threshold_sigma=0.0, step_us=1000, saccade_ms=10)
    image = np.full((4, 4), 0.0)
    image[:, :] = 0.0
    image[0, 0] = 1.0
    events = simulate_recording(image, config, 0)
    # the bright pixel moves 2 px right; pixel (2,2) is lit at the start and dark at the end
    level = np.log(1.01) - np.log(0.01)
    expected = int(level / 0.5)
    on = events[events["p"]]
    off = events[~events["p"]]
    assert len(off[(off["x"] == 2) & (off["y"] == 2)]) == expected
    assert len(on[(on["x"] == 4) & (on["y"] == 2)]) == expected


def test_threshold_refractory_and_noise_options(square):
    base = simulate_recording(square, SimulatorConfig(image_px=16), 0)
    higher = simulate_recording(square, SimulatorConfig(image_px=16, threshold=0.4), 0)
    assert len(higher) < 0.7 * len(base)
    refractory = simulate_recording(square, SimulatorConfig(image_px=16, refractory_us=5000), 0)
    assert len(refractory) < len(base)
    for pixel in np.unique(refractory["y"].astype(int) * 128 + refractory["x"]):
        t = refractory["t"][(refractory["y"].astype(int) * 128 + refractory["x"]) == pixel].astype(np.int64)
        assert (np.diff(t) >= 5000).all()
    config = SimulatorConfig(image_px=16, noise_hz=5.0)
    noisy = simulate_recording(square, config, 0)
    expected = 5.0 * 128 * 128 * config.duration_us * 1e-6
    assert abs((len(noisy) - len(base)) - expected) < 5 * np.sqrt(expected)


def test_saccade_path_is_closed():
    path = saccade_path(SimulatorConfig(saccades=3, amplitude_px=3.0))
    np.testing.assert_allclose(path[0], [0, 0])
    np.testing.assert_allclose(path[-1], [0, 0], atol=1e-9)
    assert np.abs(path).max() == pytest.approx(3.0, rel=0.05)


def test_fit_image_and_bad_config():
    assert fit_image(np.ones((8, 4)), 64).shape == (64, 32)
    with pytest.raises(ValueError, match="threshold"):
        SimulatorConfig(threshold=0).validate()


def test_digits_stage_writes_the_original_form_and_resumes(tmp_path):
    out = tmp_path / "dd"
    summary = run_simulate(SimulateJob(out=str(out), limit=2, workers=0), SimulatorConfig(), progress=False)
    assert summary["recordings"] == 20 and summary["written"] == 20
    files = sorted(out.glob("*/*.aedat"))
    assert [f.parent.name for f in files[::2]] == [str(d) for d in range(10)]
    events = read_aedat2(files[0])
    assert len(events) > 1000
    # the same command again writes nothing; other settings need --overwrite
    assert run_simulate(SimulateJob(out=str(out), limit=2, workers=0), SimulatorConfig(), progress=False)["written"] == 0
    with pytest.raises(UserError, match="other settings"):
        run_simulate(SimulateJob(out=str(out), limit=2, workers=0), SimulatorConfig(threshold=0.3), progress=False)
    again = run_simulate(SimulateJob(out=str(out), limit=1, workers=0, overwrite=True), SimulatorConfig(threshold=0.3), progress=False)
    assert again["written"] == 10 and len(list(out.glob("*/*.aedat"))) == 10


def test_image_folder_source(tmp_path):
    images = tmp_path / "imgs"
    for c, value in (("cats", 50), ("dogs", 200)):
        (images / c).mkdir(parents=True)
        for i in range(2):
            arr = np.zeros((20, 30, 3), np.uint8)
            arr[5:15, 5 + i : 20 + i] = value
            Image.fromarray(arr).save(images / c / f"img{i}.png")
    out = tmp_path / "ev"
    summary = run_simulate(SimulateJob(out=str(out), images=str(images), workers=0), SimulatorConfig(image_px=32), progress=False)
    assert summary["classes"] == ["cats", "dogs"] and summary["recordings"] == 4
    assert len(read_aedat2(out / "dogs" / "img1.aedat")) > 100


def test_image_folder_bad_forms(tmp_path):
    with pytest.raises(UserError, match="not a directory"):
        image_folder_sources(tmp_path / "missing")
    with pytest.raises(UserError, match="no class subfolders"):
        image_folder_sources(tmp_path)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(UserError, match="holds no images"):
        image_folder_sources(tmp_path)
    (tmp_path / "empty_class" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot read the image"):
        run_simulate(SimulateJob(out=str(tmp_path / "o"), images=str(tmp_path), workers=0), SimulatorConfig(), progress=False)
