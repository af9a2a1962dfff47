"""The networks a config describes, built in one place (so no model module imports another
only to construct it): the generator (base text-to-image model or the upsampler, by
config.task) and the discriminator."""

from __future__ import annotations

import ml_collections

from gigagan_jax.models.discriminator import Discriminator, DiscriminatorSpec
from gigagan_jax.models.generator import Generator, GeneratorSpec
from gigagan_jax.models.upsampler import Upsampler, UpsamplerSpec


def build_generator(config: ml_collections.ConfigDict) -> Generator:
    """The config's generator: the base text-to-image model, or the upsampler (config.task)."""
    if config.task == "upsampler":
        return Upsampler(UpsamplerSpec.from_config(config))
    return Generator(GeneratorSpec.from_config(config))


def build_discriminator(config: ml_collections.ConfigDict) -> Discriminator:
    return Discriminator(DiscriminatorSpec.from_config(config))
