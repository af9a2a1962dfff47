"""Frozen CLIP (text and image towers) from a local Hugging Face folder, as pure functions.

GigaGAN reads CLIP four times: penultimate-layer text tokens condition G and D, the projected
embeddings drive the contrastive loss and the CLIP score, and intermediate image features feed
the vision-aided discriminator. The towers are `transformers`' Flax CLIP modules; this file adds
what the GAN needs around them: weights read from any HF layout (Flax msgpack, safetensors,
PyTorch .bin) without materialising the tower a use does not need (the vision tower for text-only
use, the text tower for the vision-aided D's own image backbone), a differentiable
resize + normalisation of generated pixels, and `stop_gradient` on the parameters so CLIP is
never trained by a loss that flows through it.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import msgpack
import numpy as np
from flax import serialization
from flax.traverse_util import flatten_dict, unflatten_dict
from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig
from transformers.models.clip.modeling_flax_clip import (
    FlaxCLIPTextTransformer,
    FlaxCLIPVisionTransformer,
)

from gigagan_jax.pretrained.tokenize import VOCAB_SIZE, ClipTokenizer

# OpenAI's pixel statistics; a folder's preprocessor_config.json overrides them.
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

TEXT_KEYS = ("text_model", "text_projection", "logit_scale")
VISION_KEYS = ("vision_model", "visual_projection")
Params = dict[str, Any]


class ClipTextTower(nn.Module):
    """Text transformer + projection; parameter names match `FlaxCLIPModel`'s text half."""

    config: CLIPTextConfig
    projection_dim: int
    dtype: Any = jnp.float32

    def setup(self):
        self.text_model = FlaxCLIPTextTransformer(self.config, dtype=self.dtype)
        self.text_projection = nn.Dense(self.projection_dim, use_bias=False, dtype=self.dtype)

    def __call__(self, ids):  # ids: [B, L] int
        # OpenAI CLIP masks only causally: padding sits after EOT and cannot reach it.
        out = self.text_model(
            input_ids=ids, attention_mask=jnp.ones_like(ids),
            position_ids=jnp.broadcast_to(jnp.arange(ids.shape[-1]), ids.shape),
            output_hidden_states=True)
        tokens = out.hidden_states[-2]  # [B, L, D]: output of the penultimate layer
        eot_index = jnp.argmax(ids, axis=-1)  # [B]: EOT has the largest id
        pooled = out.last_hidden_state[jnp.arange(ids.shape[0]), eot_index]  # [B, D]
        return tokens, eot_index, self.text_projection(pooled)  # ..., [B, P]


class ClipVisionTower(nn.Module):
    """ViT + projection; parameter names match `FlaxCLIPModel`'s image half."""

    config: CLIPVisionConfig
    projection_dim: int
    dtype: Any = jnp.float32

    def setup(self):
        self.vision_model = FlaxCLIPVisionTransformer(self.config, dtype=self.dtype)
        self.visual_projection = nn.Dense(self.projection_dim, use_bias=False, dtype=self.dtype)

    def __call__(self, pixel_values):  # [B, S, S, 3], CLIP-normalised
        out = self.vision_model(pixel_values=pixel_values, output_hidden_states=True)
        features = list(out.hidden_states[1:])  # each [B, 1 + patches, D], one per layer
        return self.visual_projection(out.pooler_output), features  # [B, P], list


def clip_preprocess(pixels, image_size: int, mean=OPENAI_MEAN, std=OPENAI_STD):
    """[-1, 1] images [B, H, W, 3] -> CLIP input [B, S, S, 3], differentiable in `pixels`.

    Like CLIP's own preprocessing: bicubic resize of the short side to S (antialiased when
    shrinking), centre crop, then per-channel mean/std normalisation.
    """
    x = (pixels.astype(jnp.float32) + 1.0) * 0.5  # [B, H, W, 3] in [0, 1]
    b, h, w, c = x.shape
    if min(h, w) != image_size:
        scale = image_size / min(h, w)
        nh, nw = max(image_size, round(h * scale)), max(image_size, round(w * scale))
        x = jax.image.resize(x, (b, nh, nw, c), method="bicubic", antialias=True)
        h, w = nh, nw
    top, left = (h - image_size) // 2, (w - image_size) // 2
    x = x[:, top:top + image_size, left:left + image_size]  # [B, S, S, 3]
    return (x - jnp.asarray(mean)) / jnp.asarray(std)


