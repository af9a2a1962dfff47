"""Sampling a generator for prompts / class ids and seeds, and chaining it into the upsampler.

One jitted forward pass per batch; noise inputs off (`noise_mode='none'`) so an image is a
pure function of (params, condition, seed): the same seed gives byte-identical images.
Prompts go through the frozen CLIP once per distinct prompt.

With a mesh (`TrainedGenerator.mesh`) each batch is split over all its devices, data-parallel:
every host holds the same inputs, the batch is padded to a multiple of the device count, and
the images come back to every host. Across hosts that is a collective, so in a multi-host run
every host calls the same sampler with the same arguments (the trainer's sample grid does).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gigagan_jax import cpu_convs
from gigagan_jax.generate.restore import TrainedGenerator
from gigagan_jax.models.generator import Generator
from gigagan_jax.pixels import quantize, to_signed
from gigagan_jax.pretrained.clip import Clip

NOISE_ROOT_SEED = 0x6E6F  # root of the 'noise' keys under noise_mode="random"


def seeds_to_z(seeds: Sequence[int], z_dim: int) -> jax.Array:
    """One z per seed, independent of batch composition: [len(seeds), z_dim]."""
    return jnp.stack([jax.random.normal(jax.random.PRNGKey(int(s)), (z_dim,)) for s in seeds])


def _noise_rngs(noise_mode: str, noise_seeds) -> dict:
    """The rngs `apply` needs: under "random", a 'noise' key from the batch's first seed [B]."""
    if noise_mode != "random":
        return {}
    if noise_seeds is None:
        raise ValueError("noise_mode='random' needs the batch's seeds (noise_seeds)")
    return {"noise": jax.random.fold_in(jax.random.PRNGKey(NOISE_ROOT_SEED), noise_seeds[0])}


@functools.partial(cpu_convs.jit, static_argnames=("generator", "truncation_psi", "noise_mode"))
def generate(generator: Generator, params, z, text_features=None, eot_index=None, labels=None,
             truncation_psi=1.0, w_avg=None, noise_mode="const", noise_seeds=None):
    """Final-resolution images [B, R, R, 3] in [-1, 1] (clipped). `noise_seeds` [B]: the images'
    seeds, read by noise_mode="random" only."""
    pyramid = generator.apply({"params": params}, z, text_features, eot_index, labels,
                              truncation_psi=truncation_psi, w_avg=w_avg, noise_mode=noise_mode,
                              rngs=_noise_rngs(noise_mode, noise_seeds))
    return jnp.clip(pyramid[-1], -1.0, 1.0)


@functools.partial(cpu_convs.jit, static_argnames=("upsampler", "truncation_psi", "noise_mode"))
def upsample(upsampler, params, z, lowres, text_features=None, eot_index=None, labels=None,
             truncation_psi=1.0, w_avg=None, noise_mode="const", noise_seeds=None):
    """Low-res images [B, r, r, 3] in [-1, 1] -> the upsampler's output [B, R, R, 3] (clipped)."""
    rngs = _noise_rngs(noise_mode, noise_seeds)
    rngs = {k: jax.random.fold_in(v, 1) for k, v in rngs.items()}  # not the base model's noise
    pyramid = upsampler.apply({"params": params}, z, lowres, text_features, eot_index, labels,
                              truncation_psi=truncation_psi, w_avg=w_avg, noise_mode=noise_mode, rngs=rngs)
    return jnp.clip(pyramid[-1], -1.0, 1.0)


@functools.partial(cpu_convs.jit, static_argnames=("generator", "upsampler", "truncation_psi", "noise_mode"))
def generate_and_upsample(generator: Generator, g_params, upsampler, u_params, z, z_up, g_condition: dict,
                          u_condition: dict, truncation_psi=1.0, w_avg=None, noise_mode="const", noise_seeds=None):
    """Base model -> upsampler in one executable: (base images [B, r, r, 3], upsampled [B, R, R, 3]).

    Each model reads its own condition dict (text_features/eot_index from its own text encoder,
    or labels)."""
    noise = {"noise_mode": noise_mode, "noise_seeds": noise_seeds}
    lowres = generate(generator, g_params, z, truncation_psi=truncation_psi, w_avg=w_avg, **noise, **g_condition)
    return lowres, upsample(upsampler, u_params, z_up, lowres, **noise, **u_condition)


