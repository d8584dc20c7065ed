"""A DVS simulator: images moved in small saccades in front of a simulated event camera.

This is how CIFAR10-DVS and N-MNIST were recorded (a static image moving in front of a DVS), done
in software. Each pixel keeps the log intensity at which it last fired; when the current log
intensity differs from it by at least the pixel's contrast threshold, the pixel emits one event per
threshold crossed, with timestamps interpolated linearly inside the simulation step. Options model
the sensor's non-idealities: per-pixel threshold mismatch (Gaussian), a refractory period, and
background-activity noise (Poisson, uniform over pixels, time and polarity).

Everything is seeded: recording ``index`` of a dataset uses ``numpy.random.default_rng((seed,
index))``, so the same config gives the same events, whichever order or process computes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from ckdsnn_events.events.types import make_events
from ckdsnn_events.limits import check_fits


MAX_CONTRAST = math.log(1.01 / 0.01)  # the largest log-intensity step a [0, 1] image makes


@dataclass(frozen=True)
class SimulatorConfig:
    """Parameters of the simulated recording (units in the names)."""

    sensor_width: int = 128
    sensor_height: int = 128
    image_px: int = 64  # side of the displayed image on the sensor, pixels
    saccades: int = 3  # corners of the closed polygonal eye path (3: N-MNIST's triangle)
    saccade_ms: float = 100.0  # duration of one saccade
    amplitude_px: float = 3.0  # distance of the path's corners from the start, pixels
    step_us: int = 2000  # simulation step
    threshold: float = 0.2  # mean log-intensity contrast threshold
    threshold_sigma: float = 0.03  # per-pixel threshold mismatch (std)
    refractory_us: int = 0  # a pixel stays silent this long after an event
    noise_hz: float = 0.0  # background events per pixel per second
    background: float = 0.0  # intensity of the screen around the image, 0..1
    seed: int = 0

    def validate(self) -> None:
        """Raise ValueError naming the first out-of-range parameter."""
        checks = {
            "sensor_width": self.sensor_width >= 1,
            "sensor_height": self.sensor_height >= 1,
            "image_px": 1 <= self.image_px <= min(self.sensor_width, self.sensor_height),
            "saccades": self.saccades >= 1,
            "saccade_ms": self.saccade_ms > 0,
            "amplitude_px": self.amplitude_px >= 0,
            "step_us": self.step_us >= 1,
            # log(frame + 0.01) spans log(0.01)..log(1.01): a larger threshold never fires
            "threshold": 0 < self.threshold < MAX_CONTRAST,
            "threshold_sigma": self.threshold_sigma >= 0,
            "refractory_us": self.refractory_us >= 0,
            "noise_hz": 0 <= self.noise_hz < math.inf,
            "background": 0 <= self.background <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range")
        # noise events: int64 t, x, y + uint8 p, concatenated (a copy) and sorted into 13-byte events
        noise = self.noise_hz * self.sensor_width * self.sensor_height * self.duration_us * 1e-6
        check_fits(noise * 70, f"--noise-hz {self.noise_hz:g} ({noise:.3g} noise events per recording)",
                   "Use a smaller --noise-hz (real DVS background activity is 0.1-10 Hz per pixel).")

    @property
    def duration_us(self) -> int:
        return int(round(self.saccades * self.saccade_ms * 1000))


def saccade_path(config: SimulatorConfig) -> np.ndarray:
    """Image offset (dx, dy) in pixels at every step: float64 array of shape (steps + 1, 2).

    The path runs along a regular polygon with ``saccades`` corners at ``amplitude_px`` from the
    start and returns to the start, at constant speed within each saccade.
    """
    steps = max(1, config.duration_us // config.step_us)
    corners = [(0.0, 0.0)]
    for k in range(1, config.saccades):
        angle = math.pi / 4 + 2 * math.pi * (k - 1) / max(1, config.saccades)
        corners.append((config.amplitude_px * math.cos(angle), config.amplitude_px * math.sin(angle)))
    corners.append((0.0, 0.0))
    corners = np.asarray(corners)
    # position along the path as a fraction of the saccade count
    s = np.linspace(0.0, config.saccades, steps + 1)
    segment = np.minimum(s.astype(np.int64), config.saccades - 1)
    frac = (s - segment)[:, None]
    if config.saccades == 1:
        # one saccade: out to a single corner is a two-corner path; go there and stay
        corners = np.asarray([(0.0, 0.0), (config.amplitude_px, 0.0)])
    return corners[segment] * (1 - frac) + corners[np.minimum(segment + 1, len(corners) - 1)] * frac


@numba.njit(cache=True)
def _render(image, ox, oy, x0, x1, y0, y1, background, out):  # pragma: no cover - compiled
    """Bilinear sample of ``image`` placed at (ox, oy) into the window [y0,y1) x [x0,x1) of ``out``."""
    h, w = image.shape
    for v in range(y0, y1):
        for u in range(x0, x1):
            fx = u - ox
            fy = v - oy
            ix = math.floor(fx)
            iy = math.floor(fy)
            ax = fx - ix
            ay = fy - iy
            acc = 0.0
            for dy in range(2):
                for dx in range(2):
                    px = ix + dx
                    py = iy + dy
                    if 0 <= px < w and 0 <= py < h:
                        val = image[py, px]
                    else:
                        val = background
                    wgt = (ax if dx else 1.0 - ax) * (ay if dy else 1.0 - ay)
                    acc += wgt * val
            out[v, u] = acc


@numba.njit(cache=True)
def _simulate(image, path, origin_x, origin_y, step_us, thresholds, refractory_us,
              background, width, height, cap_t, cap_x, cap_y, cap_p):  # pragma: no cover
    """Run the pixel model along ``path``; write events into the cap_* buffers.

    Returns the number of events, or -1 when the buffers are too small.
    """
    h, w = image.shape
    margin = 2
    max_dx = 0.0
    max_dy = 0.0
    for k in range(path.shape[0]):
        max_dx = max(max_dx, abs(path[k, 0]))
        max_dy = max(max_dy, abs(path[k, 1]))
    # only pixels the moving image can reach ever change
    x0 = max(0, int(math.floor(origin_x - max_dx)) - margin)
    x1 = min(width, int(math.ceil(origin_x + w + max_dx)) + margin)
    y0 = max(0, int(math.floor(origin_y - max_dy)) - margin)
    y1 = min(height, int(math.ceil(origin_y + h + max_dy)) + margin)
    frame = np.full((height, width), background)
    _render(image, origin_x + path[0, 0], origin_y + path[0, 1], x0, x1, y0, y1, background, frame)
    ref = np.log(frame + 0.01)
    last_event = np.full((height, width), -(1 << 40), dtype=np.int64)
    n = 0
    for k in range(1, path.shape[0]):
        _render(image, origin_x + path[k, 0], origin_y + path[k, 1], x0, x1, y0, y1, background, frame)
        t_prev = (k - 1) * step_us
        for v in range(y0, y1):
            for u in range(x0, x1):
                level = math.log(frame[v, u] + 0.01)
                delta = level - ref[v, u]
                c = thresholds[v, u]
                if abs(delta) < c:
                    continue
                crossings = int(abs(delta) / c)
                sign = 1.0 if delta > 0 else -1.0
                for j in range(1, crossings + 1):
                    t = t_prev + int(step_us * (j * c) / abs(delta))
                    if t - last_event[v, u] < refractory_us:
                        continue
                    if n >= cap_t.shape[0]:
                        return -1
                    cap_t[n] = t
                    cap_x[n] = u
                    cap_y[n] = v
                    cap_p[n] = 1 if sign > 0 else 0
                    last_event[v, u] = t
                    n += 1
                ref[v, u] += sign * crossings * c
    return n


def simulate_recording(image: np.ndarray, config: SimulatorConfig, index: int = 0) -> np.ndarray:
    """Simulate one recording of a grayscale image.

    Args:
        image: float array (h, w) of intensities in [0, 1], already at the displayed size
            (``config.image_px`` on its longer side).
        config: simulator parameters.
        index: recording index; with ``config.seed`` it seeds the threshold mismatch and noise.

    Returns:
        ``EVENT_DTYPE`` events (N,), sorted by time, t starting at 0 us, in the project's
        orientation (x right, y down, p=1 ON).
    """
    config.validate()
    image = np.asarray(image, dtype=np.float64)
    rng = np.random.default_rng((config.seed, index))
    width, height = config.sensor_width, config.sensor_height
    thresholds = np.maximum(
        config.threshold + config.threshold_sigma * rng.standard_normal((height, width)),
        0.01 * config.threshold,
    )
    path = saccade_path(config)
    origin_x = (width - image.shape[1]) / 2.0
    origin_y = (height - image.shape[0]) / 2.0
    capacity = 1 << 16
    while True:
        buffers = [np.empty(capacity, dtype=d) for d in (np.int64, np.int64, np.int64, np.uint8)]
        n = _simulate(image, path, origin_x, origin_y, config.step_us, thresholds,
                      config.refractory_us, config.background, width, height, *buffers)
        if n >= 0:
            break
        capacity *= 4
    t, x, y, p = (b[:n] for b in buffers)
    if config.noise_hz > 0:
        count = rng.poisson(config.noise_hz * width * height * config.duration_us * 1e-6)
        t = np.concatenate([t, rng.integers(0, config.duration_us, count)])
        x = np.concatenate([x, rng.integers(0, width, count)])
        y = np.concatenate([y, rng.integers(0, height, count)])
        p = np.concatenate([p, rng.integers(0, 2, count)])
    order = np.argsort(t, kind="stable")
    return make_events(t[order], x[order], y[order], p[order])


def fit_image(image: np.ndarray, image_px: int) -> np.ndarray:
    """Resize a grayscale image (h, w), values in [0, 1], so its longer side is ``image_px``.

    Bilinear, via PIL's float mode. Returns float64 (h', w').
    """
    from PIL import Image

    h, w = image.shape
    scale = image_px / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = Image.fromarray(np.asarray(image, dtype=np.float32), mode="F").resize(
        size, Image.Resampling.BILINEAR
    )
    return np.clip(np.asarray(resized, dtype=np.float64), 0.0, 1.0)
