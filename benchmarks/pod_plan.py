"""Plan a config on a pod by simulation (issue #23 item 4): compile its D and G steps for a mesh
of simulated CPU devices, execute nothing, and print per device what the programs hold and do.

    python -m benchmarks.pod_plan --config configs/t2i_64.py --mesh 8x8 [--per_device_batch 8]
    python -m benchmarks.pod_plan --config configs/t2i_64.py --mesh 8x8 --find_max_batch

The frozen networks the config reads are built abstractly at their published shapes (no weights
needed): CLIP ViT-L/14 (text tokens, the CLIP loss), the vision-aided D's ViT-B/32 where the
config names it, LPIPS-VGG for an upsampler. Per executable: state bytes, XLA's argument / temporary bytes and
the peak, GFLOPs, collective ops and bytes on the wire, compile seconds. Then one iteration
(D with lazy R1 averaged over its interval, plus G) and the step time that implies at a stated
share of an accelerator's peak, with the collectives timed separately at a stated link
bandwidth. `--find_max_batch` finds the largest per-device batch whose peak fits
`--memory_gb` (the CPU compiler's buffer assignment: see gigagan_jax/train/pod_plan.py).
Rematerialisation (config.train.remat) cannot be planned here: XLA:CPU expands jax.checkpoint's
optimisation barriers and CSE merges the recomputation back, so a CPU compile shows no saving.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

# H100 SXM dense tensor-core peaks, TFLOP/s: f32 matmuls run as TF32 on it under XLA's default precision.
PEAK_TFLOPS = {"bfloat16": 989.0, "float32": 495.0}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/t2i_64.py")
    parser.add_argument("--mesh", default="8x8", help="data x fsdp, e.g. 8x8 (64 simulated devices)")
    parser.add_argument("--per_device_batch", type=int, default=0, help="0: the config's batch over the mesh")
    parser.add_argument("--find_max_batch", action="store_true", help="the largest per-device batch that fits")
    parser.add_argument("--memory_gb", type=float, default=80.0, help="accelerator memory per device, GB")
    parser.add_argument("--dtype", default=None, help="override config.model.dtype (compute dtype)")
    parser.add_argument("--kernel_impl", default="patches",
                        help="the adaptive conv's implementation planned for when the config says auto (auto is "
                             "measured on the machine that runs, which simulated devices are not)")
    parser.add_argument("--peak_tflops", type=float, default=0.0, help="0: H100 SXM dense peak for the dtype")
    parser.add_argument("--utilisation", type=float, default=0.4, help="share of peak the steps are assumed to reach")
    parser.add_argument("--link_gbps", type=float, default=100.0,
                        help="per-device collective bandwidth, GB/s, for the collectives' time")
    parser.add_argument("--no_vision", action="store_true", help="plan the steps before the vision-aided D starts")
    args = parser.parse_args(argv)
    try:
        args.mesh_shape = tuple(int(v) for v in args.mesh.lower().split("x"))
    except ValueError:
        parser.error(f"--mesh {args.mesh!r}: give data x fsdp, e.g. 8x8")
    if len(args.mesh_shape) != 2 or min(args.mesh_shape) < 1:
        parser.error(f"--mesh {args.mesh!r}: give two sizes >= 1, e.g. 8x8")
    return args


def frozen_networks(config):
    """Abstract CLIPs at the published shapes the config implies (None where it reads none)."""
    from gigagan_jax.config import has_vision_backbone, needs_image_tower
    from gigagan_jax.pretrained.clip import OPENAI_SHAPES, abstract_clip, openai_config

    by_width = {shapes[0][0]: name for name, shapes in OPENAI_SHAPES.items()}
    clip = vision = None
    if config.model.conditioning == "text" or needs_image_tower(config):
        name = by_width.get(config.model.text_encoder_dim)
        if name is None:
            raise SystemExit(f"error: no published CLIP has {config.model.text_encoder_dim}-wide text tokens "
                             f"(config.model.text_encoder_dim); known: {', '.join(OPENAI_SHAPES)}")
        clip = abstract_clip(openai_config(name))
    if has_vision_backbone(config):
        name = os.path.basename(os.path.normpath(config.loss.vision_aided_clip_path))
        vision = abstract_clip(openai_config(name if name in OPENAI_SHAPES else "clip-vit-base-patch32"),
                               image_only=True)
    return clip, vision


def main(argv=None) -> int:
    args = parse_args(argv)
    devices = math.prod(args.mesh_shape)
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""),
                                        f"--xla_force_host_platform_device_count={devices}"]).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    jax.config.update("jax_enable_compilation_cache", False)
    from gigagan_jax.config import load_config, validate_config
    from gigagan_jax.train import pod_plan
    from gigagan_jax.train.sharding import mesh_from_config

    config = load_config(args.config)
    config.mesh.shape = args.mesh_shape
    if args.dtype is not None:
        config.model.dtype = args.dtype
    if config.model.g.kernel_impl == "auto":
        config.model.g.kernel_impl = args.kernel_impl
    if args.no_vision:
        config.loss.vision_aided_start = -1
    if config.task == "upsampler" and config.loss.perceptual == "lpips" and not config.loss.lpips_path:
        config.loss.lpips_path = "planned at LPIPS-VGG's shapes"  # its params are abstract here, never read
    mesh = mesh_from_config(config)
    clip, vision = frozen_networks(config)
    peak = args.peak_tflops or PEAK_TFLOPS.get(config.model.dtype, PEAK_TFLOPS["float32"])
    budget = int(args.memory_gb * 1e9)

    def plan(per_device: int):
        config.train.batch_size = per_device * devices
        validate_config(config, num_devices=devices)
        inputs = pod_plan.abstract_step_inputs(config, mesh, clip, vision)
        return inputs, pod_plan.plan_steps(inputs, mesh)

    print(f"{args.config} on a {args.mesh} mesh ({devices} simulated devices), compute {config.model.dtype}, kernel_impl {config.model.g.kernel_impl}; frozen: {'CLIP ' + str(clip.config.vision_config.patch_size) if clip else '-'}"
          f"{', vision-aided backbone' if vision else ''}", flush=True)
    if args.find_max_batch:
        peaks = {}

        def measure(b):
            _, plans = plan(b)
            peaks[b] = plans
            figures = pod_plan.iteration_figures(plans, config.loss.r1_interval)
            print(f"  per-device batch {b}: peak {pod_plan.describe_bytes(figures['peak_bytes'])}", flush=True)
            return figures["peak_bytes"]

        best, _ = pod_plan.largest_batch_that_fits(measure, budget)
        print(f"largest per-device batch within {args.memory_gb:g} GB: {best} (global {best * devices})")
        if best == 0:
            return 1
        per_device, plans = best, peaks[best]
        inputs = None
    else:
        per_device = args.per_device_batch or max(1, config.train.batch_size // devices)
        inputs, plans = plan(per_device)
    config.train.batch_size = per_device * devices

    print(f"\nper device, per-device batch {per_device} (global {config.train.batch_size}):")
    print(f"{'executable':<22} {'state':>10} {'arguments':>10} {'temp':>10} {'peak':>10} {'GFLOP':>9} "
          f"{'collectives':>11} {'wire':>10} {'compile s':>9}")
    for p in plans:
        ops = sum(c.count for c in p.collectives.values())
        print(f"{p.name:<22} {pod_plan.describe_bytes(p.state_bytes):>10} {pod_plan.describe_bytes(p.argument_bytes):>10} "
              f"{pod_plan.describe_bytes(p.temp_bytes):>10} {pod_plan.describe_bytes(p.peak_bytes):>10} "
              f"{p.flops / 1e9:>9.1f} {ops:>11} {pod_plan.describe_bytes(p.wire_bytes):>10} {p.compile_seconds:>9.1f}")
    for p in plans:
        kinds = ", ".join(f"{k} {c.count} ({pod_plan.describe_bytes(c.wire_bytes)})"
                          for k, c in p.collectives.items() if c.count)
        print(f"  {p.name}: {kinds or 'no collectives'}")
    figures = pod_plan.iteration_figures(plans, config.loss.r1_interval)
    times = pod_plan.step_seconds(figures["flops"], figures["wire_bytes"], peak, args.utilisation, args.link_gbps)
    if inputs is not None:
        total, fsdp = pod_plan.tree_bytes(inputs.state), mesh.shape["fsdp"]
        print(f"\ntrain state: {pod_plan.describe_bytes(total)} in all, {pod_plan.describe_bytes(figures['state_bytes'])} "
              f"per device ({figures['state_bytes'] * fsdp / total:.2f} x the state split {fsdp} ways over fsdp; "
              f"{100 * pod_plan.replicated_fraction(inputs.state):.1f} % of it held whole on every device)")
    print(f"one iteration (R1 every {config.loss.r1_interval}): {figures['flops'] / 1e12:.2f} TFLOP and "
          f"{pod_plan.describe_bytes(figures['wire_bytes'])} on the wire per device; peak "
          f"{pod_plan.describe_bytes(figures['peak_bytes'])}")
    print(f"projected: compute {times['compute']:.3f} s at {100 * args.utilisation:.0f} % of {peak:g} TFLOP/s, "
          f"collectives {times['collectives']:.3f} s at {args.link_gbps:g} GB/s; "
          f"{config.train.batch_size / max(times['compute'], times['collectives']):.0f} images/s if they overlap, "
          f"{config.train.batch_size / (times['compute'] + times['collectives']):.0f} if not")
    return 0


if __name__ == "__main__":
    sys.exit(main())
