"""Print a config's generator parameter count per top-level module, without allocating it.

    python -m gigagan_jax.tools.param_count --config configs/t2i_64.py
"""

from __future__ import annotations

import argparse

import jax

from gigagan_jax.config import load_config, validate_config
from gigagan_jax.models.build import build_generator
from gigagan_jax.models.generator import count_params, init_generator


def generator_param_counts(config) -> dict[str, int]:
    """{module name: parameter count} from `jax.eval_shape`, so paper-size models cost nothing."""
    generator = build_generator(config, "shapes")  # every kernel_impl has the same parameters
    abstract = jax.eval_shape(lambda: init_generator(generator, jax.random.PRNGKey(0)))
    return {name: count_params(tree) for name, tree in abstract["params"].items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="config file, e.g. configs/t2i_64.py")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    validate_config(config)
    counts = generator_param_counts(config)
    for name, n in counts.items():
        print(f"{name:>20s}: {n / 1e6:9.2f} M")
    print(f"{'generator total':>20s}: {sum(counts.values()) / 1e6:9.2f} M")


if __name__ == "__main__":
    main()