def encode_prompts(clip: Clip, prompts: Sequence[str]):
    """Prompts -> frozen CLIP (text_features [P, L, D], eot_index [P]); tokenised in one batch."""
    feats, eot, _ = clip.encode_text(clip.tokenize(list(prompts)))
    return feats, eot


def _encode_distinct(clip: Clip, prompts: Sequence[str]):
    """(text_features [U, L, D], eot_index [U], rows [P]): each distinct prompt encoded once,
    prompt i's features at row rows[i]."""
    unique = list(dict.fromkeys(prompts))
    feats, eot = encode_prompts(clip, unique)
    row_of = {p: i for i, p in enumerate(unique)}
    return feats, eot, np.asarray([row_of[p] for p in prompts])


def per_prompt_mean_w(trained: TrainedGenerator, text_features, eot_index, num_samples: int = 256,
                      seed: int = 0) -> jax.Array:
    """w_avg(prompt) [P, w_dim], the centre that truncation pulls toward."""
    return _mean_w(trained.generator, trained.params, text_features, eot_index, jax.random.PRNGKey(seed), num_samples)


@functools.partial(cpu_convs.jit, static_argnames=("generator", "num_samples"))
def _mean_w(generator: Generator, params, text_features, eot_index, key: jax.Array, num_samples: int) -> jax.Array:
    """The text path and the mapping of `num_samples` latents per prompt as one executable (op by
    op, configs/tiny.py's compiled 85 small programs)."""
    text = generator.apply({"params": params}, text_features, eot_index, method=Generator.encode_text)
    return generator.apply({"params": params}, text.t_global, num_samples, method=Generator.mean_w,
                           rngs={"latent": key})


def sampling_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
    """A 1-D mesh over this process's devices (default: all of them) for data-parallel sampling."""
    return Mesh(np.asarray(jax.local_devices() if devices is None else devices), ("devices",))


