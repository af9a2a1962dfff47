"""Write a caption folder as WebDataset tar shards, laid out as img2dataset writes them.

    python -m gigagan_jax.tools.folder_to_webdataset --src DIR --out SHARDS_DIR [--per-shard 1000]

Each (image, caption) pair becomes `{key}.{ext}` (the file's own bytes, extension kept),
`{key}.txt` (the caption) and `{key}.json` ({"key", "caption", "file"}); keys count from 0 in
img2dataset's 9 digits, shards are `00000.tar`, `00001.tar`, ... An image with several captions
is written once per caption. Then `prepare --kind webdataset --src 'SHARDS_DIR/{00000..NNNNN}.tar'`
prepares the same examples as `prepare --kind folder --src DIR`: byte for byte, since prepared
examples are keyed by content (`gigagan_jax.data.builders`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile

from tqdm import tqdm

from gigagan_jax.data import caption_folder


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # shards of the same folder are the same bytes
    tar.addfile(info, io.BytesIO(data))


def write_shards(src: str, out: str, per_shard: int) -> list[str]:
    """Write the folder's pairs into `out/{00000..}.tar`; returns the shard paths."""
    listing = caption_folder.scan(src)
    os.makedirs(out, exist_ok=True)
    paths = []
    entries = listing.entries
    for start in tqdm(range(0, len(entries), per_shard), desc="shards", unit="shard"):
        path = os.path.join(out, f"{len(paths):05d}.tar")
        with tarfile.open(path + ".partial", "w") as tar:
            for key, (rel, caption) in enumerate(entries[start:start + per_shard], start=start):
                with open(os.path.join(listing.root, rel), "rb") as f:
                    image = f.read()
                ext = os.path.splitext(rel)[1].lower().lstrip(".")
                _add(tar, f"{key:09d}.{ext}", image)
                _add(tar, f"{key:09d}.txt", caption.encode())
                _add(tar, f"{key:09d}.json", json.dumps({"key": f"{key:09d}", "caption": caption, "file": rel}).encode())
        os.replace(path + ".partial", path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gigagan_jax.tools.folder_to_webdataset", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help="caption folder (captions.jsonl or .txt sidecars)")
    p.add_argument("--out", required=True, help="folder for the .tar shards")
    p.add_argument("--per-shard", type=int, default=1000, help="pairs per shard (img2dataset's default: 10000)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.per_shard < 1:
        p.error(f"--per-shard must be >= 1, got {args.per_shard}")
    if os.path.isdir(args.out) and any(n.endswith(".tar") for n in os.listdir(args.out)):
        p.error(f"--out {args.out} already holds .tar shards; give an empty folder")
    try:
        paths = write_shards(args.src, args.out, args.per_shard)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(paths)} shard(s) to {args.out}: --src '{os.path.join(args.out, '{00000..%05d}.tar' % (len(paths) - 1))}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
