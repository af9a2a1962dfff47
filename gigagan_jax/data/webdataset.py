"""Reading WebDataset tar shards as img2dataset writes them, with the standard library's tarfile (no
webdataset package): `00000.tar` holds `000000000.jpg` beside `000000000.txt` and/or `000000000.json`
(whose "caption" is read when there is no .txt), one sample per key (a member's name up to its
first dot).

Shards are decoded one per task in worker processes (`parallel.ordered_map`) and their samples
come back in the order the shards were given, each already in its stored form (`codec`: image
bytes, CLIP token bytes), so the workers do all the per-sample work. A sample without an image or a caption, an image that does not decode, or a shard that is not a
tar file is skipped with its reason, never fatal.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import tarfile
from typing import Iterator

from gigagan_jax.data import codec, imageops, parallel

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")


@dataclasses.dataclass(frozen=True)
class Sample:
    shard: int  # index of its shard in the list given
    key: str  # the member name up to its first dot
    image: bytes  # as stored (codec.stored_image)
    caption: str
    tokens: bytes  # codec.pack_tokens of the caption
    truncated: bool  # the caption was longer than CLIP's context


def expand(spec: str) -> list[str]:
    """'shards/{00000..00099}.tar' -> the 100 paths (zero-padded as the first bound is written;
    several ranges multiply), or a folder -> its *.tar files in name order."""
    if os.path.isdir(spec):
        return sorted(os.path.join(spec, n) for n in os.listdir(spec) if n.endswith(".tar"))
    match = _RANGE.search(spec)
    if match is None:
        return [spec]
    lo, hi = int(match.group(1)), int(match.group(2))
    if hi < lo:
        raise ValueError(f"shard range {match.group(0)} in {spec!r} runs backwards")
    width = len(match.group(1))
    return [path for i in range(lo, hi + 1)
            for path in expand(spec[:match.start()] + f"{i:0{width}d}" + spec[match.end():])]


def _caption(parts: dict[str, bytes]) -> str | None:
    if "txt" in parts:
        return parts["txt"].decode("utf-8-sig").strip()
    if "json" in parts:
        try:
            caption = json.loads(parts["json"]).get("caption")
        except (ValueError, AttributeError):
            return None
        return caption.strip() if isinstance(caption, str) else None
    return None


def read_shard(task: tuple[int, str], resolution: int, image_format: str) -> tuple[list[Sample], list[tuple[str, str]]]:
    """(samples, skipped [(path:key, reason)]) of shard `task = (index, path)`, in its member order."""
    index, path = task
    tokenize = codec.Tokens()
    grouped: dict[str, dict[str, bytes]] = {}
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                folder, name = os.path.split(member.name)
                stem, _, ext = name.partition(".")
                grouped.setdefault(os.path.join(folder, stem), {})[ext.lower()] = tar.extractfile(member).read()
    except (OSError, tarfile.TarError) as e:
        return [], [(path, f"unreadable shard ({type(e).__name__}: {e})")]
    samples, skipped = [], []
    for key, parts in grouped.items():
        image = next((parts[ext] for ext in IMAGE_EXTENSIONS if ext in parts), None)
        caption = _caption(parts)
        if image is None or caption is None:
            if image is not None or caption is not None:  # img2dataset's failed downloads leave only json
                skipped.append((f"{path}:{key}", "no image" if image is None else "no caption"))
            continue
        try:
            stored = codec.stored_file(image, resolution, image_format)
        except imageops.DECODE_ERRORS as e:  # the error's type: PIL's message names only the BytesIO object
            skipped.append((f"{path}:{key}", f"unreadable ({type(e).__name__})"))
            continue
        samples.append(Sample(index, key, stored, caption, *tokenize(caption)))
    return samples, skipped


def read_shards(shards: list[str], resolution: int, image_format: str, workers: int,
                skipped: list[tuple[str, str]]) -> Iterator[Sample]:
    """Every sample of every shard in order, read by `workers` processes (1: in this one), with a
    progress bar over the shards; what is skipped is appended to `skipped`."""
    read = functools.partial(read_shard, resolution=resolution, image_format=image_format)
    for samples, bad in parallel.ordered_map(read, list(enumerate(shards)), workers, "shards", "shard"):
        skipped.extend(bad)
        yield from samples
