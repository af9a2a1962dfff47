"""An ordered map over spawned worker processes, with a progress bar: how preparation spreads its
per-image work (decode, resize, encode, tokenize) over a host's cores.

Workers are spawned, not forked: the caller may hold an XLA runtime, which does not survive a
fork. Results come back in the order of the tasks, so what is written does not depend on the
number of workers. At most two tasks per worker are in flight, so results never pile up in
memory, and a worker that dies (killed, out of memory) raises `BrokenProcessPool` here instead
of leaving the caller waiting for a result that will not come.
"""

from __future__ import annotations

import collections
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator, Sequence, TypeVar

from tqdm import tqdm

Task = TypeVar("Task")
Result = TypeVar("Result")
IN_FLIGHT_PER_WORKER = 2


def ordered_map(fn: Callable[[Task], Result], tasks: Sequence[Task], workers: int, desc: str,
                unit: str, size: Callable[[Task], int] = lambda task: 1) -> Iterator[Result]:
    """`fn(task)` for every task, in order, run by `workers` processes (1: in this one); `fn` must
    be a module-level function (or a functools.partial of one) so that workers can import it. The
    progress bar counts `size(task)` `unit`s per task done."""
    with tqdm(total=sum(size(task) for task in tasks), desc=desc, unit=unit) as bar:
        if workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                yield fn(task)
                bar.update(size(task))
            return
        workers = min(workers, len(tasks))
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            pending = collections.deque()  # (future, its task's size)
            for task in tasks:
                if len(pending) == IN_FLIGHT_PER_WORKER * workers:
                    future, n = pending.popleft()
                    yield future.result()
                    bar.update(n)
                pending.append((pool.submit(fn, task), size(task)))
            while pending:
                future, n = pending.popleft()
                yield future.result()
                bar.update(n)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
