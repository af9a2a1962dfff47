"""img2dataset's output (WebDataset tar shards) prepares as it is, decoded by worker processes: every
good sample kept with its caption, bad samples and shards skipped with their reasons."""

import io
import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from gigagan_jax.data import builders, imageops, webdataset
from test_data_coco import prepare_without_tensorflow


def add(tar, name, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def encoded(rng, size, fmt):
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size + (3,), np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def write_shards(root):
    """Two shards as img2dataset writes them: jpg/png/webp of odd sizes, captions in .txt or only in
    .json; one corrupt image, one image without a caption, one failed download (json only); plus a
    third 'shard' that is not a tar. Returns {caption: image bytes} of the good samples."""
    rng = np.random.default_rng(0)
    good = {}
    root.mkdir()
    with tarfile.open(root / "00000.tar", "w") as tar:
        for key, size, fmt, ext in (("000000000", (30, 20), "JPEG", "jpg"), ("000000001", (17, 40), "PNG", "png"),
                                    ("000000002", (64, 64), "WEBP", "webp")):
            image = encoded(rng, size, fmt)
            add(tar, f"{key}.{ext}", image)
            caption = f"sample {key}"
            if key == "000000001":  # caption only in the json
                add(tar, f"{key}.json", json.dumps({"caption": f"  {caption} ", "status": "success"}).encode())
            else:
                add(tar, f"{key}.txt", caption.encode())
                add(tar, f"{key}.json", json.dumps({"caption": "the .txt wins"}).encode())
            good[caption] = image
    with tarfile.open(root / "00001.tar", "w") as tar:
        add(tar, "000010000.jpg", b"\xff\xd8 not a jpeg")
        add(tar, "000010000.txt", b"corrupt")
        add(tar, "000010001.png", encoded(rng, (8, 8), "PNG"))  # no caption
        add(tar, "000010002.json", json.dumps({"status": "failed_to_download"}).encode())
        image = encoded(rng, (24, 24), "PNG")
        add(tar, "000010003.png", image)
        add(tar, "000010003.txt", "un café, s'il vous plaît".encode())
        good["un café, s'il vous plaît"] = image
    (root / "00002.tar").write_bytes(b"not a tar file")
    return good


def test_shards_prepare_with_workers_and_without_tensorflow(tmp_path):
    good = write_shards(tmp_path / "shards")
    out = tmp_path / "prepared"
    stdout, examples = prepare_without_tensorflow(
        ["--kind", "webdataset", "--src", str(tmp_path / "shards" / "{00000..00002}.tar"), "--out", str(out),
         "--resolution", "16", "--workers", "2", "--image-format", "png"], out)
    assert "prepared 4 examples (3 skipped) at 16 px" in stdout
    got = {example["caption"]: example["image"] for example in examples}
    assert sorted(got) == sorted(good)
    for caption, image in good.items():
        np.testing.assert_array_equal(got[caption], imageops.load_image(io.BytesIO(image), 16))
    (dataset_dir,) = [d for d, _, files in os.walk(out) if "dataset_info.json" in files]
    reasons = {name.rsplit("/", 1)[-1]: reason for name, reason in builders.read_skipped(dataset_dir)}
    assert reasons["00001.tar:000010000"].startswith("unreadable (UnidentifiedImageError")
    assert reasons["00001.tar:000010001"] == "no caption"
    assert reasons["00002.tar"].startswith("unreadable shard (ReadError")


def test_workers_decode_what_one_process_does(tmp_path):
    write_shards(tmp_path / "shards")
    shards = webdataset.expand(str(tmp_path / "shards"))  # a folder: its .tar files in name order
    assert [os.path.basename(p) for p in shards] == ["00000.tar", "00001.tar", "00002.tar"]
    runs = []
    for workers in (1, 2):
        skipped = []
        runs.append((list(webdataset.read_shards(shards, 16, "png", workers, skipped)), skipped))
    assert runs[0] == runs[1] and len(runs[0][0]) == 4


def test_shard_ranges_expand_as_written():
    assert webdataset.expand("s/{0008..0011}.tar") == ["s/0008.tar", "s/0009.tar", "s/0010.tar", "s/0011.tar"]
    assert webdataset.expand("s/{0..1}-{00..01}.tar") == ["s/0-00.tar", "s/0-01.tar", "s/1-00.tar", "s/1-01.tar"]
    assert webdataset.expand("one.tar") == ["one.tar"]
    with pytest.raises(ValueError, match="runs backwards"):
        webdataset.expand("s/{5..3}.tar")


def array_record_files(out):
    """Contents of the ArrayRecord files prepared under `out`, in name order."""
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(out) for f in files if ".array_record-" in f)
    assert paths
    return [open(p, "rb").read() for p in paths]


def test_a_folder_written_as_shards_prepares_to_the_same_bytes(tmp_path):
    from gigagan_jax.data import prepare
    from gigagan_jax.tools import folder_to_webdataset

    rng = np.random.default_rng(1)
    root = tmp_path / "folder"
    root.mkdir()
    lines = []
    for i, (size, fmt, ext) in enumerate([((16, 16), "PNG", "png"), ((20, 30), "JPEG", "jpg"), ((16, 16), "JPEG", "jpg"),
                                          ((40, 40), "WEBP", "webp"), ((16, 16), "PNG", "png")]):
        (root / f"{i}.{ext}").write_bytes(encoded(rng, size, fmt))
        lines += [{"file": f"{i}.{ext}", "caption": f"image {i}"}, {"file": f"{i}.{ext}", "caption": f"also {i}"}]
    (root / "bad.png").write_bytes(b"not a png")
    lines.append({"file": "bad.png", "caption": "corrupt"})
    lines.append({"file": "0.png", "caption": "image 0"})  # a repeated pair stays two examples
    (root / "captions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    assert folder_to_webdataset.main(["--src", str(root), "--out", str(tmp_path / "shards"), "--per-shard", "4"]) == 0
    shards = webdataset.expand(str(tmp_path / "shards"))
    assert len(shards) == 3  # 12 pairs, 4 per shard
    for fmt in ("auto", "jpeg"):
        common = ["--resolution", "16", "--image-format", fmt]
        assert prepare.main(["--kind", "folder", "--src", str(root), "--workers", "1" if fmt == "auto" else "2",
                             "--out", str(tmp_path / f"from_folder_{fmt}")] + common) == 0
        shards_args = ["--kind", "webdataset", "--src", str(tmp_path / "shards"), "--workers", "2",
                       "--out", str(tmp_path / f"from_shards_{fmt}")] + common
        if fmt == "auto":  # in another process: nothing in the bytes may depend on the process writing them
            prepare_without_tensorflow(shards_args, tmp_path / f"from_shards_{fmt}")
        else:
            assert prepare.main(shards_args) == 0
        from_folder = array_record_files(tmp_path / f"from_folder_{fmt}")
        assert from_folder == array_record_files(tmp_path / f"from_shards_{fmt}"), fmt
    assert from_folder != array_record_files(tmp_path / "from_folder_auto")  # the format is in the bytes
