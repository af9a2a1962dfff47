"""Deterministic, resumable, per-host sharded input pipeline producing global batches.

Batch k is a pure function of (seed, k): the global example stream is the concatenation of
per-epoch permutations `perm_e = rng(seed, e).permutation(N)`, global batch k is positions
[k*B, (k+1)*B) of that stream, and host p reads rows [p*B/P, (p+1)*B/P) of it. So the whole
iterator state is the integer k, resuming at k gives exactly the batches an unbroken run gives,
and the global batch is the same whatever the number of hosts.

Reading (decoding images) runs in `config.data.num_workers` processes (`workers.DecodeWorkers`),
each reading a slice of the host's rows; 0 reads in the prefetch thread. Which rows make batch k
does not depend on the workers, so neither do the batches. Captions become CLIP tokens
once: read from the dataset where preparation stored them (`codec`), else tokenized on first
sight and kept for the run.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from gigagan_jax.data import codec
from gigagan_jax.data.sources import open_source
from gigagan_jax.data.workers import DecodeWorkers

_BATCH_AXES = ("data", "fsdp")
_STREAM_PERM, _STREAM_FLIP = 0, 1
_POLL_S = 0.1


class InputPipeline:
    """Iterate global batches: image uint8 [B,R,R,3], label int32 [B], tokens int32 [B,L] (with a
    tokenizer), caption (this host's strings). With a mesh the numeric arrays are global jax.Arrays
    sharded over ('data', 'fsdp') on the batch axis; without one they are this host's numpy rows.
    `source` (default `open_source(config)`) needs `__len__` and `get_batch(indices)`, and must
    pickle when `config.data.num_workers` > 0. `tokenizer` maps captions to int32 [n, L]; one with
    a `context_length` attribute (`ClipTokenizer`) can use tokens the dataset stores.
    """

    def __init__(self, config, *, tokenizer: Callable[[list[str]], np.ndarray] | None = None,
                 mesh: jax.sharding.Mesh | None = None, process_index: int | None = None,
                 process_count: int | None = None, source=None):
        self.source = open_source(config) if source is None else source
        self.num_examples = len(self.source)
        self._dataset = f"the {config.data.kind!r} dataset at {config.data.path or config.data.name!r}"
        if self.num_examples == 0:
            raise ValueError(f"{self._dataset} is empty")
        # Class conditioning turns a label outside [0, num_classes) into an all-zero one-hot, which
        # would train unconditionally without a word; every batch is checked instead.
        self._num_classes = int(config.model.num_classes) if config.model.conditioning == "class" else None
        self.seed = int(config.train.seed)
        self.batch_size = int(config.train.batch_size)
        self.process_index = jax.process_index() if process_index is None else process_index
        self.process_count = jax.process_count() if process_count is None else process_count
        if self.batch_size % self.process_count:
            raise ValueError(f"config.train.batch_size={self.batch_size} is not divisible by the "
                             f"{self.process_count} hosts")
        self.local_batch_size = self.batch_size // self.process_count
        self.random_flip = bool(config.data.random_flip)
        self.prefetch = int(config.data.prefetch)
        self.num_workers = int(config.data.num_workers)
        self._tokenizer = tokenizer
        self._context_length = getattr(tokenizer, "context_length", None)
        self._tokens: np.ndarray | None = None  # [N, L] int32, filled as examples are first seen
        self._tokenized: np.ndarray | None = None  # [N] bool
        self._sharding = None
        if mesh is not None:
            if self.process_count != jax.process_count():
                raise ValueError(f"process_count={self.process_count} differs from jax.process_count()="
                                 f"{jax.process_count()}; simulated hosts cannot build global arrays")
            axes = tuple(a for a in _BATCH_AXES if a in mesh.axis_names)
            self._sharding = NamedSharding(mesh, PartitionSpec(axes))
        self._perm_cache: dict[int, np.ndarray] = {}
        self._next = 0  # index of the next batch handed to the caller
        self._queue: queue.Queue | None = None
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._image_shape = (int(config.model.resolution),) * 2 + (3,)
        self._workers: DecodeWorkers | None = None  # started on the first read

    # ---- state -------------------------------------------------------------------------------
    def get_state(self) -> dict:
        """JSON-able position: restoring it with `set_state` continues with the same batches."""
        return {"batch": self._next, "seed": self.seed, "num_examples": self.num_examples,
                "batch_size": self.batch_size}

    def set_state(self, state: dict) -> None:
        for key in ("seed", "num_examples", "batch_size"):
            if int(state[key]) != getattr(self, key):
                raise ValueError(f"data iterator state has {key}={state[key]} but this pipeline has "
                                 f"{getattr(self, key)}; the saved position does not apply")
        self._halt()
        self._next = int(state["batch"])

    # ---- index arithmetic --------------------------------------------------------------------
    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm_cache:
            if len(self._perm_cache) > 2:
                self._perm_cache.pop(min(self._perm_cache))
            rng = np.random.default_rng([self.seed, _STREAM_PERM, epoch])
            self._perm_cache[epoch] = rng.permutation(self.num_examples)
        return self._perm_cache[epoch]

    def batch_indices(self, k: int) -> np.ndarray:
        """[B/P] dataset indices this host reads for global batch k."""
        start = k * self.batch_size + self.process_index * self.local_batch_size
        positions = np.arange(start, start + self.local_batch_size)  # [b]
        epochs, offsets = np.divmod(positions, self.num_examples)
        out = np.empty(self.local_batch_size, np.int64)
        for epoch in np.unique(epochs):
            sel = epochs == epoch
            out[sel] = self._permutation(int(epoch))[offsets[sel]]
        return out

    def _flips(self, k: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, _STREAM_FLIP, k])
        flips = rng.random(self.batch_size) < 0.5  # [B], drawn globally so hosts agree
        return flips[self.process_index * self.local_batch_size:][:self.local_batch_size]

    # ---- reading -----------------------------------------------------------------------------
    def _read(self, indices: np.ndarray) -> dict:
        if self.num_workers == 0:
            return self.source.get_batch(indices)
        if self._workers is None:
            self._workers = DecodeWorkers(self.source, self.num_workers, self.local_batch_size, self._image_shape)
        return self._workers.read(indices)

    def _tokens_for(self, indices: np.ndarray, captions: list[str]) -> np.ndarray:
        """int32 [b, L]; each example's caption goes through the tokenizer once per run."""
        if self._tokenized is None:
            self._tokenized = np.zeros(self.num_examples, bool)
        todo = np.unique(indices[~self._tokenized[indices]])
        if len(todo):
            first = {int(i): c for i, c in zip(indices, captions)}
            new = np.asarray(self._tokenizer([first[int(i)] for i in todo]), np.int32)  # [n, L]
            if self._tokens is None:
                self._tokens = np.zeros((self.num_examples, new.shape[1]), np.int32)
            self._tokens[todo] = new
            self._tokenized[todo] = True
        return self._tokens[indices]

    def _check_labels(self, labels: np.ndarray, indices: np.ndarray) -> None:
        """ValueError naming the first label outside [0, num_classes) of class-conditional data."""
        if self._num_classes is None or not len(labels):
            return
        if labels.min() >= 0 and labels.max() < self._num_classes:
            return
        bad = int(np.flatnonzero((labels < 0) | (labels >= self._num_classes))[0])
        hint = " (caption folders carry no labels: -1)" if labels[bad] == -1 else ""
        raise ValueError(f"label {labels[bad]} of example {indices[bad]} in {self._dataset} is outside "
                         f"[0, {self._num_classes}): class-conditional training (config.model.conditioning="
                         f"'class') needs every label in [0, config.model.num_classes){hint}")

    def host_batch(self, k: int) -> dict:
        """This host's rows of global batch k, as numpy."""
        indices = self.batch_indices(k)
        batch = self._read(indices)
        self._check_labels(np.asarray(batch["label"]), indices)
        image = batch["image"]  # [b, R, R, 3]
        if self.random_flip:
            flips = self._flips(k)
            image[flips] = image[flips, :, ::-1]
        out = {"image": image, "label": batch["label"].astype(np.int32),
               "caption": np.asarray(batch["caption"], dtype=object)}
        if self._tokenizer is not None:
            stored = batch.get("tokens")  # [b, 77] where the dataset stores them
            if stored is not None and self._context_length is not None and self._context_length <= stored.shape[1]:
                out["tokens"] = codec.fit_context(stored, self._context_length)
            else:
                out["tokens"] = self._tokens_for(indices, batch["caption"])
        return out

    def _globalize(self, batch: dict) -> dict:
        if self._sharding is None:
            return batch
        out = {"caption": batch["caption"]}
        for key, value in batch.items():
            if key != "caption":
                shape = (self.batch_size,) + value.shape[1:]
                out[key] = jax.make_array_from_process_local_data(self._sharding, value, shape)
        return out

    def batch(self, k: int) -> dict:
        return self._globalize(self.host_batch(k))

    # ---- iteration with a prefetch thread ----------------------------------------------------
    def _produce(self, start: int, q: queue.Queue, stop: threading.Event) -> None:
        k = start
        while not stop.is_set():
            try:
                item = (k, self.batch(k), None)
            except Exception as e:  # re-raised in the consumer, where it can be seen
                item = (k, None, e)
            while not stop.is_set():
                try:
                    q.put(item, timeout=_POLL_S)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return
            k += 1

    def _halt(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        self._thread = self._queue = self._stop = None

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self.prefetch <= 0:
            batch = self.batch(self._next)
        else:
            if self._thread is None:
                self._queue, self._stop = queue.Queue(self.prefetch), threading.Event()
                self._thread = threading.Thread(target=self._produce, args=(self._next, self._queue, self._stop),
                                                daemon=True)
                self._thread.start()
            k, batch, error = self._queue.get()
            assert k == self._next, (k, self._next)
            if error is not None:
                self._halt()
                raise error
        self._next += 1
        return batch

    def close(self) -> None:
        self._halt()
        if self._workers is not None:
            self._workers.close()
            self._workers = None
