"""The path layer (`gigagan_jax.workdir`): what a run writes works on a local folder and on a
bucket URL alike. The bucket is a fake `gs://` file system (etils.epath's mock backend, serving
gs://bucket from a temporary folder): any write that bypassed the layer (`open`, `os.*`) would
land in a local folder called `gs:` or fail, instead of in the bucket."""

import json
import os

import numpy as np
import pytest
from etils.epath import testing as epath_testing
from PIL import Image

from gigagan_jax.checkpoint import MANIFEST, CheckpointError, verify_manifest, write_manifest
from gigagan_jax.generate.grid import save_png
from gigagan_jax.workdir import (checkpoint_dir, exists, files_under, is_dir, is_url, join, make_dirs, open_file,
                                 sample_grid_path, summary_path, write_text)

BUCKET = "gs://bucket"


@pytest.fixture
def fake_bucket(tmp_path, monkeypatch):
    """gs://bucket/... served from tmp_path/bucket; returns (that folder, the list of calls)."""
    backing = tmp_path / "bucket"
    backing.mkdir()
    calls = []

    def local(path) -> str:
        path = os.fspath(path)
        assert path.startswith(BUCKET + "/") or path == BUCKET, f"non-bucket path reached the bucket: {path}"
        calls.append(path)
        return str(backing) + path[len(BUCKET):]

    def bucket(path: str) -> str:
        return BUCKET + path[len(str(backing)):]

    def one(fn):
        return lambda original, path, *args, **kwargs: original(local(path), *args, **kwargs)

    def two(original, src, dst, *args, **kwargs):
        return original(local(src), local(dst), *args, **kwargs)

    def glob(original, pattern):
        return [bucket(p) for p in original(local(pattern))]

    def walk(original, top, **kwargs):
        for root, dirs, files in original(local(top), **kwargs):
            yield bucket(root), dirs, files

    monkeypatch.chdir(tmp_path)  # a bypassing write would create tmp_path/gs:/...
    with epath_testing.mock_epath(open=one("open"), exists=one("exists"), isdir=one("isdir"),
                                  listdir=one("listdir"), makedirs=one("makedirs"), mkdir=one("mkdir"),
                                  remove=one("remove"), rmtree=one("rmtree"), stat=one("stat"),
                                  rename=two, replace=two, copy=two, glob=glob, walk=walk):
        yield backing, calls
    assert not os.path.exists(tmp_path / "gs:"), "a write bypassed the path layer"


@pytest.fixture(params=["local", "bucket"])
def workdir(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "run"), tmp_path / "run", None
    backing, calls = request.getfixturevalue("fake_bucket")
    return f"{BUCKET}/run", backing / "run", calls


def test_paths_keep_a_url_a_url():
    assert checkpoint_dir("gs://b/run") == "gs://b/run/checkpoints"
    assert sample_grid_path("gs://b/run", 7) == "gs://b/run/samples/step_0000007.png"
    assert summary_path("/tmp/run") == "/tmp/run/summary.json"
    assert is_url("gs://b/run") and not is_url("/tmp/run")


def test_a_run_writes_and_reads_its_files_through_the_layer(workdir):
    root, backing, calls = workdir
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    save_png(image, sample_grid_path(root, 3))
    write_text(summary_path(root), json.dumps({"end_step": 3}))
    write_text(summary_path(root), json.dumps({"end_step": 4}))  # replaced whole
    assert files_under(root) == ["samples/step_0000003.png", "summary.json"]
    with open_file(sample_grid_path(root, 3), "rb") as f:
        np.testing.assert_array_equal(np.asarray(Image.open(f)), image)
    with open_file(summary_path(root)) as f:
        assert json.load(f) == {"end_step": 4}
    # ... and the bytes are where the layer says: in the bucket's backing folder.
    assert json.loads((backing / "summary.json").read_text()) == {"end_step": 4}
    assert is_dir(join(root, "samples")) and not exists(join(root, "nothing"))
    if calls is not None:
        assert any(c.endswith("summary.json") for c in calls)


def test_checkpoint_manifest_is_written_and_verified_through_the_layer(workdir):
    root, backing, _ = workdir
    step_dir = join(checkpoint_dir(root), "10")
    make_dirs(join(step_dir, "state"))
    for name, payload in (("state/a.bin", b"\x00" * 100), ("data/position.json", b'{"batch": 10}')):
        make_dirs(join(step_dir, os.path.dirname(name)))
        with open_file(join(step_dir, name), "wb") as f:
            f.write(payload)
    write_manifest(step_dir)
    assert sorted(json.loads((backing / "checkpoints/10" / MANIFEST).read_text())) == ["data/position.json",
                                                                                        "state/a.bin"]
    verify_manifest(step_dir)
    with open(backing / "checkpoints/10/state/a.bin", "r+b") as f:  # damage the stored bytes
        f.write(b"\x01")
    with pytest.raises(CheckpointError, match=r"checkpoints/10/state/a.bin is corrupt"):
        verify_manifest(step_dir)