def _apply_text(tower: ClipTextTower, params: Params, ids):
    params = jax.lax.stop_gradient({k: params[k] for k in ("text_model", "text_projection")})
    return tower.apply({"params": params}, jnp.asarray(ids, jnp.int32))


def _apply_image(tower: ClipVisionTower, mean, std, params: Params, pixels):
    params = jax.lax.stop_gradient({k: params[k] for k in VISION_KEYS})
    x = clip_preprocess(pixels, tower.config.image_size, mean, std).astype(tower.dtype)
    return tower.apply({"params": params}, x)


class Clip:
    """A frozen CLIP: `params` is plain data kept outside any train state.

    Inside a jitted step pass the params as an argument (`clip.encode_text(ids, params=p)`),
    so they are not baked into the executable as constants; outside jit the loaded ones are
    used by default. Gradients never reach the params (they pass through `stop_gradient`).
    """

    def __init__(self, config: CLIPConfig, params: Params, text_only: bool = False,
                 dtype: Any = jnp.float32, mean=OPENAI_MEAN, std=OPENAI_STD, image_only: bool = False):
        self.config = config
        self.params = params
        self.text_only = text_only
        self.image_only = image_only
        self.projection_dim = config.projection_dim
        if not image_only:
            self.text_dim = config.text_config.hidden_size
            self.context_length = config.text_config.max_position_embeddings
            self.tokenizer = ClipTokenizer(self.context_length)
            self.text_tower = ClipTextTower(config.text_config, config.projection_dim, dtype)
            self._text_fn = jax.jit(functools.partial(_apply_text, self.text_tower))
        if not text_only:
            self.image_size = config.vision_config.image_size
            self.vision_tower = ClipVisionTower(config.vision_config, config.projection_dim, dtype)
            self._image_fn = jax.jit(functools.partial(
                _apply_image, self.vision_tower, tuple(mean), tuple(std)))

    def _need_text(self) -> None:
        if self.image_only:
            raise ValueError("this CLIP was loaded with image_only=True; load it with "
                             "image_only=False to encode text")

    def tokenize(self, texts: list[str]) -> np.ndarray:
        """OpenAI ids, np.int32 [B, context_length] (77 for every OpenAI model)."""
        self._need_text()
        return self.tokenizer(texts)

    def encode_text(self, ids, params: Params | None = None):
        """ids [B, L] -> (tokens [B, L, D] penultimate layer, eot_index [B], projected [B, P])."""
        self._need_text()
        return self._text_fn(self.params if params is None else params, ids)

    def encode_image(self, pixels, params: Params | None = None):
        """[-1, 1] images [B, H, W, 3], any H, W -> (projected [B, P], per-layer features)."""
        if self.text_only:
            raise ValueError("this CLIP was loaded with text_only=True; load it with "
                             "text_only=False to encode images")
        return self._image_fn(self.params if params is None else params, pixels)

    @property
    def logit_scale(self):
        """The checkpoint's log inverse temperature (CLIP multiplies logits by its exp)."""
        return self.params["logit_scale"]


# ----------------------------------------------------------------------------- loading


def _read_msgpack(path: str, keep: Callable[[str], bool]) -> Params:
    """Flax msgpack, restoring only the top-level entries `keep` accepts (others are skipped
    unparsed, so a text-only load never builds the vision arrays)."""
    with open(path, "rb") as f:
        unpacker = msgpack.Unpacker(f, raw=False, max_buffer_size=0)
        tree = {}
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            start = unpacker.tell()
            unpacker.skip()
            if keep(key):
                end = unpacker.tell()
                f_pos = f.tell()
                f.seek(start)
                tree[key] = serialization.msgpack_restore(f.read(end - start))
                f.seek(f_pos)
    return tree


