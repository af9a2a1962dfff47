"""Every bad input to the command lines is one `error:` line, a non-zero exit and no traceback.

One table over train.py, sample.py, `python -m gigagan_jax.eval`, `python -m gigagan_jax.export`, `.demo`,
`python -m gigagan_jax.data.prepare` and `python -m gigagan_jax.tools.train_clip`. The cases the flags alone
decide fail before any model is loaded (seconds: the imports); the cases about conditions (class
ids, prompts, truncation) read one tiny class-conditional run, restored but never compiled.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import small_models
from forked_commands import CommandForks

from gigagan_jax.tools import local_cluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = {"train": [os.path.join(ROOT, "train.py")], "sample": [os.path.join(ROOT, "sample.py")],
            "eval": ["-m", "gigagan_jax.eval"], "export": ["-m", "gigagan_jax.export"],
            "demo": ["-m", "gigagan_jax.demo"], "prepare": ["-m", "gigagan_jax.data.prepare"],
            "train_clip": ["-m", "gigagan_jax.tools.train_clip"]}
ERROR_LINE = re.compile(r"^(python -m gigagan_jax\.data\.prepare: )?error: ")  # ours, or argparse's usage error
TINY = ["--config", "configs/tiny.py", "--workdir", "{tmp}/run"]
NO_RUN = ["--workdir", "{tmp}/no_run"]  # sample/eval checks that come before a run is read


def run_alone(command, args, timeout=600):
    """The command in a process of its own. Python's import log (`-X importtime`, taken out of
    stderr here) shows that the command starts without PyTorch (gigagan_jax.cli): loading it
    doubled the time to a first error."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *COMMANDS[command], *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=local_cluster.process_env(1))
    lines = proc.stderr.splitlines()
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")}
    # A real load brings torch's submodules; an `import torch` refused on purpose (workdir.tensorboardx
    # hides it from tensorboardX) is logged as `torch` alone.
    assert not any(name.startswith("torch.") for name in imported), f"{command} loaded PyTorch"
    proc.stderr = "\n".join(line for line in lines if not line.startswith("import time:"))
    return proc


@pytest.fixture(scope="module")
def forks():
    """The table's command lines run as forks of one process that imported JAX once (forked_commands)."""
    server = CommandForks(ROOT, local_cluster.process_env(1))
    assert server.torch_free
    yield server
    server.close()


