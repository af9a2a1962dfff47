"""The periodic sample grid a run writes to WORKDIR/samples: fixed prompts and seeds, so grids of
different steps compare image for image.

Text-to-image: one row per prompt (config.train.sample_prompts, or the data set's first distinct
captions), SAMPLE_SEEDS seeds each. Upsampler: rows [input (pixel-repeated) | output | real]
for the data set's first examples. Both sample G_ema through `gigagan_jax.generate`.
"""

from __future__ import annotations

from typing import Optional

import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from gigagan_jax.data.degrade import lowres_input
from gigagan_jax.generate.grid import make_grid, nearest_resize, save_png
from gigagan_jax.generate.restore import TrainedGenerator
from gigagan_jax.generate.sample import sample_prompts, upsample_images
from gigagan_jax.hosts import is_main
from gigagan_jax.models.generator import Generator
from gigagan_jax.pixels import to_signed, to_uint8
from gigagan_jax.pretrained.clip import Clip
from gigagan_jax.train.metrics import MetricsLog
from gigagan_jax.workdir import join, sample_grid_path, samples_dir, write_text

SAMPLE_SEEDS = 4  # images per prompt in the text-to-image grid
UPSAMPLER_ROWS = 8  # examples in the upsampler grid
MAX_PROMPTS = 8  # rows of the text-to-image grid when the prompts come from the data


def data_prompts(source, limit: int = MAX_PROMPTS, scan: int = 256) -> list[str]:
    """The first `limit` distinct captions among the source's first `scan` examples."""
    prompts: list[str] = []
    for i in range(min(len(source), scan)):
        caption = source[i]["caption"]
        if caption not in prompts:
            prompts.append(caption)
        if len(prompts) == limit:
            break
    return prompts


class SampleGrid:
    """Writes WORKDIR/samples/step_N.png (and prompts.txt naming its rows) from G_ema, and the
    grid to TensorBoard (image `samples`) through `log`."""

    def __init__(self, config: ml_collections.ConfigDict, generator: Generator, clip: Optional[Clip],
                 source, workdir: str, mesh: Optional[Mesh] = None, log: Optional[MetricsLog] = None):
        self.config, self.generator, self.clip, self.workdir, self.mesh = config, generator, clip, workdir, mesh
        self.log = log
        self.upsampling = config.task == "upsampler"
        self.prompts: list[str] = []
        self.examples = None
        if self.upsampling:
            self.examples = source.get_batch(np.arange(min(UPSAMPLER_ROWS, len(source))))
        elif clip is not None:
            self.prompts = list(config.train.sample_prompts) or data_prompts(source)

    @property
    def enabled(self) -> bool:
        return bool(self.prompts) or self.upsampling

    def _text_to_image(self, g_ema, step: int) -> tuple[np.ndarray, list[str]]:
        trained = TrainedGenerator(self.config, self.generator, g_ema, self.clip, step, self.mesh)
        images = sample_prompts(trained, self.prompts, SAMPLE_SEEDS, seed=0)
        return make_grid(images, rows=len(self.prompts)), self.prompts

    def _upsampler(self, g_ema, step: int) -> tuple[np.ndarray, list[str]]:
        ex, spec = self.examples, self.generator.spec
        real = to_signed(jnp.asarray(ex["image"]))  # [n, R, R, 3]
        lowres = lowres_input(real, spec.input_resolution)
        n = len(real)
        trained = TrainedGenerator(self.config, self.generator, g_ema, self.clip, step, self.mesh)
        out = upsample_images(trained, np.asarray(lowres), list(ex["caption"]), list(range(n)), ex["label"])
        rows = np.stack([to_uint8(nearest_resize(lowres, real.shape[1])), out, np.asarray(ex["image"])], 1)
        captions = [f"[input | output | real] {c}" for c in ex["caption"]]
        return make_grid(rows.reshape((-1,) + rows.shape[2:]), rows=n), captions

    def write(self, g_ema, step: int) -> Optional[str]:
        """The grid's path, or None when there is nothing to sample (no prompts, no upsampler).
        Every host calls it (the sampling is collective); process 0 writes the files."""
        if not self.enabled:
            return None
        grid, rows = self._upsampler(g_ema, step) if self.upsampling else self._text_to_image(g_ema, step)
        path = sample_grid_path(self.workdir, step)
        if not is_main():
            return path
        save_png(grid, path)  # creates the folder
        if self.log is not None:
            self.log.write_image("samples", grid, step)
        write_text(join(samples_dir(self.workdir), "prompts.txt"),
                   "\n".join(f"row {i}: {p}" for i, p in enumerate(rows)) + "\n")
        return path
