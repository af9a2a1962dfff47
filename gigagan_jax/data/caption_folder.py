"""Reading a raw caption folder: `captions.jsonl` or image + `.txt` sidecars, validated line by line.

Listing is separate from decoding so that the cache key (`fingerprint`) is cheap to compute on
every start, while images are decoded once, when the folder is prepared.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

CAPTIONS_FILE = "captions.jsonl"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
# Bump when the prepared format changes, so stale caches are not reused.
FORMAT_VERSION = 1


@dataclasses.dataclass
class Listing:
    root: str
    entries: list[tuple[str, str]]  # (path relative to root, caption) of files that exist
    skipped: list[tuple[str, str]]  # (path relative to root, reason) of files left out


def _read_jsonl(root: str) -> Listing:
    path = os.path.join(root, CAPTIONS_FILE)
    entries, skipped = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("file"), str):
                raise ValueError(f'{where}: expected {{"file": "rel/path.png", "caption": "..."}}')
            caption = record.get("caption")
            if not isinstance(caption, str):
                raise ValueError(f"{where}: caption must be a string, got {type(caption).__name__}")
            rel = record["file"]
            if os.path.isfile(os.path.join(root, rel)):
                entries.append((rel, caption))
            else:
                skipped.append((rel, "missing file"))
    return Listing(root, entries, skipped)


def _read_sidecars(root: str) -> Listing:
    entries, skipped = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            image_path = os.path.join(dirpath, name)
            rel = os.path.relpath(image_path, root)
            text_path = os.path.splitext(image_path)[0] + ".txt"
            if not os.path.isfile(text_path):
                skipped.append((rel, "no .txt caption"))
                continue
            try:
                with open(text_path, encoding="utf-8") as f:
                    entries.append((rel, f.read().strip()))
            except UnicodeDecodeError:
                raise ValueError(f"{text_path}: caption is not UTF-8 text") from None
    return Listing(root, entries, skipped)


def scan(root: str) -> Listing:
    """List (image, caption) pairs; FileNotFoundError / ValueError name the folder or the line."""
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"caption folder not found: {root}")
    use_jsonl = os.path.isfile(os.path.join(root, CAPTIONS_FILE))
    listing = _read_jsonl(root) if use_jsonl else _read_sidecars(root)
    if not listing.entries:
        raise ValueError(f"no captioned images in {root} (expected {CAPTIONS_FILE} or image files "
                         f"with .txt sidecars; {len(listing.skipped)} skipped)")
    return listing


def fingerprint(listing: Listing, resolution: int) -> str:
    """Cache key of the folder's content: paths, captions, file sizes and modification times."""
    h = hashlib.sha256(f"v{FORMAT_VERSION} r{resolution}\n".encode())
    for rel, caption in listing.entries:
        st = os.stat(os.path.join(listing.root, rel))
        h.update(json.dumps([rel, caption, st.st_size, st.st_mtime_ns]).encode())
    for rel, reason in listing.skipped:
        h.update(json.dumps([rel, reason]).encode())
    return h.hexdigest()[:20]
