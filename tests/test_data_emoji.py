"""Emoji fetch offline: a fake npm tarball in the cache stands in for `npm pack`."""

import io
import json
import tarfile

import pytest
from PIL import Image

from gigagan_jax.config import default_config
from gigagan_jax.data import emoji, open_source

ENTRIES = [
    {"name": "GRINNING FACE", "short_name": "grinning", "category": "Smileys & Emotion",
     "image": "1f600.png", "has_img_google": True},
    {"name": "WAVING HAND SIGN", "short_name": "wave", "category": "People & Body",
     "image": "1f44b.png", "has_img_google": True,
     "skin_variations": {"1F3FD": {"image": "1f44b-1f3fd.png", "has_img_google": True},
                         "1F3FB-1F3FF": {"image": "1f44b-1f3fb-1f3ff.png", "has_img_google": True},
                         "1F3FF": {"image": "1f44b-1f3ff.png", "has_img_google": False}}},
    {"name": None, "short_name": "only_apple", "category": "Objects", "image": "x.png",
     "has_img_google": False},
]


def fake_tarball(path):
    with tarfile.open(path, "w:gz") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add("package/emoji.json", json.dumps(ENTRIES).encode())
        for i, name in enumerate(["1f600.png", "1f44b.png", "1f44b-1f3fd.png", "1f44b-1f3fb-1f3ff.png"]):
            buf = io.BytesIO()
            Image.new("RGBA", (64, 64), (40 * i, 0, 0, 255)).save(buf, "PNG")
            add(f"package/img/google/64/{name}", buf.getvalue())
        add("package/img/google/32/1f600.png", b"not extracted")


def test_fetch_writes_a_caption_folder_from_the_npm_tarball(tmp_path):
    (tmp_path / "npm").mkdir()
    fake_tarball(tmp_path / "npm" / f"emoji-datasource-google-{emoji.VERSION}.tgz")
    assert emoji.fetch(str(tmp_path), styles=("google",)) == 4
    lines = [json.loads(x) for x in (tmp_path / "captions.jsonl").read_text().splitlines()]
    by_file = {x["file"]: x["caption"] for x in lines}
    assert set(by_file) == {"google/1f600.png", "google/1f44b.png", "google/1f44b-1f3fd.png",
                            "google/1f44b-1f3fb-1f3ff.png"}
    assert "grinning face" in by_file["google/1f600.png"] and "google" in by_file["google/1f600.png"]
    assert "waving hand sign with medium skin tone" in by_file["google/1f44b-1f3fd.png"]
    assert "with light and dark skin tones" in by_file["google/1f44b-1f3fb-1f3ff.png"]
    assert not (tmp_path / "google" / "32").exists()

    config = default_config()
    config.model.resolution = 32
    config.data.kind, config.data.path, config.data.cache_dir = "emoji", str(tmp_path), str(tmp_path / "c")
    source = open_source(config)
    assert len(source) == 4
    assert {source[i]["caption"] for i in range(4)} == set(by_file.values())
    assert all(source[i]["image"].shape == (32, 32, 3) for i in range(4))


def test_caption_templates_are_deterministic_and_varied():
    captions = {emoji.caption("GRINNING FACE", "Smileys & Emotion", "twitter", f"{i}.png") for i in range(30)}
    assert len(captions) == len(emoji.TEMPLATES)
    assert emoji.caption("GRINNING FACE", "Smileys", "google", "a.png") == \
        emoji.caption("GRINNING FACE", "Smileys", "google", "a.png")
    assert "a google-style emoji of a grinning face" in {
        emoji.caption("GRINNING FACE", "Smileys", "google", f"{i}.png") for i in range(30)}


def test_unknown_set_and_missing_npm_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown emoji set"):
        emoji.fetch(str(tmp_path), styles=("snapchat",))
    monkeypatch.setattr(emoji.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="npm not found"):
        emoji.npm_pack("emoji-datasource-google", emoji.VERSION, str(tmp_path / "npm"))


@pytest.mark.slow
def test_real_fetch_has_more_than_3000_pairs(tmp_path):
    """Needs network to the npm registry (~135 MB)."""
    n = emoji.fetch(str(tmp_path))
    assert n > 3000
