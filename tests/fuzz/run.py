"""Run the fuzzers: ``python tests/fuzz/run.py [--cases N] [--seed S] [TARGET ...]`` (``make fuzz``).

Prints one line per target and exits 1 if any case ended in a traceback, an error that does not
name the file, or a wrong success; the failing case seeds are listed to reproduce them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import faulthandler  # noqa: E402
import targets  # noqa: E402
import targets_more  # noqa: E402,F401 - registers the store, checkpoint and recipe targets


def main() -> int:
    faulthandler.dump_traceback_later(float(os.environ.get("FUZZ_HANG_S", "1e9")), exit=True)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=list(targets.TARGETS))
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    results, failed = [], False
    for name in args.names:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as work:
            cases = max(1, args.cases // targets.TARGETS[name].cost)
            result = targets.run_target(name, cases, args.seed, Path(work))
        result["seconds"] = time.perf_counter() - started
        results.append(result)
        print(f"{targets.describe(result)} ({result['seconds']:.0f} s)", flush=True)
        for failure in result["failures"]:
            failed = True
            print(f"  case seed {failure['case_seed']}: {failure['kind']}: {failure['detail']}")
    if args.json:
        targets.dump(results, args.json)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