def assert_refused(proc, phrase):
    errors = [line for line in proc.stderr.splitlines() if ERROR_LINE.match(line)]
    assert proc.returncode != 0 and len(errors) == 1 and phrase in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Files the cases point at: a plain file, prompts files, a broken config, small caption folders."""
    tmp = tmp_path_factory.mktemp("bad_input")
    (tmp / "file").write_text("not a folder")
    (tmp / "latin1.txt").write_bytes("a red circle\nun cœur brûlé\n".encode("cp1252"))
    (tmp / "blank.txt").write_text("\n  \n\n")
    (tmp / "syntax.py").write_text("from gigagan_jax.config import default_config\n\n"
                                   "def get_config():\n    return default_config(\n")
    rng = np.random.default_rng(0)
    for folder, count in (("small", 30), ("unreadable", 0)):
        (tmp / folder).mkdir()
        records = []
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), np.uint8)).save(tmp / folder / f"{i}.png")
            records.append({"file": f"{i}.png", "caption": f"a thing {i}"})
        if not count:
            (tmp / folder / "0.png").write_bytes(b"not a png")
            records.append({"file": "0.png", "caption": "a thing"})
        (tmp / folder / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp / "empty").mkdir()
    return tmp


CASES = [
    # train.py: the workdir, the config file, and numbers validate_config refuses
    ("train", ["--config", "configs/tiny.py", "--workdir", "{tmp}/file"],
     "--workdir {tmp}/file is a file, not a folder"),
    ("train", ["--config", "configs/tiny.py", "--workdir", "{tmp}/file/run"], "lies under {tmp}/file, which is a file"),
    ("train", [*TINY, "--config.train.time_budget_minutes=-5"],
     "config.train.time_budget_minutes must be >= 0 (0 = no budget), got -5"),
    ("train", [*TINY, "--config.train.time_budget_minutes=30", "--config.clip.budget_share=0"],
     "config.clip.budget_share must be in (0, 1), got 0"),
    ("train", [*TINY, "--config.model.g.text_heads=0"], "config.model.g.text_heads must be >= 1, got 0"),
    ("train", [*TINY, "--config.model.d.text_heads=0"], "config.model.d.text_heads must be >= 1, got 0"),
    ("train", [*TINY, "--config.model.text_heads=0"],
     "--config.model.text_heads: config.model has no key 'text_heads'"),
    ("train", [*TINY, "--config.train.batch_size=0"], "config.train.batch_size must be >= 1, got 0"),
    ("train", [*TINY, "--config.optim.g_lr=-0.001"], "config.optim.g_lr must be > 0, got -0.001"),
    ("train", [*TINY, "--config.loss.clip_weight=-1"], "config.loss.clip_weight must be >= 0, got -1.0"),
    ("train", ["--config", "configs/upsampler_256.py", "--workdir", "{tmp}/up"],
     "the upsampler's perceptual loss is LPIPS (config.loss.perceptual='lpips', the paper's) but "
     "config.loss.lpips_path is empty"),
    ("train", ["--config", "configs/upsampler_tiny.py", "--workdir", "{tmp}/up", "--config.loss.lpips_path=x.npz"],
     "config.loss.lpips_path='x.npz' is set but config.loss.perceptual='fallback' would not read it"),
    ("train", [*TINY, "--config.loss.r1_gamma=nan"], "config.loss.r1_gamma must be a finite number, got nan"),
    ("train", [*TINY, "--config.optim.d_lr=inf"], "config.optim.d_lr must be a finite number, got inf"),
    ("train", [*TINY, "--config.train.seed=-1"], "config.train.seed must be in [0, 2**32), got -1"),
    ("train", [*TINY, "--config.train.remat=all"], "config.train.remat must be one of ('none', 'blocks'), got 'all'"),
    ("train", ["--config", "{tmp}/syntax.py", "--workdir", "{tmp}/run"], "config file {tmp}/syntax.py line 4: "),
    ("train", ["--config", "{tmp}/syntax.py", "--workdir", "{tmp}/run", "--config.train.seed=1"],
     "config file {tmp}/syntax.py line 4: "),
    ("train", [*TINY, "--config.data.kind=folder", "--config.data.path={tmp}/small",
               "--config.data.cache_dir={tmp}/cache"],
     "too few to train a small CLIP on (it holds out 100 and trains on batches of 128); use more data, or give "
     "train.py a CLIP folder (Hugging Face layout) with --config.clip.path=DIR"),
    # sample.py: paths, seeds, numbers and prompts files, all before a run is read
    ("sample", ["--workdir", "{tmp}/file", "--prompt", "x"], "--workdir {tmp}/file is a file, not a folder"),
    ("sample", [*NO_RUN, "--upsampler_workdir", "{tmp}/file"], "--upsampler_workdir {tmp}/file is a file"),
    ("sample", [*NO_RUN, "--out", "{tmp}"], "--out {tmp} is a folder; give a file name"),
    ("sample", [*NO_RUN, "--out", "{tmp}/file/grid.png"],
     "--out {tmp}/file/grid.png lies under {tmp}/file, which is a file"),
    ("sample", [*NO_RUN, "--mode", "interpolate", "--gif", "{tmp}/file/a.gif"], "--gif {tmp}/file/a.gif lies under"),
    ("sample", [*NO_RUN, "--gif", "{tmp}"], "--gif {tmp} is a folder"),
    ("sample", [*NO_RUN, "--outdir", "{tmp}/file"], "--outdir {tmp}/file is a file, not a folder"),
    ("sample", [*NO_RUN, "--outdir", "{tmp}/file/images"], "--outdir {tmp}/file/images lies under"),
    ("sample", ["--model", "{tmp}/file", "--prompt", "x"], "--model {tmp}/file is a file, not a folder"),
    ("sample", [*NO_RUN, "--model", "{tmp}"], "give the model to sample: --model DIR (an export) or --workdir W"),
    ("sample", ["--prompt", "x"], "give the model to sample: --model DIR (an export) or --workdir W"),
    ("sample", ["--model", "{tmp}", "--step", "3"], "--model is an exported model: one step, its own text encoder"),
    ("sample", ["--model", "{tmp}", "--prompt", "x"], "{tmp} is not an exported model (no gigagan.json"),
    ("sample", [*NO_RUN, "--seeds", "3-1"], "--seeds 3-1: the range 3-1 runs backwards"),
    ("sample", [*NO_RUN, "--seeds", "0,x"], "--seeds 0,x: 'x' is not a seed or a range of seeds (e.g. 0-7,42)"),
    ("sample", [*NO_RUN, "--seeds", "0-2,1"], "--seeds 0-2,1: seed 1 is given twice"),
    ("sample", [*NO_RUN, "--seeds", str(2**32)], f"seed {2**32} is not below {2**32}"),
    ("sample", [*NO_RUN, "--seeds", "0-3", "--n", "2"], "--seeds lists grid mode's seeds, instead of --seed and --n"),
    ("sample", [*NO_RUN, "--mode", "style_mix", "--seeds", "1"], "--seeds lists grid mode's seeds"),
    ("sample", [*NO_RUN, "--seed", "-1"], "flag --seed=-1: -1 is not an integer in the range [0, 4294967295]"),
    ("sample", [*NO_RUN, "--seed", str(2**64)], f"flag --seed={2**64}: {2**64} is not an integer in the range"),
    ("sample", [*NO_RUN, "--seed2", str(2**32)], f"flag --seed2={2**32}: {2**32} is not an integer in the range"),
    ("sample", [*NO_RUN, "--seed", str(2**32 - 2), "--n", "4"], "reaches seed 4294967297; seeds must be below 2**32"),
    ("sample", [*NO_RUN, "--truncation", "nan"], "flag --truncation=nan: --truncation must be a finite number"),
    ("sample", [*NO_RUN, "--truncation", "-inf"], "flag --truncation=-inf: --truncation must be a finite number"),
    ("sample", [*NO_RUN, "--frames", "1"], "flag --frames=1: 1 is not integer >= 2"),
    ("sample", [*NO_RUN, "--n", "0"], "flag --n=0: 0 is not a positive integer"),
    ("sample", [*NO_RUN, "--class_id", "-1"], "flag --class_id=-1: -1 is not a non-negative integer"),
    ("sample", [*NO_RUN, "--crossover", "-1"], "flag --crossover=-1: -1 is not a non-negative integer"),
    ("sample", [*NO_RUN, "--prompts_file", "{tmp}/latin1.txt"], "{tmp}/latin1.txt:2: not UTF-8 text"),
    ("sample", [*NO_RUN, "--prompts_file", "{tmp}/blank.txt"], "prompts file {tmp}/blank.txt holds no prompts"),
    ("sample", [*NO_RUN, "--prompts_file", "{tmp}/empty"], "prompts file {tmp}/empty is a folder"),
    # sample.py: flags the chosen mode would silently ignore
    ("sample", [*NO_RUN, "--gif", "{tmp}/a.gif"], "--gif writes the interpolate mode's frames; --mode is grid"),
    ("sample", [*NO_RUN, "--mode", "style_mix", "--outdir", "{tmp}/imgs"], "--outdir writes grid mode's images"),
    ("sample", [*NO_RUN, "--mode", "interpolate", "--truncation", "0.7"], "--truncation acts on grid mode's samples"),
    ("sample", [*NO_RUN, "--upsample_images", "{tmp}", "--truncation", "0.7"], "with --upsample_images"),
    ("sample", [*NO_RUN, "--upsample_images", "{tmp}", "--n", "2"], "--upsample_images is its own mode"),
    ("sample", [*NO_RUN, "--mode", "style_mix", "--n", "2"], "--n is for --mode grid; --mode is style_mix"),
    ("sample", [*NO_RUN, "--frames", "4"], "--frames is for --mode interpolate; --mode is grid"),
    ("sample", [*NO_RUN, "--mode", "prompt_mix", "--seed2", "4"], "--seed2 is for --mode style_mix or interpolate"),
    ("sample", [*NO_RUN, "--mode", "interpolate", "--crossover", "1"], "--crossover is for --mode style_mix or"),
    ("sample", [*NO_RUN, "--mode", "interpolate", "--noise_mode", "random"], "--noise_mode is for --mode grid"),
    ("sample", [*NO_RUN, "--noise_mode", "fresh"], "flag --noise_mode=fresh: value should be one of"),
    # python -m gigagan_jax.eval
    ("eval", [*NO_RUN, "--batch_size", "0"], "flag --batch_size=0: 0 is not a positive integer"),
    ("eval", [*NO_RUN, "--num_images", "0"], "flag --num_images=0: 0 is not a positive integer"),
    ("eval", [*NO_RUN, "--truncation", "inf"], "flag --truncation=inf: --truncation must be a finite number"),
    ("eval", ["--workdir", "{tmp}/file"], "--workdir {tmp}/file is a file, not a folder"),
    ("eval", [*NO_RUN, "--out_dir", "{tmp}/file"], "--out_dir {tmp}/file is a file, not a folder"),
    ("eval", [*NO_RUN, "--noise_mode", "fixed"], "flag --noise_mode=fixed: value should be one of"),
    ("eval", [*NO_RUN, "--data", "mnist"], "--data: data spec 'mnist': unknown kind 'mnist'; expected shapes | "
                                           "emoji[:DIR] | folder:DIR | tfds:NAME[:DATA_DIR]"),
    ("eval", [*NO_RUN, "--fid_resize", "bicubic"], "flag --fid_resize=bicubic: value should be one of"),
    ("eval", [*NO_RUN, "--ref_stats", "{tmp}/none.npz"], "--ref_stats holds FID Inception statistics: give "
                                                         "--inception_path too"),
    ("eval", [*NO_RUN, "--inception_path", "i.npz", "--ref_stats", "{tmp}/none.npz"],
     "--ref_stats {tmp}/none.npz does not exist"),
    ("eval", [*NO_RUN, "--inception_path", "i.npz", "--ref_stats", "{tmp}/file"],
     "--ref_stats {tmp}/file is not an .npz of FID statistics"),
    ("eval", [*NO_RUN, "--inception_path", "i.npz", "--ref_stats", "a.npz", "--save_ref_stats", "b.npz"],
     "--ref_stats reads reference statistics and --save_ref_stats writes them; give one"),
    # python -m gigagan_jax.export
    ("export", ["--workdir", "{tmp}/no_run"], "--workdir and --out are required"),
    ("export", [*NO_RUN, "--out", "{tmp}/file"], "--out {tmp}/file already exists; export into a new folder"),
    ("export", [*NO_RUN, "--out", "{tmp}/file/model"], "--out {tmp}/file/model lies under {tmp}/file"),
    ("export", [*NO_RUN, "--out", "{tmp}/model"], "workdir {tmp}/no_run does not exist"),
    # python -m gigagan_jax.demo
    ("demo", [], "--model is required: an exported model folder or a training workdir"),
    ("demo", ["--model", "{tmp}/none"], "--model {tmp}/none does not exist"),
    ("demo", ["--model", "{tmp}/file"], "--model {tmp}/file is a file, not a folder"),
    ("demo", ["--model", "{tmp}", "--port", "0"], "flag --port=0: 0 is not an integer in the range [1, 65535]"),
    ("demo", ["--model", "{tmp}"], "{tmp} is neither an exported model (no gigagan.json) nor a training workdir"),
    # python -m gigagan_jax.data.prepare
    ("prepare", ["--kind", "shapes", "--out", "{tmp}/p", "--resolution", "0"],
     "--resolution must be a power of two in [4, 4096]"),
    ("prepare", ["--kind", "shapes", "--out", "{tmp}/p", "--resolution", "-64"], "got -64"),
    ("prepare", ["--kind", "shapes", "--out", "{tmp}/p", "--resolution", "48"], "got 48"),
    ("prepare", ["--kind", "shapes", "--out", "{tmp}/p", "--resolution", "65536"], "got 65536"),
    ("prepare", ["--kind", "shapes", "--out", "{tmp}/p", "--num-examples", "0"], "--num-examples must be >= 1, got 0"),
    ("prepare", ["--kind", "shapes-folder", "--out", "{tmp}/p", "--shape-positions", "middle"],
     "shape_positions must be distinct names from"),
    ("prepare", ["--kind", "shapes-folder", "--out", "{tmp}/p", "--shape-scale", "9"], "shape_scale must be in (0, "),
    ("prepare", ["--kind", "shapes", "--out", "{tmp}/p", "--seed", "-1"], "--seed must be in [0, 2**32), got -1"),
    ("prepare", ["--kind", "folder", "--src", "{tmp}/none", "--out", "{tmp}/p"], "--src {tmp}/none does not exist"),
    ("prepare", ["--kind", "folder", "--src", "{tmp}/file", "--out", "{tmp}/p"],
     "--src {tmp}/file is a file, not a folder"),
    ("prepare", ["--kind", "folder", "--src", "{tmp}/small", "--out", "{tmp}/file"], "--out {tmp}/file is a file, not a folder"),
    ("prepare", ["--kind", "folder", "--src", "{tmp}/small", "--out", "{tmp}/file/p"],
     "--out {tmp}/file/p lies under {tmp}/file, which is a file, not a folder"),
    ("prepare", ["--kind", "folder", "--out", "{tmp}/p"], "--kind folder needs --src"),
    ("prepare", ["--kind", "webdataset", "--out", "{tmp}/p"], "--kind webdataset needs --src"),
    ("prepare", ["--kind", "webdataset", "--out", "{tmp}/p", "--src", "{tmp}/none.tar"],
     "--src {tmp}/none.tar: 1 shard(s) do not exist, first {tmp}/none.tar"),
    ("prepare", ["--kind", "webdataset", "--out", "{tmp}/p", "--src", "{tmp}/small"], "holds no .tar shards"),
    ("prepare", ["--kind", "webdataset", "--out", "{tmp}/p", "--src", "{tmp}/file", "--workers", "0"],
     "--workers must be >= 1, got 0"),
    ("prepare", ["--kind", "coco", "--out", "{tmp}/p", "--annotations", "{tmp}/file"], "--kind coco needs --images"),
    ("prepare", ["--kind", "coco", "--out", "{tmp}/p", "--images", "{tmp}"], "--kind coco needs --annotations"),
    ("prepare", ["--kind", "coco", "--out", "{tmp}/p", "--images", "{tmp}/none", "--annotations", "{tmp}/file"],
     "--images {tmp}/none does not exist"),
    ("prepare", ["--kind", "coco", "--out", "{tmp}/p", "--images", "{tmp}", "--annotations", "{tmp}"],
     "--annotations {tmp} is a folder"),
    ("prepare", ["--kind", "coco", "--out", "{tmp}/p_coco", "--images", "{tmp}", "--annotations", "{tmp}/file"],
     "{tmp}/file: not a JSON file"),
    ("prepare", ["--kind", "emoji", "--out", "{tmp}/p", "--emoji-sets", "google,nope"],
     "--emoji-sets: unknown set(s) nope; choose among google,twitter"),
    ("prepare", ["--kind", "tfds", "--name", "no_such_dataset_xyz", "--out", "{tmp}/p"],
     "--name no_such_dataset_xyz is not a TFDS catalogue dataset"),
    ("prepare", ["--kind", "folder", "--src", "{tmp}/empty", "--out", "{tmp}/p_empty"],
     "no captioned images in {tmp}/empty"),
    ("prepare", ["--kind", "folder", "--src", "{tmp}/unreadable", "--out", "{tmp}/p_bad"],
     "no readable images in {tmp}/unreadable"),
    # python -m gigagan_jax.tools.train_clip: a spec no CLIP can be trained or scored with
    ("train_clip", ["--out", "{tmp}/c", "--holdout", "10"], "small CLIP holdout must be >= 100"),
    ("train_clip", ["--out", "{tmp}/c", "--heads", "3"], "small CLIP text_width=256 is not divisible by heads=3"),
    ("train_clip", ["--out", "{tmp}/c", "--lr", "nan"], "small CLIP lr must be > 0, got nan"),
    ("train_clip", ["--out", "{tmp}/c", "--steps", "0"], "small CLIP steps must be > 0, got 0"),
    ("train_clip", ["--out", "{tmp}/c", "--seconds", "0"], "a small CLIP's time limit must be > 0 seconds, got 0"),
    ("train_clip", ["--out", "{tmp}/c", "--data", "folder"], "data spec 'folder': a folder needs its path, folder:DIR"),
]


@pytest.mark.parametrize("command, args, phrase", CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_error_line(command, args, phrase, inputs, forks):
    tmp = str(inputs)
    proc = forks.run([*COMMANDS[command], *(a.format(tmp=tmp) for a in args)])
    assert_refused(proc, phrase.format(tmp=tmp))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_its_first_case_without_loading_pytorch(command, inputs):
    """The table's first case of each command again, in an interpreter of its own (the forks share
    one that imported JAX first, so this is where each command's own imports are seen)."""
    _, args, phrase = next(case for case in CASES if case[0] == command)
    tmp = str(inputs)
    assert_refused(run_alone(command, [a.format(tmp=tmp) for a in args]), phrase.format(tmp=tmp))


