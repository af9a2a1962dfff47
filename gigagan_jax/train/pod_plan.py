"""A config planned for a pod without one: the D and G steps compiled ahead of time on simulated
devices, and what the compiled programs say about memory, FLOPs and collective traffic.

Nothing is executed: the train state, batch and frozen networks are abstract (shapes and
shardings only), `jax.jit(step).lower(...).compile()` runs XLA's SPMD partitioner and buffer
assignment for the mesh, and the numbers are read back per device:
- state bytes: params, optimiser states and G_ema as the shardings split them;
- XLA's buffer assignment (`memory_analysis`): arguments, outputs, donated aliases, temporaries;
- FLOPs (`cost_analysis`, of the partitioned per-device program);
- collectives from the compiled HLO: each op's bytes on the wire per device, ring formulas
  (all-reduce 2(n-1)/n S, all-gather and reduce-scatter (n-1)/n of the full buffer, all-to-all
  (n-1)/n S, collective-permute S).
Simulated devices are CPU devices: a GPU or TPU compiler fuses and schedules differently, so
the temporaries are the CPU compiler's; state bytes and collective bytes follow from the
shardings and hold on any backend.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections

from gigagan_jax.checkpoint import abstract_with_shardings
from gigagan_jax.config import uses_vision_aided
from gigagan_jax.models.build import build_discriminator, build_generator
from gigagan_jax.models.vision_aided import VisionAidedHeads
from gigagan_jax.pretrained.lpips import expected_params as lpips_shapes
from gigagan_jax.train.sharding import batch_sharding, param_shardings, replicated
from gigagan_jax.train.state import vision_example_inputs
from gigagan_jax.train.step import GanSteps, jit_step

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4,
                "f32": 4, "s64": 8, "u64": 8, "f64": 8}
_SHAPE = re.compile(r"\b(pred|[suf]\d+|bf16)\[([\d,]*)\]")
_OP = re.compile(r"^\s*\S+ = (.+?) (" + "|".join(COLLECTIVES) + r")(?:-start)?\((.*)$")


def tree_bytes_per_device(tree: Any) -> int:
    """Bytes one device holds of a tree of arrays or ShapeDtypeStructs carrying shardings."""
    total = 0
    for leaf in jax.tree_util.tree_leaves(tree):
        shape = leaf.sharding.shard_shape(leaf.shape) if getattr(leaf, "sharding", None) is not None else leaf.shape
        total += math.prod(shape) * jnp.dtype(leaf.dtype).itemsize
    return total


def tree_bytes(tree: Any) -> int:
    """Bytes of a whole tree, unsharded."""
    return sum(math.prod(leaf.shape) * jnp.dtype(leaf.dtype).itemsize for leaf in jax.tree_util.tree_leaves(tree))


def _shape_bytes(text: str) -> int:
    """Bytes of the HLO shape(s) in `text`: 'f32[8,128]{1,0}' or a tuple of them."""
    return sum(_DTYPE_BYTES[dtype] * math.prod(int(d) for d in dims.split(",") if d)
               for dtype, dims in _SHAPE.findall(text))


def _group_size(attributes: str, num_devices: int) -> int:
    """Devices in each replica group of a collective, in any of XLA's three spellings."""
    mesh = re.search(r"replica_groups=mesh\[([^\]]*)\]\s*\{([^}]*)\}", attributes)  # Shardy: mesh['a'=8] {'a'}
    if mesh:
        sizes = dict(re.findall(r"'([^']+)'=(\d+)", mesh.group(1)))
        return math.prod(int(sizes[a]) for a in re.findall(r"'([^']+)'", mesh.group(2)))
    iota = re.search(r"replica_groups=\[(\d+),(\d+)\]<=", attributes)  # [groups, size]<=[N]
    if iota:
        return int(iota.group(2))
    explicit = re.search(r"replica_groups=\{\{([\d,]*)\}", attributes)  # {{0,1},{2,3}}
    if explicit:
        return len(explicit.group(1).split(","))
    pairs = re.search(r"source_target_pairs=\{", attributes)
    return 2 if pairs else num_devices


@dataclasses.dataclass
class Collective:
    count: int = 0
    wire_bytes: float = 0.0  # per device, ring formulas (module doc)
    largest_bytes: int = 0  # the largest full buffer one op of this kind produces or reduces


def collective_traffic(hlo_text: str, num_devices: int) -> dict[str, Collective]:
    """Per kind of collective in a compiled module's text: how many ops, and the bytes each
    device sends over the links per execution."""
    out = {kind: Collective() for kind in COLLECTIVES}
    for line in hlo_text.splitlines():
        match = _OP.match(line)
        if not match or "-done(" in line:
            continue
        result, kind, rest = match.groups()
        n = _group_size(rest, num_devices)
        if n <= 1:
            continue
        size = _shape_bytes(result)
        operand = rest.split("),")[0] if kind == "reduce-scatter" else ""
        full = max(size * n, _shape_bytes(operand)) if kind == "reduce-scatter" else size
        wire = {"all-reduce": 2 * (n - 1) / n * size, "collective-permute": size}.get(kind, (n - 1) / n * full)
        entry = out[kind]
        entry.count += 1
        entry.wire_bytes += wire
        entry.largest_bytes = max(entry.largest_bytes, full)
    return out