def _safetensors_files(folder: str) -> list[str]:
    """The safetensors weight files `load_clip` reads from `folder` (names), [] when none."""
    if os.path.exists(os.path.join(folder, "model.safetensors")):
        return ["model.safetensors"]
    index = os.path.join(folder, "model.safetensors.index.json")
    if not os.path.exists(index):
        return []
    with open(index) as f:  # sharded: the index maps each tensor to its shard
        return sorted(set(json.load(f)["weight_map"].values()))


def source_files(path: str) -> list[str]:
    """The files of a CLIP folder that `load_clip` reads (config, preprocessing, the chosen
    weights): what a fingerprint of this CLIP must cover, and nothing it ignores."""
    names = [n for n in ("config.json", "preprocessor_config.json") if os.path.exists(os.path.join(path, n))]
    shards = _safetensors_files(path)
    if shards:
        index = "model.safetensors.index.json"
        return names + shards + ([index] if shards != ["model.safetensors"] else [])
    for weights in ("pytorch_model.bin", "flax_model.msgpack"):
        if os.path.exists(os.path.join(path, weights)):
            return names + [weights]
    return names


def _read_torch_state(folder: str, keep: Callable[[str], bool]) -> dict[str, np.ndarray]:
    """Flat PyTorch names -> float32 arrays, reading only the tensors whose names `keep` accepts."""
    shards = _safetensors_files(folder)
    if shards:
        from safetensors import safe_open

        state = {}
        for file in (os.path.join(folder, name) for name in shards):
            with safe_open(file, framework="flax") as f:  # "flax" reads bf16 too
                for name in f.keys():
                    if keep(name):
                        state[name] = np.asarray(f.get_tensor(name), np.float32)
        return state
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"{folder} holds only pytorch_model.bin, which needs PyTorch to read; "
                          "install torch (CPU) or convert the folder to safetensors") from e
    # mmap: tensors not kept are never read from disk.
    raw = torch.load(os.path.join(folder, "pytorch_model.bin"), map_location="cpu",
                     weights_only=True, mmap=True)
    return {k: v.float().numpy() for k, v in raw.items() if keep(k)}


def _torch_to_flax(state: dict[str, np.ndarray], expected: Params) -> Params:
    """Map PyTorch CLIP names/layouts onto the Flax tree `expected` (shapes only).

    Linear weights are [out, in] in PyTorch and [in, out] in Flax; the patch conv goes from
    [out, in, kh, kw] to [kh, kw, in, out]; LayerNorm weight is Flax's scale; Embedding
    weight is Flax's embedding.
    """
    flat = {}
    for path in flatten_dict(expected):
        *prefix, last = path
        name = ".".join(prefix + [{"kernel": "weight", "scale": "weight",
                                   "embedding": "weight"}.get(last, last)])
        if name in state:  # absent ones are reported by _check_tree
            value = state.pop(name)
            if last == "kernel":
                value = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
            flat[path] = value
    unexpected = sorted(k for k in state if not k.endswith("position_ids"))  # buffers
    if unexpected:
        raise ValueError(f"checkpoint has tensors its config.json does not describe: {unexpected[:8]}")
    return unflatten_dict(flat)


def _check_tree(params: Params, expected: Params, folder: str) -> Params:
    """Cast to float32 and insist every parameter is there with its config's shape."""
    got = flatten_dict(params)
    want = flatten_dict(expected)
    missing = sorted("/".join(p) for p in set(want) - set(got))
    unexpected = sorted("/".join(p) for p in set(got) - set(want))
    wrong = sorted(f"{'/'.join(p)}: {np.shape(got[p])} != {want[p].shape}"
                   for p in set(want) & set(got) if tuple(np.shape(got[p])) != want[p].shape)
    if missing or unexpected or wrong:
        raise ValueError(f"CLIP weights in {folder} do not match its config.json: "
                         f"missing {missing[:8]}, unexpected {unexpected[:8]}, shapes {wrong[:8]}")
    return unflatten_dict({p: jnp.asarray(v, jnp.float32) for p, v in got.items()})


