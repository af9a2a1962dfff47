"""Procedural coloured shapes with captions: the default dataset, needing no download.

Every example is a pure function of (seed, index), so the set is identical on every machine and
host, and its vocabulary is small and parseable: a sampler benchmark can ask for "a red circle"
and check the generated image's colour and shape with `parse_caption` + `render_shape`.
"""

from __future__ import annotations

import json
import os
import re
from typing import Sequence

import numpy as np
from PIL import Image

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 175, 60),
    "blue": (40, 80, 225),
    "yellow": (240, 215, 40),
    "purple": (140, 60, 190),
    "orange": (245, 140, 30),
    "cyan": (40, 200, 215),
    "pink": (245, 130, 190),
}
SHAPES = ("circle", "square", "triangle", "diamond", "ring", "cross")
# Shape centre in [0, 1] image coordinates (x right, y down).
POSITIONS = {
    "center": (0.5, 0.5),
    "top left": (0.28, 0.28),
    "top right": (0.72, 0.28),
    "bottom left": (0.28, 0.72),
    "bottom right": (0.72, 0.72),
}
BACKGROUNDS = {
    "black": (15, 15, 15),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "brown": (105, 70, 40),
}
TEMPLATES = (
    "{a} {colour} {shape} in the {position} on a {background} background",
    "{a} {colour} {shape} at the {position}, {background} background",
    "{background} background with {a} {colour} {shape} in the {position}",
    "a picture of {a} {colour} {shape} in the {position} of a {background} canvas",
    "there is {a} {colour} {shape} in the {position} on {background}",
    "{colour} {shape}, {position}, on {background}",
)
NUM_CLASSES = len(COLOURS) * len(SHAPES)  # label = colour index * len(SHAPES) + shape index
BASE_RADIUS = 0.16  # shape half-size as a fraction of the image side
SIZE_MIN, SIZE_SPREAD = 0.8, 0.3  # per-example size factor ~ U(SIZE_MIN, SIZE_MIN + SIZE_SPREAD)


def max_size_scale(positions=tuple(POSITIONS)) -> float:
    """Largest config.data.shape_scale: the largest shape, centred on the position nearest an edge,
    then just reaches the image border (the small random offset may still clip it a little)."""
    margin = min(min(x, y, 1 - x, 1 - y) for x, y in (POSITIONS[p] for p in positions))
    return margin / (BASE_RADIUS * (SIZE_MIN + SIZE_SPREAD))


