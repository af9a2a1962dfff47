"""The upsampler demo with its regression term off: does the adversarial part alone beat bicubic?

configs/upsampler_demo.py owes its sharpness to the multi-scale L1 term (weight 100); this config
sets that weight to 0, so whatever G learns beyond its bicubic starting point comes from D. Two
D settings make that possible (BENCHMARKS.md, "GAN-only"):
- D reads the upsampler's low-res input (model.d.input_residual): the detail above the bicubic
  upsample is what tells real from upsampled; trained alone against bicubic outputs, D needed
  ~300 steps to see it without that input and ~100 with it.
- No matching-aware term: at weight 1 D learned the captions first (mismatched pairs below -5 by
  step 175) while its real and upsampled logits stayed together and its R1 penalty fell. At 0.1
  it learns both, the real/fake gap opening ~100 steps later than at 0 (a 600-step run).
G and D at lr 2e-3 with Adam beta1 0 (StyleGAN2's); the demo's G lr 1e-2 with momentum drifted
from bicubic (L1 2.2x) before D could steer it.

Run:  python train.py --config configs/upsampler_demo_gan_only.py --workdir runs/upsampler_gan_only
Then: python -m acceptance.upsampler_quality --workdir runs/upsampler_gan_only --step N
      python -m acceptance.d_logit_gap --workdir runs/upsampler_gan_only --window 125
"""

import os

from gigagan_jax.config import load_config


def get_config():
    config = load_config(os.path.join(os.path.dirname(__file__), "upsampler_demo.py"))
    config.model.d.input_residual = True
    config.loss.perceptual_weight = 0.0
    config.loss.matching_weight = 0.0
    config.optim.update(beta1=0.0, g_lr=0.002, d_lr=0.002)
    config.train.update(num_steps=1500)
    return config
