"""`GigaGANPipeline`: a trained model as one Python object that turns prompts and seeds into images.

    from gigagan_jax import GigaGANPipeline
    pipe = GigaGANPipeline.from_pretrained("models/demo")           # an export, or a training workdir
    images = pipe(["a red circle"], seeds=[0, 1], truncation=0.7)   # [PIL.Image] * 2
    strip = pipe.interpolate("a red circle", "a blue square", seed_a=0, seed_b=1, frames=8)

Every prompt is drawn with every seed (prompt-major, as `sample.py`'s grid rows), in batches of
at most `batch_size` split over all local devices; each batch shape compiles once per process.
An image depends only on (model, prompt, seed, truncation, noise_mode): the same call gives the
same bytes, whatever the batch it lands in, with the default `noise_mode="const"`.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

from gigagan_jax.config import MAX_SEED, NOISE_MODES
from gigagan_jax.generate import edit
from gigagan_jax.generate.model_folder import is_model_folder, load_model
from gigagan_jax.generate.restore import TrainedGenerator, load_trained_generator
from gigagan_jax.generate.sample import sample_and_upsample, sample_label_pairs, sample_pairs, sampling_mesh
from gigagan_jax.workdir import checkpoint_dir, exists, is_dir


def load_generator(path: str, mesh=None, step: Optional[int] = None,
                   clip_path: Optional[str] = None) -> TrainedGenerator:
    """An exported model folder or a training workdir (its step, default the newest verified)."""
    if is_model_folder(path):
        if step is not None or clip_path is not None:
            raise ValueError(f"{path} is an exported model: it holds one step and its own text encoder "
                             "(no step or clip_path to choose)")
        return load_model(path, mesh)
    if is_dir(path) and not exists(checkpoint_dir(path)):
        raise FileNotFoundError(f"{path} is neither an exported model (no gigagan.json) nor a training workdir "
                                "(no checkpoints/)")
    return load_trained_generator(path, step, mesh, clip_path=clip_path)


def _pil(images: np.ndarray) -> list[Image.Image]:
    return [Image.fromarray(image) for image in images]


class GigaGANPipeline:
    """A base generator, optionally chained into an upsampler, sampled data-parallel."""

    def __init__(self, base: TrainedGenerator, upsampler: Optional[TrainedGenerator] = None):
        if base.config.task == "upsampler":
            raise ValueError("the base model is an upsampler; pass it as upsampler= beside a base model")
        if upsampler is not None and upsampler.config.task != "upsampler":
            raise ValueError("upsampler= must be an upsampler model (config.task='upsampler')")
        self.base = base
        self.upsampler = upsampler

    @classmethod
    def from_pretrained(cls, path: str, upsampler: Optional[str] = None, devices=None) -> "GigaGANPipeline":
        """Load from an exported folder (`python -m gigagan_jax.export`) or a training workdir;
        `upsampler`: another such folder, chained after the base model. `devices`: the local
        devices to split batches over (default: all of them)."""
        mesh = sampling_mesh(devices)
        return cls(load_generator(path, mesh), load_generator(upsampler, mesh) if upsampler else None)

    @property
    def resolution(self) -> int:
        return int((self.upsampler or self.base).generator.spec.resolution)

    def __call__(self, prompts: Union[str, Sequence[str], None] = None, seeds: Sequence[int] = (0,),
                 truncation: float = 1.0, class_ids: Optional[Sequence[int]] = None, noise_mode: str = "const",
                 batch_size: Optional[int] = None) -> list[Image.Image]:
        """One image per (prompt, seed), prompt-major: len(prompts) * len(seeds) PIL images at
        `self.resolution`. Class-conditional models take `class_ids` instead of prompts."""
        return _pil(self.sample(prompts, seeds, truncation, class_ids, noise_mode, batch_size))

    def sample(self, prompts: Union[str, Sequence[str], None] = None, seeds: Sequence[int] = (0,),
               truncation: float = 1.0, class_ids: Optional[Sequence[int]] = None, noise_mode: str = "const",
               batch_size: Optional[int] = None, progress: bool = False) -> np.ndarray:
        """`__call__`'s images as one uint8 array [len(prompts or class_ids) * len(seeds), R, R, 3];
        `batch_size` default: 64 images, 16 through an upsampler; `progress`: a bar over the images."""
        seeds = [int(s) for s in ([seeds] if isinstance(seeds, (int, np.integer)) else seeds)]
        if not seeds or not all(0 <= s < MAX_SEED for s in seeds):
            raise ValueError(f"seeds must be a non-empty list of integers in [0, 2**32), got {seeds}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        spec = self.base.generator.spec
        if spec.text_conditioned:
            if class_ids is not None:
                raise ValueError("this model is text-conditioned: give prompts, not class_ids")
            if prompts is None:
                raise ValueError("this model is text-conditioned: give prompts")
            prompts = [prompts] if isinstance(prompts, str) else list(prompts)
            pairs = [(p, s) for p in prompts for s in seeds]
            labels = None
        else:
            if prompts is not None or class_ids is None:
                raise ValueError(f"this model is conditioned on {spec.conditioning!r}: give class_ids, not prompts")
            if truncation != 1.0:
                raise ValueError("truncation (toward the per-prompt mean w) needs a text-conditioned model")
            pairs = [("", s) for _ in class_ids for s in seeds]
            labels = [int(c) for c in class_ids for _ in seeds]
        all_prompts, all_seeds = [p for p, _ in pairs], [s for _, s in pairs]
        if self.upsampler is not None:
            _, images = sample_and_upsample(self.base, self.upsampler, all_prompts, all_seeds, labels, truncation,
                                            batch_size or 16, noise_mode, progress)
            return images
        if labels is not None:
            return sample_label_pairs(self.base, labels, all_seeds, batch_size or 64, noise_mode, progress)
        return sample_pairs(self.base, all_prompts, all_seeds, truncation, batch_size or 64, noise_mode, progress)

    def _text_model(self, what: str) -> TrainedGenerator:
        if not self.base.generator.spec.text_conditioned:
            raise ValueError(f"{what} edits a text-conditioned model's latents")
        return self.base

    def interpolate(self, prompt_a: str, prompt_b: str, seed_a: int = 0, seed_b: int = 1,
                    frames: int = 8) -> list[Image.Image]:
        """`frames` images moving in w and text space from (prompt_a, seed_a) to (prompt_b, seed_b),
        at the base model's resolution."""
        return _pil(edit.interpolation_frames(self._text_model("interpolate"), prompt_a, prompt_b, seed_a, seed_b,
                                              frames))

    def style_mix(self, prompt: str, coarse_seed: int, fine_seed: int, crossover: int = 2) -> list[Image.Image]:
        """[coarse seed's image, fine seed's image, their mix]: levels below `crossover` (4 px, 8 px,
        ...) from coarse_seed, the rest from fine_seed."""
        return _pil(edit.style_mix_images(self._text_model("style_mix"), prompt, coarse_seed, fine_seed, crossover))

    def prompt_mix(self, prompt_coarse: str, prompt_fine: str, seed: int = 0,
                   crossover: int = 2) -> list[Image.Image]:
        """[prompt_coarse's image, prompt_fine's image, their mix] for one seed: layout (levels
        below `crossover`) from prompt_coarse, detail from prompt_fine."""
        return _pil(edit.prompt_mix_images(self._text_model("prompt_mix"), prompt_coarse, prompt_fine, seed,
                                           crossover))
