"""One command for the day an accelerator is at hand (issue #23 item 6): what the paper models do on it.

    python -m benchmarks.gpu_check --out gpu_check.json            # one GPU, about 8 minutes
    python -m benchmarks.gpu_check --reduced --memory_gb 0.5       # the same code on the tiny configs (CPU)

Sections, cheapest first, each skipped with a stated reason once `--budget_s` is spent:
  peak          the device's measured matmul TFLOP/s in f32 and bf16 (the MFU denominators);
  bench64       DESIGN §13's shape: D, D + R1, G, one D+G iteration, sampling 64; achieved TFLOP/s;
  kernel_impls  the adaptive conv's implementations (and what `auto` measured fastest here): G step
                and sampling at bench64 for each;
  chain         prompt -> CLIP text -> t2i_64 -> upsampler_512, latency per 512 px image at batch 1 and
                per image at a larger batch (the paper: 0.13 s on an A100);
  t2i_64        the largest per-device batch whose compiled D + R1 step fits the device's memory, then
                its D and G steps timed: iteration seconds, images/s and MFU.
Weights are random at the published shapes (CLIP ViT-L/14, ViT-B/32 for the vision-aided D): speed does
not depend on them. FLOPs are XLA's count of the compiled programs. `--reduced` swaps in configs/tiny.py,
configs/upsampler_tiny.py and a small random CLIP so the whole script runs on a CPU as a test; its figures
mean nothing. The report (`--out`, JSON) holds every figure; the exit status is 1 if a section failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np
from flax.core import meta
from flax.traverse_util import flatten_dict, unflatten_dict

from benchmarks._timing import matmul_peak, median_seconds
from gigagan_jax import cpu_convs
from gigagan_jax.config import has_vision_backbone, load_config, validate_config
from gigagan_jax.generate.sample import generate, generate_and_upsample, seeds_to_z
from gigagan_jax.models.build import build_discriminator, build_generator
from gigagan_jax.models.generator import Generator, init_generator
from gigagan_jax.machine import cpu_model
from gigagan_jax.pretrained.clip import Clip, expected_shapes, init_params, openai_config
from gigagan_jax.train import pod_plan
from gigagan_jax.train.sharding import make_mesh, replicated
from gigagan_jax.train.small_clip import SmallClipSpec, clip_config
from gigagan_jax.train.state import jit_init
from gigagan_jax.train.step import GanSteps

SECTIONS = ("peak", "bench64", "kernel_impls", "chain", "t2i_64")
# Dense tensor-core peaks, TFLOP/s, by device kind (f32 matmuls run as TF32 under XLA's default precision).
NOMINAL_TFLOPS = {"H100": {"bfloat16": 989.0, "float32": 495.0}, "H200": {"bfloat16": 989.0, "float32": 495.0},
                  "A100": {"bfloat16": 312.0, "float32": 156.0}}
PAPER_SECONDS_PER_512PX_IMAGE = 0.13  # GigaGAN abstract, one A100
PROMPTS = ["a photo of a red fox in the snow", "an oil painting of a lighthouse at dusk"]


@dataclasses.dataclass(frozen=True)
class Shapes:
    """What each section runs: the paper's models, or tiny stand-ins that exercise the same code."""

    bench: str
    sample_batch: int
    impls: tuple[str, ...]
    t2i: str
    upsampler: str
    clip: str  # a published CLIP's name (openai_config), or "small" (a SmallClipSpec of the t2i width)
    matmul: int
    chain_batch: int
    probe_batch: int  # the memory search's first per-device batch
    repeats: int


FULL = Shapes("configs/bench64.py", 64, ("grouped", "bank", "patches"), "configs/t2i_64.py",
              "configs/upsampler_512.py", "clip-vit-large-patch14", 8192, 16, 8, 5)
REDUCED = Shapes("configs/tiny.py", 8, ("grouped", "patches"), "configs/tiny.py", "configs/upsampler_tiny.py",
                 "small", 256, 4, 1, 2)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reduced", action="store_true", help="tiny configs: the script itself, tested on CPU")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--budget_s", type=float, default=480.0, help="skip the sections left once this is spent")
    parser.add_argument("--memory_gb", type=float, default=0.0,
                        help="device memory for the t2i_64 search, GB (default: the device's own limit)")
    parser.add_argument("--memory_fraction", type=float, default=0.9,
                        help="share of it a compiled step may plan to use (the allocator needs slack)")
    parser.add_argument("--t2i_batch", type=int, default=0, help="per-device batch for t2i_64; 0: search")
    parser.add_argument("--out", default="", help="write the report here (JSON)")
    return parser.parse_args(argv)


