"""TFDS builders writing ArrayRecord (random access, no TensorFlow needed to write or read).

Each example holds its image as `codec` stores it (encoded as given, re-encoded, or raw uint8; never
`tfds.features.Image`, which needs tensorflow to encode), its caption, its caption's CLIP tokens
and a label. Examples are keyed by their content (stored image bytes and caption), so TFDS's
key-hash order, and with it every byte written, depends only on what the examples are: the same
images prepared from a folder or from tar shards give the same files. A prepared dataset lives in
`<data_dir>/<builder name>/<version>/` and is opened with `tfds.builder_from_directory`.
"""

from __future__ import annotations

import collections
import functools
import glob
import hashlib
import json
import logging
import os
import re
from unittest import mock

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_serializer

from gigagan_jax.data import caption_folder, codec, coco, imageops, parallel, webdataset
from gigagan_jax.data.shapes import ShapesSource

SKIPPED_FILE = "skipped.json"  # written next to dataset_info.json: what preparation left out
RECIPE_FILE = "gigagan_recipe.json"  # beside it too: the settings the bytes were prepared with
_REPORT_FIRST = 5

log = logging.getLogger(__name__)


def _features(resolution: int, image_format: str) -> tfds.features.FeaturesDict:
    if image_format == "raw":  # raw bytes, not TFDS's default int64 list: a zero-copy read
        image = tfds.features.Tensor(shape=(resolution, resolution, 3), dtype=np.uint8,
                                     encoding=tfds.features.Encoding.BYTES)
    else:
        image = tfds.features.Tensor(shape=(), dtype=np.object_)  # encoded bytes (codec)
    return tfds.features.FeaturesDict({
        "image": image,
        "caption": tfds.features.Text(),
        "label": tfds.features.Tensor(shape=(), dtype=np.int32),
        "tokens": tfds.features.Tensor(shape=(), dtype=np.object_),  # uint16 ids (codec.pack_tokens)
    })


def example(stored: bytes, caption: str, tokens: bytes, image_format: str, resolution: int,
            label: int = -1) -> dict:
    """One record's features; raw images are handed to TFDS as the uint8 array it stores."""
    image = (np.frombuffer(stored, np.uint8).reshape(resolution, resolution, 3) if image_format == "raw"
             else stored)
    return {"image": image, "caption": caption, "label": np.int32(label), "tokens": tokens}


class ContentKeys:
    """Key of an example from its stored bytes and caption; repeats of one pair get :1, :2, ..."""

    def __init__(self):
        self._seen: collections.Counter = collections.Counter()

    def __call__(self, stored: bytes, caption: str) -> str:
        digest = hashlib.sha256(stored + b"\0" + caption.encode()).hexdigest()[:32]
        self._seen[digest] += 1
        return f"{digest}:{self._seen[digest] - 1}"


