"""Export a trained run as a self-contained model folder (`gigagan_jax.generate.model_folder`).

    python -m gigagan_jax.export --workdir runs/demo [--step N] --out models/demo [--push_to_hub USER/REPO]
    gigagan-export ...   (the same, installed with the package)

Reads G_ema of the step (default: the newest verified one) and the CLIP the run was trained with
(fingerprint checked), and writes them with the config and a model card; the folder loads with
`GigaGANPipeline.from_pretrained(DIR)` or `sample.py --model DIR` on any machine, no Orbax,
optimiser state or original CLIP folder needed. The run's evaluation report for that step, if
there is one, goes into the card.
"""

from __future__ import annotations

import json
import os

from absl import flags

from gigagan_jax.cli import check_folder_flag, fail, quiet_libraries, run_command

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to export.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest verified one).")
_OUT = flags.DEFINE_string("out", None, "The model folder to write (must not exist).")
_CLIP = flags.DEFINE_string("clip_path", None, "Read the run's CLIP from here instead of where it was trained "
                            "(the same CLIP, byte for byte: the checkpoint's fingerprint is checked).")
_PUSH = flags.DEFINE_string("push_to_hub", None, "Also upload the folder to this Hugging Face Hub model repo "
                            "(needs huggingface_hub, a token and the network).")


def eval_metrics(workdir: str, step: int) -> dict | None:
    """The metrics of WORKDIR/eval/step_N/report.json, when that step was evaluated."""
    from gigagan_jax.workdir import eval_dir, exists, join, open_file

    path = join(eval_dir(workdir, step), "report.json")
    if not exists(path):
        return None
    with open_file(path) as f:
        return json.load(f).get("metrics")


def push_to_hub(folder: str, repo: str) -> str:
    """Upload `folder` as model repo `repo`; its URL. Any failure is one line naming the cause."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        fail("--push_to_hub needs huggingface_hub: pip install huggingface_hub", code=1)
    try:
        api = HfApi()
        api.create_repo(repo, repo_type="model", exist_ok=True)
        return api.upload_folder(folder_path=folder, repo_id=repo, repo_type="model").commit_url
    except Exception as e:  # offline, no token, no permission: the hub's own words, on one line
        fail(f"--push_to_hub {repo} failed ({type(e).__name__}): {' '.join(str(e).split())[:300]}; the folder "
             f"{folder} is written, upload it later with `huggingface-cli upload {repo} {folder}`", code=1)


def main(argv):
    del argv
    if not _WORKDIR.value or not _OUT.value:
        fail("--workdir and --out are required")
    if os.path.exists(_OUT.value):
        fail(f"--out {_OUT.value} already exists; export into a new folder")
    check_folder_flag("--out", _OUT.value)
    quiet_libraries()
    from gigagan_jax.checkpoint import CheckpointError
    from gigagan_jax.generate.model_folder import export_model
    from gigagan_jax.generate.restore import load_trained_generator

    try:
        trained = load_trained_generator(_WORKDIR.value, _STEP.value, clip_path=_CLIP.value)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        fail(str(e), code=1)
    info = export_model(trained, _OUT.value, source=f"{os.path.abspath(_WORKDIR.value)} step {trained.step}",
                        metrics=eval_metrics(_WORKDIR.value, trained.step))
    size = sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(_OUT.value) for n in names)
    print(f"exported step {trained.step} of {_WORKDIR.value} to {_OUT.value} ({info['num_params']:,} generator "
          f"parameters, {size / 2**20:.1f} MiB)")
    if _PUSH.value:
        print(f"uploaded: {push_to_hub(_OUT.value, _PUSH.value)}")


def run() -> None:
    """Console entry point `gigagan-export`."""
    run_command(main, __doc__)


if __name__ == "__main__":
    run()
