"""Train GigaGAN: the same command as `gigagan-train` (gigagan_jax/commands/train.py).

    python train.py --config configs/demo.py --workdir runs/demo [--config.train.num_steps=100 ...]
"""

from gigagan_jax.commands.train import run

if __name__ == "__main__":
    run()