_COLOUR_NAMES = tuple(COLOURS)
_POSITION_NAMES = tuple(POSITIONS)
_BACKGROUND_NAMES = tuple(BACKGROUNDS)
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Counter-based hash: example i's attributes depend on (seed, i) only, not on the set size."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def _uniform(seed: int, index: np.ndarray, field: int) -> np.ndarray:
    """[N] floats in [0, 1), one independent stream per (seed, field)."""
    key = _splitmix64(np.asarray([seed * 1000 + field], np.uint64))
    bits = _splitmix64(np.asarray(index, np.uint64) ^ key)
    return (bits >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Boolean mask of `shape` in coordinates normalised by its radius (centre at 0)."""
    if shape == "circle":
        return dx * dx + dy * dy <= 1.0
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.85
    if shape == "triangle":  # apex up
        return (dy <= 0.8) & (np.abs(dx) <= (dy + 1.0) / 1.8)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= 1.0
    if shape == "ring":
        r2 = dx * dx + dy * dy
        return (r2 <= 1.0) & (r2 >= 0.36)
    if shape == "cross":
        ax, ay = np.abs(dx), np.abs(dy)
        return ((ax <= 0.3) & (ay <= 1.0)) | ((ay <= 0.3) & (ax <= 1.0))
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


_COLOUR_RGB = np.asarray(list(COLOURS.values()), np.uint8)  # [8, 3]
_BACKGROUND_RGB = np.asarray(list(BACKGROUNDS.values()), np.uint8)  # [4, 3]
_POSITION_XY = np.asarray(list(POSITIONS.values()), np.float32)  # [5, 2]


def render_batch(colour: np.ndarray, shape: np.ndarray, position: np.ndarray, background: np.ndarray,
                 size: np.ndarray, offset: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 [n, R, R, 3] from attribute indices [n] (into COLOURS, SHAPES, ...), size [n], offset [n, 2].

    Vectorised over the batch (one pass per shape kind) so the shapes set keeps up with training.
    """
    n = len(colour)
    centre = _POSITION_XY[position] + np.asarray(offset, np.float32).reshape(n, 2)  # [n, 2]
    radius = (BASE_RADIUS * np.asarray(size, np.float32)).reshape(n, 1, 1)
    grid = (np.arange(resolution, dtype=np.float32) + 0.5) / resolution  # [R] pixel centres
    dx = (grid[None, None, :] - centre[:, 0, None, None]) / radius  # [n, 1, R]
    dy = (grid[None, :, None] - centre[:, 1, None, None]) / radius  # [n, R, 1]
    mask = np.zeros((n, resolution, resolution), bool)  # [n, R, R]
    for k, name in enumerate(SHAPES):
        rows = np.flatnonzero(shape == k)
        if len(rows):
            mask[rows] = _shape_mask(name, dx[rows], dy[rows])
    return np.where(mask[..., None], _COLOUR_RGB[colour][:, None, None], _BACKGROUND_RGB[background][:, None, None])


def render_shape(colour: str, shape: str, position: str, background: str, resolution: int,
                 size: float = 1.0, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """uint8 [R, R, 3] image of one shape; `size` scales BASE_RADIUS, `offset` shifts (x, y)."""
    index = []
    for name, value, vocab in (("colour", colour, COLOURS), ("shape", shape, SHAPES),
                               ("position", position, POSITIONS), ("background", background, BACKGROUNDS)):
        if value not in vocab:
            raise ValueError(f"unknown {name} {value!r}; expected one of {tuple(vocab)}")
        index.append(np.asarray([list(vocab).index(value)]))
    return render_batch(*index, np.asarray([size]), np.asarray([offset]), resolution)[0]


def make_caption(colour: str, shape: str, position: str, background: str, template: int = 0) -> str:
    article = "an" if colour[0] in "aeiou" else "a"
    return TEMPLATES[template].format(a=article, colour=colour, shape=shape, position=position,
                                      background=background)


def parse_caption(caption: str) -> dict[str, str | None]:
    """Attributes named in a caption (None where absent): the inverse of `make_caption`."""
    words = re.findall(r"[a-z]+", caption.lower())
    text = " ".join(words)
    found = {
        "colour": next((w for w in words if w in COLOURS), None),
        "shape": next((w for w in words if w in SHAPES), None),
        "position": next((p for p in sorted(POSITIONS, key=len, reverse=True)
                          if re.search(rf"\b{p}\b", text)), None),
        "background": next((w for w in words if w in BACKGROUNDS), None),
    }
    return found


def label_of(colour: str, shape: str) -> int:
    return _COLOUR_NAMES.index(colour) * len(SHAPES) + SHAPES.index(shape)


class ShapesSource:
    """Random-access source of procedural examples; attributes precomputed, pixels rendered on read.

    `positions` restricts where shapes are placed (names from POSITIONS; () = all). Fewer
    positions make an easier set whose shapes may also be larger (`max_size_scale`).
    """

    def __init__(self, num_examples: int, resolution: int, seed: int = 0, size_scale: float = 1.0,
                 positions: Sequence[str] = ()):
        if num_examples < 1:
            raise ValueError(f"config.data.num_examples must be >= 1 for shapes, got {num_examples}")
        positions = tuple(positions) or _POSITION_NAMES
        unknown = [p for p in positions if p not in POSITIONS]
        if unknown or len(set(positions)) != len(positions):
            raise ValueError(f"config.data.shape_positions must be distinct names from {_POSITION_NAMES}, "
                             f"got {positions}")
        largest = max_size_scale(positions)
        if not 0 < size_scale <= largest:
            raise ValueError(f"config.data.shape_scale must be in (0, {largest:.3f}] for positions "
                             f"{positions}, got {size_scale}")
        self.positions = positions
        self.resolution = resolution
        index = np.arange(num_examples, dtype=np.uint64)

        def pick(field: int, n: int) -> np.ndarray:  # [N] ints in [0, n)
            return np.minimum((_uniform(seed, index, field) * n).astype(np.int64), n - 1)

        self._colour = pick(0, len(COLOURS))
        self._shape = pick(1, len(SHAPES))
        self._position = np.asarray([_POSITION_NAMES.index(p) for p in positions])[pick(2, len(positions))]
        self._background = pick(3, len(BACKGROUNDS))
        self._template = pick(4, len(TEMPLATES))
        self._size = size_scale * (SIZE_MIN + SIZE_SPREAD * _uniform(seed, index, 5))  # [N]
        self._offset = 0.08 * (np.stack([_uniform(seed, index, 6), _uniform(seed, index, 7)], -1) - 0.5)

    def __len__(self) -> int:
        return len(self._colour)

    def attributes(self, i: int) -> dict[str, str]:
        return {
            "colour": _COLOUR_NAMES[self._colour[i]],
            "shape": SHAPES[self._shape[i]],
            "position": _POSITION_NAMES[self._position[i]],
            "background": _BACKGROUND_NAMES[self._background[i]],
        }

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"shapes index {i} out of range [0, {len(self)})")
        batch = self.get_batch(np.asarray([i]))
        return {"image": batch["image"][0], "caption": batch["caption"][0], "label": int(batch["label"][0])}

    def get_batch(self, indices: np.ndarray) -> dict:
        i = np.asarray(indices, np.int64)
        image = render_batch(self._colour[i], self._shape[i], self._position[i], self._background[i],
                             self._size[i], self._offset[i], self.resolution)  # [n, R, R, 3]
        captions = [make_caption(_COLOUR_NAMES[c], SHAPES[s], _POSITION_NAMES[p], _BACKGROUND_NAMES[b], int(t))
                    for c, s, p, b, t in zip(self._colour[i], self._shape[i], self._position[i],
                                             self._background[i], self._template[i])]
        return {"image": image, "caption": captions,
                "label": (self._colour[i] * len(SHAPES) + self._shape[i]).astype(np.int32)}  # [n]


def write_caption_folder(source: ShapesSource, folder: str, batch: int = 256) -> int:
    """Write every example of `source` as `images/NNNNNN.png` plus `captions.jsonl` in `folder`,
    a caption folder like a user's own (several caption templates, every position the source
    draws), so the folder path can be trained and measured on data whose attributes are known.
    Refuses a folder that already holds a captions.jsonl."""
    captions_path = os.path.join(folder, "captions.jsonl")
    if os.path.exists(captions_path):
        raise ValueError(f"{captions_path} exists already; remove it, or prepare that folder with --kind folder")
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    lines = []
    for start in range(0, len(source), batch):
        examples = source.get_batch(np.arange(start, min(start + batch, len(source))))
        for offset, (image, caption) in enumerate(zip(examples["image"], examples["caption"])):
            rel = f"images/{start + offset:06d}.png"
            Image.fromarray(image).save(os.path.join(folder, rel), format="PNG")
            lines.append(json.dumps({"file": rel, "caption": caption}))
    with open(captions_path + ".partial", "w") as f:  # the listing last: a killed run leaves none
        f.write("\n".join(lines) + "\n")
    os.replace(captions_path + ".partial", captions_path)
    return len(lines)
