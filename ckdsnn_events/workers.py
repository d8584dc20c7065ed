"""Worker processes for the data stages: one way to start, interrupt and stop a Pool.

``preprocess`` and ``simulate`` map one function over many recordings. With one worker (or fewer
than two tasks) the function runs in this process; otherwise in a ``multiprocessing`` Pool
(``fork`` where the platform has it: the workers inherit the loaded modules and start at once).
The Pool is terminated whenever the caller leaves the ``with`` block (finished, failed, or
interrupted by Ctrl-C), so no worker outlives the stage.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from typing import Any


@contextlib.contextmanager
def worker_results(fn: Callable[[Any], Any], tasks: Sequence, workers: int, initializer: Callable[..., None],
                   initargs: tuple = (), chunksize: int = 4) -> Iterator[Iterator]:
    """``fn`` applied to every task, as an iterator of results (in any order with workers).

    Args:
        fn: a module-level function of one task (it is pickled for the workers).
        tasks: the tasks.
        workers: processes; 0 or 1 runs ``fn`` in this process.
        initializer, initargs: called once per worker (or once here) before any task, so that
            large shared state is sent once per worker, not once per task.
        chunksize: tasks handed to a worker at a time.
    """
    pool = None
    try:
        if workers <= 1 or len(tasks) < 2:
            initializer(*initargs)
            yield map(fn, tasks)
        else:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            pool = multiprocessing.get_context(method).Pool(workers, initializer, initargs)
            yield pool.imap_unordered(fn, tasks, chunksize=chunksize)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
