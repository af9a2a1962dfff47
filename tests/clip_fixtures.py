"""The tiny random CLIP several test files build (32-wide text tokens, 16-d projections)."""

import os

import jax
from transformers import CLIPConfig

from gigagan_jax.pretrained.clip import init_params, save_clip


def tiny_clip_config(image_size: int = 32) -> CLIPConfig:
    return CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, image_size=image_size, patch_size=8),
        projection_dim=16)


def save_tiny_clip(path: str, image_size: int = 32, seed: int = 0) -> str:
    """Write a random tiny CLIP in Hugging Face layout (read back through the real loader)."""
    config = tiny_clip_config(image_size)
    save_clip(path, config, init_params(config, jax.random.key(seed)))
    return path


def save_with_unreadable_tower(src: str, dst: str, tower: str) -> str:
    """Copy the Flax-msgpack CLIP in `src` to `dst` with the entry `tower` ("vision_model",
    "text_model") replaced by bytes that cannot be restored: a load that skips that tower must
    never parse it."""
    import msgpack

    os.makedirs(dst)
    with open(os.path.join(src, "config.json")) as f, open(os.path.join(dst, "config.json"), "w") as g:
        g.write(f.read())
    with open(os.path.join(src, "flax_model.msgpack"), "rb") as f:
        tree = msgpack.unpackb(f.read(), raw=False, strict_map_key=False)
    tree[tower] = msgpack.ExtType(99, b"not an array")
    with open(os.path.join(dst, "flax_model.msgpack"), "wb") as f:
        f.write(msgpack.packb(tree))
    return dst
