"""Train GigaGAN: the same command as `gigagan-train` (gigagan_jax/commands/train.py).

    python train.py --config configs/demo.py --workdir runs/demo [--config.train.num_steps=100 ...]
"""

if __name__ == "__main__":
    from gigagan_jax.host_memory import restart_with_hugepages

    restart_with_hugepages()  # before the command's imports (seconds), which a restart would repeat
    from gigagan_jax.commands.train import run

    run()
