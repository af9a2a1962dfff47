"""The emoji set written as WebDataset shards prepares to the same bytes as the folder itself.

    python -m acceptance.emoji_shards_roundtrip --work data_cache/emoji_roundtrip [--emoji-sets google,twitter,apple,facebook]

Fetches the emoji caption folder (npm, as `prepare --kind emoji` does), prepares it as a folder,
writes it as img2dataset-style shards (`gigagan_jax.tools.folder_to_webdataset`), prepares the
shards, and compares the ArrayRecord files byte for byte. Prints the counts, sizes and timings.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time

from gigagan_jax.data import emoji, prepare, webdataset
from gigagan_jax.tools import folder_to_webdataset


def record_files(out: str) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, files in os.walk(out) for f in files if ".array_record-" in f)


def digest(paths: list[str]) -> str:
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="working folder (raw emoji, shards, both prepared sets)")
    p.add_argument("--emoji-sets", default=",".join(emoji.PACKAGES))
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--image-format", default="auto")
    p.add_argument("--per-shard", type=int, default=1000)
    args = p.parse_args()
    raw = os.path.join(args.work, "raw")
    pairs = emoji.fetch(raw, tuple(args.emoji_sets.split(",")))
    print(f"emoji folder: {pairs} pairs in {raw}")
    common = ["--resolution", str(args.resolution), "--image-format", args.image_format]
    timings = {}
    start = time.perf_counter()
    assert prepare.main(["--kind", "folder", "--src", raw, "--out", os.path.join(args.work, "from_folder")] + common) == 0
    timings["prepare folder"] = time.perf_counter() - start
    shards_dir = os.path.join(args.work, "shards")
    if not os.path.isdir(shards_dir):
        folder_to_webdataset.write_shards(raw, shards_dir, args.per_shard)
    shards = webdataset.expand(shards_dir)
    start = time.perf_counter()
    assert prepare.main(["--kind", "webdataset", "--src", shards_dir, "--workers", str(os.cpu_count() or 1),
                         "--out", os.path.join(args.work, "from_shards")] + common) == 0
    timings["prepare shards"] = time.perf_counter() - start
    folder_files = record_files(os.path.join(args.work, "from_folder"))
    shard_files = record_files(os.path.join(args.work, "from_shards"))
    same = [open(a, "rb").read() for a in folder_files] == [open(b, "rb").read() for b in shard_files]
    size = sum(os.path.getsize(f) for f in folder_files)
    print(f"{len(shards)} shards; prepared ArrayRecord: {len(folder_files)} file(s), {size / 2**20:.1f} MiB; "
          f"sha256 folder {digest(folder_files)[:16]}, shards {digest(shard_files)[:16]}; "
          + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    print("byte for byte: " + ("SAME" if same else "DIFFERENT"))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