def expected_shapes(config: CLIPConfig, text_only: bool = False, image_only: bool = False) -> Params:
    """Abstract parameter tree (ShapeDtypeStructs) of the towers a load needs."""
    rng = jax.random.key(0)
    tree = {}
    if not image_only:
        text = ClipTextTower(config.text_config, config.projection_dim)
        ids = jax.ShapeDtypeStruct((1, config.text_config.max_position_embeddings), jnp.int32)
        tree.update(jax.eval_shape(text.init, rng, ids)["params"])
        tree["logit_scale"] = jax.ShapeDtypeStruct((), jnp.float32)
    if not text_only:
        vision = ClipVisionTower(config.vision_config, config.projection_dim)
        size = config.vision_config.image_size
        pixels = jax.ShapeDtypeStruct((1, size, size, config.vision_config.num_channels), jnp.float32)
        tree.update(jax.eval_shape(vision.init, rng, pixels)["params"])
    return tree


def _init_std(path: tuple[str, ...], config: CLIPConfig) -> float:
    """Standard deviation of CLIP's own initialisation (OpenAI / PyTorch `CLIPModel`) for one
    parameter; 0 for biases. Flax's defaults (0.01 everywhere) leave attention so weak that
    from-scratch contrastive training sits on a long plateau before it starts to learn."""
    tower = config.text_config if path[0].startswith("text") else config.vision_config
    width, layers = tower.hidden_size, tower.num_hidden_layers
    residual_in = width ** -0.5 * (2 * layers) ** -0.5
    by_module = {"q_proj": residual_in, "k_proj": residual_in, "v_proj": residual_in,
                 "out_proj": width ** -0.5, "fc1": (2 * width) ** -0.5, "fc2": residual_in,
                 "token_embedding": 0.02, "patch_embedding": 0.02,
                 "text_projection": width ** -0.5, "visual_projection": width ** -0.5}
    if path[-1] == "bias":
        return 0.0
    if path[-1] == "class_embedding":
        return width ** -0.5
    if path[-2] == "position_embedding":
        return 0.01 if path[0] == "text_model" else 0.02
    return by_module[path[-2]]


def init_params(config: CLIPConfig, rng) -> Params:
    """Random CLIP parameters in `FlaxCLIPModel`'s layout with CLIP's own initialisation, to
    train a small CLIP from scratch."""
    flat = sorted(flatten_dict(expected_shapes(config)).items())
    params = {}
    for key, (path, leaf) in zip(jax.random.split(rng, len(flat)), flat):
        if path == ("logit_scale",):
            params[path] = jnp.asarray(config.logit_scale_init_value, jnp.float32)
        elif path[-1] == "scale":  # LayerNorm gain
            params[path] = jnp.ones(leaf.shape, jnp.float32)
        else:
            params[path] = _init_std(path, config) * jax.random.normal(key, leaf.shape, jnp.float32)
    return unflatten_dict(params)


# The published OpenAI CLIPs the paper configs name (their config.json files), for planning
# without the weights: text (width, layers, heads), image (width, layers, heads, patch), projection.
OPENAI_SHAPES = {
    "clip-vit-large-patch14": ((768, 12, 12), (1024, 24, 16, 14), 768),  # G and D's text encoder
    "clip-vit-base-patch32": ((512, 12, 8), (768, 12, 12, 32), 512),  # the vision-aided D's backbone
}


