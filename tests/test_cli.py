"""train.py and sample.py as a user runs them: a real run on one CPU device (a user's CPU
machine; sharded runs are tests/test_train.py's and tests/test_multihost.py's), then clean failures.

The runs are configs/tiny.py and configs/upsampler_tiny.py at tests/small_models.py's 8 px (and
8 -> 16 px): what these tests check is the commands', not a level's."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from forked_commands import CommandForks
from small_models import CLI_ARGS, RESOLUTION, UPSAMPLER_CLI_ARGS, UPSAMPLER_RESOLUTION

from gigagan_jax.tools import local_cluster
from gigagan_jax.train.metrics import read_images, read_texts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command_env(devices: int) -> dict:
    return {**local_cluster.process_env(devices), "PYTHONPATH": ROOT, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


FORK_SERVERS: dict[int, CommandForks] = {}  # per simulated device count


@pytest.fixture(scope="module", autouse=True)
def fork_servers():
    """Commands run as forks of a process that imported JAX once (forked_commands, which
    test_bad_input checks against real interpreters): this file alone, cold, 307 -> 245 s on a
    2-core EPYC. The SIGTERM and no-network runs keep processes of their own."""
    yield FORK_SERVERS
    for server in FORK_SERVERS.values():
        server.close()
    FORK_SERVERS.clear()


def run(script, *args, timeout=900, devices=1, cwd=ROOT):
    """`python script args` (a file under the repository, or ["-m", module] / ["-c", code])."""
    command = list(script) if isinstance(script, list) else [os.path.join(ROOT, script)]
    if devices not in FORK_SERVERS:
        FORK_SERVERS[devices] = CommandForks(ROOT, command_env(devices))
    proc = FORK_SERVERS[devices].run([*command, *args], timeout=timeout, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


def tiny_args(workdir, clip, *extra):
    return ["--config", "configs/tiny.py", "--workdir", workdir, f"--config.clip.path={clip}",
            "--config.train.num_steps=3", "--config.train.checkpoint_every=3", "--config.train.log_every=1",
            *CLI_ARGS, *extra]


@pytest.fixture(scope="module")
def trained(tiny_clip, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("cli") / "run")
    code, out, err = run("train.py", *tiny_args(workdir, tiny_clip, "--config.train.wandb_project=gigagan-test"))
    assert code == 0, err[-3000:]
    return workdir


def test_train_writes_a_run_that_sample_reads(trained, tmp_path):
    summary = json.load(open(os.path.join(trained, "summary.json")))
    assert summary["end_step"] == 3 and summary["checkpoints"] == [3]
    # TensorBoard holds the sample grid as an image and the resolved config as text, beside the curves.
    log_dir = os.path.join(trained, "tensorboard")
    (step, grid), = read_images(log_dir)["samples"]
    assert step == 3
    np.testing.assert_array_equal(grid[..., :3], np.asarray(Image.open(summary["last_samples"]).convert("RGB")))
    (step, text), = read_texts(log_dir)["config/text_summary"]
    assert step == 0 and json.loads(text)["train"]["num_steps"] == 3
    # ... and W&B (offline here) mirrors both, in the run named by WORKDIR/wandb_id.txt.
    run_id = open(os.path.join(trained, "wandb_id.txt")).read().strip()
    (wandb_dir,) = glob.glob(os.path.join(trained, "wandb", f"offline-run-*-{run_id}"))
    assert b"g/loss" in open(os.path.join(wandb_dir, f"run-{run_id}.wandb"), "rb").read()
    (image,) = glob.glob(os.path.join(wandb_dir, "files", "media", "images", "samples_*.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(image).convert("RGB")), grid[..., :3])
    grids = []
    for name in ("a.png", "b.png"):
        out = str(tmp_path / name)
        code, stdout, err = run("sample.py", "--workdir", trained, "--prompt", "a red circle",
                                "--prompt", "", "--n", "3", "--seed", "7", "--out", out)
        assert code == 0, err[-3000:]
        grids.append(np.asarray(Image.open(out)))
    assert grids[0].shape == _grid_shape(2, 3)  # 2 prompts x 3 seeds
    np.testing.assert_array_equal(grids[0], grids[1])  # same seed -> identical bytes


def test_corrupt_checkpoint_is_refused_by_sample(trained, tmp_path):
    """Asked for by number, a corrupt step is refused by name; by default it is skipped with a warning
    naming the file, and with no sound step left that is the one error line. (Resuming sets it
    aside: tests/test_train.py.)"""
    workdir = str(tmp_path / "corrupt")
    shutil.copytree(trained, workdir)
    step_dir = os.path.join(workdir, "checkpoints", "3")
    victim = max((os.path.join(r, f) for r, _, fs in os.walk(step_dir) for f in fs if not f.startswith("manifest")),
                 key=os.path.getsize)
    with open(victim, "r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0x01]))
    for step, expected in ((["--step", "3"], f"error: checkpoint file {victim} is corrupt (sha256 mismatch)"),
                           ([], f"error: no verified checkpoint in {workdir}/checkpoints (steps [3] were skipped; "
                                "the warnings above say why)")):
        code, out, err = run("sample.py", "--workdir", workdir, *step, "--prompt", "x",
                             "--out", str(tmp_path / "x.png"))
        assert code != 0 and err.strip().splitlines()[-1] == expected, err
        assert "Traceback" not in err
    assert f"checkpoint file {victim} is corrupt" in err  # the warning the error points at


@pytest.mark.parametrize("case", ["missing_dir", "empty_captions", "indivisible_batch", "unknown_key", "no_cluster",
                                  "cluster_without_distributed"])
def test_bad_input_is_one_line_before_compiling(case, tiny_clip, tmp_path):
    workdir = str(tmp_path / "w")
    extra, expected = {
        "missing_dir": (["--config.data.kind=folder", f"--config.data.path={tmp_path}/nope"], f"{tmp_path}/nope"),
        "empty_captions": (["--config.data.kind=folder", f"--config.data.path={tmp_path}/empty"], "empty"),
        "indivisible_batch": (["--config.train.batch_size=12"], "batch_size=12 is not divisible"),
        "unknown_key": (["--config.train.nmu_steps=3"], "nmu_steps"),
        "no_cluster": (["--config.train.distributed=True"], "config.train.distributed=True but JAX found no cluster"),
        "cluster_without_distributed": (["--config.train.num_processes=2"], "set config.train.distributed=True"),
    }[case]
    os.makedirs(tmp_path / "empty")
    open(tmp_path / "empty" / "captions.jsonl", "w").close()
    code, out, err = run("train.py", *tiny_args(workdir, tiny_clip, *extra), devices=8)  # 12 rows over 8 devices
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert code != 0 and len(lines) == 1 and expected in lines[0], err[-2000:]
    assert "Traceback" not in err
    assert not os.path.exists(os.path.join(workdir, "checkpoints", "0"))


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tiny_clip, tmp_path):
    workdir = str(tmp_path / "term")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"),
                             *tiny_args(workdir, tiny_clip, "--config.train.num_steps=100000",
                                        "--config.train.checkpoint_every=2")],
                            cwd=ROOT, env=local_cluster.process_env(1), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first = os.path.join(workdir, "checkpoints", "2")
    deadline = time.time() + 600
    while not os.path.isdir(first) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)  # an impatient second signal, while the final save is being written
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    stopped = int(out.split("stopped by signal at step ")[1].split(";")[0])
    summary = json.load(open(os.path.join(workdir, "summary.json")))
    assert summary["interrupted"] and summary["end_step"] == stopped >= 2
    assert os.path.exists(os.path.join(workdir, "checkpoints", str(stopped), "manifest.sha256.json"))


def _grid_shape(rows, cols, size=RESOLUTION):
    """[H, W, 3] of a grid of rows x cols images of `size` px with 1 px gaps."""
    return rows * (size + 1) - 1, cols * (size + 1) - 1, 3


def _tiles(path, rows, cols, size=RESOLUTION):
    grid = np.asarray(Image.open(path))
    return [[grid[r * (size + 1):r * (size + 1) + size, c * (size + 1):c * (size + 1) + size] for c in range(cols)]
            for r in range(rows)]


def test_sample_modes_files_and_prompt_edge_cases(trained, tmp_path):
    prompts = tmp_path / "prompts.txt"
    # A BOM (Windows editors) is dropped and blank lines skipped; an explicit empty prompt stays.
    prompts.write_text('\ufeffa red circle\n\n{"prompt": ""}\n  \n' + "word " * 300 + "\n\n", encoding="utf-8")
    code, out, err = run("sample.py", "--workdir", trained, "--prompts_file", str(prompts), "--n", "2",
                         "--out", str(tmp_path / "g.png"), "--outdir", str(tmp_path / "imgs"))
    assert code == 0, err[-3000:]
    assert "truncated" in err  # the 300-word prompt is cut to 77 tokens with a warning
    records = [json.loads(line) for line in open(tmp_path / "imgs" / "prompts.jsonl")]
    assert [(r["prompt"][:12], r["seed"], r["file"]) for r in records] == [
        ("a red circle", 0, "p00-seed0000.png"), ("a red circle", 1, "p00-seed0001.png"), ("", 0, "p01-seed0000.png"),
        ("", 1, "p01-seed0001.png"), ("word word wo", 0, "p02-seed0000.png"), ("word word wo", 1, "p02-seed0001.png")]
    assert all(os.path.exists(tmp_path / "imgs" / r["file"]) for r in records)
    grid = _tiles(tmp_path / "g.png", 3, 2)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "imgs" / records[3]["file"])), grid[1][1])

    # Style mixing a seed with itself reproduces that seed's image exactly.
    code, out, err = run("sample.py", "--workdir", trained, "--mode", "style_mix", "--prompt", "a red circle",
                         "--seed", "3", "--seed2", "3", "--crossover", "1", "--out", str(tmp_path / "mix.png"))
    assert code == 0, err[-3000:]
    coarse, fine, mixed = _tiles(tmp_path / "mix.png", 1, 3)[0]
    np.testing.assert_array_equal(mixed, coarse)
    np.testing.assert_array_equal(fine, coarse)

    code, out, err = run("sample.py", "--workdir", trained, "--mode", "interpolate", "--prompt", "a red circle",
                         "--prompt", "a blue square", "--frames", "5", "--out", str(tmp_path / "strip.png"),
                         "--gif", str(tmp_path / "anim.gif"))
    assert code == 0, err[-3000:]
    assert Image.open(tmp_path / "strip.png").size[::-1] == _grid_shape(1, 5)[:2]
    assert Image.open(tmp_path / "anim.gif").n_frames == 5

    code, out, err = run("sample.py", "--workdir", trained, "--prompts_file", str(tmp_path / "nope.txt"))
    assert code != 0 and err.strip().splitlines()[-1] == f"error: prompts file {tmp_path / 'nope.txt'} does not exist"
    code, out, err = run("sample.py", "--workdir", trained, "--prompt", "x", "--class_id", "0")  # before compiling
    assert code != 0 and err.strip().splitlines()[-1] == (f"error: --class_id is for class-conditional models; "
                                                          f"{trained} is conditioned on 'text'"), err[-2000:]


def test_prompt_mix_mode(trained, tmp_path):
    """[first prompt, second prompt, mix]; with every level from the first prompt the mix is
    that prompt's plain sample."""
    levels = int(np.log2(RESOLUTION)) - 1  # 4 px, 8 px, ... RESOLUTION
    code, out, err = run("sample.py", "--workdir", trained, "--mode", "prompt_mix", "--prompt", "a red circle",
                         "--prompt", "a blue square", "--seed", "3", "--crossover", str(levels),
                         "--out", str(tmp_path / "pmix.png"))
    assert code == 0, err[-3000:]
    first, _, mixed = _tiles(tmp_path / "pmix.png", 1, 3)[0]
    np.testing.assert_array_equal(mixed, first)
    code, out, err = run("sample.py", "--workdir", trained, "--prompt", "a red circle", "--n", "1", "--seed", "3",
                         "--out", str(tmp_path / "red.png"))
    assert code == 0, err[-3000:]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "red.png")), first)
    for args, message in ((["--prompt", "a"], "--mode prompt_mix needs exactly two prompts"),
                          (["--prompt", "a", "--prompt", "b", "--crossover", str(levels + 1)],
                           f"crossover must be a level in [0, {levels}], got {levels + 1}")):
        code, out, err = run("sample.py", "--workdir", trained, "--mode", "prompt_mix", *args,
                             "--out", str(tmp_path / "bad.png"))
        assert code != 0 and err.strip().splitlines()[-1].startswith(f"error: {message}"), err[-2000:]