@dataclasses.dataclass
class ExecutablePlan:
    """One compiled step on one device of the mesh."""

    name: str
    state_bytes: int  # train state held between steps
    argument_bytes: int  # XLA: every input (state, batch, frozen networks)
    output_bytes: int
    alias_bytes: int  # outputs written into donated inputs
    temp_bytes: int  # XLA: activations and every other temporary
    flops: float
    collectives: dict[str, Collective]
    compile_seconds: float
    compiled: Any = dataclasses.field(default=None, repr=False, compare=False)  # runnable on concrete inputs

    @property
    def peak_bytes(self) -> int:
        """Live at once at worst: inputs, the outputs not written in place, temporaries."""
        return self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes

    @property
    def wire_bytes(self) -> float:
        return sum(c.wire_bytes for c in self.collectives.values())


def flops_of(lowered_or_compiled) -> float:
    """XLA's FLOP count of a lowered (no backend compile) or compiled program. A loop body counts once."""
    cost = lowered_or_compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", 0.0))


def plan_executable(name: str, jitted, args: tuple, state: Any) -> ExecutablePlan:
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    seconds = time.perf_counter() - t0
    memory = compiled.memory_analysis()
    num_devices = len(jax.tree_util.tree_leaves(state)[0].sharding.device_set)
    return ExecutablePlan(name=name, state_bytes=tree_bytes_per_device(state),
                          argument_bytes=memory.argument_size_in_bytes, output_bytes=memory.output_size_in_bytes,
                          alias_bytes=memory.alias_size_in_bytes, temp_bytes=memory.temp_size_in_bytes,
                          flops=flops_of(compiled),
                          collectives=collective_traffic(compiled.as_text(), num_devices), compile_seconds=seconds,
                          compiled=compiled)


@dataclasses.dataclass
class StepInputs:
    """Abstract inputs of the D and G steps of one config on one mesh."""

    steps: GanSteps
    state_shardings: Any
    state: Any  # ShapeDtypeStructs with shardings
    batch: dict
    key: jax.ShapeDtypeStruct
    frozen: dict  # clip_params, perceptual_params, vision_clip_params (abstract, replicated) or None
    init: Any  # key -> TrainState: the steps' init with the vision heads' example inputs bound


def abstract_step_inputs(config: ml_collections.ConfigDict, mesh, clip: Any = None,
                         vision_clip: Any = None) -> StepInputs:
    """The train state, a batch laid out as the input pipeline lays it out, and the frozen
    networks' params, all abstract. `clip` / `vision_clip`: `pretrained.clip.Clip`s whose
    params may be ShapeDtypeStructs (`abstract_clip`)."""
    rep = replicated(mesh)
    vision = VisionAidedHeads() if uses_vision_aided(config) and clip is not None else None
    steps = GanSteps(config, build_generator(config), build_discriminator(config), clip=clip,
                     vision_heads=vision, vision_clip=vision_clip)
    vision_inputs = vision_example_inputs(clip, vision_clip) if vision is not None else None
    init = functools.partial(steps.init_state, vision_inputs=vision_inputs)
    key = jax.ShapeDtypeStruct((2,), jnp.uint32, sharding=rep)
    shardings = param_shardings(jax.eval_shape(functools.partial(init, boxed=True), key), mesh)
    state = abstract_with_shardings(jax.eval_shape(init, key), shardings)

    def batched(shape, dtype):
        return jax.ShapeDtypeStruct(shape, dtype, sharding=batch_sharding(mesh, len(shape)))

    b, r, spec = config.train.batch_size, config.model.resolution, steps.generator.spec
    batch = {"image": batched((b, r, r, 3), jnp.uint8), "label": batched((b,), jnp.int32)}
    if spec.text_conditioned:
        batch["text_features"] = batched((b, spec.text_len, spec.text_encoder_dim), jnp.float32)
        batch["eot_index"] = batched((b,), jnp.int32)
    if clip is not None and not clip.image_only:
        batch["text_embeds"] = batched((b, clip.projection_dim), jnp.float32)

    def on_every_device(params):
        return None if params is None else jax.tree_util.tree_map(
            lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype, sharding=rep), params)

    perceptual = lpips_shapes() if steps.perceptual is not None and config.loss.perceptual == "lpips" else None
    frozen = {"clip_params": on_every_device(clip.params if clip is not None else None),
              "perceptual_params": on_every_device(perceptual),
              "vision_clip_params": on_every_device(vision_clip.params if vision_clip is not None else None)}
    return StepInputs(steps, shardings, state, batch, key, frozen, init)


STEP_NAMES = ("D step + R1", "D step", "G step")


