"""MS-COCO as downloaded (an image folder + captions JSON) prepares without TensorFlow: every caption
of every image kept, missing and corrupt images skipped and counted, malformed annotations named."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gigagan_jax.config import default_config
from gigagan_jax.data import coco, imageops, open_source
from gigagan_jax.tools import local_cluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# `python -c WITHOUT_TENSORFLOW SCRIPT.py|MODULE ARGS...` runs it as __main__ and exits 3 if it imported
# tensorflow (an import statement or importlib.import_module; a presence probe, importlib.util.find_spec
# as etils and transformers make, is no import, even when it runs while another module is being imported).
WITHOUT_TENSORFLOW = """
import os, runpy, sys, traceback
attempts = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        asker = traceback.extract_stack()[-3].name  # [-1] here, [-2] importlib's _find_spec, [-3] who asks
        if name.split(".")[0] == "tensorflow" and asker == "_find_and_load_unlocked":  # an import, not a probe
            attempts.append(name)
        return None
sys.meta_path.insert(0, Spy())
target, sys.argv = sys.argv[1], sys.argv[1:]
try:
    if target.endswith(".py"):
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
finally:
    if attempts:
        print(f"tensorflow was imported: {attempts}", file=sys.stderr, flush=True)
        os._exit(3)
"""


def prepare_without_tensorflow(argv: list[str], out) -> tuple[str, list[dict]]:
    """Run `python -m gigagan_jax.data.prepare ARGV` in a process that fails on a tensorflow import;
    (its stdout, every example of the dataset it wrote to `out`, read back as training reads it)."""
    proc = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, "gigagan_jax.data.prepare", *argv],
                          capture_output=True, text=True,
                          cwd=ROOT, env={**local_cluster.process_env(1), "PYTHONPATH": ROOT}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = default_config()
    config.model.resolution = 16
    config.data.kind, config.data.path = "folder", str(out)
    source = open_source(config)
    return proc.stdout, [source[i] for i in range(len(source))]


def write_coco(root, year="2014"):
    """val{year}/ with three good images (png, jpg, webp; odd sizes), one corrupt; the JSON also names a
    missing image. Captions carry COCO's stray whitespace."""
    images = root / f"val{year}"
    images.mkdir(parents=True)
    name = (lambda i: f"COCO_val2014_{i:012d}.jpg") if year == "2014" else (lambda i: f"{i:012d}.jpg")
    rng = np.random.default_rng(0)
    records, annotations = [], []
    for image_id, (size, fmt) in enumerate([((40, 30), "PNG"), ((17, 23), "JPEG"), ((64, 64), "WEBP")], start=1):
        Image.fromarray(rng.integers(0, 256, size + (3,), np.uint8)).save(images / name(image_id), format=fmt)
        records.append({"id": image_id, "file_name": name(image_id), "height": size[0], "width": size[1]})
    (images / name(4)).write_bytes(b"\xff\xd8 not a jpeg")
    records += [{"id": 4, "file_name": name(4)}, {"id": 5, "file_name": name(5)}]  # corrupt, missing
    captions = {1: ["A red  thing.\n", "Something red "], 2: ["two", "  three  ", "four"], 3: ["five"],
                4: ["corrupt"], 5: ["gone", "gone too"]}
    for image_id, texts in captions.items():
        for text in texts:
            annotations.append({"id": 100 + len(annotations), "image_id": image_id, "caption": text})
    path = root / f"captions_val{year}.json"
    path.write_text(json.dumps({"info": {}, "images": records, "annotations": annotations[::-1]}))
    return images, path, name


@pytest.mark.parametrize("year", ["2014", "2017"])
def test_coco_prepares_every_caption_without_tensorflow(tmp_path, year):
    images, annotations, name = write_coco(tmp_path, year)
    out = tmp_path / "prepared"
    stdout, examples = prepare_without_tensorflow(
        ["--kind", "coco", "--images", str(images), "--annotations", str(annotations), "--out", str(out),
         "--resolution", "16", "--image-format", "png"], out)  # lossless: the pixels compare exactly
    assert "prepared 6 examples (2 skipped) at 16 px" in stdout
    got = sorted((example["caption"], example["image"].tobytes()) for example in examples)
    expected = {"A red thing.": 1, "Something red": 1, "two": 2, "three": 2, "four": 2, "five": 3}
    assert [caption for caption, _ in got] == sorted(expected)  # whitespace collapsed, order-free
    for caption, pixels in got:
        assert pixels == imageops.load_image(str(images / name(expected[caption])), 16).tobytes(), caption


def test_malformed_annotations_are_named(tmp_path):
    images, annotations, _ = write_coco(tmp_path)
    data = json.loads(annotations.read_text())
    data["annotations"].append({"id": 999, "image_id": 77, "caption": "orphan"})
    annotations.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"annotations\[9\] names image_id 77, which 'images' does not list"):
        coco.scan(str(images), str(annotations))
    data["images"].append({"id": 6, "file_name": "../outside.jpg"})
    annotations.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="outside the data folder"):
        coco.scan(str(images), str(annotations))
    annotations.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="expected COCO captions JSON"):
        coco.scan(str(images), str(annotations))
    with pytest.raises(ValueError, match="no captioned images of .* is it the image folder of the same split"):
        coco.scan(str(tmp_path), str(write_coco(tmp_path / "other")[1]))