def openai_config(name: str) -> CLIPConfig:
    """The CLIPConfig of a published OpenAI CLIP (`OPENAI_SHAPES`), 224 px images, 77 tokens."""
    if name not in OPENAI_SHAPES:
        raise ValueError(f"unknown CLIP {name!r}; known: {', '.join(OPENAI_SHAPES)}")
    (t_width, t_layers, t_heads), (v_width, v_layers, v_heads, patch), projection = OPENAI_SHAPES[name]
    return CLIPConfig(
        text_config=dict(vocab_size=VOCAB_SIZE, hidden_size=t_width, intermediate_size=4 * t_width,
                         num_hidden_layers=t_layers, num_attention_heads=t_heads, max_position_embeddings=77),
        vision_config=dict(hidden_size=v_width, intermediate_size=4 * v_width, num_hidden_layers=v_layers,
                           num_attention_heads=v_heads, image_size=224, patch_size=patch),
        projection_dim=projection)


def abstract_clip(config: CLIPConfig, image_only: bool = False, dtype: Any = jnp.float32) -> Clip:
    """A Clip whose params are ShapeDtypeStructs: enough to trace and compile the steps that read
    it (`jax.jit(...).lower`), nothing to run."""
    return Clip(config, expected_shapes(config, image_only=image_only), dtype=dtype, image_only=image_only)


def load_clip(path: str, text_only: bool = False, dtype: Any = jnp.float32, image_only: bool = False) -> Clip:
    """Load a frozen CLIP from a local folder in Hugging Face layout.

    The folder holds `config.json` (a `CLIPConfig`) and one of `flax_model.msgpack`,
    `model.safetensors` (or a sharded `model.safetensors.index.json`) or `pytorch_model.bin`,
    as written by `save_pretrained` (e.g. a local copy of `openai/clip-vit-large-patch14`);
    where several are present the safetensors / PyTorch weights are read.
    `text_only=True` reads only the text tower and logit scale; `image_only=True` only the image
    tower and its projection (the vision-aided D's own backbone: no text weights held in memory).
    """
    if text_only and image_only:
        raise ValueError("load_clip: text_only and image_only exclude each other")
    if "://" in path:
        raise FileNotFoundError(f"CLIP folder {path!r} is a URL: copy it to each host's local disk and "
                                "point config.clip.path there")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"CLIP folder {path!r} does not exist (config.clip.path must be a "
                                "local Hugging Face folder; nothing is downloaded)")
    config = CLIPConfig.from_pretrained(path)
    if not image_only and config.text_config.vocab_size < VOCAB_SIZE:
        raise ValueError(f"{path}: text vocab_size {config.text_config.vocab_size} is smaller than "
                         f"the CLIP BPE vocabulary ({VOCAB_SIZE}); ids would fall outside it")
    wanted = TEXT_KEYS if text_only else VISION_KEYS if image_only else TEXT_KEYS + VISION_KEYS
    expected = expected_shapes(config, text_only, image_only)
    msgpack_file = os.path.join(path, "flax_model.msgpack")
    torch_files = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
    if any(os.path.exists(os.path.join(path, f)) for f in torch_files):
        state = _read_torch_state(path, lambda name: name.split(".")[0] in wanted)
        params = _torch_to_flax(state, expected)
    elif os.path.exists(msgpack_file):
        params = _read_msgpack(msgpack_file, lambda key: key in wanted)
    else:
        raise FileNotFoundError(f"{path} has none of flax_model.msgpack, "
                                f"{', '.join(torch_files)}")
    params = _check_tree(params, expected, path)
    mean, std = OPENAI_MEAN, OPENAI_STD
    preprocessor = os.path.join(path, "preprocessor_config.json")
    if os.path.exists(preprocessor):
        with open(preprocessor) as f:
            pre = json.load(f)
        mean, std = tuple(pre.get("image_mean", mean)), tuple(pre.get("image_std", std))
    return Clip(config, params, text_only=text_only, dtype=dtype, mean=mean, std=std, image_only=image_only)


def save_clip(path: str, config: CLIPConfig, params: Params) -> None:
    """Write `config.json` + `flax_model.msgpack` in Hugging Face layout (loadable by
    `load_clip` and by `transformers.FlaxCLIPModel.from_pretrained`)."""
    from transformers import FlaxCLIPModel

    model = FlaxCLIPModel(config, _do_init=False)
    model.save_pretrained(path, params=jax.device_get(params))
