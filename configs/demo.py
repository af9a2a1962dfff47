"""CPU demo: 32 px text-to-image on the procedural shapes data, sized to learn on 2 CPU cores.

A D+G iteration at batch 16 takes 0.34-1.3 s on the 2-core machines measured so far. With the
README's 30-minute budget on a 2-core AMD EPYC (0.59-0.66 s per iteration) the small CLIP
(config.clip.path = "") trains for 6-7 minutes on shapes drawn like the GAN's, then the GAN reaches
step 1900-2200: generated images take the prompt's colour 100 % of the time and its shape 84-87 %
(chance 17 %; two runs, BENCHMARKS.md). Shapes sit in the center only, at 2.2x the default size.

Run:  python train.py --config configs/demo.py --workdir runs/demo [--config.train.time_budget_minutes=30]
      (with the budget the run ends, checkpointed and sampled, within 30 minutes on any machine:
      the small CLIP gets at most a quarter of it, the GAN's steps are sized from its pace)
Then: python sample.py --workdir runs/demo --prompt "a red ring in the center on a black background" --n 8
      python -m acceptance.demo_conditioning --workdir runs/demo
"""

from gigagan_jax.config import apply_size, default_config


def get_config():
    config = apply_size(default_config(), "demo")
    m = config.model
    m.resolution = 32  # 64 channels at 4-16 px, 32 at 32 px
    m.text_encoder_dim = 256  # width of the small CLIP the project trains for the offline demo
    m.d.input_resolutions = (16, 8)
    # One position, shapes 2.2x the default size (18-25 px wide at 32 px). With five positions and
    # 1.5x, 4000 steps learn colour and position (100 % each) but not shape (30 %; BENCHMARKS.md).
    config.data.shape_positions = ("center",)
    config.data.shape_scale = 2.2
    # 1024 captions of the data join each batch's 16 as negatives in G's CLIP loss: in a batch of 16
    # almost every other caption has another colour, so without them the loss stops teaching shape
    # once colour is right (shape at step 1000: 60 % with them, 20-35 % in five runs without).
    config.loss.clip_negatives = 1024
    # 4x the default lr (the paper's, for large batches); every run at 1e-2 here trained stably.
    config.optim.update(g_lr=0.01, d_lr=0.01, ema_half_life_images=2000)
    config.train.update(batch_size=16, num_steps=4000, checkpoint_every=500, sample_every=500, log_every=50)
    return config