FAITHFULNESS_SCRIPT = """
import atexit, sys
atexit.register(lambda: print("atexit ran", flush=True))
print("argv", sys.argv[1:], "main", __name__, "path0", sys.path[0].rsplit("/", 1)[-1])
print("to stderr", file=sys.stderr)
if sys.argv[1] == "exit":
    sys.exit(int(sys.argv[2]))
if sys.argv[1] == "message":
    sys.exit("a message exit")
if sys.argv[1] == "raise":
    raise ValueError("uncaught")
"""


@pytest.mark.parametrize("how", [["exit", "3"], ["message"], ["raise"], ["end"]])
def test_a_forked_command_ends_as_its_own_interpreter_would(forks, tmp_path, how):
    """Exit codes, stdout, stderr (tracebacks included) and atexit handlers: the forks' against a real run."""
    script = tmp_path / "script.py"
    script.write_text(FAITHFULNESS_SCRIPT)
    alone = subprocess.run([sys.executable, str(script), *how], cwd=ROOT, capture_output=True, text=True,
                           env=local_cluster.process_env(1))
    forked = forks.run([str(script), *how])
    assert (forked.returncode, forked.stdout) == (alone.returncode, alone.stdout)
    assert forked.stderr.splitlines()[-1] == alone.stderr.splitlines()[-1]
    assert ("Traceback" in forked.stderr) == ("Traceback" in alone.stderr) == (how == ["raise"])


