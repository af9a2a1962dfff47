"""Reading a raw caption folder: `captions.jsonl` or image + `.txt` sidecars, validated line by line.

Listing is separate from decoding so that the cache key (`fingerprint`) is cheap to compute on
every start, while images are decoded once, when the folder is prepared. Text is UTF-8 (a leading
byte-order mark is allowed). Every image and caption file must resolve inside the folder: an
absolute path, a `..` above the root or a symlink pointing out of it is refused, so a folder
(or a captions.jsonl from elsewhere) cannot make training read other files on the machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

CAPTIONS_FILE = "captions.jsonl"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
# Bump when the prepared bytes of the same input change, so stale caches are not reused.
FORMAT_VERSION = 3  # 2: one decoder (16-bit, EXIF orientation, alpha over white by integer rounding);
# 3: images stored encoded (codec "auto"), CLIP tokens stored, examples keyed by content


@dataclasses.dataclass
class Listing:
    root: str
    entries: list[tuple[str, str]]  # (path relative to root, caption) of files that exist
    skipped: list[tuple[str, str]]  # (path relative to root, reason) of files left out


def check_inside(root: str, real_root: str, rel: str, where: str) -> None:
    """ValueError unless `rel` is relative and resolves (symlinks followed) inside `real_root`."""
    if (os.path.isabs(rel) or "\0" in rel
            or os.path.commonpath([real_root, os.path.realpath(os.path.join(root, rel))]) != real_root):
        raise ValueError(f"{where}: {rel!r} is outside the data folder {root}; files must lie inside it "
                         "(no absolute paths, no '..' above it, no symlinks out of it)")


def _read_jsonl(root: str) -> Listing:
    path = os.path.join(root, CAPTIONS_FILE)
    real_root = os.path.realpath(root)
    entries, skipped = [], []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{where}: not UTF-8 text (byte {e.start} of the line)") from None
            if not line.strip():
                continue
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
            check_inside(root, real_root, rel, where)
            if os.path.isfile(os.path.join(root, rel)):
                entries.append((rel, caption))
            else:
                skipped.append((rel, "missing file"))
    return Listing(root, entries, skipped)


def _read_sidecars(root: str) -> Listing:
    real_root = os.path.realpath(root)
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
            check_inside(root, real_root, rel, image_path)
            check_inside(root, real_root, os.path.relpath(text_path, root), text_path)
            try:
                with open(text_path, encoding="utf-8-sig") as f:
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
