"""kill -9 harness: preprocess and training killed at random moments, resumed, compared.

``python tests/fuzz/kill9.py [--kills N] [--seed S]`` (``make kill9``). For each stage: one
uninterrupted reference run, then the same command started again and again in a fresh folder and
killed with SIGKILL after a random delay (uniform over the reference run's duration), until it
finishes; after every kill no final file may be half-written (a store or checkpoint under its
final name must load). The finished outputs must equal the reference: the stores byte for byte,
the checkpoints' weights, optimizer state and epochs, and metrics.csv but for its seconds column.
Prints the number of kills, how many landed while the stage ran, and the comparison.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CKD = [sys.executable, "-m", "ckdsnn_events.cli"]


def run(args: list[str], out: Path, kill_at: float | None = None, kill_after_first: float | None = None):
    """Run ``ckd-events args``; SIGKILL it ``kill_at`` s after its start, or ``kill_after_first`` s
    after the first file appears in ``out`` (a fresh folder: the stage has begun its work).

    Returns (exit code, or None if killed; seconds until the first file appeared in ``out``; total).
    """
    started = time.perf_counter()
    log = tempfile.TemporaryFile()  # not a pipe: tqdm's output would fill it and block the stage
    proc = subprocess.Popen(CKD + args, stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
    first = None
    while proc.poll() is None:
        now = time.perf_counter() - started
        if first is None and out.exists() and any(out.iterdir()):
            first = now
        if (kill_at is not None and now >= kill_at) or (
                kill_after_first is not None and first is not None and now >= first + kill_after_first):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return None, first or now, now
        time.sleep(0.01)
    if proc.returncode != 0:
        log.seek(0)
        raise SystemExit(f"ckd-events {' '.join(args)} failed: {log.read().decode()[-2000:]}")
    elapsed = time.perf_counter() - started
    return proc.returncode, elapsed if first is None else first, elapsed


KILLS_PER_TRIAL = 2  # killed twice (the second time while resuming), then run to the end


def campaign(name: str, make_args, outputs_ok, compare, kills: int, rng: random.Random, work: Path) -> dict:
    """Kill moments: uniform between the reference run's first output file (imports take most of a
    short run) and its end, measured from each process's start."""
    reference = work / f"{name}-reference"
    _, first, total = run(make_args(reference), reference)
    print(f"  {name}: reference run {total:.1f} s, first output after {first:.1f} s", file=sys.stderr, flush=True)
    done_kills = trials = 0
    mismatches = []
    while done_kills < kills:
        trials += 1
        out = work / f"{name}-{trials}"
        for k in range(min(KILLS_PER_TRIAL, kills - done_kills)):
            if k == 0:  # in the fresh folder: after the first output, within the reference's working time
                code, _, _ = run(make_args(out), out, kill_after_first=rng.uniform(0, 0.9 * (total - first)))
            else:  # while resuming (it may finish first: then no kill is counted)
                code, _, _ = run(make_args(out, resume=out.exists()), out, kill_at=rng.uniform(first, total))
            if code is None:
                done_kills += 1
                print(f"  {name}: kill {done_kills} (trial {trials})", file=sys.stderr, flush=True)
                problem = outputs_ok(out)
                if problem:
                    mismatches.append(f"after kill {done_kills}: {problem}")
        run(make_args(out, resume=out.exists()), out)
        problem = compare(reference, out)
        print(f"  {name}: trial {trials} after {done_kills} kills: {problem or 'identical to the reference'}",
              file=sys.stderr, flush=True)
        if problem:
            mismatches.append(f"trial {trials}: {problem}")
        shutil.rmtree(out)
    return {"stage": name, "kills": done_kills, "trials": trials, "reference_s": total, "working_s": total - first,
            "problems": mismatches}


# --- preprocess ------------------------------------------------------------------------------------


