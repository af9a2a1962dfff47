"""`open_source(config)`: one random-access source of {image, caption, label} for every data kind.

Sources expose `__len__`, `__getitem__(i)` and `get_batch(indices)`; images are always uint8
[R, R, 3] at `config.model.resolution`. Raw caption folders and the emoji set are prepared on
first use and cached under `config.data.cache_dir`, keyed by content, so a config naming a raw
folder just works.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import tensorflow_datasets as tfds

from gigagan_jax.data import builders, codec, emoji, imageops, records
from gigagan_jax.data.shapes import ShapesSource

DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "gigagan_jax")
SHAPES_SEED = 0  # the shapes set is fixed; config.train.seed only changes the order
_TEXT_KEYS = ("caption", "text", "captions/text", "captions")

log = logging.getLogger(__name__)


def cache_dir(config) -> str:
    return os.path.abspath(os.path.expanduser(config.data.cache_dir or DEFAULT_CACHE_DIR))


def _text(value) -> str:
    """First caption of a string, bytes, or (nested) sequence of them."""
    while isinstance(value, (list, tuple, np.ndarray)) and not isinstance(value, (str, bytes)):
        if len(value) == 0:
            return ""
        value = value[0]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _is_raw_image(image) -> bool:
    """uint8 bytes of one fixed size (a raw bytes reshape), as `codec`'s "raw" format stores."""
    return (isinstance(image, tfds.features.Tensor) and image.np_dtype == np.uint8
            and image._encoding == tfds.features.Encoding.BYTES
            and len(image.shape) == 3 and all(isinstance(side, int) for side in image.shape))


def _is_encoded_image(image) -> bool:
    return isinstance(image, tfds.features.Tensor) and image.shape == () and image.np_dtype == np.object_


def _is_ours(features) -> bool:
    """True for the schemas our builders write (raw or encoded images; tokens since version 2),
    which `records.decode_record` reads directly."""
    keys = set(features.keys())
    if not {"caption", "image", "label"} <= keys <= {"caption", "image", "label", "tokens"}:
        return False
    return _is_raw_image(features["image"]) or _is_encoded_image(features["image"])


def _recipe(dataset_dir: str) -> dict:
    path = os.path.join(dataset_dir, builders.RECIPE_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


class RecordSource:
    """A prepared TFDS dataset (ArrayRecord) mapped to {image uint8 [R,R,3], caption str, label int,
    and tokens int32 [77] where the dataset stores them for this tokenizer}.

    Our builders' datasets hold one image size: below R they are refused (upscaling would train on
    blurred images), above R they are downscaled on read with a warning. Catalogue datasets hold
    images of any size, each cropped and resized; upscaling one is warned about once.
    A source pickles as the folder it reads, so decode worker processes reopen it.
    """

    def __init__(self, dataset_dir: str, split: str, resolution: int, label_names: list[str] | None = None):
        self._args = (dataset_dir, split, resolution, label_names)
        builder = tfds.builder_from_directory(dataset_dir)
        features = builder.info.features
        self._fast = _is_ours(features)
        method = (tfds.decode.DeserializeMethod.RAW_BYTES if self._fast
                  else tfds.decode.DeserializeMethod.DESERIALIZE_AND_DECODE)
        self._ds = builder.as_data_source(split=split, deserialize_method=method)
        self._image_shape = features["image"].shape if self._fast and _is_raw_image(features["image"]) else None
        recipe = _recipe(dataset_dir)
        self.stored_tokens = self._fast and "tokens" in features.keys() and recipe.get("tokenizer") == codec.TOKENIZER_ID
        self.resolution = resolution
        self._label_names = label_names
        self._where = dataset_dir
        self._warned_upscale = False
        if self._fast and len(self._ds):
            prepared = (self._image_shape[0] if self._image_shape is not None
                        else records.decode_record(self._ds[0], None).image.shape[0])
            _check_prepared_size(self._where, prepared, resolution)

    def __getstate__(self) -> tuple:
        return self._args

    def __setstate__(self, args: tuple) -> None:
        self.__init__(*args)

    def __len__(self) -> int:
        return len(self._ds)

    def _convert(self, record) -> dict:
        if self._fast:
            fields = records.decode_record(record, self._image_shape)
            out = {"image": imageops.fit_array(fields.image, self.resolution), "caption": fields.caption,
                   "label": fields.label}
            if self.stored_tokens:
                out["tokens"] = codec.unpack_tokens(fields.tokens)
            return out
        flat = {k: v for k, v in record.items() if not isinstance(v, dict)}
        for key, value in record.items():
            if isinstance(value, dict):
                flat.update({f"{key}/{k}": v for k, v in value.items()})
        label = int(flat["label"]) if "label" in flat else -1
        text_key = next((k for k in _TEXT_KEYS if k in flat), None)
        if text_key is not None:
            caption = _text(flat[text_key])
        elif self._label_names and label >= 0:
            caption = f"a photo of a {self._label_names[label].replace('_', ' ')}"
        else:
            caption = ""
        image = np.asarray(flat["image"])  # [H, W(, C)]
        if min(image.shape[:2]) < self.resolution and not self._warned_upscale:
            self._warned_upscale = True
            log.warning("%s holds images smaller than config.model.resolution=%d (first: %dx%d); they are "
                        "upscaled, which blurs them", self._where, self.resolution, *image.shape[:2])
        image = imageops.fit_array(image, self.resolution)
        return {"image": image, "caption": caption, "label": label}

    def __getitem__(self, i: int) -> dict:
        example = self._convert(self._ds[int(i)])
        example["image"] = np.array(example["image"])  # own, writable copy of the record's bytes
        return example

    def get_batch(self, indices: np.ndarray) -> dict:
        examples = [self._convert(r) for r in self._ds.__getitems__([int(i) for i in indices])]
        batch = {
            "image": np.stack([e["image"] for e in examples]),  # [n, R, R, 3]
            "caption": [e["caption"] for e in examples],
            "label": np.asarray([e["label"] for e in examples], np.int32),  # [n]
        }
        if self.stored_tokens:
            batch["tokens"] = np.stack([e["tokens"] for e in examples])  # [n, 77]
        return batch


def _check_prepared_size(dataset_dir: str, prepared: int, resolution: int) -> None:
    if prepared < resolution:
        raise ValueError(
            f"{dataset_dir} was prepared at {prepared} px, below config.model.resolution={resolution}; "
            f"upscaling would train on blurred images. Prepare the source again with `python -m "
            f"gigagan_jax.data.prepare ... --resolution {resolution}`, or lower config.model.resolution")
    if prepared > resolution:
        log.warning("%s was prepared at %d px; images are downscaled to config.model.resolution=%d on every "
                    "read (prepare with --resolution %d to skip that)", dataset_dir, prepared, resolution, resolution)


def open_prepared(dataset_dir: str, resolution: int, split: str = "train") -> RecordSource:
    builders.report_skipped(dataset_dir)
    builder = tfds.builder_from_directory(dataset_dir)
    if split not in builder.info.splits:
        raise ValueError(f"{dataset_dir} has no split {split!r} (has {sorted(builder.info.splits)})")
    return RecordSource(dataset_dir, split, resolution)


def _open_folder(path: str, resolution: int, split: str, cache: str) -> RecordSource:
    """`path` is either a prepared dataset (from `prepare`) or a raw caption folder."""
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"data folder not found: {path}")
    prepared = builders.find_prepared(path) or builders.prepare_folder_cached(path, resolution, cache)
    return open_prepared(prepared, resolution, split)