def _place(mesh: Mesh, x, rows: int) -> jax.Array:
    """A host array [b, ...] (the same on every host) -> a global array [rows, ...] whose batch
    is split over every device of `mesh`; rows >= b are copies of the last row (padding)."""
    x = np.asarray(x)
    x = np.concatenate([x, np.repeat(x[-1:], rows - len(x), axis=0)])
    sharding = NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names)))
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def _to_host(x: jax.Array) -> np.ndarray:
    """The whole array on this host, gathering the other hosts' rows when it spans several."""
    if x.is_fully_addressable or x.is_fully_replicated:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _map_batches(mesh: Optional[Mesh], n: int, batch_size: int, inputs: Callable[[slice], dict],
                 fn: Callable[..., Any], progress: bool = False) -> Any:
    """fn(**inputs(batch)) for consecutive batches of at most batch_size of n rows, on one device
    or split over `mesh` (every array leaf of the inputs, nested dicts included); each output leaf
    comes back as numpy [n, ...] (padding dropped). `progress`: a bar over the images when there
    is more than one batch."""
    outs = []
    starts = range(0, n, batch_size)
    bar = tqdm.tqdm(total=n, unit="img", desc="sample", disable=not progress or len(starts) < 2)
    for lo in starts:
        batch = slice(lo, min(lo + batch_size, n))
        rows = batch.stop - batch.start
        args = inputs(batch)
        if mesh is not None:
            padded = -(-rows // mesh.size) * mesh.size
            args = jax.tree_util.tree_map(lambda v: _place(mesh, v, padded), args)
        outs.append(jax.tree_util.tree_map(lambda y: _to_host(y)[:rows], fn(**args)))
        bar.update(rows)
    bar.close()
    return jax.tree_util.tree_map(lambda *parts: np.concatenate(parts), *outs)


def _noise_inputs(noise_mode: str, seeds: Sequence[int]) -> Callable[[slice], dict]:
    """A batch's `noise_seeds` input, for noise_mode="random" (its other modes read none)."""
    seeds = np.asarray(seeds, np.uint32)
    return (lambda batch: {"noise_seeds": seeds[batch]}) if noise_mode == "random" else (lambda batch: {})


def sample_pairs(trained: TrainedGenerator, prompts: Sequence[str], seeds: Sequence[int],
                 truncation: float = 1.0, batch_size: int = 64, noise_mode: str = "const",
                 progress: bool = False) -> np.ndarray:
    """uint8 [len(prompts), R, R, 3]: image i from (prompts[i], seeds[i])."""
    feats, eot, rows = _encode_distinct(trained.clip, prompts)
    w_avg = per_prompt_mean_w(trained, feats, eot) if truncation != 1.0 else None
    z = np.asarray(seeds_to_z(list(seeds), trained.generator.spec.z_dim))  # [N, z_dim]
    noise = _noise_inputs(noise_mode, seeds)

    def inputs(batch: slice) -> dict:
        idx = rows[batch]
        return {"z": z[batch], "text_features": feats[idx], "eot_index": eot[idx],
                "w_avg": None if w_avg is None else w_avg[idx], **noise(batch)}

    return _map_batches(trained.mesh, len(rows), batch_size, inputs, lambda **x: quantize(
        generate(trained.generator, trained.params, truncation_psi=truncation, noise_mode=noise_mode, **x)),
        progress)


def sample_prompts(trained: TrainedGenerator, prompts: Sequence[str], n: int, seed: int,
                   truncation: float = 1.0, batch_size: int = 64, noise_mode: str = "const") -> np.ndarray:
    """uint8 [len(prompts) * n, R, R, 3]: n images per prompt from seeds seed .. seed+n-1."""
    return sample_pairs(trained, np.repeat(list(prompts), n).tolist(),
                        np.tile(np.arange(seed, seed + n), len(prompts)).tolist(), truncation, batch_size,
                        noise_mode)


def sample_classes(trained: TrainedGenerator, class_ids: Sequence[int], n: int, seed: int,
                   batch_size: int = 64, noise_mode: str = "const") -> np.ndarray:
    """uint8 [len(class_ids) * n, R, R, 3]: n images per class from seeds seed .. seed+n-1."""
    return sample_label_pairs(trained, np.repeat(np.asarray(class_ids, np.int32), n),
                              np.tile(np.arange(seed, seed + n), len(class_ids)), batch_size, noise_mode)


def sample_label_pairs(trained: TrainedGenerator, labels: Sequence[int], seeds: Sequence[int],
                       batch_size: int = 64, noise_mode: str = "const", progress: bool = False) -> np.ndarray:
    """uint8 [len(labels), R, R, 3]: image i from (labels[i], seeds[i]) of a class-conditional model."""
    labels = np.asarray(labels, np.int32)
    z = np.asarray(seeds_to_z(list(seeds), trained.generator.spec.z_dim))  # [N, z_dim]
    noise = _noise_inputs(noise_mode, seeds)
    return _map_batches(trained.mesh, len(labels), batch_size,
                        lambda batch: {"z": z[batch], "labels": labels[batch], **noise(batch)},
                        lambda **x: quantize(generate(trained.generator, trained.params, noise_mode=noise_mode, **x)),
                        progress)


def condition_inputs(spec, clip: Optional[Clip], prompts: Sequence[str] = (),
                     labels: Optional[Sequence[int]] = None) -> Callable[[slice], dict]:
    """The generator's condition inputs for every image, as a function of a batch slice: CLIP
    features of the prompts (each distinct prompt encoded once), class ids, or nothing; `spec`
    (a GeneratorSpec) says which the model reads."""
    if spec.text_conditioned:
        feats, eot, rows = _encode_distinct(clip, prompts)
        return lambda batch: {"text_features": feats[rows[batch]], "eot_index": eot[rows[batch]]}
    if spec.conditioning == "class":
        if labels is None:
            raise ValueError("the model is class-conditional: give class ids")
        ids = jnp.asarray(labels, jnp.int32)
        return lambda batch: {"labels": ids[batch]}
    return lambda batch: {}


def upsample_images(trained: TrainedGenerator, images: np.ndarray, prompts: Sequence[str], seeds: Sequence[int],
                    labels: Optional[Sequence[int]] = None, batch_size: int = 64,
                    noise_mode: str = "const") -> np.ndarray:
    """Low-res images [N, r, r, 3] (r = the upsampler's input size; uint8, or float in [-1, 1])
    -> uint8 [N, R, R, 3]."""
    spec = trained.generator.spec
    r = spec.input_resolution
    if images.ndim != 4 or images.shape[1:] != (r, r, 3):
        raise ValueError(f"the upsampler reads {r}x{r} RGB images, got an array of shape {images.shape}")
    conditions = condition_inputs(spec, trained.clip, prompts, labels)
    z = np.asarray(seeds_to_z(list(seeds), spec.z_dim))  # [N, z_dim]
    noise = _noise_inputs(noise_mode, seeds)
    return _map_batches(trained.mesh, len(images), batch_size,
                        lambda batch: {"z": z[batch], "lowres": to_signed(images[batch]), **conditions(batch),
                                       **noise(batch)},
                        lambda **x: quantize(upsample(trained.generator, trained.params, noise_mode=noise_mode, **x)))


def sample_and_upsample(base: TrainedGenerator, up: TrainedGenerator, prompts: Sequence[str], seeds: Sequence[int],
                        labels: Optional[Sequence[int]] = None, truncation: float = 1.0,
                        batch_size: int = 16, noise_mode: str = "const",
                        progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(base images uint8 [N, r, r, 3], upsampled uint8 [N, R, R, 3]) for (prompt/label, seed) pairs,
    base model and upsampler chained in one jitted call per batch; z_up uses the same seed."""
    b_spec, u_spec = base.generator.spec, up.generator.spec
    if getattr(u_spec, "input_resolution", None) != b_spec.resolution:
        raise ValueError(f"the upsampler reads {getattr(u_spec, 'input_resolution', None)} px images but the "
                         f"base model makes {b_spec.resolution} px ones")
    if truncation != 1.0 and not b_spec.text_conditioned:
        raise ValueError("truncation needs a text-conditioned base model")
    if base.mesh is not up.mesh:
        raise ValueError("the base model and the upsampler must be placed on the same mesh")
    base_conditions = condition_inputs(b_spec, base.clip, prompts, labels)
    up_conditions = condition_inputs(u_spec, up.clip, prompts, labels)
    z = np.asarray(seeds_to_z(list(seeds), b_spec.z_dim))  # [N, z_dim]
    z_up = np.asarray(seeds_to_z(list(seeds), u_spec.z_dim))
    noise = _noise_inputs(noise_mode, seeds)

    def inputs(batch: slice) -> dict:
        g_cond = base_conditions(batch)
        w_avg = None
        if truncation != 1.0:
            w_avg = per_prompt_mean_w(base, g_cond["text_features"], g_cond["eot_index"])
        return {"z": z[batch], "z_up": z_up[batch], "w_avg": w_avg, "g_cond": g_cond,
                "u_cond": up_conditions(batch), **noise(batch)}

    def chain(z, z_up, w_avg, g_cond, u_cond, noise_seeds=None):
        low, high = generate_and_upsample(base.generator, base.params, up.generator, up.params, z, z_up,
                                          g_cond, u_cond, truncation_psi=truncation, w_avg=w_avg,
                                          noise_mode=noise_mode, noise_seeds=noise_seeds)
        return quantize(low), quantize(high)

    return _map_batches(base.mesh, len(seeds), batch_size, inputs, chain, progress)
