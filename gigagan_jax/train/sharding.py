"""Device mesh and the map from the models' logical axis names to mesh axes.

Modules name every parameter axis (`nn.with_logical_partitioning`); this module turns those
names into `NamedSharding`s for a concrete mesh. FSDP: the output-feature axes of dense and
conv kernels are split over 'fsdp'; the batch is split over ('data', 'fsdp'). An axis whose
size does not divide by its mesh axis stays replicated (e.g. toRGB's 3 output channels).
"""

from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gigagan_jax.config import resolve_mesh_shape

# (logical name, mesh axis or None). Names the models use that are not listed are replicated.
DEFAULT_LOGICAL_RULES: tuple[tuple[str, Optional[str]], ...] = (
    ("batch", ("data", "fsdp")),
    ("mlp", "fsdp"),
    ("conv_out", "fsdp"),
    ("embed", None),
    ("conv_in", None),
    ("conv_kernels", None),
)

BATCH_AXES = ("data", "fsdp")


def make_mesh(shape: Sequence[int], axes: Sequence[str], devices: Optional[Sequence[Any]] = None) -> Mesh:
    devices = list(jax.devices() if devices is None else devices)
    resolved = resolve_mesh_shape(shape, len(devices))
    return Mesh(np.asarray(devices).reshape(resolved), tuple(axes))


def mesh_from_config(config) -> Mesh:
    return make_mesh(config.mesh.shape, config.mesh.axes)


def _mesh_axes_size(mesh: Mesh, axes) -> int:
    if axes is None:
        return 1
    axes = (axes,) if isinstance(axes, str) else axes
    return int(np.prod([mesh.shape[a] for a in axes]))


def logical_to_spec(names: Sequence[Optional[str]], shape: Sequence[int], mesh: Mesh,
                    rules=DEFAULT_LOGICAL_RULES) -> PartitionSpec:
    """PartitionSpec for one array; mesh axes that do not divide the dimension are dropped."""
    table = dict(rules)
    used: set[str] = set()
    spec = []
    for name, dim in zip(names, shape):
        axes = table.get(name) if name is not None else None
        flat = () if axes is None else ((axes,) if isinstance(axes, str) else tuple(axes))
        if not flat or dim % _mesh_axes_size(mesh, flat) or used & set(flat):
            spec.append(None)
            continue
        used.update(flat)
        spec.append(flat[0] if len(flat) == 1 else flat)
    return PartitionSpec(*spec)


def param_shardings(boxed_tree, mesh: Mesh, rules=DEFAULT_LOGICAL_RULES):
    """NamedSharding for every leaf of a (possibly abstract) tree of LogicallyPartitioned boxes.

    Unboxed leaves (no logical names) are replicated. The result has the unboxed tree's structure.
    """
    def one(leaf):
        if isinstance(leaf, nn.LogicallyPartitioned):
            return NamedSharding(mesh, logical_to_spec(leaf.names, leaf.value.shape, mesh, rules))
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree_util.tree_map(one, boxed_tree, is_leaf=lambda x: isinstance(x, nn.Partitioned))


def batch_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
    """Split the leading (batch) dimension over data x fsdp; replicate the rest."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def traced_on(mesh: Mesh, fn):
    """`fn`, traced with `mesh` as the abstract mesh in context: the models then pin their
    activations to the batch split (`models.layers.split_over_batch`); jit it as usual."""

    @functools.wraps(fn)
    def traced(*args, **kwargs):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return fn(*args, **kwargs)

    return traced
