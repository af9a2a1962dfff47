"""Caption folders: automatic cached preparation, bad data skipped and reported, clear errors."""

import json
import logging
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from gigagan_jax.config import default_config
from gigagan_jax.data import InputPipeline, builders, open_source, prepare
from gigagan_jax.data.shapes import SHAPES, ShapesSource, parse_caption

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


def test_shapes_folder_writes_a_caption_folder_with_known_attributes_and_prepares_it(tmp_path, capsys):
    out = tmp_path / "prepared"
    assert prepare.main(["--kind", "shapes-folder", "--out", str(out), "--num-examples", "60",
                         "--resolution", "16"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote 60 shape images with captions into {out / 'raw'}" in printed
    assert "prepared 60 examples (0 skipped) at 16 px" in printed
    records = [json.loads(line) for line in (out / "raw" / "captions.jsonl").read_text().splitlines()]
    reference = ShapesSource(60, 16).get_batch(np.arange(60))
    assert [r["caption"] for r in records] == reference["caption"]
    np.testing.assert_array_equal(np.asarray(Image.open(out / "raw" / records[7]["file"])), reference["image"][7])
    assert len({parse_caption(r["caption"])["position"] for r in records}) == 5  # every position
    starts = {r["caption"].split()[0] for r in records}  # templates begin "a"/"an", colours, "there", ...
    assert len(starts) >= 4
    source = open_source(make_config(out, tmp_path / "unused-cache"))
    assert len(source) == 60 and sorted(source.get_batch(np.arange(60))["caption"]) == sorted(reference["caption"])
    # Run again into the same folder: refused, nothing overwritten.
    assert prepare.main(["--kind", "shapes-folder", "--out", str(out), "--num-examples", "8",
                         "--resolution", "16"]) != 0
    assert "exists already" in capsys.readouterr().err
    assert len((out / "raw" / "captions.jsonl").read_text().splitlines()) == 60

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


@pytest.mark.parametrize("image_format", ["raw", "auto"])
def test_fast_record_decoding_matches_tfds_decoding(tmp_path, image_format):
    from gigagan_jax.data import codec
    from gigagan_jax.pretrained.tokenize import ClipTokenizer

    root = tmp_path / "raw"
    root.mkdir()
    captions = ["", "ünïcödé ☃ caption", " ".join(["x"] * 300)]  # the last is longer than CLIP's 77 tokens
    for i, caption in enumerate(captions):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / f"{i}.png")
        (root / f"{i}.txt").write_text(caption)
    dataset_dir = builders.prepare(builders.GigaganCaptionFolder(src=str(root), resolution=16, image_format=image_format,
                                                                 data_dir=str(tmp_path / "out")))
    reference = tfds.builder_from_directory(dataset_dir).as_data_source(split="train")
    source = open_source(make_config(dataset_dir, tmp_path / "cache"))
    assert source._fast and source.stored_tokens  # the schema our builders write takes the direct path
    batch = source.get_batch(np.arange(3))
    for i in range(3):
        image = reference[i]["image"]
        if image_format == "auto":  # a 16 px PNG is kept as its own bytes
            assert image == (root / f"{captions.index(batch['caption'][i])}.png").read_bytes()
            image = codec.decode_image(image)
        np.testing.assert_array_equal(batch["image"][i], image)
        assert batch["caption"][i] == reference[i]["caption"].decode()
        assert batch["label"][i] == reference[i]["label"] == -1
    assert sorted(batch["caption"]) == sorted(captions)
    for length in (77, 8):  # stored tokens give what the tokenizer gives, at 77 and cut shorter
        np.testing.assert_array_equal(codec.fit_context(batch["tokens"], length),
                                      ClipTokenizer(length)(batch["caption"]))


def test_prepare_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        prepare.main(["--help"])
    text = capsys.readouterr().out
    for option in ("--kind", "--src", "--out", "--resolution", "--num-examples", "--seed",
                   "--emoji-sets", "--emoji-version", "--name", "folder", "shapes", "emoji", "tfds"):
        assert option in text


@pytest.mark.parametrize("entry", ["../secret.png", "/etc/hostname", "sub/../../secret.png", "link/secret.png"])
def test_files_outside_the_folder_are_refused_with_the_line(tmp_path, entry):
    Image.new("RGB", (8, 8)).save(tmp_path / "secret.png")
    root = tmp_path / "raw"
    write_folder(root, corrupt=False, missing=False)
    os.symlink(tmp_path, root / "link")  # a symlink inside the folder pointing out of it
    with open(root / "captions.jsonl", "a") as f:
        f.write(json.dumps({"file": entry, "caption": "x"}) + "\n")
    with pytest.raises(ValueError, match=rf"captions.jsonl:7: '{entry}' is outside the data folder"):
        open_source(make_config(root, tmp_path / "cache"))


def test_sidecar_symlink_out_of_the_folder_is_refused(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "secret.png")
    root = tmp_path / "raw"
    root.mkdir()
    os.symlink(tmp_path / "secret.png", root / "a.png")
    (root / "a.txt").write_text("a")
    with pytest.raises(ValueError, match=r"a.png: 'a.png' is outside the data folder"):
        open_source(make_config(root, tmp_path / "cache"))


def test_utf8_byte_order_mark_is_accepted_and_other_encodings_refused(tmp_path):
    root = tmp_path / "raw"
    write_folder(root, corrupt=False, missing=False)
    text = (root / "captions.jsonl").read_text()
    (root / "captions.jsonl").write_bytes(b"\xef\xbb\xbf" + text.encode())
    source = open_source(make_config(root, tmp_path / "cache"))
    assert sorted(source[i]["caption"] for i in range(6)) == [f"picture {i}" for i in range(6)]
    lines = text.splitlines()
    lines[2] = lines[2].replace("picture 2", "caf\xe9")
    (root / "captions.jsonl").write_bytes("\n".join(lines).encode("latin-1"))
    with pytest.raises(ValueError, match=r"captions.jsonl:3: not UTF-8 text"):
        open_source(make_config(root, tmp_path / "cache"))

    sidecars = tmp_path / "sidecars"
    sidecars.mkdir()
    Image.new("RGB", (8, 8)).save(sidecars / "a.png")
    (sidecars / "a.txt").write_bytes("\ufeffa caf\xe9".encode())
    assert open_source(make_config(sidecars, tmp_path / "cache", resolution=8))[0]["caption"] == "a caf\xe9"
    (sidecars / "a.txt").write_bytes("a caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match=r"a.txt: caption is not UTF-8 text"):
        open_source(make_config(sidecars, tmp_path / "cache", resolution=8))


def test_prepared_set_smaller_than_the_model_is_refused_larger_is_downscaled(tmp_path, caplog):
    write_folder(tmp_path / "raw")
    out = tmp_path / "prepared"
    prepare.main(["--kind", "folder", "--src", str(tmp_path / "raw"), "--out", str(out), "--resolution", "16"])
    with pytest.raises(ValueError, match=r"prepared at 16 px, below config.model.resolution=64.*--resolution 64"):
        open_source(make_config(out, tmp_path / "cache", resolution=64))
    with caplog.at_level(logging.WARNING):
        source = open_source(make_config(out, tmp_path / "cache", resolution=8))
    assert source[0]["image"].shape == (8, 8, 3)
    assert "prepared at 16 px; images are downscaled to config.model.resolution=8" in caplog.text


class VariableSizeImages(tfds.core.GeneratorBasedBuilder):
    """A catalogue-style dataset: 16-bit images of several sizes and ClassLabel labels."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        image = tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint16, encoding=tfds.features.Encoding.ZLIB)
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
            {"image": image, "label": tfds.features.ClassLabel(names=["red_fox", "cat"])}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i, (h, w) in enumerate([(4, 6), (20, 20), (3, 3)]):
            yield i, {"image": np.full((h, w, 3), 257 * 10 * (i + 1), np.uint16), "label": i % 2}


def test_catalogue_images_are_decoded_and_upscaling_is_warned_once(tmp_path, caplog):
    VariableSizeImages(data_dir=str(tmp_path)).download_and_prepare(file_format="array_record")
    config = make_config(tmp_path, tmp_path / "cache", resolution=8, kind="tfds", name="variable_size_images")
    with caplog.at_level(logging.WARNING):
        source = open_source(config)
        examples = [source[i] for i in range(3)]
    assert [e["caption"] for e in examples] == ["a photo of a red fox", "a photo of a cat", "a photo of a red fox"]
    for i, e in enumerate(examples):  # 16-bit values scaled, not wrapped modulo 256
        assert e["image"].shape == (8, 8, 3) and np.all(e["image"] == 10 * (i + 1))
    assert caplog.text.count("upscaled") == 1 and "smaller than config.model.resolution=8 (first: 4x6)" in caplog.text


def test_only_fixed_size_byte_images_take_the_raw_record_path():
    """The fast path reshapes raw bytes to the feature's shape: a variable size must go through TFDS."""
    import tensorflow_datasets as tfds

    from gigagan_jax.data.sources import _is_ours

    def features(shape):
        return tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=shape, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES),
            "caption": tfds.features.Text(), "label": tfds.features.Tensor(shape=(), dtype=np.int32)})

    assert _is_ours(features((16, 16, 3)))
    assert not _is_ours(features((None, None, 3)))


def test_preparing_again_into_the_same_out_with_other_settings_is_refused(tmp_path, capsys):
    from gigagan_jax.data import prepare

    out = str(tmp_path / "out")
    args = ["--kind", "shapes", "--out", out, "--num-examples", "40", "--resolution", "8"]
    assert prepare.main(args) == 0
    assert prepare.main(args) == 0  # the same recipe: reused
    assert "prepared 40 examples" in capsys.readouterr().out
    assert prepare.main(args[:-1] + ["16"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {out}") and "resolution=8 (now 16)" in err[0], err
    assert prepare.main(["--kind", "shapes", "--out", out, "--num-examples", "50", "--resolution", "8"]) == 1
    assert "num_examples=40 (now 50)" in capsys.readouterr().err