def preprocess_campaign(kills: int, rng: random.Random, work: Path) -> dict:
    recordings = work / "recordings"
    subprocess.run(CKD + ["simulate", "--out", str(recordings), "--limit", "4", "--workers", "0"], check=True,
                   stdout=subprocess.DEVNULL, cwd=ROOT)

    def make_args(out, resume=False):
        return ["preprocess", "--dataset", "digits-dvs", "--root", str(recordings), "--out", str(out), "-T", "4",
                "--size", "32", "--workers", "1", "--split", "0.75"]

    def outputs_ok(out):
        from ckdsnn_events.data.store_check import bad_samples
        from ckdsnn_events.errors import UserError

        for store in out.glob("*.h5"):
            try:
                if bad_samples(store):
                    return f"{store.name} has damaged samples"
            except UserError as err:
                return f"{store.name} under its final name does not open: {err}"
        return ""

    def compare(reference, out):
        for split in ("train.h5", "test.h5"):
            if (reference / split).read_bytes() != (out / split).read_bytes():
                return f"{split} differs from the uninterrupted run"
        leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
        return f"left behind: {leftovers}" if leftovers else ""

    return campaign("preprocess", make_args, outputs_ok, compare, kills, rng, work)


# --- training --------------------------------------------------------------------------------------


def training_campaign(kills: int, rng: random.Random, work: Path) -> dict:
    recordings, frames = work / "recordings", work / "frames"
    if not (frames / "train.h5").exists():
        subprocess.run(CKD + ["simulate", "--out", str(recordings), "--limit", "4", "--workers", "0"], check=True,
                       stdout=subprocess.DEVNULL, cwd=ROOT)
        subprocess.run(CKD + ["preprocess", "--dataset", "digits-dvs", "--root", str(recordings), "--out", str(frames),
                              "-T", "3", "--size", "16", "--workers", "0"], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    settings = ["data.val_fraction=0.34", "model.teacher_width=8", "model.student_width=8", "teacher_optim.epochs=4",
                "teacher_optim.warmup_epochs=0", "teacher_optim.lr=0.05", "data.workers=0", "data.batch_size=8"]

    def make_args(out, resume=False):
        args = ["train-teacher", "--dataset", "digits-dvs", "--root", str(frames), "--device", "cpu", "--run-dir", str(out)]
        for setting in settings:
            args += ["--set", setting]
        return args + (["--resume"] if resume and (out / "last.pt").exists() else [])

    def outputs_ok(out):
        from ckdsnn_events.checkpoints import load_checkpoint
        from ckdsnn_events.errors import UserError

        for name in ("last.pt", "best.pt"):
            if (out / name).exists():
                try:
                    load_checkpoint(out / name)
                except UserError as err:
                    return f"{name} under its final name does not load: {err}"
        return ""

    def compare(reference, out):
        from ckdsnn_events.checkpoints import content_hash, load_checkpoint

        for name in ("last.pt", "best.pt"):
            a, b = load_checkpoint(reference / name), load_checkpoint(out / name)
            for key in ("epoch", "best_epoch", "best_val", "model", "optimizer"):
                if content_hash(a.get(key)) != content_hash(b.get(key)):
                    return f"{name}: '{key}' differs from the uninterrupted run"
        rows = [[{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(open(d / "metrics.csv"))]
                for d in (reference, out)]
        if rows[0] != rows[1]:
            return "metrics.csv differs (seconds aside)"
        leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
        return f"left behind: {leftovers}" if leftovers else ""

    return campaign("training", make_args, outputs_ok, compare, kills, rng, work)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", default="preprocess,training")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    failed = False
    with tempfile.TemporaryDirectory(prefix="kill9-") as work:
        for stage in args.stages.split(","):
            fn = {"preprocess": preprocess_campaign, "training": training_campaign}[stage]
            result = fn(args.kills, rng, Path(work))
            print(f"{stage}: {result['kills']} kills over {result['trials']} trials (reference run "
                  f"{result['reference_s']:.1f} s, {result['working_s']:.1f} s of it after the first output "
                  f"file, over which the kill moments are spread), {len(result['problems'])} problems; final outputs "
                  + ("identical to the uninterrupted run" if not result["problems"] else "DIFFER"), flush=True)
            for problem in result["problems"]:
                failed = True
                print("  " + problem)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
