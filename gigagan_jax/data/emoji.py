"""Real images with real captions offline: the emoji sets shipped in npm `emoji-datasource-*`.

`npm pack` downloads each package's tarball (the npm registry is reachable wherever npm works);
the 64 px PNGs of `img/<set>/64/` and the names in `emoji.json` become a caption folder
(`captions.jsonl`), which is then prepared like any other folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import zlib

PACKAGES = {"google": "emoji-datasource-google", "twitter": "emoji-datasource-twitter",
            "apple": "emoji-datasource-apple", "facebook": "emoji-datasource-facebook"}
VERSION = "16.0.0"  # pinned so every machine gets the same images
SKIN_TONES = {"1F3FB": "light", "1F3FC": "medium-light", "1F3FD": "medium", "1F3FE": "medium-dark",
              "1F3FF": "dark"}
TEMPLATES = (
    "a {style}-style emoji of {a} {name}",
    "{a} {name} emoji in {style} style",
    "{a} {name}, {a_cat} {category} emoji drawn in {style} style",
)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _skin_phrase(key: str) -> str:
    tones = [SKIN_TONES[t] for t in key.split("-") if t in SKIN_TONES]
    if not tones:
        return ""
    if len(set(tones)) == 1:
        return f" with {tones[0]} skin tone"
    return f" with {' and '.join(tones)} skin tones"


def caption(name: str, category: str, style: str, image_file: str) -> str:
    """Deterministic choice among TEMPLATES (by file name), so captions vary but never change."""
    name, category = name.lower(), category.lower()
    template = TEMPLATES[zlib.crc32(f"{style}/{image_file}".encode()) % len(TEMPLATES)]
    return template.format(style=style, a=_article(name), name=name, a_cat=_article(category),
                           category=category)


def npm_pack(package: str, version: str, dest: str) -> str:
    """Path of `package-version.tgz` in `dest`, downloaded with `npm pack` unless already there."""
    tarball = os.path.join(dest, f"{package}-{version}.tgz")
    if os.path.isfile(tarball):
        return tarball
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm not found on PATH: the emoji sets are fetched with `npm pack` "
                                "(install Node.js, or copy the .tgz files into " + dest + ")")
    os.makedirs(dest, exist_ok=True)
    result = subprocess.run([npm, "pack", f"{package}@{version}", "--silent"], cwd=dest,
                            capture_output=True, text=True)
    if result.returncode != 0 or not os.path.isfile(tarball):
        raise RuntimeError(f"npm pack {package}@{version} failed in {dest}: "
                           f"{(result.stderr or result.stdout).strip()[-500:]}")
    return tarball


def _pairs(entries: list[dict], style: str) -> list[tuple[str, str]]:
    """(image file, caption) for every emoji and skin-tone variant the set has an image for."""
    pairs = []
    for entry in entries:
        name = entry.get("name") or entry["short_name"].replace("_", " ")
        if entry.get(f"has_img_{style}"):
            pairs.append((entry["image"], caption(name, entry["category"], style, entry["image"])))
        for key, variant in sorted(entry.get("skin_variations", {}).items()):
            if variant.get(f"has_img_{style}"):
                pairs.append((variant["image"], caption(name + _skin_phrase(key), entry["category"],
                                                        style, variant["image"])))
    return pairs


def fetch(out_dir: str, styles: tuple[str, ...] = ("google", "twitter"), version: str = VERSION) -> int:
    """Write `out_dir/captions.jsonl` + `out_dir/<style>/*.png`; return the number of pairs."""
    unknown = [s for s in styles if s not in PACKAGES]
    if unknown:
        raise ValueError(f"unknown emoji set(s) {unknown}; expected some of {tuple(PACKAGES)}")
    out_dir = os.path.abspath(out_dir)
    lines = []
    for style in styles:
        tarball = npm_pack(PACKAGES[style], version, os.path.join(out_dir, "npm"))
        prefix = f"package/img/{style}/64/"
        image_dir = os.path.join(out_dir, style)
        os.makedirs(image_dir, exist_ok=True)
        entries = None
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:  # one streaming pass over the gzip
                if member.name == "package/emoji.json":
                    entries = json.load(tar.extractfile(member))
                elif member.isfile() and member.name.startswith(prefix) and member.name.endswith(".png"):
                    with open(os.path.join(image_dir, os.path.basename(member.name)), "wb") as f:
                        f.write(tar.extractfile(member).read())
        if entries is None:
            raise ValueError(f"{tarball} has no package/emoji.json")
        for image_file, text in _pairs(entries, style):
            if os.path.isfile(os.path.join(image_dir, image_file)):
                lines.append(json.dumps({"file": f"{style}/{image_file}", "caption": text}))
    with open(os.path.join(out_dir, "captions.jsonl"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return len(lines)
