"""Data set specs: one command-line string for what a config's data section spells in three
fields (kind, path, name), so tools that read "some data set" (train_clip, eval) share one syntax."""

from __future__ import annotations

from gigagan_jax.config import DATA_KINDS

SPEC_SYNTAX = "shapes | emoji[:DIR] | folder:DIR | tfds:NAME[:DATA_DIR]"


def apply_data_spec(data, spec: str) -> None:
    """Set `data.kind`, `data.path` and `data.name` (a config's data section) from `spec`; the
    section's other fields (split, cache_dir, the shapes options) stay. A spec that names no known
    kind, or lacks the part its kind needs, is a ValueError quoting it."""
    kind, _, rest = spec.partition(":")
    if kind not in DATA_KINDS:
        raise ValueError(f"data spec {spec!r}: unknown kind {kind!r}; expected {SPEC_SYNTAX}")
    name, path = "", rest
    if kind == "shapes" and rest:
        raise ValueError(f"data spec {spec!r}: the procedural shapes set takes no path; write 'shapes'")
    if kind == "folder" and not rest:
        raise ValueError(f"data spec {spec!r}: a folder needs its path, folder:DIR")
    if kind == "tfds":
        name, _, path = rest.partition(":")
        if not name:
            raise ValueError(f"data spec {spec!r}: a TFDS data set needs its name, tfds:NAME[:DATA_DIR]")
    data.kind, data.path, data.name = kind, path, name
