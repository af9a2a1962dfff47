"""Decode worker processes for the input pipeline, handing images back through shared memory.

Decoding JPEGs is the input pipeline's work at 256-512 px, and one core decodes a few hundred a
second, so a host decodes in several processes. Sending the decoded pixels back through a pipe
costs about as much as decoding them (tens of MB per batch, pickled and copied in 64 KB reads),
so each worker writes its rows straight into one shared-memory block the size of a host batch
and returns only the small fields; the parent copies the block out once. Workers are spawned
(a forked child would inherit the parent's XLA runtime) and each reopens the source from its
pickle (`RecordSource` pickles as its folder). A worker that dies (killed, out of memory) raises
`BrokenProcessPool` in the reader instead of leaving training waiting for its rows.
"""

from __future__ import annotations

import multiprocessing
import weakref
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import shared_memory

import numpy as np

_source = None  # in a worker: the source it reads
_blocks: dict[str, shared_memory.SharedMemory] = {}  # in a worker: attached blocks by name


def _start(source) -> None:
    global _source
    _source = source


def _attach(name: str) -> shared_memory.SharedMemory:
    if name not in _blocks:
        _blocks[name] = shared_memory.SharedMemory(name=name)  # spawned workers share the parent's tracker
    return _blocks[name]


def _read(indices: np.ndarray, block: str, row: int, image_shape: tuple[int, ...]) -> dict:
    """Read `indices`; write the images to rows [row, row + n) of the block; return the rest."""
    batch = _source.get_batch(indices)
    image = batch.pop("image")
    if image.shape[1:] != image_shape or image.dtype != np.uint8:
        raise ValueError(f"the source returned images {image.shape[1:]} {image.dtype}, expected {image_shape} uint8")
    rows = np.ndarray((row + len(indices),) + image_shape, np.uint8, buffer=_attach(block).buf)
    rows[row:] = image
    return batch


class DecodeWorkers:
    """`num_workers` spawned processes reading a source's rows into one shared [b, R, R, 3] block."""

    def __init__(self, source, num_workers: int, batch_size: int, image_shape: tuple[int, ...]):
        self.num_workers = num_workers
        self.image_shape = tuple(image_shape)
        self._block = shared_memory.SharedMemory(create=True, size=max(1, batch_size * int(np.prod(image_shape))))
        self._pool = ProcessPoolExecutor(num_workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_start, initargs=(source,))
        self._finalizer = weakref.finalize(self, _shut, self._pool, self._block)  # also at exit, if never closed

    def read(self, indices: np.ndarray) -> dict:
        """Like `source.get_batch(indices)`; rows are split evenly over the workers, in order."""
        chunks = np.array_split(indices, self.num_workers)
        starts = np.cumsum([0] + [len(c) for c in chunks[:-1]])
        parts = list(self._pool.map(_read, chunks, [self._block.name] * len(chunks), [int(s) for s in starts],
                                    [self.image_shape] * len(chunks)))
        images = np.ndarray((len(indices),) + self.image_shape, np.uint8, buffer=self._block.buf)
        out = {"image": images.copy()}  # the block is reused by the next read
        for key in parts[0]:
            out[key] = ([x for p in parts for x in p[key]] if isinstance(parts[0][key], list)
                        else np.concatenate([p[key] for p in parts]))
        return out

    def close(self) -> None:
        self._finalizer()


def _shut(pool: ProcessPoolExecutor, block: shared_memory.SharedMemory) -> None:
    pool.shutdown(wait=True, cancel_futures=True)
    block.close()
    block.unlink()
