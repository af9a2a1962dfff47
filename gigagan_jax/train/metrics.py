"""Training metrics without a host round-trip per step: step metrics stay on device until a log
step, are fetched once, checked for non-finite values, averaged and written to TensorBoard (and
read back, for checks of a run, by `read_scalars`)."""

from __future__ import annotations

import io
import math
import struct
from typing import Optional

import jax
import numpy as np

from gigagan_jax.workdir import files_under, join, open_file, tensorboardx


class NonFiniteLossError(RuntimeError):
    """A loss or gradient went NaN/inf; the message names the first bad step."""


class MetricsLog:
    """`append` each step's device metrics; `flush` at log steps (and before every checkpoint, so
    a saved state never followed a non-finite step). `writer` is a tensorboardX SummaryWriter or None;
    `wandb_run` a W&B run that mirrors its scalars and images, or None."""

    def __init__(self, writer, stop_on_nonfinite: bool, kept_in: str, wandb_run=None):
        self.writer = writer
        self.wandb_run = wandb_run
        self.stop_on_nonfinite = stop_on_nonfinite
        self.kept_in = kept_in  # where the last good checkpoint is, for the error message
        self.pending: list[tuple[int, dict]] = []
        self.last: dict[str, float] = {}

    def append(self, step: int, metrics: dict) -> None:
        self.pending.append((step, metrics))

    def flush(self) -> None:
        """Fetch pending metrics once, raise on a non-finite value, log their means."""
        if not self.pending:
            return
        fetched = jax.device_get(self.pending)
        self.pending.clear()
        for step, metrics in fetched:
            bad = sorted(k for k, v in metrics.items() if not math.isfinite(float(v)))
            if bad and self.stop_on_nonfinite:
                raise NonFiniteLossError(f"non-finite {', '.join(bad)} at step {step}; the last good "
                                         f"checkpoint is kept in {self.kept_in}")
        keys = sorted(set().union(*(m.keys() for _, m in fetched)))  # R1 / vision terms come and go
        self.last = {k: float(np.mean([float(m[k]) for _, m in fetched if k in m])) for k in keys}
        self.write_scalars(self.last, fetched[-1][0] + 1)

    def write_scalars(self, scalars: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for k, v in scalars.items():
                self.writer.add_scalar(k, v, step)
            self.writer.flush()
        if self.wandb_run is not None:
            self.wandb_run.log(dict(scalars), step=step)

    def write_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """A uint8 [H, W, 3] image (a sample grid) under `tag`."""
        if self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")
            self.writer.flush()
        if self.wandb_run is not None:
            import wandb

            self.wandb_run.log({tag: wandb.Image(image)}, step=step)

    def write_text(self, tag: str, text: str, step: int) -> None:
        """Text shown verbatim (TensorBoard renders markdown: indented, it stays a code block)."""
        if self.writer is not None:
            self.writer.add_text(tag, "\n".join("    " + line for line in text.splitlines()), step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()


def open_writer(log_dir: str, enabled: bool) -> Optional[object]:
    """A TensorBoard writer on the main process, None elsewhere."""
    if not enabled:
        return None
    return tensorboardx().SummaryWriter(log_dir)


def _summary_values(log_dir: str):
    """(step, Summary.Value) of every TensorBoard event file in log_dir, oldest file first (a resumed
    run adds one), without the tensorboard package: each record is its length (u64), the length's
    CRC, an Event proto, and the proto's CRC."""
    tensorboardx()  # the package first, without PyTorch
    from tensorboardX.proto.event_pb2 import Event

    for name in files_under(log_dir):
        if not name.startswith("events.out.tfevents."):
            continue
        with open_file(join(log_dir, name), "rb") as f:
            data = f.read()
        while len(data) >= 16:
            (length,) = struct.unpack("<Q", data[:8])
            event = Event.FromString(data[12:12 + length])
            for value in event.summary.value:
                yield int(event.step), value
            data = data[16 + length:]


def read_scalars(log_dir: str) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of the scalars written to log_dir."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for step, value in _summary_values(log_dir):
        if value.HasField("simple_value"):
            scalars.setdefault(value.tag, []).append((step, float(value.simple_value)))
    return scalars


def read_images(log_dir: str) -> dict[str, list[tuple[int, np.ndarray]]]:
    """{tag: [(step, uint8 [H, W, C]), ...]} of the images written to log_dir."""
    from PIL import Image

    images: dict[str, list[tuple[int, np.ndarray]]] = {}
    for step, value in _summary_values(log_dir):
        if value.HasField("image"):
            pixels = np.asarray(Image.open(io.BytesIO(value.image.encoded_image_string)))
            images.setdefault(value.tag, []).append((step, pixels))
    return images


def read_texts(log_dir: str) -> dict[str, list[tuple[int, str]]]:
    """{tag: [(step, text), ...]} of the text written to log_dir (as `write_text` stored it)."""
    texts: dict[str, list[tuple[int, str]]] = {}
    for step, value in _summary_values(log_dir):
        if value.HasField("tensor") and value.tensor.string_val:
            texts.setdefault(value.tag, []).append((step, value.tensor.string_val[0].decode("utf-8")))
    return texts