class Budget:
    def __init__(self, seconds: float):
        self.start, self.seconds = time.perf_counter(), seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()


def random_like(tree, key: jax.Array, std: float = 0.02):
    """Random normal arrays shaped like `tree`'s float leaves (ShapeDtypeStructs or arrays), each
    placed as the leaf's sharding says; integer leaves are zeros."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    out = []
    for i, leaf in enumerate(leaves):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            value = std * jax.random.normal(jax.random.fold_in(key, i), leaf.shape, leaf.dtype)
        else:
            value = jnp.zeros(leaf.shape, leaf.dtype)
        sharding = getattr(leaf, "sharding", None)
        out.append(jax.device_put(value, sharding) if sharding is not None else value)
    return jax.tree_util.tree_unflatten(treedef, out)


def random_clip(name: str, text_width: int = 0, image_only: bool = False) -> Clip:
    """A frozen CLIP with random weights: a published one's shapes (`openai_config`), or "small":
    a SmallClipSpec with `text_width`-wide tokens."""
    config = clip_config(SmallClipSpec(text_width=text_width)) if name == "small" else openai_config(name)
    params = init_params(config, jax.random.PRNGKey(0))
    if image_only:
        keep = flatten_dict(expected_shapes(config, image_only=True))
        params = unflatten_dict({k: v for k, v in flatten_dict(params).items() if k in keep})
    return Clip(config, params, image_only=image_only)


def vision_backbone(config) -> Clip | None:
    """The vision-aided D's own backbone at ViT-B/32's shapes, when the config names one."""
    if not has_vision_backbone(config):
        return None
    return random_clip("clip-vit-base-patch32", image_only=True)


def lowered_flops(jitted, *args) -> float:
    """XLA's FLOP count of `jitted` traced on `args`, without compiling it (within 1 % of the
    compiled count on bench64's steps)."""
    return pod_plan.flops_of(jitted.lower(*args))


def nominal_peak(device_kind: str) -> dict[str, float] | None:
    return next((peaks for name, peaks in NOMINAL_TFLOPS.items() if name in device_kind), None)


def text_batch(spec, b: int) -> dict:
    return {"image": jax.random.randint(jax.random.PRNGKey(1), (b, spec.resolution, spec.resolution, 3), 0, 256
                                        ).astype(jnp.uint8),
            "text_features": jax.random.normal(jax.random.PRNGKey(2), (b, spec.text_len, spec.text_encoder_dim)),
            "eot_index": jnp.full((b,), 8, jnp.int32)}


def bench_section(shapes: Shapes, report: dict) -> dict:
    """DESIGN §13's shape on one device, as benchmarks.step_speed measures it, plus TFLOP/s. FLOPs
    are counted on the "patches" form, which is loop-free ("per_sample" loops over the batch)."""
    config = load_config(shapes.bench)
    validate_config(config)
    steps = GanSteps(config, build_generator(config), build_discriminator(config))
    spec, b, n = steps.generator.spec, config.train.batch_size, shapes.sample_batch
    state = jit_init(steps.init_state)(jax.random.PRNGKey(0))
    batch, rng = text_batch(spec, b), jax.random.PRNGKey(3)
    z, condition = seeds_to_z(range(n), spec.z_dim), text_batch(spec, n)
    condition = (condition["text_features"], condition["eot_index"])

    def jitted(steps):
        return {"D step": cpu_convs.jit(steps.d_step),
                "D step + R1": cpu_convs.jit(functools.partial(steps.d_step, with_r1=True)),
                "G step": cpu_convs.jit(steps.g_step)}

    run = jitted(steps)
    seconds = {name: median_seconds(lambda: fn(state, batch, rng), shapes.repeats) for name, fn in run.items()}
    seconds[f"sample {n}"] = median_seconds(lambda: generate(steps.generator, state.g_ema, z, *condition),
                                            shapes.repeats)
    counted = GanSteps(config, Generator(dataclasses.replace(spec, kernel_impl="patches")), steps.discriminator)
    flops = {name: lowered_flops(fn, state, batch, rng) for name, fn in jitted(counted).items()}
    flops[f"sample {n}"] = lowered_flops(generate, counted.generator, state.g_ema, z, *condition)
    for name, parts in (("D+G (no R1)", ("D step", "G step")), ("D+G (with R1)", ("D step + R1", "G step"))):
        seconds[name], flops[name] = sum(seconds[p] for p in parts), sum(flops[p] for p in parts)
    peak = report["peak"]["measured_tflops"][config.model.dtype]
    rows = {name: {"seconds": seconds[name], "tflop": flops[name] / 1e12,
                   "tflops": flops[name] / seconds[name] / 1e12,
                   "share_of_matmul_peak": flops[name] / seconds[name] / 1e12 / peak} for name in seconds}
    return {"config": shapes.bench, "batch": b, "kernel_impl": spec.kernel_impl, "dtype": config.model.dtype,
            "rows": rows}


