"""The training loop: one linear function that glues data, CLIP, the jitted steps and checkpoints.

Read top to bottom: set up the mesh and the frozen CLIP, build the models and the sharded
state (fresh or restored), then alternate D and G steps. Per-step randomness is
fold_in(seed, step), the data position is part of every checkpoint, so a resumed run is
bit-identical to an unbroken one. Metrics stay on device between log steps (no host round-trip
per step); the non-finite check runs on every log and before every checkpoint, so a saved
checkpoint is always finite.
"""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from gigagan_jax.config import validate_config
from gigagan_jax.data.pipeline import InputPipeline
from gigagan_jax.models.discriminator import build_discriminator
from gigagan_jax.models.generator import build_generator
from gigagan_jax.models.vision_aided import VisionAidedHeads
from gigagan_jax.models.upsampler import lowres_input
from gigagan_jax.sampling import generate, make_grid, nearest_resize, save_png, seeds_to_z, to_uint8, upsample
from gigagan_jax.train.checkpoint import Checkpointer, abstract_with_shardings
from gigagan_jax.train.sharding import mesh_from_config, param_shardings, replicated
from gigagan_jax.train.state import init_train_state, uses_vision_aided
from gigagan_jax.train.step import GanSteps
from gigagan_jax.train.text_encoder import provide_clip

SAMPLE_SEEDS = 4  # images per prompt in the periodic sample grid


class NonFiniteLossError(RuntimeError):
    """A loss or gradient went NaN/inf; the message names the first bad step."""


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(workdir, "checkpoints")


def vision_example_inputs(clip) -> tuple:
    """Abstract (clip_features, text_embeds) to initialise the vision-aided heads."""
    size = clip.image_size
    _, feats = jax.eval_shape(lambda p: clip.encode_image(jnp.zeros((1, size, size, 3)), params=p), clip.params)
    feats = [jnp.zeros(f.shape, f.dtype) for f in feats]
    return feats, jnp.zeros((1, clip.projection_dim))