class _Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """What our builders share: features by image format, the recipe, counts of truncated captions."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {"2.0.0": "images encoded (codec), CLIP tokens stored, examples keyed by content",
                     "1.0.0": "raw uint8 images"}

    def __init__(self, *, resolution: int = 64, image_format: str = "auto", **kwargs):
        if image_format not in codec.IMAGE_FORMATS:
            raise ValueError(f"image format must be one of {', '.join(codec.IMAGE_FORMATS)}, got {image_format!r}")
        self._resolution = resolution
        self._image_format = image_format
        self._tokenize = codec.Tokens()
        self.truncated_captions = 0  # captions longer than CLIP's context, cut
        self.skipped: list[tuple[str, str]] = []
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(features=_features(self._resolution, self._image_format))

    def recipe(self) -> dict:
        """What the prepared bytes depend on: the source (each builder's `_source_recipe`), the size,
        the storage and the tokenizer."""
        return {**self._source_recipe(), "resolution": self._resolution, "image_format": self._image_format,
                "tokenizer": codec.TOKENIZER_ID}


FILES_PER_TASK = 64  # images one worker prepares per task: enough to amortise the hand-off


def prepare_files(task: tuple[str, list[tuple[str, list[str]]]], resolution: int, image_format: str) -> list[tuple]:
    """Worker: `task = (root, [(rel, captions), ...])` -> per file (rel, stored bytes or None, why
    not, [(caption, tokens, cut)])."""
    root, files = task
    tokenize, out = codec.Tokens(), []
    for rel, captions in files:
        try:
            with open(os.path.join(root, rel), "rb") as f:
                stored = codec.stored_file(f.read(), resolution, image_format)
        except imageops.DECODE_ERRORS as e:
            out.append((rel, None, f"unreadable ({type(e).__name__}: {e})", []))
            continue
        out.append((rel, stored, None, [(caption, *tokenize(caption)) for caption in captions]))
    return out


def _file_tasks(listing: caption_folder.Listing) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """The listing's entries as tasks of FILES_PER_TASK files, each file with its captions in order
    (a file listed again later is its own entry: prepared again, which is harmless)."""
    files: list[tuple[str, list[str]]] = []
    for rel, caption in listing.entries:
        if files and files[-1][0] == rel:
            files[-1][1].append(caption)
        else:
            files.append((rel, [caption]))
    return [(listing.root, files[i:i + FILES_PER_TASK]) for i in range(0, len(files), FILES_PER_TASK)]


class GigaganCaptionFolder(_Builder):
    """A folder of images with captions (captions.jsonl or .txt sidecars; or, with `annotations`,
    a COCO image folder and its captions JSON), prepared by `workers` processes; bad images are
    skipped."""

    def __init__(self, *, src: str = "", annotations: str = "", workers: int = 1, **kwargs):
        self._src = src
        self._annotations = annotations
        self._workers = workers
        super().__init__(**kwargs)

    def _listing(self) -> caption_folder.Listing:
        return coco.scan(self._src, self._annotations) if self._annotations else caption_folder.scan(self._src)

    def _source_recipe(self) -> dict:
        listing = self._listing()
        return {"kind": "coco" if self._annotations else "folder", "src": listing.root,
                "content": caption_folder.fingerprint(listing, self._resolution)}

    def _split_generators(self, dl_manager):
        listing = self._listing()
        self.skipped = list(listing.skipped)
        return {"train": self._generate_examples(listing)}

    def _generate_examples(self, listing: caption_folder.Listing):
        keys, kept = ContentKeys(), 0
        prepare = functools.partial(prepare_files, resolution=self._resolution, image_format=self._image_format)
        tasks = _file_tasks(listing)
        for files in parallel.ordered_map(prepare, tasks, self._workers, "images", "image",
                                          size=lambda task: len(task[1])):
            for rel, stored, reason, pairs in files:
                if stored is None:
                    self.skipped.append((rel, reason))
                for caption, tokens, cut in pairs:
                    kept += 1
                    self.truncated_captions += cut
                    yield keys(stored, caption), example(stored, caption, tokens, self._image_format, self._resolution)
        if kept == 0:
            raise ValueError(f"no readable images in {listing.root} ({len(self.skipped)} skipped)")


class GigaganWebDataset(_Builder):
    """WebDataset tar shards as img2dataset writes them (`gigagan_jax.data.webdataset`), decoded by
    `workers` processes; bad samples and shards are skipped."""

    def __init__(self, *, shards: tuple[str, ...] = (), workers: int = 1, **kwargs):
        self._shards = [os.path.abspath(path) for path in shards]
        self._workers = workers
        super().__init__(**kwargs)

    def _source_recipe(self) -> dict:
        """Each shard's path, size and modification time."""
        missing = [path for path in self._shards if not os.path.isfile(path)]
        if missing:
            raise FileNotFoundError(f"{len(missing)} of {len(self._shards)} shards do not exist, first {missing[0]}")
        stats = [os.stat(path) for path in self._shards]
        content = [[path, st.st_size, st.st_mtime_ns] for path, st in zip(self._shards, stats)]
        digest = hashlib.sha256(json.dumps(content).encode()).hexdigest()[:20]
        return {"kind": "webdataset", "shards": len(self._shards), "content": digest}

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        keys, kept = ContentKeys(), 0
        for sample in webdataset.read_shards(self._shards, self._resolution, self._image_format, self._workers,
                                             self.skipped):
            kept += 1
            self.truncated_captions += sample.truncated
            yield keys(sample.image, sample.caption), example(sample.image, sample.caption, sample.tokens,
                                                              self._image_format, self._resolution)
        if kept == 0:
            raise ValueError(f"no readable samples in {len(self._shards)} shards ({len(self.skipped)} skipped)")


class GigaganShapes(_Builder):
    """The procedural shapes set written to disk (training reads it in memory; this is for export)."""

    def __init__(self, *, num_examples: int = 20000, resolution: int = 64, seed: int = 0, **kwargs):
        self._source = ShapesSource(num_examples, resolution, seed)
        self._shapes_recipe = {"kind": "shapes", "num_examples": num_examples, "seed": seed}
        super().__init__(resolution=resolution, **kwargs)

    def _source_recipe(self) -> dict:
        return dict(self._shapes_recipe)

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(len(self._source)):
            item = self._source[i]
            stored = codec.stored_image(None, item["image"], self._image_format)
            tokens, cut = self._tokenize(item["caption"])
            self.truncated_captions += cut
            yield i, example(stored, item["caption"], tokens, self._image_format, self._resolution, item["label"])


def _serialize_deterministically(self, example: dict) -> bytes:
    """TFDS's `ExampleSerializer.serialize_example` with protobuf's deterministic flag. A record's
    features form a protobuf map, whose entries are otherwise written in an order drawn per
    process: the same examples prepared by two processes would differ in every record's bytes."""
    return self.get_tf_example(example).SerializeToString(deterministic=True)


def prepare(builder: tfds.core.GeneratorBasedBuilder) -> str:
    """Write the builder's ArrayRecord files (tqdm progress from TFDS) unless present; return the dir.

    TFDS keys a prepared dataset by builder name and version only, so asking again with another
    source, size or seed would silently reuse the old bytes: the recipe stored beside them must
    match (datasets prepared before recipes were stored are reused as they are)."""
    recipe = builder.recipe()
    recipe_path = os.path.join(builder.data_dir, RECIPE_FILE)
    if builder.is_prepared():
        if os.path.isfile(recipe_path):
            with open(recipe_path) as f:
                stored = json.load(f)
            if stored != recipe:
                changed = ", ".join(f"{k}={stored.get(k)!r} (now {recipe.get(k)!r})"
                                    for k in sorted(recipe.keys() | stored.keys()) if stored.get(k) != recipe.get(k))
                raise ValueError(f"{builder.data_dir} already holds a dataset prepared with other settings: "
                                 f"{changed}; give another --out, or delete it to prepare again")
    else:
        with mock.patch.object(example_serializer.ExampleSerializer, "serialize_example",
                               _serialize_deterministically):
            builder.download_and_prepare(file_format="array_record")
        if builder.truncated_captions:
            log.warning("%d caption(s) are longer than CLIP's %d-token context: their stored tokens are cut "
                        "(end-of-text kept), as the tokenizer cuts them", builder.truncated_captions,
                        codec.CONTEXT_LENGTH)
        with open(os.path.join(builder.data_dir, SKIPPED_FILE), "w") as f:
            json.dump(builder.skipped, f)
        with open(recipe_path, "w") as f:
            json.dump(recipe, f)
    report_skipped(builder.data_dir)
    return builder.data_dir


def read_skipped(dataset_dir: str) -> list[tuple[str, str]]:
    """(path, reason) of every example preparation left out."""
    path = os.path.join(dataset_dir, SKIPPED_FILE)
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [tuple(x) for x in json.load(f)]


def report_skipped(dataset_dir: str) -> None:
    """Log how many examples preparation left out, with the first few paths and reasons."""
    skipped = read_skipped(dataset_dir)
    if skipped:
        first = "; ".join(f"{rel}: {reason}" for rel, reason in skipped[:_REPORT_FIRST])
        log.warning("%d example(s) skipped when preparing %s; first: %s", len(skipped), dataset_dir, first)


def find_prepared(path: str) -> str | None:
    """The prepared dataset dir at `path` or `path/<name>/<version>`, or None if there is none."""
    if os.path.isfile(os.path.join(path, "dataset_info.json")):
        return path
    found = sorted(p for p in glob.glob(os.path.join(glob.escape(path), "*", "*", "dataset_info.json"))
                   if re.fullmatch(r"\d+\.\d+\.\d+", os.path.basename(os.path.dirname(p))))  # not incomplete.*
    if len(found) > 1:
        raise ValueError(f"{path} holds several prepared datasets ({', '.join(os.path.dirname(p) for p in found)}); "
                         "point config.data.path at one of them")
    return os.path.dirname(found[0]) if found else None


def prepare_folder_cached(src: str, resolution: int, cache_dir: str) -> str:
    """Prepare a raw caption folder once per (content, resolution); later calls reuse the cache."""
    listing = caption_folder.scan(src)
    data_dir = os.path.join(cache_dir, "folders", caption_folder.fingerprint(listing, resolution))
    prepared = find_prepared(data_dir) if os.path.isdir(data_dir) else None
    if prepared:
        return prepared
    # A worker costs a second or two to start: one per ~2000 images, up to one per core.
    workers = min(os.cpu_count() or 1, -(-len(listing.entries) // 2000))
    log.info("preparing caption folder %s at %d px into %s (%d worker(s))", listing.root, resolution, data_dir, workers)
    return prepare(GigaganCaptionFolder(src=listing.root, resolution=resolution, workers=workers, data_dir=data_dir))
