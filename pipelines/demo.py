"""The end-to-end demo on the embedded digits-dvs dataset, one stage after another.

simulate -> preprocess -> train the teacher -> distil the student (CE + SAMD + NLD) -> evaluate ->
energy report. Every stage is the same function the CLI command of that name calls, and every
stage is resumable, so running the demo again continues (or does nothing) instead of starting over.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo; the defaults finish in minutes on 2 CPU cores (see the README)."""

    data: str = "data"  # simulated recordings and frame stores go under this folder
    runs_root: str = "runs"
    limit: int | None = None  # recordings per class (None: all 1797 digits)
    timesteps: int = 6
    size: int = 32
    workers: int = 2
    overrides: tuple[str, ...] = field(default_factory=tuple)  # --set SECTION.KEY=VALUE for the training recipe
    progress: bool = True


def run_demo(demo: DemoConfig, log=print) -> dict:
    """Run every stage; returns a summary (accuracies, energy ratio, paths, seconds per stage)."""
    from ckdsnn_events.events.simulate import SimulatorConfig
    from ckdsnn_events.pipelines.energy import run_energy
    from ckdsnn_events.pipelines.preprocess import PreprocessConfig, run_preprocess
    from ckdsnn_events.pipelines.simulate import SimulateJob, run_simulate
    from ckdsnn_events.pipelines.train import resolve_config, run_distill, run_evaluate

    raw, frames = Path(demo.data) / "digits-dvs", Path(demo.data) / "digits-dvs-frames"
    # resolved first, so that a bad --set fails before minutes of simulation
    config = resolve_config("digits-dvs", options={"data.root": str(frames), "data.workers": demo.workers,
                                                   "runs_root": demo.runs_root}, overrides=demo.overrides)
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        seconds[name] = now - started
        started = now

    log(f"[1/5] simulate the embedded digits as DVS recordings -> {raw}")
    run_simulate(SimulateJob(out=str(raw), limit=demo.limit, workers=demo.workers), SimulatorConfig(),
                 progress=demo.progress)
    stage("simulate")
    log(f"[2/5] frame them into HDF5 stores (T={demo.timesteps}, {demo.size}x{demo.size}) -> {frames}")
    run_preprocess(PreprocessConfig(dataset="digits-dvs", root=str(raw), out=str(frames), timesteps=demo.timesteps,
                                    size=demo.size, workers=demo.workers), progress=demo.progress)
    stage("preprocess")
    log("[3/5] train the ANN teacher, then distil the LIF student with CE + SAMD + NLD")
    run_dir = Path(demo.runs_root) / "digits-dvs" / f"student-{config.model.student}-ckdsnn-seed{config.seed}"
    student = run_distill(config, resume=(run_dir / "last.pt").exists(), progress=demo.progress, run_dir=run_dir)
    stage("train")
    log("[4/5] evaluate the best student on the test set")
    evaluation = run_evaluate(student["best_checkpoint"])
    stage("evaluate")
    log("[5/5] count its spikes and synaptic operations: energy report")
    energy = run_energy(student["best_checkpoint"], progress=demo.progress)
    stage("energy")
    teacher = energy["teacher"] or {}
    return {
        "student_test_acc": evaluation["acc"],
        "student_firing_rate": evaluation["firing_rate"],
        "teacher_test_acc": teacher.get("accuracy"),
        "ann_to_snn_energy": energy["ann_to_snn_energy"],
        "student_energy_pj": energy["student"]["report"]["totals"]["energy_pj"],
        "teacher_energy_pj": teacher.get("report", {}).get("totals", {}).get("energy_pj"),
        "report": energy["paths"]["md"],
        "student_checkpoint": student["best_checkpoint"],
        "teacher_checkpoint": student["teacher_checkpoint"],
        "seconds": seconds,
    }