def readme_snippet(marker: str) -> str:
    """The fenced code block of README.md between `<!-- marker -->` and `<!-- /marker -->`."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = text.split(f"<!-- {marker} -->")[1].split(f"<!-- /{marker} -->")[0]
    return block.split("```python\n")[1].split("```")[0]


def test_export_samples_what_its_workdir_did_without_it(trained, tiny_clip, tmp_path):
    """Export a run, delete the workdir and the CLIP it named: `sample.py --model` reproduces the
    workdir's images byte for byte on 1 and on 8 devices, and so does README's GigaGANPipeline
    snippet; a flipped byte in the export is refused by file name."""
    workdir, clip, model = tmp_path / "run", tmp_path / "clip", tmp_path / "model"
    shutil.copytree(trained, workdir)
    shutil.copytree(tiny_clip, clip)  # the run names tiny_clip; --clip_path reads this copy (sha256 checked)
    prompt = "a red ring in the center on a black background"  # README's snippet draws it with seed 0, psi 0.7
    args = ["--prompt", prompt, "--prompt", "", "--seeds", "0-1,9", "--truncation", "0.7"]
    for devices in (1, 8):
        code, out, err = run("sample.py", "--workdir", str(workdir), "--clip_path", str(clip), *args,
                             "--outdir", str(tmp_path / f"ref{devices}"), devices=devices)
        assert code == 0, err[-3000:]
    code, out, err = run(["-m", "gigagan_jax.export"], "--workdir", str(workdir), "--clip_path", str(clip),
                         "--out", str(model))
    assert code == 0, err[-3000:]
    assert f"exported step 3 of {workdir} to {model}" in out
    assert json.load(open(model / "gigagan.json"))["images_seen"] == 3 * 8  # configs/tiny.py: batch 8
    # Uploading needs the network: without it the export is kept and the failure is one line.
    proc = subprocess.run([sys.executable, "-m", "gigagan_jax.export", "--workdir", str(workdir), "--clip_path",
                           str(clip), "--out", str(tmp_path / "model2"), "--push_to_hub", "nobody/none"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900,
                          env={**local_cluster.process_env(1), "PYTHONPATH": ROOT, "HF_HUB_OFFLINE": "1"})
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith("error: --push_to_hub nobody/none failed ("), proc.stderr[-2000:]
    assert f"the folder {tmp_path / 'model2'} is written" in last and (tmp_path / "model2" / "gigagan.json").exists()
    shutil.rmtree(workdir)
    shutil.rmtree(clip)

    for devices in (1, 8):
        code, out, err = run("sample.py", "--model", str(model), *args, "--outdir", str(tmp_path / f"got{devices}"),
                             devices=devices)
        assert code == 0, err[-3000:]
        ref, got = tmp_path / f"ref{devices}", tmp_path / f"got{devices}"
        names = sorted(os.listdir(ref))
        assert names == sorted(os.listdir(got)) and "p01-seed0009.png" in names
        for name in names:
            assert (ref / name).read_bytes() == (got / name).read_bytes(), (devices, name)

    snippet_dir = tmp_path / "snippet"
    snippet_dir.mkdir()
    code, out, err = run(["-c", readme_snippet("pipeline-snippet").replace('"models/demo"', repr(str(model)))],
                         devices=8, cwd=str(snippet_dir))
    assert code == 0, err[-3000:]
    np.testing.assert_array_equal(np.asarray(Image.open(snippet_dir / "red_ring_seed0.png")),
                                  np.asarray(Image.open(tmp_path / "ref8" / "p00-seed0000.png")))

    weights = model / "g_ema.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    code, out, err = run("sample.py", "--model", str(model), "--prompt", "x")
    assert code != 0
    assert err.strip().splitlines()[-1] == f"error: checkpoint file {weights} is corrupt (sha256 mismatch)"


@pytest.fixture(scope="module")
def trained_upsampler(tiny_clip, tmp_path_factory):
    """configs/upsampler_tiny.py at 8 -> 16 px for 3 steps on the same tiny CLIP as `trained`."""
    workdir = str(tmp_path_factory.mktemp("cli_up") / "run")
    code, out, err = run("train.py", "--config", "configs/upsampler_tiny.py", "--workdir", workdir,
                         f"--config.clip.path={tiny_clip}", "--config.train.num_steps=3",
                         "--config.train.checkpoint_every=3", "--config.train.log_every=1", *UPSAMPLER_CLI_ARGS)
    assert code == 0, err[-3000:]
    assert "upsampler perceptual loss: fallback" in out
    assert os.path.exists(os.path.join(workdir, "samples", "step_0000003.png"))
    return workdir


def test_base_then_upsampler_chain_is_deterministic(trained, trained_upsampler, tmp_path):
    """The chain gives the same bytes twice: from the two workdirs, then from their exports."""
    for workdir, model in ((trained, "base"), (trained_upsampler, "up")):
        code, out, err = run(["-m", "gigagan_jax.export"], "--workdir", workdir, "--out", str(tmp_path / model))
        assert code == 0, err[-3000:]
    outs = []
    for name, models in (("a.png", ["--workdir", trained, "--upsampler_workdir", trained_upsampler]),
                         ("b.png", ["--model", str(tmp_path / "base"), "--upsampler_workdir", str(tmp_path / "up")])):
        code, out, err = run("sample.py", *models, "--prompt", "a red circle", "--prompt", "a blue square", "--n", "2",
                             "--seed", "5", "--out", str(tmp_path / name), "--outdir", str(tmp_path / name[:1]))
        assert code == 0, err[-3000:]
        assert "upsampled by step 3" in out
        outs.append(np.asarray(Image.open(tmp_path / name)))
    np.testing.assert_array_equal(outs[0], outs[1])
    up = UPSAMPLER_RESOLUTION
    assert outs[0].shape == _grid_shape(2, 2, up)  # 2 prompts x 2 seeds
    assert np.asarray(Image.open(tmp_path / "a" / "p01-seed0006.png")).shape == (up, up, 3)  # 2nd prompt, seed 6

    code, out, err = run("sample.py", "--workdir", trained, "--upsampler_workdir", trained, "--prompt", "a",
                         "--out", str(tmp_path / "bad.png"))
    assert code != 0 and err.strip().splitlines()[-1] == "error: --upsampler_workdir needs --mode grid and an upsampler run"


def test_upsample_images_folder(trained_upsampler, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, size in enumerate((8, 40, 23)):  # any size: centre-cropped and resized to the input's 8 px
        Image.fromarray(rng.integers(0, 256, (size, size + 3 * i, 3), np.uint8)).save(folder / f"im{i}.png")
    (folder / "notes.txt").write_text("not an image")
    code, out, err = run("sample.py", "--workdir", trained_upsampler, "--upsample_images", str(folder),
                         "--prompt", "a red circle", "--out", str(tmp_path / "pairs.png"), "--outdir",
                         str(tmp_path / "up"))
    assert code == 0, err[-3000:]
    up = UPSAMPLER_RESOLUTION
    assert np.asarray(Image.open(tmp_path / "pairs.png")).shape == _grid_shape(3, 2, up)
    records = [json.loads(line) for line in open(tmp_path / "up" / "prompts.jsonl")]
    assert [r["source"] for r in records] == ["im0.png", "im1.png", "im2.png"]
    assert all(np.asarray(Image.open(tmp_path / "up" / r["file"])).shape == (up, up, 3) for r in records)

    code, out, err = run("sample.py", "--workdir", trained_upsampler, "--prompt", "a red circle")
    assert code != 0 and err.strip().splitlines()[-1].startswith(
        f"error: {trained_upsampler} is an upsampler: give it as --upsampler_workdir")
    code, out, err = run("sample.py", "--workdir", trained_upsampler, "--upsample_images", str(tmp_path / "none"))
    assert code != 0 and err.strip().splitlines()[-1] == f"error: --upsample_images folder {tmp_path / 'none'} does not exist"


@pytest.mark.slow
def test_eval_of_a_class_conditional_run(tmp_path):
    """`python -m gigagan_jax.eval` on a class-conditional run: FID with (random) Inception
    weights through the .npz loader, sampled per held-out class label, no CLIP score."""
    from test_eval_inception import torch_layout_state_dict

    workdir = str(tmp_path / "run")
    code, out, err = run("train.py", "--config", "configs/tiny.py", "--workdir", workdir,
                         "--config.model.conditioning=class", "--config.model.num_classes=48",
                         "--config.model.g.cross_attn_resolutions=()", "--config.train.num_steps=2",
                         "--config.train.checkpoint_every=2")
    assert code == 0, err[-3000:]
    np.savez(tmp_path / "inception.npz", **torch_layout_state_dict())
    proc = subprocess.run([sys.executable, "-m", "gigagan_jax.eval", "--workdir", workdir, "--num_images", "16",
                           "--batch_size", "8", "--inception_path", str(tmp_path / "inception.npz")],
                          cwd=ROOT, env=local_cluster.process_env(1), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.load(open(os.path.join(workdir, "eval", "step_2", "report.json")))
    assert report["metrics"]["fid_clean"] > 0 and not any(m.startswith("clip_score") for m in report["metrics"])
    assert report["noise_mode"] == "random"  # the metrics measure G with the noise it was trained with


@pytest.mark.slow  # evaluate() is tested in-process; test_download_to_eval.py runs eval --data in the default suite
def test_eval_reads_a_data_set_and_reference_statistics(trained, tmp_path):
    """`python -m gigagan_jax.eval --data folder:DIR` reads its real images and prompts from a
    caption folder; statistics it saves with --save_ref_stats give the same FID back through
    --ref_stats; without --data the report says the reals are the training stream's, and what
    --ref_stats alone cannot measure is listed as skipped."""
    from test_eval_inception import torch_layout_state_dict

    folder = tmp_path / "captions"
    folder.mkdir()
    rng = np.random.default_rng(0)
    records = []
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), np.uint8)).save(folder / f"{i}.png")
        records.append({"file": f"{i}.png", "caption": f"a {['red', 'blue'][i % 2]} circle number {i}"})
    (folder / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    np.savez(tmp_path / "inception.npz", **torch_layout_state_dict())
    stats = str(tmp_path / "ref.npz")
    env = {**local_cluster.process_env(1), "PYTHONPATH": ROOT, "HOME": str(tmp_path)}  # the folder's cache

    def evaluate(out, *args):
        proc = subprocess.run([sys.executable, "-m", "gigagan_jax.eval", "--workdir", trained, "--num_images", "16",
                               "--batch_size", "8", "--inception_path", str(tmp_path / "inception.npz"),
                               "--out_dir", str(tmp_path / out), *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        return proc, (json.load(open(tmp_path / out / "report.json")) if proc.returncode == 0 else None)

    data = ["--data", f"folder:{folder}"]
    proc, saved = evaluate("a", *data, "--save_ref_stats", stats)
    assert saved is not None, proc.stderr[-3000:]
    assert "fid_clean: " in proc.stdout and "clip_score_train_clip: " in proc.stdout
    proc, reused = evaluate("b", *data, "--ref_stats", stats)
    assert reused is not None, proc.stderr[-3000:]
    assert reused["metrics"]["fid_clean"] == pytest.approx(saved["metrics"]["fid_clean"], rel=1e-6)
    for report in (saved, reused):
        assert report["reals"].startswith(f"--data folder:{folder}: its first 16 of 24 examples")
        metrics = set(report["metrics"])
        assert {"precision_inception", "recall_inception", "clip_fid", "clip_score_train_clip"} <= metrics
        assert report["score_prompt_prefix"] == "A photo depicts " and report["fid_resize"] == "clean"
    assert reused["protocols"]["fid_clean"].endswith("real side: reference statistics (16 images)")
    with np.load(stats) as ref:
        assert (int(ref["count"]), str(ref["resize"])) == (16, "clean")

    proc, stream = evaluate("c", "--ref_stats", stats)
    assert stream is not None, proc.stderr[-3000:]
    assert stream["reals"].startswith("the run's training stream (config.data.kind='shapes')")
    assert set(stream["skipped"]) == {"precision_inception", "recall_inception", "clip_fid"}
    assert "clip_fid: skipped (needs real images" in proc.stdout
    # Same seeds and reference statistics, other prompts (the training stream's): other images.
    assert stream["metrics"]["fid_clean"] != saved["metrics"]["fid_clean"]

    proc, _ = evaluate("d", *data, "--num_images", "30")
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == (
        f"error: --data folder:{folder} holds 24 examples, fewer than --num_images 30 (real images are not repeated)")