def test_a_forked_code_string_runs_in_its_folder_as_python_c_would(forks, tmp_path):
    """`python -c CODE ARGS` in another folder (README snippets are run so): argv, sys.path[0],
    __name__, the working folder and the files written relative to it, the forks' against a real run."""
    code = ("import os, sys; print(sys.argv, repr(sys.path[0]), __name__, os.getcwd()); "
            "open('out.txt', 'w').write('written')")
    outputs = []
    for name, runner in (("alone", lambda cwd: subprocess.run([sys.executable, "-c", code, "a", "b"], cwd=cwd,
                                                              capture_output=True, text=True)),
                         ("forked", lambda cwd: forks.run(["-c", code, "a", "b"], cwd=str(cwd)))):
        folder = tmp_path / name
        folder.mkdir()
        proc = runner(folder)
        assert proc.returncode == 0, proc.stderr
        assert (folder / "out.txt").read_text() == "written"
        outputs.append(proc.stdout.replace(str(folder), "FOLDER"))
    assert outputs[0] == outputs[1] == "['-c', 'a', 'b'] '' __main__ FOLDER\n"


@pytest.fixture(scope="module")
def class_run(tmp_path_factory):
    """A tiny class-conditional run (the 48 shape classes, 2 steps, 8 px: the refusals read only
    its config): needs no CLIP."""
    workdir = str(tmp_path_factory.mktemp("bad_input_class") / "run")
    proc = run_alone("train", ["--config", "configs/tiny.py", "--workdir", workdir, "--config.model.conditioning=class",
                               "--config.model.num_classes=48", "--config.model.g.cross_attn_resolutions=()",
                               *small_models.CLI_ARGS,
                               "--config.train.num_steps=2", "--config.train.checkpoint_every=2"], timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


@pytest.mark.parametrize("command, args, phrase", [
    ("sample", ["--class_id", "0", "--class_id", "48"],
     "--class_id 48 is not a class of {run}: its ids are 0 .. 47 (config.model.num_classes=48)"),
    ("sample", ["--class_id", "99"], "--class_id 99 is not a class of {run}"),
    ("sample", ["--class_id", "1", "--prompt", "a red circle"],
     "--prompt / --prompts_file are for text-conditioned models; {run} is conditioned on 'class'"),
    ("sample", ["--class_id", "1", "--truncation", "0.7"], "--truncation (toward the per-prompt mean w) needs a "
                                                           "text-conditioned model; {run} is conditioned on 'class'"),
    ("eval", ["--truncation", "0.7"], "--truncation (toward the per-prompt mean w) needs a text-conditioned run"),
])
def test_conditions_the_model_lacks_are_refused(class_run, tmp_path, command, args, phrase, forks):
    """Checked against the restored config, before a sampler is compiled or anything written."""
    proc = forks.run([*COMMANDS[command], "--workdir", class_run, *args,
                      "--out" if command == "sample" else "--out_dir", str(tmp_path / "out")])
    assert_refused(proc, phrase.format(run=class_run))
    assert not os.path.exists(tmp_path / "out")
