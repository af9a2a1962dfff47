"""Is the trained upsampler better than bicubic? L1 and high-frequency energy on held-out images.

    python -m acceptance.upsampler_quality --workdir runs/upsampler_demo [--step N] [--n 256]

Held-out images come from the shapes generator with another seed than training (never seen).
Each is area-downsampled to the upsampler's input size (clean: no training-time degradation),
then brought back to full size by (a) bicubic interpolation and (b) the run's G_ema (seed = the
image's index, the fixed noise maps: noise_mode="const"). Prints, for both and for the real images:
  L1        mean |x - real| in [0, 255] units (lower is better);
  HF energy mean spectral power in the top half of frequencies (radius > Nyquist / 2 of the 2-D
            FFT of each channel, mean removed), and its ratio to the real images' (1 is ideal).
Writes a grid [input | bicubic | upsampler | real] next to the run and the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from gigagan_jax.data.degrade import lowres_input
from gigagan_jax.data.shapes import ShapesSource
from gigagan_jax.generate.grid import make_grid, nearest_resize, save_png
from gigagan_jax.generate.restore import load_trained_generator
from gigagan_jax.generate.sample import condition_inputs, seeds_to_z, upsample
from gigagan_jax.pixels import to_signed, to_uint8

HELD_OUT_SEED = 7  # training uses the shapes set of seed 0


def high_frequency_energy(images: np.ndarray) -> float:
    """uint8/float [N, H, W, 3] -> mean power of the FFT bins with radius > 1/4 cycle per pixel."""
    x = images.astype(np.float64)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(x, axes=(1, 2))) ** 2  # [N, H, W, 3]
    fy = np.fft.fftfreq(x.shape[1])[:, None]
    fx = np.fft.fftfreq(x.shape[2])[None, :]
    high = np.sqrt(fy**2 + fx**2) > 0.25  # Nyquist is 0.5 cycles/pixel
    return float(power[:, high].mean() / (x.shape[1] * x.shape[2]))


def bicubic(lowres: jax.Array, size: int) -> jax.Array:
    return jax.image.resize(lowres, (lowres.shape[0], size, size, 3), method="bicubic")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--step", type=int, default=None)
    parser.add_argument("--n", type=int, default=256, help="held-out images")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    trained = load_trained_generator(args.workdir, args.step)
    spec, config = trained.generator.spec, trained.config
    if config.task != "upsampler" or config.data.kind != "shapes":
        raise SystemExit(f"{args.workdir} is not an upsampler trained on the shapes data")
    data = ShapesSource(args.n, spec.resolution, seed=HELD_OUT_SEED).get_batch(np.arange(args.n))
    real = data["image"]  # uint8 [N, R, R, 3]
    conditions = condition_inputs(spec, trained.clip, list(data["caption"]), data["label"])
    ours, cubic, inputs = [], [], []
    for lo in range(0, args.n, args.batch):
        x = to_signed(jnp.asarray(real[lo:lo + args.batch]))
        lowres = lowres_input(x, spec.input_resolution)
        z = seeds_to_z(range(lo, lo + len(x)), spec.z_dim)
        cond = conditions(slice(lo, lo + len(x)))
        ours.append(to_uint8(upsample(trained.generator, trained.params, z, lowres, **cond)))
        cubic.append(to_uint8(jnp.clip(bicubic(lowres, spec.resolution), -1, 1)))
        inputs.append(to_uint8(nearest_resize(lowres, spec.resolution)))
    ours, cubic, inputs = map(np.concatenate, (ours, cubic, inputs))

    def l1(images):
        return float(np.abs(images.astype(np.float64) - real.astype(np.float64)).mean())

    hf_real = high_frequency_energy(real)
    report = {"workdir": args.workdir, "step": trained.step, "images": args.n,
              "input_resolution": spec.input_resolution, "output_resolution": spec.resolution,
              "l1": {"bicubic": l1(cubic), "upsampler": l1(ours)},
              "hf_energy": {"real": hf_real, "bicubic": high_frequency_energy(cubic),
                            "upsampler": high_frequency_energy(ours)}}
    report["hf_ratio_to_real"] = {k: report["hf_energy"][k] / hf_real for k in ("bicubic", "upsampler")}
    print(f"{args.n} held-out {spec.input_resolution}->{spec.resolution} px images, step {trained.step}")
    print(f"  L1 to real (0-255):   bicubic {report['l1']['bicubic']:.2f}   upsampler {report['l1']['upsampler']:.2f}")
    print(f"  HF energy / real's:   bicubic {report['hf_ratio_to_real']['bicubic']:.3f}   "
          f"upsampler {report['hf_ratio_to_real']['upsampler']:.3f}")
    k = min(8, args.n)
    rows = np.stack([inputs[:k], cubic[:k], ours[:k], real[:k]], axis=1).reshape((-1,) + real.shape[1:])
    out = os.path.join(args.workdir, f"upsampler_quality_step{trained.step}")
    save_png(make_grid(rows, rows=k), out + ".png")
    with open(out + ".json", "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {out}.png ([input | bicubic | upsampler | real] per row) and {out}.json")


if __name__ == "__main__":
    main()
