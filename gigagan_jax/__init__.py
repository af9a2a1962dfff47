"""GigaGAN in JAX/Flax: models, training, data and evaluation.

`from gigagan_jax import GigaGANPipeline` is the one name exported here; it is imported on first
use, so `import gigagan_jax.data` (a data-preparation worker, a CLI's bad-flag exit) stays light.
"""

__all__ = ["GigaGANPipeline"]


def __getattr__(name: str):
    if name == "GigaGANPipeline":
        from gigagan_jax.generate.pipeline import GigaGANPipeline

        return GigaGANPipeline
    raise AttributeError(f"module 'gigagan_jax' has no attribute {name!r}")
