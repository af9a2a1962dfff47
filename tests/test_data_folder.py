"""Caption folders: automatic cached preparation, bad data skipped and reported, clear errors."""

import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

from gigagan_jax.config import default_config
from gigagan_jax.data import InputPipeline, builders, open_source, prepare
from gigagan_jax.data.shapes import SHAPES

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]


def make_config(path, cache, resolution=16, kind="folder", **data):
    config = default_config()
    config.model.resolution = resolution
    config.data.kind = kind
    config.data.path = str(path)
    config.data.cache_dir = str(cache)
    config.train.batch_size = 4
    for key, value in data.items():
        config.data[key] = value
    return config


def write_folder(root, corrupt=True, missing=True):
    """Six good images of various sizes and modes, plus one corrupt PNG and one missing file."""
    os.makedirs(root / "sub", exist_ok=True)
    lines = []
    for i, colour in enumerate(COLOURS):
        size = [(20, 20), (40, 20), (20, 40), (33, 17), (64, 64), (7, 9)][i]
        image = Image.new("RGBA" if i == 4 else "RGB", size, colour + ((255,) if i == 4 else ()))
        rel = f"sub/img{i}.png" if i % 2 else f"img{i}.jpg" if i == 2 else f"img{i}.png"
        image.save(root / rel)
        lines.append({"file": rel, "caption": f"picture {i}"})
    if corrupt:
        (root / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
        lines.append({"file": "bad.png", "caption": "corrupt"})
    if missing:
        lines.append({"file": "gone.png", "caption": "missing"})
    (root / "captions.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")


def test_corrupt_and_missing_images_are_skipped_and_reported(tmp_path, caplog):
    write_folder(tmp_path / "raw")
    with caplog.at_level(logging.WARNING):
        source = open_source(make_config(tmp_path / "raw", tmp_path / "cache"))
    assert len(source) == 6
    captions = sorted(source[i]["caption"] for i in range(6))
    assert captions == [f"picture {i}" for i in range(6)]
    report = caplog.text
    assert "2 example(s) skipped" in report and "bad.png" in report and "gone.png" in report
    (dataset_dir,) = [d for d, _, files in os.walk(tmp_path / "cache") if "dataset_info.json" in files]
    reasons = dict(builders.read_skipped(dataset_dir))
    assert reasons["gone.png"] == "missing file" and reasons["bad.png"].startswith("unreadable")
    # Training runs on the rest: every batch holds only the good examples.
    pipe = InputPipeline(make_config(tmp_path / "raw", tmp_path / "cache"))
    seen = {c for _ in range(3) for c in next(pipe)["caption"]}
    assert seen == {f"picture {i}" for i in range(6)}


def test_images_are_centre_cropped_resized_and_rgb(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    wide = np.zeros((10, 30, 3), np.uint8)  # [H, W, C]: red | green | blue thirds
    wide[:, :10, 0] = wide[:, 10:20, 1] = wide[:, 20:, 2] = 255
    Image.fromarray(wide).save(root / "wide.png")
    Image.new("LA", (8, 8), (0, 0)).save(root / "clear.png")  # fully transparent -> white
    (root / "captions.jsonl").write_text('{"file": "wide.png", "caption": "w"}\n'
                                         '{"file": "clear.png", "caption": "c"}\n')
    source = open_source(make_config(root, tmp_path / "cache", resolution=8))
    by_caption = {source[i]["caption"]: source[i]["image"] for i in range(len(source))}
    assert by_caption["w"].shape == (8, 8, 3) and by_caption["w"].dtype == np.uint8
    assert np.all(by_caption["w"][:, 2:6] == (0, 255, 0))  # only the centre third survives the crop
    assert np.all(by_caption["c"] == 255)


def test_preparation_is_cached_by_content(tmp_path, monkeypatch):
    write_folder(tmp_path / "raw", corrupt=False, missing=False)
    config = make_config(tmp_path / "raw", tmp_path / "cache")
    open_source(config)
    calls = []
    original = builders.prepare
    monkeypatch.setattr(builders, "prepare", lambda b: calls.append(1) or original(b))
    assert len(open_source(config)) == 6 and calls == []  # cache hit
    with open(tmp_path / "raw" / "captions.jsonl", "a") as f:
        f.write('{"file": "img0.png", "caption": "a second caption"}\n')
    assert len(open_source(config)) == 7 and calls == [1]  # content changed: prepared again


def test_sidecar_text_files(tmp_path):
    root = tmp_path / "raw"
    (root / "a").mkdir(parents=True)
    for i, name in enumerate(["a/x.png", "y.png", "z.png"]):
        Image.new("RGB", (12, 12), COLOURS[i]).save(root / name)
    (root / "a" / "x.txt").write_text("an x\n")
    (root / "y.txt").write_text("a y")
    source = open_source(make_config(root, tmp_path / "cache", resolution=8))  # z.png has no caption
    assert sorted(source[i]["caption"] for i in range(len(source))) == ["a y", "an x"]
    assert all(source[i]["label"] == -1 for i in range(len(source)))


def test_missing_directory_and_empty_dataset_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        open_source(make_config(tmp_path / "nope", tmp_path / "cache"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=f"no captioned images in {tmp_path / 'empty'}"):
        open_source(make_config(tmp_path / "empty", tmp_path / "cache"))


def test_non_string_caption_names_the_line(tmp_path):
    root = tmp_path / "raw"
    write_folder(root, corrupt=False, missing=False)
    with open(root / "captions.jsonl", "a") as f:
        f.write('{"file": "img0.png", "caption": 42}\n')
    with pytest.raises(ValueError, match=r"captions.jsonl:7: caption must be a string, got int"):
        open_source(make_config(root, tmp_path / "cache"))


def test_all_images_unreadable_is_an_error(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    (root / "bad.png").write_bytes(b"garbage")
    (root / "captions.jsonl").write_text('{"file": "bad.png", "caption": "x"}\n')
    with pytest.raises(ValueError, match=f"no readable images in {root}"):
        open_source(make_config(root, tmp_path / "cache"))


def test_prepare_cli_then_train_from_its_output(tmp_path, capsys):
    write_folder(tmp_path / "raw")
    out = tmp_path / "prepared"
    assert prepare.main(["--kind", "folder", "--src", str(tmp_path / "raw"), "--out", str(out),
                         "--resolution", "16"]) == 0
    printed = capsys.readouterr().out
    assert "prepared 6 examples (2 skipped) at 16 px" in printed and "MB" in printed
    source = open_source(make_config(out, tmp_path / "unused-cache"))
    assert len(source) == 6 and not (tmp_path / "unused-cache").exists()


def test_tfds_kind_reads_a_prepared_catalogue_dataset(tmp_path, capsys):
    prepare.main(["--kind", "shapes", "--out", str(tmp_path / "tfds"), "--num-examples", "24",
                  "--resolution", "16"])
    assert "prepared 24 examples (0 skipped)" in capsys.readouterr().out
    config = make_config(tmp_path / "tfds", tmp_path / "cache", kind="tfds", name="gigagan_shapes")
    source = open_source(config)
    assert len(source) == 24
    example = source[0]
    assert example["image"].shape == (16, 16, 3) and any(s in example["caption"] for s in SHAPES)
    assert example["label"] >= 0
    config.model.resolution = 8  # stored at 16 px: resized on read
    assert open_source(config)[0]["image"].shape == (8, 8, 3)


def test_tfds_kind_not_prepared_is_a_clear_error(tmp_path):
    config = make_config(tmp_path / "empty_data_dir", tmp_path / "cache", kind="tfds", name="mnist")
    with pytest.raises(FileNotFoundError, match=r"'mnist' is not prepared in .*empty_data_dir"):
        open_source(config)
    config.data.name = "no_such_dataset_xyz"
    with pytest.raises(ValueError, match="unknown TFDS dataset 'no_such_dataset_xyz'"):
        open_source(config)


def test_fast_record_decoding_matches_tfds_decoding(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    captions = ["", "ünïcödé ☃ caption", "x" * 300]
    for i, caption in enumerate(captions):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / f"{i}.png")
        (root / f"{i}.txt").write_text(caption)
    dataset_dir = builders.prepare(builders.GigaganCaptionFolder(src=str(root), resolution=16,
                                                                 data_dir=str(tmp_path / "out")))
    import tensorflow_datasets as tfds
    reference = tfds.builder_from_directory(dataset_dir).as_data_source(split="train")
    source = open_source(make_config(dataset_dir, tmp_path / "cache"))
    assert source._fast  # the schema our builders write takes the direct path
    batch = source.get_batch(np.arange(3))
    for i in range(3):
        np.testing.assert_array_equal(batch["image"][i], reference[i]["image"])
        assert batch["caption"][i] == reference[i]["caption"].decode()
        assert batch["label"][i] == reference[i]["label"] == -1
    assert sorted(batch["caption"]) == sorted(captions)


def test_prepare_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        prepare.main(["--help"])
    text = capsys.readouterr().out
    for option in ("--kind", "--src", "--out", "--resolution", "--num-examples", "--seed",
                   "--emoji-sets", "--emoji-version", "--name", "folder", "shapes", "emoji", "tfds"):
        assert option in text
