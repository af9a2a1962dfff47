"""Datasets and the input pipeline: `open_source(config)` and `InputPipeline(config, ...)`.

Exports resolve lazily so that `gigagan_jax.pretrained.tokenize` or `.shapes` can be imported without
loading tensorflow-datasets or jax.
"""

import importlib

_EXPORTS = {"open_source": "sources", "InputPipeline": "pipeline"}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
