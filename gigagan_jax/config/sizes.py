"""Named model sizes: G's widths and depths and D's channels, set by `apply_size(config, name)`.

A size leaves out what depends on the resolution or the task (D's input scales, the upsampler's
encoder, the text encoder's width), so one size serves a base model and its upsampler. D's text
transformer and attention widths are not named: they follow G's (`D_FOLLOWS_G`).
"""

from __future__ import annotations

import ml_collections

SIZES = {
    # Tests: 32 channels up to 16 px (16 at 32 px), a few thousand parameters per layer.
    "tiny": {
        "g": dict(z_dim=32, w_dim=32, mapping_layers=2, text_dim=32, text_layers=1, text_heads=2,
                  channel_base=512, channel_max=32, num_kernels=2, attn_heads=2, attn_head_dim=16,
                  self_attn_resolutions=(8,), cross_attn_resolutions=(8,)),
        "d": dict(channel_base=512, channel_max=32, self_attn_resolutions=(8,)),
    },
    # CPU demos: 64 channels at 4-16 px, 32 at 32 px; learns the shapes data on 2 CPU cores.
    "demo": {
        "g": dict(z_dim=64, w_dim=128, mapping_layers=2, text_dim=128, text_layers=1, text_heads=4,
                  channel_base=1024, channel_max=64, num_kernels=2, attn_heads=2, attn_head_dim=32,
                  self_attn_resolutions=(8, 16), cross_attn_resolutions=(8, 16)),
        "d": dict(channel_base=1024, channel_max=64, self_attn_resolutions=(8,)),
    },
    # The side-by-side benchmark shape (configs/bench64.py): 64 channels at every level to 64 px.
    "bench64": {
        "g": dict(z_dim=64, w_dim=64, mapping_layers=4, text_dim=64, text_layers=2, text_heads=4,
                  channel_base=64 * 64, channel_max=64, convs_per_level=2, num_kernels=4,
                  attn_heads=4, attn_head_dim=16, self_attn_resolutions=(8, 16), cross_attn_resolutions=(8, 16)),
        "d": dict(channel_base=64 * 64, channel_max=64, self_attn_resolutions=(8, 16)),
    },
}


def apply_size(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
    """Set `config.model.g` and `config.model.d` to the named size (in place); returns config."""
    if name not in SIZES:
        raise ValueError(f"unknown model size {name!r}; sizes: {', '.join(SIZES)}")
    for net, values in SIZES[name].items():
        unknown = sorted(set(values) - set(config.model[net]))
        if unknown:
            raise ValueError(f"size {name!r} sets unknown key(s): "
                             + ", ".join(f"config.model.{net}.{key}" for key in unknown))
        config.model[net].update(values)
    return config