def kernel_impls_section(shapes: Shapes) -> dict:
    config = load_config(shapes.bench)
    state = None  # the implementations share one parameter layout
    out = {}
    for impl in shapes.impls:
        config.model.g.kernel_impl = impl
        steps = GanSteps(config, build_generator(config), build_discriminator(config))
        spec = steps.generator.spec
        state = jit_init(steps.init_state)(jax.random.PRNGKey(0)) if state is None else state
        batch, n = text_batch(spec, config.train.batch_size), shapes.sample_batch
        g_step = cpu_convs.jit(steps.g_step)
        cond = text_batch(spec, n)
        z = seeds_to_z(range(n), spec.z_dim)
        out[impl] = {
            "G step s": median_seconds(lambda: g_step(state, batch, jax.random.PRNGKey(3)), shapes.repeats),
            f"sample {n} s": median_seconds(lambda: generate(steps.generator, state.g_ema, z, cond["text_features"],
                                                             cond["eot_index"]), shapes.repeats)}
    auto = {objective: build_generator(load_config(shapes.bench), objective, num_devices=1).spec.kernel_impl
            for objective in ("train", "sample")}
    return {"auto": auto, "impls": out}


def chain_section(shapes: Shapes) -> dict:
    """Prompt ids -> CLIP text -> base G -> upsampler, one executable, random weights."""
    base_config, up_config = load_config(shapes.t2i), load_config(shapes.upsampler)
    generator, upsampler = (build_generator(c, "sample", num_devices=1) for c in (base_config, up_config))
    if generator.spec.resolution != upsampler.spec.input_resolution:
        raise ValueError(f"{shapes.t2i} makes {generator.spec.resolution} px, {shapes.upsampler} reads "
                         f"{upsampler.spec.input_resolution} px")
    clip = random_clip(shapes.clip, generator.spec.text_encoder_dim)
    g_params = meta.unbox(jax.jit(functools.partial(init_generator, generator))(jax.random.PRNGKey(0)))["params"]
    u_params = meta.unbox(jax.jit(functools.partial(init_generator, upsampler))(jax.random.PRNGKey(1)))["params"]

    @cpu_convs.jit
    def prompt_to_image(clip_params, g_params, u_params, ids, z, z_up):
        features, eot, _ = clip.encode_text(ids, params=clip_params)
        condition = {"text_features": features, "eot_index": eot}
        return generate_and_upsample(generator, g_params, upsampler, u_params, z, z_up, condition, condition)[1]

    out = {"base": shapes.t2i, "upsampler": shapes.upsampler, "resolution": upsampler.spec.resolution,
           "dtype": base_config.model.dtype}
    for b in (1, shapes.chain_batch):
        ids = jnp.asarray(clip.tokenize([PROMPTS[i % len(PROMPTS)] for i in range(b)]))
        z, z_up = seeds_to_z(range(b), generator.spec.z_dim), seeds_to_z(range(b), upsampler.spec.z_dim)
        images = prompt_to_image(clip.params, g_params, u_params, ids, z, z_up)
        if images.shape != (b, upsampler.spec.resolution, upsampler.spec.resolution, 3):
            raise AssertionError(f"the chain made {images.shape}")
        seconds = median_seconds(lambda: prompt_to_image(clip.params, g_params, u_params, ids, z, z_up), shapes.repeats)
        out[f"batch {b}"] = {"seconds": seconds, "seconds_per_image": seconds / b}
    return out