def _open_catalogue(name: str, data_dir: str, split: str, resolution: int) -> RecordSource:
    data_dir = os.path.abspath(os.path.expanduser(data_dir)) if data_dir else None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        prepared = builder.is_prepared()
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(f"unknown TFDS dataset {name!r} (config.data.name)") from None
    if not prepared:
        raise FileNotFoundError(
            f"TFDS dataset {name!r} is not prepared in {builder.data_dir}: run `python -m "
            f"gigagan_jax.data.prepare --kind tfds --name {name} --out {data_dir or '<data_dir>'}`")
    # Read with the features stored next to the data, not the (possibly parametrised) class's.
    builder = tfds.builder_from_directory(builder.data_dir)
    if split not in builder.info.splits:
        raise ValueError(f"TFDS dataset {name!r} has no split {split!r} (has {sorted(builder.info.splits)})")
    label = builder.info.features["label"] if "label" in builder.info.features.keys() else None
    names = list(label.names) if isinstance(label, tfds.features.ClassLabel) else None
    try:
        return RecordSource(builder.data_dir, split, resolution, names)
    except NotImplementedError:  # prepared as TFRecord: no random access
        raise ValueError(f"TFDS dataset {name!r} in {builder.data_dir} is not ArrayRecord; re-prepare "
                         "it with file_format=array_record (gigagan_jax.data.prepare does)") from None


def open_source(config):
    """The dataset named by config.data as a random-access source at config.model.resolution."""
    data, resolution = config.data, config.model.resolution
    if data.kind == "shapes":
        return ShapesSource(data.num_examples, resolution, SHAPES_SEED, data.shape_scale, data.shape_positions)
    if data.kind == "folder":
        if not data.path:
            raise ValueError("config.data.path must point at a caption folder when data.kind='folder'")
        return _open_folder(data.path, resolution, data.split, cache_dir(config))
    if data.kind == "emoji":
        raw = os.path.abspath(os.path.expanduser(data.path or os.path.join(cache_dir(config), "emoji")))
        if builders.find_prepared(raw) is None and not os.path.isfile(os.path.join(raw, "captions.jsonl")):
            emoji.fetch(raw)
        return _open_folder(raw, resolution, data.split, cache_dir(config))
    if data.kind == "tfds":
        if not data.name:
            raise ValueError("config.data.name must name a TFDS dataset when data.kind='tfds'")
        return _open_catalogue(data.name, data.path, data.split, resolution)
    raise ValueError(f"config.data.kind must be one of folder, shapes, emoji, tfds; got {data.kind!r}")
