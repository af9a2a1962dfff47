"""From downloads to a report: img2dataset shards and a COCO folder prepare, train and evaluate
through the command lines, and none of it imports tensorflow. Its own file so that the test
suite's workers (`--dist loadfile`) can run it beside test_cli.py."""

import json
import os

import numpy as np

from test_cli import ROOT, run

def test_web_shards_and_coco_as_downloaded_train_and_evaluate(tiny_clip, tmp_path):
    """The road from real downloads: img2dataset-style shards (sizes and formats mixed, a corrupt
    sample, one without a caption) prepare and train 2 steps; a COCO-layout folder prepares and is
    the evaluation set, with FID statistics saved from it. Training and evaluation never import
    tensorflow (preparing is checked in test_data_coco / test_data_webdataset)."""
    from test_data_coco import WITHOUT_TENSORFLOW, write_coco
    from test_data_webdataset import write_shards
    from test_eval_inception import torch_layout_state_dict

    guarded = ["-c", WITHOUT_TENSORFLOW]

    write_shards(tmp_path / "shards")
    code, out, err = run(["-m", "gigagan_jax.data.prepare"], "--kind", "webdataset", "--src", str(tmp_path / "shards"),
                         "--out", str(tmp_path / "web16"), "--resolution", "16", "--workers", "2")
    assert code == 0 and "prepared 4 examples (3 skipped) at 16 px" in out, err[-3000:]
    images, annotations, _ = write_coco(tmp_path / "coco")
    code, out, err = run(["-m", "gigagan_jax.data.prepare"], "--kind", "coco", "--images", str(images),
                         "--annotations", str(annotations), "--out", str(tmp_path / "coco16"), "--resolution", "16")
    assert code == 0 and "prepared 6 examples (2 skipped) at 16 px" in out, err[-3000:]

    workdir = str(tmp_path / "run")
    code, out, err = run(guarded, os.path.join(ROOT, "train.py"), "--config", "configs/tiny.py", "--workdir", workdir,
                         f"--config.clip.path={tiny_clip}", "--config.train.num_steps=2",
                         "--config.train.checkpoint_every=2", "--config.data.kind=folder",
                         f"--config.data.path={tmp_path / 'web16'}", "--config.data.num_workers=2")
    assert code == 0, err[-3000:]
    assert json.load(open(os.path.join(workdir, "summary.json")))["end_step"] == 2

    np.savez(tmp_path / "inception.npz", **torch_layout_state_dict())
    code, out, err = run(guarded, "gigagan_jax.eval", "--workdir", workdir, "--data", f"folder:{tmp_path / 'coco16'}",
                         "--num_images", "6", "--batch_size", "6", "--inception_path", str(tmp_path / "inception.npz"),
                         "--save_ref_stats", str(tmp_path / "coco16.npz"), "--out_dir", str(tmp_path / "eval"))
    assert code == 0, err[-3000:]
    report = json.load(open(tmp_path / "eval" / "report.json"))
    assert report["reals"].startswith(f"--data folder:{tmp_path / 'coco16'}: its first 6 of 6 examples")
    assert report["metrics"]["fid_clean"] > 0 and report["metrics"]["num_real"] == 6
    with np.load(tmp_path / "coco16.npz") as ref:
        assert int(ref["count"]) == 6 and ref["mu"].shape == (2048,)
