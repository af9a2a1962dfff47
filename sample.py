"""Sample a trained GigaGAN: the same command as `gigagan-sample` (gigagan_jax/commands/sample.py).

    python sample.py --model models/demo --prompt "a red circle" --seeds 0-7 --outdir out/
    python sample.py --workdir runs/demo --prompt "a red circle" --n 8 --out grid.png
"""

if __name__ == "__main__":
    from gigagan_jax.host_memory import restart_with_hugepages

    restart_with_hugepages()  # before the command's imports (seconds), which a restart would repeat
    from gigagan_jax.commands.sample import run

    run()
