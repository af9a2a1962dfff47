"""A Weights & Biases mirror of the run's TensorBoard log, when config.train.wandb_project is set
(off by default; W&B is imported only then, and `WANDB_MODE=offline` needs no network).

The W&B run id is kept in WORKDIR/wandb_id.txt, so a resumed run continues the same W&B run.
"""

from __future__ import annotations

import os
import uuid
from typing import Optional

import ml_collections

from gigagan_jax.workdir import absolute, exists, is_url, join, open_file, write_text

ID_FILE = "wandb_id.txt"


def open_wandb_run(config: ml_collections.ConfigDict, workdir: str, enabled: bool) -> Optional[object]:
    """The W&B run (main process, a project set) or None; the resolved config is its config."""
    if not enabled or not config.train.wandb_project:
        return None
    import wandb

    id_path = join(workdir, ID_FILE)
    if exists(id_path):
        with open_file(id_path) as f:
            run_id = f.read().strip()
    else:
        run_id = uuid.uuid4().hex[:12]  # W&B ids: lower-case letters and digits
        write_text(id_path, run_id + "\n")
    return wandb.init(project=config.train.wandb_project, id=run_id, resume="allow",
                      name=os.path.basename(absolute(workdir).rstrip("/")), config=config.to_dict(),
                      dir=None if is_url(workdir) else workdir)