def step_functions(inputs: StepInputs, mesh, with_vision: Optional[bool] = None) -> dict[str, tuple]:
    """{name in STEP_NAMES: (jitted step, its abstract arguments)}, jitted as the training loop
    jits them (state donated, outputs laid out as the state's shardings). `with_vision`: the
    vision-aided terms (default: whenever the config trains them)."""
    steps = inputs.steps
    vision = steps.vision_heads is not None if with_vision is None else with_vision
    frozen = inputs.frozen

    def jit(step):  # as the loop compiles its steps
        return jit_step(step, mesh, inputs.state_shardings)

    d_args = (inputs.state, inputs.batch, inputs.key, frozen["clip_params"], frozen["vision_clip_params"])
    g_args = (inputs.state, inputs.batch, inputs.key, frozen["clip_params"], frozen["perceptual_params"],
              frozen["vision_clip_params"])
    return {
        "D step + R1": (jit(functools.partial(steps.d_step, with_r1=True, with_vision=vision)), d_args),
        "D step": (jit(functools.partial(steps.d_step, with_vision=vision)), d_args),
        "G step": (jit(functools.partial(steps.g_step, with_vision=vision)), g_args),
    }


def plan_steps(inputs: StepInputs, mesh, with_vision: Optional[bool] = None,
               names: tuple[str, ...] = STEP_NAMES) -> list[ExecutablePlan]:
    """Compile the `names` steps (default: D with and without R1, and G) and read their plans."""
    functions = step_functions(inputs, mesh, with_vision)
    vision = inputs.steps.vision_heads is not None if with_vision is None else with_vision
    suffix = " + vision" if vision else ""
    return [plan_executable(name + suffix, functions[name][0], functions[name][1], inputs.state) for name in names]


def iteration_figures(plans: list[ExecutablePlan], r1_interval: int) -> dict[str, float]:
    """Per device, one D + G iteration with lazy R1 every `r1_interval` steps: FLOPs and wire
    bytes averaged over the interval, and the peak memory of the largest executable."""
    d_r1, d, g = plans

    def average(field):
        return (field(d_r1) + (r1_interval - 1) * field(d)) / r1_interval + field(g)

    return {"flops": average(lambda p: p.flops), "wire_bytes": average(lambda p: p.wire_bytes),
            "peak_bytes": max(p.peak_bytes for p in plans), "state_bytes": d.state_bytes}


def step_seconds(flops: float, wire_bytes: float, peak_tflops: float, utilisation: float,
                 link_gbytes_per_s: float) -> dict[str, float]:
    """Compute time at `utilisation` of the accelerator's peak, and the collectives' time at the
    stated per-device link bandwidth (an upper bound on what overlap must hide)."""
    return {"compute": flops / (peak_tflops * 1e12 * utilisation),
            "collectives": wire_bytes / (link_gbytes_per_s * 1e9)}


def largest_batch_that_fits(measure, budget_bytes: int, max_measures: int = 8, probe: int = 1,
                            fixed_bytes: Optional[int] = None, smallest: int = 1) -> tuple[int, dict[int, int]]:
    """The largest per-device batch whose peak bytes `measure(b)` (a compile each) fit the budget.

    Peak memory is close to affine in the batch (the state does not grow with it, activations
    do per sample). The line comes from batches `probe` and one more, or from `probe` alone where
    the batch-free bytes are known (`fixed_bytes`, e.g. the train state: one compile fewer; the
    slope then also carries the batch-free temporaries, so the guess errs low). Its prediction is
    compiled; from there the line is followed up from the largest batch that fitted, or the answer
    bisected below the smallest that did not. Returns (batch, {batch: measured peak bytes}); 0 when
    batch `smallest` (the least a step accepts) does not fit."""
    seen: dict[int, int] = {}

    def measured(b: int) -> int:
        if b not in seen:
            seen[b] = measure(b)
        return seen[b]

    probe = max(probe, smallest)
    if measured(probe) > budget_bytes and probe == smallest:
        return 0, seen
    if fixed_bytes is not None and seen[probe] > fixed_bytes:
        intercept, slope = fixed_bytes, (seen[probe] - fixed_bytes) / probe
    else:
        other = smallest if probe > smallest else probe + 1
        slope = (seen[probe] - measured(other)) / (probe - other)
        intercept = seen[other] - slope * other
    guess = int((budget_bytes - intercept) // slope) if slope > 0 else probe
    while True:
        lo = max((b for b, peak in seen.items() if peak <= budget_bytes), default=smallest - 1)
        hi = min((b for b, peak in seen.items() if peak > budget_bytes), default=None)
        if hi is None:
            guess = max(guess, lo + int((budget_bytes - seen[lo]) // slope) if slope > 0 else lo)
        elif not lo < guess < hi:
            guess = (lo + hi) // 2
        if guess <= lo or guess in seen or len(seen) >= max_measures:
            return (lo if lo >= smallest else 0), seen
        measured(guess)


def describe_bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def replicated_fraction(state: Any) -> float:
    """Share of the state's bytes that every device holds whole (leaves no mesh axis divides)."""
    whole = sum(tree_bytes(leaf) for leaf in jax.tree_util.tree_leaves(state)
                if leaf.sharding.shard_shape(leaf.shape) == tuple(leaf.shape))
    return whole / max(1, tree_bytes(state))

