"""workers.worker_results: the same results in this process and in a Pool; no worker outlives the block."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from ckdsnn_events.workers import worker_results

_STATE: dict = {}


def _init(offset: int) -> None:
    _STATE["offset"] = offset


def _work(task: int) -> tuple[int, int]:
    return task + _STATE["offset"], os.getpid()


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_results_are_the_same_in_process_and_in_a_pool(workers):
    with worker_results(_work, list(range(10)), workers, _init, (100,), chunksize=2) as results:
        out = list(results)
    assert sorted(value for value, _ in out) == list(range(100, 110))
    in_process = {pid for _, pid in out} == {os.getpid()}
    assert in_process == (workers <= 1)
    assert not multiprocessing.active_children()


def test_a_single_task_runs_in_this_process():
    with worker_results(_work, [1], 4, _init, (0,)) as results:
        assert list(results) == [(1, os.getpid())]


def test_the_pool_is_terminated_when_the_block_fails():
    with pytest.raises(RuntimeError, match="stop"):
        with worker_results(_work, list(range(50)), 2, _init, (0,)) as results:
            next(iter(results))
            assert multiprocessing.active_children()
            raise RuntimeError("stop")
    assert not multiprocessing.active_children()
