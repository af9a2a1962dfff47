"""The networks a config describes, built in one place (so no model module imports another
only to construct it): the generator (base text-to-image model or the upsampler, by
config.task) and the discriminator.

Their specs are derived from the config here too, and only here: a spec field named like a key
of `config.model`, of its network's section (`g`, `d`) or of `config.model.upsampler` is copied
from it; only the derived fields (per-level channels, D's input scales, the resolved
kernel_impl) are written out below.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Optional, TypeVar

import jax
import ml_collections

from gigagan_jax.config import channels_at, level_resolutions, upsampler_levels
from gigagan_jax.models.discriminator import Discriminator, DiscriminatorSpec
from gigagan_jax.models.generator import Generator, GeneratorSpec
from gigagan_jax.models.kernel_choice import Probe, resolve
from gigagan_jax.models.upsampler import Upsampler, UpsamplerSpec

Spec = TypeVar("Spec")


def _spec(cls: type[Spec], sections: dict[str, ml_collections.ConfigDict], **derived: Any) -> Spec:
    """cls(**derived, every other field from the one config section holding a key of its name).

    Sequences become tuples (specs are hashable; a config restored from JSON holds lists).
    """
    fields = dict(derived)
    for field in dataclasses.fields(cls):
        if field.name in fields:
            continue
        holders = [name for name, section in sections.items() if field.name in section]
        if len(holders) != 1:
            where = " and ".join(holders) if holders else "none of " + ", ".join(sections)
            raise KeyError(f"{cls.__name__}.{field.name}: expected in one config section, found in {where}")
        value = sections[holders[0]][field.name]
        fields[field.name] = tuple(value) if isinstance(value, (list, tuple)) else value
    return cls(**fields)


def _channels(net: ml_collections.ConfigDict, resolutions: Iterable[int]) -> tuple[int, ...]:
    return tuple(channels_at(r, net.channel_base, net.channel_max) for r in resolutions)


def generator_levels(config: ml_collections.ConfigDict) -> list[int]:
    """The resolutions of the generator's synthesis levels (the upsampler's decoder levels)."""
    m = config.model
    if config.task == "upsampler":
        return upsampler_levels(m.resolution, m.upsampler.input_resolution, m.upsampler.down_blocks)
    return level_resolutions(m.resolution)


def kernel_probe(config: ml_collections.ConfigDict, objective: str, num_devices: Optional[int] = None) -> Probe:
    """What kernel_impl "auto" times for this config's generator (models.kernel_choice)."""
    levels = generator_levels(config)
    return Probe.of(levels, _channels(config.model.g, levels), config.train.batch_size, config.model.g.num_kernels,
                    config.model.dtype, objective, jax.device_count() if num_devices is None else num_devices)


def generator_spec(config: ml_collections.ConfigDict, objective: str = "train",
                   num_devices: Optional[int] = None) -> GeneratorSpec:
    """The config's generator spec: an UpsamplerSpec when config.task is "upsampler".

    kernel_impl "auto" becomes the implementation measured fastest on this machine for what the
    generator will run (`objective`: "train" steps, "sample" forwards, or "shapes" when nothing
    will run) over `num_devices` (default: every device) at config.train.batch_size."""
    m, g = config.model, config.model.g
    channels = _channels(g, generator_levels(config))
    kernel_impl = resolve(g.kernel_impl, kernel_probe(config, objective, num_devices))
    if config.task == "upsampler":
        u = m.upsampler
        encoder = [u.input_resolution // 2**i for i in range(u.down_blocks + 1)]
        return _spec(UpsamplerSpec, {"model": m, "model.g": g, "model.upsampler": u},
                     channels=channels, encoder_channels=_channels(g, encoder),
                     kernel_impl=kernel_impl, remat=config.train.remat)
    return _spec(GeneratorSpec, {"model": m, "model.g": g}, channels=channels, kernel_impl=kernel_impl,
                 remat=config.train.remat)


def discriminator_spec(config: ml_collections.ConfigDict) -> DiscriminatorSpec:
    m, d = config.model, config.model.d
    return _spec(DiscriminatorSpec, {"model": m, "model.d": d},
                 channels=_channels(d, level_resolutions(m.resolution)),
                 input_resolutions=tuple(sorted({m.resolution, *d.input_resolutions}, reverse=True)),
                 remat=config.train.remat)


def build_generator(config: ml_collections.ConfigDict, objective: str = "train",
                    num_devices: Optional[int] = None) -> Generator:
    """The config's generator: the base text-to-image model, or the upsampler (config.task);
    `objective` and `num_devices` as for generator_spec."""
    spec = generator_spec(config, objective, num_devices)
    return Upsampler(spec) if isinstance(spec, UpsamplerSpec) else Generator(spec)


def build_discriminator(config: ml_collections.ConfigDict) -> Discriminator:
    return Discriminator(discriminator_spec(config))
