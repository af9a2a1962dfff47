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
import time
from typing import Any

import jax
import ml_collections
from tqdm import tqdm

from gigagan_jax.checkpoint import Checkpointer, abstract_with_shardings, check_same_clip
from gigagan_jax.config import uses_vision_aided, validate_config
from gigagan_jax.data import open_source
from gigagan_jax.data.pipeline import InputPipeline
from gigagan_jax.generate.restore import clip_record, run_clip_path
from gigagan_jax.hosts import is_main, join_cluster, main_first
from gigagan_jax.losses.perceptual import check_perceptual_choice
from gigagan_jax.models.build import build_discriminator, build_generator
from gigagan_jax.models.vision_aided import VisionAidedHeads
from gigagan_jax.pretrained.lpips import load_lpips
from gigagan_jax.train.budget import GanStepPlan, TimeBudget, describe_budget
from gigagan_jax.train.caption_bank import caption_bank
from gigagan_jax.train.frozen_clip import provide_clip, provide_vision_backbone
from gigagan_jax.train.metrics import MetricsLog, open_writer
from gigagan_jax.train.samples import SampleGrid
from gigagan_jax.train.sharding import mesh_from_config, param_shardings, replicated
from gigagan_jax.train.state import jit_init, vision_example_inputs
from gigagan_jax.train.step import GanSteps, jit_step
from gigagan_jax.train.stop import StopSignal
from gigagan_jax.train.wandb_run import open_wandb_run
from gigagan_jax.workdir import checkpoint_dir, make_dirs, summary_path, tensorboard_dir, write_text


def _check_compatible(saved: dict, config: ml_collections.ConfigDict, workdir: str) -> None:
    """Refuse to resume from a checkpoint whose config.model differs, naming every key that does
    (one override can change several: D's text and attention widths follow G's unless set)."""
    now = json.loads(json.dumps(config.model.to_dict()))  # tuples -> lists, as saved

    def leaves(value, name: str) -> dict:
        if isinstance(value, dict) and value:
            return {k: v for key, sub in value.items() for k, v in leaves(sub, f"{name}.{key}").items()}
        return {name: value}

    absent = object()
    differ = []
    for key in sorted(now):
        was = leaves(saved["model"].get(key, absent), f"config.model.{key}")
        has = leaves(now[key], f"config.model.{key}")
        for name in sorted(was.keys() | has.keys()):
            old, new = was.get(name, absent), has.get(name, absent)
            if old != new:
                differ.append(f"{name}={'nothing' if old is absent else repr(old)}, but this config has "
                              f"{'nothing' if new is absent else repr(new)}")
    if differ:
        raise ValueError(f"{workdir} was trained with {'; '.join(differ)}; use a new --workdir")


