"""Restore a trained generator (G_ema + its text encoder) from a workdir and sample it.

Only G_ema is read from the checkpoint (D and the optimiser states stay on disk), onto
whatever devices are present: one CPU is enough. The checkpoint's sha256 manifest is verified
first, so a corrupt file is a `CheckpointError` naming it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax.core import meta

from gigagan_jax.models.clip import Clip, load_clip
from gigagan_jax.models.generator import Generator, build_generator, init_generator
from gigagan_jax.sampling import generate, generate_and_upsample, seeds_to_z, to_uint8, upsample
from gigagan_jax.train.checkpoint import Checkpointer, CheckpointError
from gigagan_jax.train.loop import checkpoint_dir
from gigagan_jax.train.text_encoder import clip_dir


@dataclasses.dataclass
class TrainedGenerator:
    config: ml_collections.ConfigDict
    generator: Generator
    params: Any  # G_ema
    clip: Optional[Clip]
    step: int


def load_trained_generator(workdir: str, step: Optional[int] = None) -> TrainedGenerator:
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"workdir {workdir} does not exist")
    checkpointer = Checkpointer(checkpoint_dir(workdir), read_only=True)
    if not checkpointer.all_steps():
        raise CheckpointError(f"no checkpoints in {checkpointer.directory}")
    if step is None:
        step = checkpointer.latest_verified_step()
        if step is None:
            raise CheckpointError(f"no verified checkpoint in {checkpointer.directory}")
    checkpointer.verify(step)
    config = ml_collections.ConfigDict(checkpointer.restore_config(step))
    generator = build_generator(config)
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.eval_shape(lambda: meta.unbox(init_generator(generator, jax.random.PRNGKey(0))["params"]))
    abstract = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), abstract)
    params = checkpointer.restore_subtree(step, "g_ema", abstract)
    checkpointer.close()
    clip = None
    if generator.spec.text_conditioned:
        clip = load_clip(config.clip.path or clip_dir(workdir), text_only=True)
    return TrainedGenerator(config, generator, params, clip, step)


def encode_prompts(trained: TrainedGenerator, prompts: Sequence[str]):
    """Prompts -> frozen CLIP (text_features [P, L, D], eot_index [P]); tokenised in one batch."""
    feats, eot, _ = trained.clip.encode_text(trained.clip.tokenize(list(prompts)))
    return feats, eot


def per_prompt_mean_w(trained: TrainedGenerator, text_features, eot_index, num_samples: int = 256,
                      seed: int = 0) -> jax.Array:
    """w_avg(prompt) [P, w_dim], the centre that truncation pulls toward."""
    g, params = trained.generator, {"params": trained.params}
    text = g.apply(params, text_features, eot_index, method=Generator.encode_text)
    return g.apply(params, text.t_global, num_samples, method=Generator.mean_w,
                   rngs={"latent": jax.random.PRNGKey(seed)})


def sample_pairs(trained: TrainedGenerator, prompts: Sequence[str], seeds: Sequence[int],
                 truncation: float = 1.0, batch_size: int = 64) -> np.ndarray:
    """uint8 [len(prompts), R, R, 3]: image i from (prompts[i], seeds[i])."""
    unique = list(dict.fromkeys(prompts))  # each distinct prompt is encoded once
    feats, eot = encode_prompts(trained, unique)
    w_avg = per_prompt_mean_w(trained, feats, eot) if truncation != 1.0 else None
    rows = np.asarray([unique.index(p) for p in prompts])
    seeds = np.asarray(seeds)
    out = []
    for lo in range(0, len(rows), batch_size):
        idx = rows[lo:lo + batch_size]
        z = seeds_to_z(seeds[lo:lo + batch_size].tolist(), trained.generator.spec.z_dim)
        images = generate(trained.generator, trained.params, z, feats[idx], eot[idx],
                          truncation_psi=truncation, w_avg=None if w_avg is None else w_avg[idx])
        out.append(to_uint8(images))
    return np.concatenate(out)


def sample_prompts(trained: TrainedGenerator, prompts: Sequence[str], n: int, seed: int,
                   truncation: float = 1.0, batch_size: int = 64) -> np.ndarray:
    """uint8 [len(prompts) * n, R, R, 3]: n images per prompt from seeds seed .. seed+n-1."""
    return sample_pairs(trained, np.repeat(list(prompts), n).tolist(),
                        np.tile(np.arange(seed, seed + n), len(prompts)).tolist(), truncation, batch_size)


def sample_classes(trained: TrainedGenerator, class_ids: Sequence[int], n: int, seed: int,
                   batch_size: int = 64) -> np.ndarray:
    """uint8 [len(class_ids) * n, R, R, 3]: n images per class from seeds seed .. seed+n-1."""
    return sample_label_pairs(trained, np.repeat(np.asarray(class_ids, np.int32), n),
                              np.tile(np.arange(seed, seed + n), len(class_ids)), batch_size)


def sample_label_pairs(trained: TrainedGenerator, labels: Sequence[int], seeds: Sequence[int],
                       batch_size: int = 64) -> np.ndarray:
    """uint8 [len(labels), R, R, 3]: image i from (labels[i], seeds[i]) of a class-conditional model."""
    labels, seeds = np.asarray(labels, np.int32), np.asarray(seeds)
    out = []
    for lo in range(0, len(labels), batch_size):
        z = seeds_to_z(seeds[lo:lo + batch_size].tolist(), trained.generator.spec.z_dim)
        out.append(to_uint8(generate(trained.generator, trained.params, z, labels=jnp.asarray(labels[lo:lo + batch_size]))))
    return np.concatenate(out)


def _conditions(trained: TrainedGenerator, prompts: Sequence[str],
                labels: Optional[Sequence[int]]) -> Callable[[slice], dict]:
    """The generator's condition inputs for every image, as a function of a batch slice: CLIP
    features of the prompts (each distinct prompt encoded once), class ids, or nothing."""
    spec = trained.generator.spec
    if spec.text_conditioned:
        unique = list(dict.fromkeys(prompts))
        feats, eot = encode_prompts(trained, unique)
        row_of = {p: i for i, p in enumerate(unique)}
        rows = np.asarray([row_of[p] for p in prompts])
        return lambda batch: {"text_features": feats[rows[batch]], "eot_index": eot[rows[batch]]}
    if spec.conditioning == "class":
        if labels is None:
            raise ValueError("the model is class-conditional: give class ids")
        ids = jnp.asarray(labels, jnp.int32)
        return lambda batch: {"labels": ids[batch]}
    return lambda batch: {}


def upsample_images(trained: TrainedGenerator, images: np.ndarray, prompts: Sequence[str], seeds: Sequence[int],
                    labels: Optional[Sequence[int]] = None, batch_size: int = 64) -> np.ndarray:
    """uint8 low-res images [N, r, r, 3] (r = the upsampler's input size) -> uint8 [N, R, R, 3]."""
    spec = trained.generator.spec
    r = spec.input_resolution
    if images.ndim != 4 or images.shape[1:] != (r, r, 3):
        raise ValueError(f"the upsampler reads {r}x{r} RGB images, got an array of shape {images.shape}")
    conditions = _conditions(trained, prompts, labels)
    out = []
    for lo in range(0, len(images), batch_size):
        hi = lo + batch_size
        lowres = jnp.asarray(images[lo:hi], jnp.float32) / 127.5 - 1.0
        z = seeds_to_z(list(seeds[lo:hi]), spec.z_dim)
        out.append(to_uint8(upsample(trained.generator, trained.params, z, lowres, **conditions(slice(lo, hi)))))
    return np.concatenate(out)


def sample_and_upsample(base: TrainedGenerator, up: TrainedGenerator, prompts: Sequence[str], seeds: Sequence[int],
                        labels: Optional[Sequence[int]] = None, truncation: float = 1.0,
                        batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(base images uint8 [N, r, r, 3], upsampled uint8 [N, R, R, 3]) for (prompt/label, seed) pairs,
    base model and upsampler chained in one jitted call per batch; z_up uses the same seed."""
    b_spec, u_spec = base.generator.spec, up.generator.spec
    if getattr(u_spec, "input_resolution", None) != b_spec.resolution:
        raise ValueError(f"the upsampler reads {getattr(u_spec, 'input_resolution', None)} px images but the "
                         f"base model makes {b_spec.resolution} px ones")
    if truncation != 1.0 and not b_spec.text_conditioned:
        raise ValueError("truncation needs a text-conditioned base model")
    base_conditions, up_conditions = _conditions(base, prompts, labels), _conditions(up, prompts, labels)
    lows, highs = [], []
    for lo in range(0, len(seeds), batch_size):
        batch = slice(lo, lo + batch_size)
        g_cond = base_conditions(batch)
        w_avg = None
        if truncation != 1.0:
            w_avg = per_prompt_mean_w(base, g_cond["text_features"], g_cond["eot_index"])
        low, high = generate_and_upsample(
            base.generator, base.params, up.generator, up.params, seeds_to_z(list(seeds[batch]), b_spec.z_dim),
            seeds_to_z(list(seeds[batch]), u_spec.z_dim), g_cond, up_conditions(batch),
            truncation_psi=truncation, w_avg=w_avg)
        lows.append(to_uint8(low))
        highs.append(to_uint8(high))
    return np.concatenate(lows), np.concatenate(highs)