class _Stop:
    """SIGTERM / SIGINT flag: the loop saves a checkpoint and returns at the next step."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _sample_prompts(config, pipeline: InputPipeline) -> list[str]:
    if config.train.sample_prompts:
        return list(config.train.sample_prompts)
    prompts: list[str] = []
    for i in range(min(len(pipeline.source), 256)):
        caption = pipeline.source[i]["caption"]
        if caption not in prompts:
            prompts.append(caption)
        if len(prompts) == 8:
            break
    return prompts


def _check_compatible(saved: dict, config: ml_collections.ConfigDict, workdir: str) -> None:
    now = json.loads(json.dumps(config.model.to_dict()))  # tuples -> lists, as saved
    for key, value in sorted(now.items()):
        if saved["model"].get(key) != value:
            raise ValueError(f"{workdir} was trained with config.model.{key}={saved['model'].get(key)!r}, "
                             f"but this config has {value!r}; use a new --workdir")


def train(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train to config.train.num_steps (resuming from the newest checkpoint). Returns a summary."""
    if config.train.distributed:
        jax.distributed.initialize()
    validate_config(config, num_devices=jax.device_count())
    os.makedirs(workdir, exist_ok=True)
    mesh = mesh_from_config(config)
    rep = replicated(mesh)
    is_main = jax.process_index() == 0

    # --- models, frozen CLIP, steps --------------------------------------------------------
    clip = provide_clip(config, workdir)
    clip_params = jax.device_put(clip.params, rep) if clip is not None else None
    generator, discriminator = build_generator(config), build_discriminator(config)
    vision = VisionAidedHeads() if uses_vision_aided(config) else None
    vision_inputs = vision_example_inputs(clip) if vision is not None else None
    steps = GanSteps(config, generator, discriminator, clip=clip, vision_heads=vision)
    perceptual_params = None
    if steps.perceptual is not None:
        perceptual_params = jax.device_put(steps.perceptual.params, rep)
        if is_main:
            print(f"upsampler perceptual loss: {steps.perceptual.describe()}", flush=True)
    init = functools.partial(init_train_state, config, generator, discriminator,
                             vision_heads=vision, vision_inputs=vision_inputs)
    state_shardings = param_shardings(jax.eval_shape(functools.partial(init, boxed=True), jax.random.PRNGKey(0)), mesh)

    # --- data and state (fresh or restored) -------------------------------------------------
    pipeline = InputPipeline(config, tokenizer=clip.tokenize if clip is not None else None, mesh=mesh)
    checkpointer = Checkpointer(checkpoint_dir(workdir), max_to_keep=config.train.keep_checkpoints)
    init_key, seed_key = jax.random.split(jax.random.PRNGKey(config.train.seed))
    latest = checkpointer.latest_verified_step()
    if latest is None:
        state = jax.jit(init, out_shardings=state_shardings)(init_key)
    else:
        abstract = abstract_with_shardings(jax.eval_shape(init, init_key), state_shardings)
        state, data_state, saved_config = checkpointer.restore(latest, abstract)
        _check_compatible(saved_config, config, workdir)
        pipeline.set_state(data_state)
        print(f"resumed from {checkpointer.step_dir(latest)}", flush=True)

    # --- jitted steps: one executable per (R1, vision-aided) combination ---------------------
    def jit_step(fn):
        return jax.jit(fn, donate_argnums=0, out_shardings=(state_shardings, rep))

    d_steps = {(r1, vis): jit_step(functools.partial(steps.d_step, with_r1=r1, with_vision=vis))
               for r1 in (False, True) for vis in (False, True)}
    g_steps = {vis: jit_step(functools.partial(steps.g_step, with_vision=vis)) for vis in (False, True)}
    encode_text = jax.jit(lambda p, ids: clip.encode_text(ids, params=p)) if clip is not None else None

    def step_batch(batch: dict) -> dict:
        out = {"image": batch["image"], "label": batch["label"]}
        if encode_text is not None:  # frozen CLIP text features: once per batch, shared by D and G
            out["text_features"], out["eot_index"], out["text_embeds"] = encode_text(clip_params, batch["tokens"])
        return out

    upsampling = config.task == "upsampler"
    prompts = _sample_prompts(config, pipeline) if clip is not None and not upsampling else []
    sample_examples = pipeline.source.get_batch(np.arange(min(8, len(pipeline.source)))) if upsampling else None

    def upsampler_grid() -> tuple[np.ndarray, list[str]]:
        """Rows [input (nearest) | output | real] for the first examples of the data set."""
        ex = sample_examples
        real = jnp.asarray(ex["image"], jnp.float32) / 127.5 - 1.0  # [n, R, R, 3]
        lowres = lowres_input(real, generator.spec)
        cond = {}
        if generator.spec.text_conditioned:
            cond["text_features"], cond["eot_index"], _ = encode_text(clip.params, clip.tokenize(list(ex["caption"])))
        elif generator.spec.conditioning == "class":
            cond["labels"] = jnp.asarray(ex["label"], jnp.int32)
        out = upsample(generator, state.g_ema, seeds_to_z(range(len(real)), generator.spec.z_dim), lowres, **cond)
        rows = np.stack([to_uint8(nearest_resize(lowres, real.shape[1])), to_uint8(out), np.asarray(ex["image"])], 1)
        return make_grid(rows.reshape((-1,) + rows.shape[2:]), rows=len(real)), list(ex["caption"])

    def write_samples(step: int) -> Optional[str]:
        if not is_main or not (prompts or upsampling):
            return None
        if upsampling:
            grid, rows = upsampler_grid()
            rows = [f"[input | output | real] {c}" for c in rows]
        else:
            ids = np.repeat(clip.tokenize(prompts), SAMPLE_SEEDS, axis=0)
            feats, eot, _ = encode_text(clip.params, ids)
            z = seeds_to_z(list(range(SAMPLE_SEEDS)) * len(prompts), generator.spec.z_dim)
            grid, rows = make_grid(to_uint8(generate(generator, state.g_ema, z, feats, eot)), rows=len(prompts)), prompts
        os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
        path = os.path.join(workdir, "samples", f"step_{step:07d}.png")
        save_png(grid, path)
        with open(os.path.join(workdir, "samples", "prompts.txt"), "w") as f:
            f.write("\n".join(f"row {i}: {p}" for i, p in enumerate(rows)) + "\n")
        return path

    writer = None
    if is_main:
        from tensorboardX import SummaryWriter
        writer = SummaryWriter(os.path.join(workdir, "tensorboard"))

    # --- the loop ---------------------------------------------------------------------------
    num_steps, batch_size = config.train.num_steps, config.train.batch_size
    start = int(state.step)
    pending: list[tuple[int, dict]] = []  # (step, device metrics) since the last flush
    last_metrics: dict[str, float] = {}
    summary: dict[str, Any] = {"workdir": workdir, "start_step": start, "interrupted": False}

    def flush() -> None:
        """Fetch pending metrics once, stop on a non-finite value, log means."""
        nonlocal last_metrics
        if not pending:
            return
        fetched = jax.device_get(pending)
        pending.clear()
        for step, metrics in fetched:
            bad = sorted(k for k, v in metrics.items() if not math.isfinite(float(v)))
            if bad and config.train.nonfinite == "stop":
                raise NonFiniteLossError(f"non-finite {', '.join(bad)} at step {step}; the last good "
                                         f"checkpoint is kept in {checkpoint_dir(workdir)}")
        keys = sorted(set().union(*(m.keys() for _, m in fetched)))  # R1 / vision terms come and go
        last_metrics = {k: float(np.mean([float(m[k]) for _, m in fetched if k in m])) for k in keys}
        if writer is not None:
            for k, v in last_metrics.items():
                writer.add_scalar(k, v, fetched[-1][0] + 1)
            writer.flush()

    def save(step: int) -> None:
        flush()  # never checkpoint a state that followed a non-finite step
        checkpointer.save(step, state, pipeline.get_state(), config)

    t0 = time.time()
    progress = tqdm(total=num_steps, initial=start, desc="train", unit="step", disable=not is_main,
                    dynamic_ncols=True)
    try:
        with _Stop() as stop:
            for step in range(start, num_steps):
                if stop.requested:
                    save(step)
                    summary["interrupted"] = True
                    print(f"\nstopped by signal at step {step}; checkpoint saved", flush=True)
                    break
                batch = step_batch(next(pipeline))
                rng = jax.random.fold_in(seed_key, step)
                vis = vision is not None and step >= config.loss.vision_aided_start
                r1 = step % config.loss.r1_interval == 0
                state, d_metrics = d_steps[(r1, vis)](state, batch, jax.random.fold_in(rng, 0), clip_params)
                state, g_metrics = g_steps[vis](state, batch, jax.random.fold_in(rng, 1), clip_params,
                                                perceptual_params)
                pending.append((step, {**d_metrics, **g_metrics}))
                done = step + 1
                progress.update(1)
                if done % config.train.log_every == 0 or done == num_steps:
                    flush()
                    checkpointer.write_finished_manifests()
                    rate = (done - start) * batch_size / (time.time() - t0)
                    progress.set_postfix({"img/s": f"{rate:.1f}", "d": f"{last_metrics['d/loss']:.3f}",
                                          "g": f"{last_metrics['g/loss']:.3f}"})
                    if writer is not None:
                        writer.add_scalar("perf/images_per_second", rate, done)
                if done % config.train.checkpoint_every == 0 or done == num_steps:
                    save(done)
                if done % config.train.sample_every == 0 or done == num_steps:
                    summary["last_samples"] = write_samples(done)
    finally:
        progress.close()
        checkpointer.close()
        pipeline.close()
        if writer is not None:
            writer.close()

    elapsed = time.time() - t0
    end = int(state.step)
    summary.update(end_step=end, seconds=round(elapsed, 1),
                   images_per_second=round((end - start) * batch_size / max(elapsed, 1e-9), 2),
                   metrics=last_metrics, checkpoints=checkpointer.all_steps())
    if is_main:
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        print(json.dumps(summary, indent=2), flush=True)
    return summary