def train(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train to config.train.num_steps (resuming from the newest checkpoint). Returns a summary."""
    # --- set up: devices, frozen CLIP, models, steps, data -----------------------------------
    minutes = config.train.time_budget_minutes
    budget = TimeBudget(minutes) if minutes > 0 else None  # counts from here
    if config.train.distributed:
        join_cluster(config.train)  # before anything touches a device
    validate_config(config, num_devices=jax.device_count())
    check_perceptual_choice(config)  # before minutes go into a small CLIP
    make_dirs(workdir)
    mesh = mesh_from_config(config)
    rep = replicated(mesh)
    main = is_main()

    if jax.process_count() > 1:  # data prepared on first use: by process 0 alone (hosts may share its cache)
        main_first("data_prepared", lambda: open_source(config))
    if budget is not None and main:
        print(describe_budget(config), flush=True)
    vision_clip = provide_vision_backbone(config)  # first: a bad path fails before a small CLIP is trained
    clip = provide_clip(config, workdir, seconds=budget.share(config.clip.budget_share) if budget else None)
    clip_used = clip_record(run_clip_path(config, workdir)) if clip is not None else None
    clip_params = jax.device_put(clip.params, rep) if clip is not None else None
    vision_clip_params = jax.device_put(vision_clip.params, rep) if vision_clip is not None else None
    generator, discriminator = build_generator(config), build_discriminator(config)
    vision = VisionAidedHeads() if uses_vision_aided(config) else None
    vision_inputs = vision_example_inputs(clip, vision_clip) if vision is not None else None
    # The fingerprint of what the vision heads read (its own backbone, or the run's CLIP).
    vision_used = None
    if vision is not None:
        vision_used = clip_record(config.loss.vision_aided_clip_path) if vision_clip is not None else clip_used
    steps = GanSteps(config, generator, discriminator, clip=clip, vision_heads=vision, vision_clip=vision_clip)
    perceptual_params = None
    if steps.perceptual is not None:
        if config.loss.lpips_path:
            perceptual_params = jax.device_put(load_lpips(config.loss.lpips_path), rep)
        if main:
            print(f"upsampler perceptual loss: {steps.perceptual.describe()}", flush=True)
    init = functools.partial(steps.init_state, vision_inputs=vision_inputs)
    state_shardings = param_shardings(jax.eval_shape(functools.partial(init, boxed=True), jax.random.PRNGKey(0)), mesh)
    pipeline = InputPipeline(config, tokenizer=clip.tokenizer if clip is not None else None, mesh=mesh)
    encode_text = jax.jit(lambda p, ids: clip.encode_text(ids, params=p)) if clip is not None else None
    bank = None  # [K, P]: G's CLIP loss's extra negatives
    if steps.use_clip_loss and config.loss.clip_negatives:
        bank = jax.device_put(caption_bank(clip, pipeline.source, config.loss.clip_negatives, config.train.seed), rep)

    def step_batch(batch: dict) -> dict:
        out = {"image": batch["image"], "label": batch["label"]}
        if encode_text is not None:  # frozen CLIP text features: once per batch, shared by D and G
            out["text_features"], out["eot_index"], out["text_embeds"] = encode_text(clip_params, batch["tokens"])
        return out

    # --- restore: the newest sound checkpoint (unverified newer ones moved aside), or fresh ----
    checkpointer = Checkpointer(checkpoint_dir(workdir), keep=config.train.keep_checkpoints)
    init_key, seed_key = jax.random.split(jax.random.PRNGKey(config.train.seed))
    latest = checkpointer.sound_step(set_aside=True)
    if latest is None:
        state = jit_init(init, state_shardings)(init_key)
    else:
        _check_compatible(checkpointer.restore_config(latest), config, workdir)  # before shapes can clash
        if clip_used is not None:
            check_same_clip(checkpointer.restore_clip_record(latest), clip_used, checkpointer.step_dir(latest))
        if vision_used is not None:
            check_same_clip(checkpointer.restore_clip_record(latest, "vision_clip"), vision_used,
                            checkpointer.step_dir(latest), key="config.loss.vision_aided_clip_path")
        abstract = abstract_with_shardings(jax.eval_shape(init, init_key), state_shardings)
        state, data_state, _ = checkpointer.restore(latest, abstract, verify=False)
        pipeline.set_state(data_state)
        if main:
            print(f"resumed from {checkpointer.step_dir(latest)}", flush=True)

    # One executable per (R1, vision-aided) combination.
    d_steps = {(r1, vis): jit_step(functools.partial(steps.d_step, with_r1=r1, with_vision=vis), mesh, state_shardings)
               for r1 in (False, True) for vis in (False, True)}
    g_steps = {vis: jit_step(functools.partial(steps.g_step, with_vision=vis), mesh, state_shardings)
               for vis in (False, True)}
    log = MetricsLog(open_writer(tensorboard_dir(workdir), main), config.train.nonfinite == "stop",
                     kept_in=checkpoint_dir(workdir), wandb_run=open_wandb_run(config, workdir, main))
    samples = SampleGrid(config, generator, clip, pipeline.source, workdir, mesh, log)  # every host samples

    def save(step: int) -> None:
        log.flush()  # never checkpoint a state that followed a non-finite step
        checkpointer.save(step, state, pipeline.get_state(), config, clip_used, vision_used)

    # --- loop --------------------------------------------------------------------------------
    batch_size = config.train.batch_size
    start = int(state.step)
    log.write_text("config", config.to_json(indent=1), start)  # the resolved config, beside its run's curves
    num_steps = max(start, config.train.num_steps)  # where the run ends; a time budget may bring it forward
    plan = (GanStepPlan(budget, start, num_steps, config.loss.r1_interval, config.train.log_every)
            if budget is not None else None)
    summary: dict[str, Any] = {"workdir": workdir, "start_step": start, "interrupted": False}
    sampled_step = None  # the step of the last grid written (the budget's early grid may precede the periodic one)

    def write_samples(step: int) -> None:
        nonlocal sampled_step
        sampled_step = step
        if plan is None:
            summary["last_samples"] = samples.write(state.g_ema, step)
            return
        jax.block_until_ready(state.g_ema)  # time the grid alone, not the steps still queued
        began = time.time()
        summary["last_samples"] = samples.write(state.g_ema, step)
        plan.timed_grid(time.time() - began)

    t0 = time.time()
    warm = None  # (time, step) at the first log step: rates after it exclude compilation
    progress = tqdm(total=num_steps, initial=start, desc="train", unit="step", disable=not main,
                    dynamic_ncols=True)
    # Signal handlers stay installed until the last save is hashed: a second SIGTERM or Ctrl-C
    # while the final checkpoint is written cannot kill the process before its manifest.
    with StopSignal() as stop:
        try:
            for step in range(start, num_steps):
                if stop.reached(step):
                    save(step)
                    checkpointer.finish()  # written and verified before we say so
                    summary["interrupted"] = True
                    print(f"\nstopped by signal at step {step}; checkpoint saved (process "
                          f"{jax.process_index()} of {jax.process_count()})", flush=True)
                    break
                batch = step_batch(next(pipeline))
                rng = jax.random.fold_in(seed_key, step)
                vis = vision is not None and step >= config.loss.vision_aided_start
                r1 = step % config.loss.r1_interval == 0
                state, d_metrics = d_steps[(r1, vis)](state, batch, jax.random.fold_in(rng, 0), clip_params,
                                                      vision_clip_params)
                state, g_metrics = g_steps[vis](state, batch, jax.random.fold_in(rng, 1), clip_params,
                                                perceptual_params, vision_clip_params, bank)
                log.append(step, {**d_metrics, **g_metrics})
                done = step + 1
                progress.update(1)
                if plan is not None and plan.wants_sync(done):
                    jax.block_until_ready(state)
                    if done == plan.warm and samples.enabled and plan.has_time():
                        write_samples(done)  # early, and timed: the last grid costs about as much
                    num_steps = plan.update(done)
                    progress.total = num_steps
                    progress.refresh()
                    if done == plan.first_plan and main:
                        tqdm.write(plan.describe())
                if done % config.train.log_every == 0 or done == num_steps:
                    log.flush()
                    checkpointer.write_finished_manifests()
                    now = time.time()
                    rate = ((done - warm[1]) * batch_size / (now - warm[0]) if warm and done > warm[1]
                            else (done - start) * batch_size / (now - t0))
                    warm = warm or (now, done)
                    progress.set_postfix({"img/s": f"{rate:.1f}", "d": f"{log.last['d/loss']:.3f}",
                                          "g": f"{log.last['g/loss']:.3f}"})
                    log.write_scalars({"perf/images_per_second": rate}, done)
                if done % config.train.checkpoint_every == 0 or done == num_steps:
                    save(done)
                if (done % config.train.sample_every == 0 or done == num_steps) and sampled_step != done:
                    write_samples(done)
                if done >= num_steps:
                    break
        finally:
            progress.close()
            checkpointer.close()
            pipeline.close()
            log.close()

    # --- finish: the run's summary -----------------------------------------------------------
    elapsed = time.time() - t0
    end = int(state.step)
    summary.update(end_step=end, seconds=round(elapsed, 1),
                   images_per_second=round((end - start) * batch_size / max(elapsed, 1e-9), 2),
                   steady_images_per_second=round(rate, 2) if warm and end > warm[1] else None,
                   metrics=log.last, checkpoints=checkpointer.all_steps())
    if plan is not None:
        summary["time_budget"] = {"minutes": minutes, "seconds_used": round(budget.elapsed(), 1),
                                  "seconds_per_step": plan.seconds_per_step, "warm_step": plan.warm,
                                  "reserve_seconds": round(plan.reserve, 1),
                                  "ended_by": ("signal" if summary["interrupted"] else
                                               "num_steps" if end >= config.train.num_steps else "time budget")}
    if main:
        write_text(summary_path(workdir), json.dumps(summary, indent=2))
        print(json.dumps(summary, indent=2), flush=True)
    return summary
