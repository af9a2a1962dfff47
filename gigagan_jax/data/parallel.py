"""An ordered map over spawned worker processes, with a progress bar: how preparation spreads its
per-image work (decode, resize, encode, tokenize) over a host's cores.

Workers are spawned, not forked: the caller may hold an XLA runtime, which does not survive a
fork. Results come back in the order of the tasks, so what is written does not depend on the
number of workers.
"""

from __future__ import annotations

import multiprocessing
from typing import Callable, Iterator, Sequence, TypeVar

from tqdm import tqdm

Task = TypeVar("Task")
Result = TypeVar("Result")


def ordered_map(fn: Callable[[Task], Result], tasks: Sequence[Task], workers: int, desc: str,
                unit: str) -> Iterator[Result]:
    """`fn(task)` for every task, in order, run by `workers` processes (1: in this one); `fn` must
    be a module-level function (or a functools.partial of one) so that workers can import it."""
    bar = tqdm(total=len(tasks), desc=desc, unit=unit)
    pool = None
    if workers <= 1 or len(tasks) <= 1:
        results = map(fn, tasks)
    else:
        pool = multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)))
        results = pool.imap(fn, tasks)
    try:
        for result in results:
            bar.update(1)
            yield result
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
