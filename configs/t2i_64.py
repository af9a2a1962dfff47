"""The paper's 64 px text-to-image base model (about 640 M generator parameters; paper: 652.5 M).

Too large for a CPU: tests only build it abstractly with `jax.eval_shape`. The paper does not
publish per-resolution channels, the filter-bank size N or the depth of T; the values here
(1024 channels at every level, N = 6, 2 adaptive convs per level, attention at 8-32 px, T with
4 layers over CLIP ViT-L/14 token features) are our choice, sized to the paper's count.

Run on every host of an accelerator pod (README "Running on a pod"), with CLIP ViT-L/14 in a
local folder on each host and a caption folder prepared with `python -m gigagan_jax.data.prepare`:
  python train.py --config configs/t2i_64.py --workdir gs://BUCKET/runs/t2i_64 \
      --config.clip.path=/mnt/disks/clip-vit-large-patch14 \
      --config.data.kind=folder --config.data.path=/mnt/disks/data/laion_subset \
      --config.train.distributed=True
"""

from gigagan_jax.config import default_config


def get_config():
    return default_config()
