"""Sampling speed: images/s of one jitted forward pass per batch, at batch 1 and 64.

    python -m benchmarks.sample_speed --config configs/demo.py --clip runs/demo/clip [--repeats 10]

Three timings per batch size, median seconds after warm-up (compilation excluded), random-init
G (speed does not depend on training), noise off as in sample.py:
  M + S      mapping + synthesis from text already through T (a TextConditioning);
  G          T + mapping + synthesis from frozen-CLIP token features (what sample.py jits);
  CLIP + G   the CLIP text tower on token ids, then G: a prompt's full cost after tokenizing.
--clip defaults to config.clip.path; without one, a random CLIP of the shape the project
trains for the offline demo (gigagan_jax.train.small_clip.SmallClipSpec) with the config's token width.
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp
from flax.core import meta

from benchmarks._timing import median_seconds
from gigagan_jax import cpu_convs
from gigagan_jax.host_memory import restart_with_hugepages
from gigagan_jax.config import load_config, validate_config
from gigagan_jax.pretrained.clip import Clip, init_params, load_clip
from gigagan_jax.models.build import build_generator
from gigagan_jax.models.generator import Generator, init_generator
from gigagan_jax.generate.sample import generate, seeds_to_z
from gigagan_jax.train.small_clip import SmallClipSpec, clip_config

PROMPTS = ["a red circle in the center on a black background", "a blue square in the top left on a white background"]


def random_clip(text_width: int) -> Clip:
    config = clip_config(SmallClipSpec(text_width=text_width))
    return Clip(config, init_params(config, jax.random.PRNGKey(0)), text_only=True)


def main() -> None:
    restart_with_hugepages()  # timed as the commands run (gigagan_jax/host_memory.py)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.py")
    parser.add_argument("--clip", default=None, help="CLIP folder (default: config.clip.path, else a random one)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    config = load_config(args.config)
    validate_config(config)
    generator = build_generator(config)
    spec = generator.spec
    params = meta.unbox(jax.jit(functools.partial(init_generator, generator))(jax.random.PRNGKey(0)))["params"]
    clip_path = config.clip.path if args.clip is None else args.clip
    clip = load_clip(clip_path, text_only=True) if clip_path else random_clip(spec.text_encoder_dim)
    if clip.text_dim != spec.text_encoder_dim:
        raise SystemExit(f"error: the CLIP's tokens are {clip.text_dim} wide, the config wants "
                         f"config.model.text_encoder_dim={spec.text_encoder_dim}")

    @cpu_convs.jit
    def mapping_synthesis(params, z, text):
        w = generator.apply({"params": params}, z, text.t_global, method=Generator.mapping)
        return jnp.clip(generator.apply({"params": params}, w, text, "none", method=Generator.synthesis)[-1], -1, 1)

    @cpu_convs.jit
    def clip_and_g(clip_params, params, z, ids):
        feats, eot, _ = clip.encode_text(ids, params=clip_params)
        return generate(generator, params, z, feats, eot)

    print(f"config={args.config} resolution={spec.resolution} backend={jax.default_backend()} "
          f"kernel_impl={spec.kernel_impl} clip={clip_path or 'random'} repeats={args.repeats}")
    print(f"{'what':<10} {'batch':>5} {'median s':>9} {'images/s':>9}")
    for b in args.batches:
        z = seeds_to_z(range(b), spec.z_dim)  # [B, z_dim]
        ids = jnp.asarray(clip.tokenize([PROMPTS[i % len(PROMPTS)] for i in range(b)]))  # [B, 77]
        feats, eot, _ = clip.encode_text(ids)  # [B, 77, Dc], [B]
        text = generator.apply({"params": params}, feats, eot, method=Generator.encode_text)
        timings = {
            "M + S": median_seconds(lambda: mapping_synthesis(params, z, text), args.repeats),
            "G": median_seconds(lambda: generate(generator, params, z, feats, eot), args.repeats),
            "CLIP + G": median_seconds(lambda: clip_and_g(clip.params, params, z, ids), args.repeats),
        }
        for name, seconds in timings.items():
            print(f"{name:<10} {b:>5} {seconds:>9.4f} {b / seconds:>9.1f}")


if __name__ == "__main__":
    main()