def t2i_section(shapes: Shapes, args: argparse.Namespace, report: dict, budget: Budget) -> dict:
    """The largest per-device batch whose D + R1 step fits, then D, D + R1 and G timed at it."""
    config = load_config(shapes.t2i)
    devices = jax.local_devices()
    mesh = make_mesh((1, len(devices)), ("data", "fsdp"), devices)
    clip = random_clip(shapes.clip, config.model.text_encoder_dim)
    vision = vision_backbone(config)
    limit = args.memory_gb * 1e9 or (devices[0].memory_stats() or {}).get("bytes_limit", 0)
    if not limit:
        raise ValueError("this device reports no memory limit: pass --memory_gb")
    memory_budget = int(args.memory_fraction * limit)

    def inputs_at(per_device: int):
        config.train.batch_size = per_device * len(devices)
        validate_config(config, num_devices=len(devices))
        return pod_plan.abstract_step_inputs(config, mesh, clip, vision)

    plans: dict[int, pod_plan.ExecutablePlan] = {}

    def d_r1_peak(per_device: int) -> int:
        plans[per_device], = pod_plan.plan_steps(inputs_at(per_device), mesh, names=("D step + R1",))
        print(f"  per-device batch {per_device}: D + R1 peak {pod_plan.describe_bytes(plans[per_device].peak_bytes)} "
              f"(compiled in {plans[per_device].compile_seconds:.0f} s)", flush=True)
        return plans[per_device].peak_bytes

    if args.t2i_batch:
        per_device, searched = args.t2i_batch, {args.t2i_batch: d_r1_peak(args.t2i_batch)}
    else:
        smallest = -(-2 // len(devices))  # the matching-aware loss pairs samples: 2 at least
        state_bytes = pod_plan.tree_bytes_per_device(inputs_at(smallest).state)
        per_device, searched = pod_plan.largest_batch_that_fits(d_r1_peak, memory_budget, max_measures=3,
                                                               probe=shapes.probe_batch, fixed_bytes=state_bytes,
                                                               smallest=smallest)
        if per_device == 0:
            raise ValueError(f"per-device batch {smallest} of {shapes.t2i} does not fit "
                             f"{pod_plan.describe_bytes(memory_budget)}")
    if budget.left() < 3 * plans[per_device].compile_seconds:
        return {"per_device_batch": per_device, "searched_peaks": searched,
                "skipped": f"timing: {budget.left():.0f} s left, a compile takes {plans[per_device].compile_seconds:.0f} s"}
    inputs = inputs_at(per_device)
    functions = pod_plan.step_functions(inputs, mesh)
    executables = {"D step + R1": plans[per_device].compiled,
                   **{name: functions[name][0].lower(*functions[name][1]).compile() for name in ("D step", "G step")}}
    flops = {name: pod_plan.flops_of(executable) for name, executable in executables.items()}
    state = jit_init(inputs.init, inputs.state_shardings)(jax.random.PRNGKey(0))
    batch = random_like(inputs.batch, jax.random.PRNGKey(1), std=1.0)
    batch["image"] = jax.device_put(jnp.zeros(inputs.batch["image"].shape, jnp.uint8) + 127,
                                    inputs.batch["image"].sharding)
    batch["eot_index"] = batch["eot_index"] + 8
    rep = replicated(mesh)
    frozen = {k: jax.device_put(v, rep) if v is not None else None
              for k, v in (("clip_params", clip.params), ("vision_clip_params", vision and vision.params))}
    key = jax.device_put(jax.random.PRNGKey(2), rep)
    arguments = {"D step + R1": (frozen["clip_params"], frozen["vision_clip_params"]),
                 "D step": (frozen["clip_params"], frozen["vision_clip_params"]),
                 "G step": (frozen["clip_params"], None, frozen["vision_clip_params"])}
    seconds = {}
    for name, executable in executables.items():  # the state is donated: each call feeds the next
        times = []
        for _ in range(shapes.repeats + 1):
            t0 = time.perf_counter()
            state, metrics = executable(state, batch, key, *arguments[name])
            jax.block_until_ready((state, metrics))
            times.append(time.perf_counter() - t0)
        seconds[name] = float(np.median(times[1:]))
    interval = config.loss.r1_interval
    iteration = {
        "seconds": (seconds["D step + R1"] + (interval - 1) * seconds["D step"]) / interval + seconds["G step"],
        "flop": (flops["D step + R1"] + (interval - 1) * flops["D step"]) / interval + flops["G step"]}
    achieved = iteration["flop"] / iteration["seconds"] / 1e12
    dtype, kind = config.model.dtype, devices[0].device_kind
    nominal = nominal_peak(kind)
    return {"config": shapes.t2i, "dtype": dtype, "devices": len(devices), "per_device_batch": per_device,
            "memory_budget_bytes": memory_budget, "searched_peaks": searched,
            "peak_bytes": plans[per_device].peak_bytes, "step_seconds": seconds, "step_tflop":
            {k: v / 1e12 for k, v in flops.items()}, "iteration_seconds": iteration["seconds"],
            "iteration_tflop": iteration["flop"] / 1e12, "images_per_second": per_device * len(devices) / iteration["seconds"],
            "achieved_tflops": achieved,
            "mfu_of_measured_matmul_peak": achieved / report["peak"]["measured_tflops"][dtype],
            "mfu_of_nominal_peak": achieved / nominal[dtype] if nominal else None}


def run_section(name: str, fn, report: dict, budget: Budget) -> None:
    if budget.left() <= 0:
        report[name] = {"skipped": f"the {budget.seconds:g} s budget was spent"}
        print(f"[{name}] skipped: budget spent", flush=True)
        return
    t0 = time.perf_counter()
    try:
        report[name] = fn()
        report[name]["section_seconds"] = time.perf_counter() - t0
        print(f"[{name}] {json.dumps(report[name], default=float)}", flush=True)
    except Exception as error:  # a check reports every section it can; the exit status says one failed
        report[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        print(f"[{name}] FAILED: {report[name]['traceback']}", flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    shapes = REDUCED if args.reduced else FULL
    budget = Budget(args.budget_s)
    device = jax.local_devices()[0]
    report = {"machine": {"backend": jax.default_backend(), "device_kind": device.device_kind,
                          "devices": jax.local_device_count(), "cpu": cpu_model(), "jax": jax.__version__},
              "reduced": args.reduced}
    print(json.dumps(report["machine"]), flush=True)
    sections = {
        "peak": lambda: {"measured_tflops": matmul_peak(shapes.matmul, shapes.repeats),
                         "nominal_tflops": nominal_peak(device.device_kind)},
        "bench64": lambda: bench_section(shapes, report),
        "kernel_impls": lambda: kernel_impls_section(shapes),
        "chain": lambda: chain_section(shapes),
        "t2i_64": lambda: t2i_section(shapes, args, report, budget),
    }
    needed = {"bench64", "t2i_64"} & set(args.sections)
    for name in SECTIONS:
        if name in args.sections or (name == "peak" and needed):
            run_section(name, sections[name], report, budget)
    report["seconds"] = budget.elapsed()
    failed = [name for name, section in report.items() if isinstance(section, dict) and "error" in section]
    summary(report)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1, default=float)
    return 1 if failed else 0


def summary(report: dict) -> None:
    print(f"\n{report['machine']['device_kind']} ({report['machine']['backend']}), {report['seconds']:.0f} s")
    peak = report.get("peak", {}).get("measured_tflops")
    if peak:
        print(f"matmul peak: f32 {peak['float32']:.3g}, bf16 {peak['bfloat16']:.3g} TFLOP/s")
    for name, row in report.get("bench64", {}).get("rows", {}).items():
        print(f"  bench {name:<15} {row['seconds']:8.4f} s {row['tflops']:8.3g} TFLOP/s "
              f"({100 * row['share_of_matmul_peak']:.0f} % of the matmul peak)")
    for impl, row in report.get("kernel_impls", {}).get("impls", {}).items():
        print(f"  kernel impl {impl:<10} " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()))
    chain = report.get("chain", {})
    for key in [k for k in chain if k.startswith("batch")]:
        print(f"  chain to {chain['resolution']} px, {key}: {chain[key]['seconds_per_image']:.4f} s per image "
              f"(paper, A100: {PAPER_SECONDS_PER_512PX_IMAGE})")
    t2i = report.get("t2i_64", {})
    if "iteration_seconds" in t2i:
        print(f"  t2i_64 at per-device batch {t2i['per_device_batch']}: {t2i['iteration_seconds']:.3f} s per iteration, "
              f"{t2i['images_per_second']:.1f} images/s, MFU {100 * t2i['mfu_of_measured_matmul_peak']:.0f} % of "
              f"the measured {t2i['dtype']} matmul peak")
    for name, section in report.items():
        if isinstance(section, dict) and ("error" in section or "skipped" in section):
            print(f"  {name}: {section.get('error') or section.get('skipped')}")


if __name__ == "__main__":
    sys.exit(main())
