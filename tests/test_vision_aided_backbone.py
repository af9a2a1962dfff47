"""The vision-aided D's own frozen CLIP image backbone (config.loss.vision_aided_clip_path).

The heads must read that backbone's features (not the conditioning CLIP's), only its image tower
is loaded, the loop fingerprints it like the conditioning CLIP, t2i_64 switches it on at the
reference schedule, and a missing folder is a one-line error. Tiny random CLIPs in HF layout.
"""

import functools
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from clip_fixtures import save_tiny_clip, save_with_unreadable_tower
from small_models import RESOLUTION, at_8px

from gigagan_jax.checkpoint import Checkpointer, CheckpointError
from gigagan_jax.config import has_vision_backbone, load_config, needs_image_tower, validate_config
from gigagan_jax.generate.restore import clip_record
from gigagan_jax.models.build import build_discriminator, build_generator
from gigagan_jax.models.vision_aided import VisionAidedHeads
from gigagan_jax.pixels import to_signed
from gigagan_jax.pretrained.clip import load_clip
from gigagan_jax.train.state import vision_example_inputs
from gigagan_jax.tools import local_cluster
from gigagan_jax.train.step import GanSteps
from gigagan_jax.workdir import checkpoint_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B = 8


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory) -> str:
    """Another tiny CLIP: other weights (seed 1) and 32 px input (16 patches, the run's CLIP has 4)."""
    return save_tiny_clip(str(tmp_path_factory.mktemp("vision_clip") / "vit"), image_size=32, seed=1)


def tiny_vision_config(clip_path: str, backbone: str):
    config = at_8px(load_config("configs/tiny.py"))  # the backbone's wiring, on the 8 px model
    config.clip.path = clip_path
    config.loss.vision_aided_start = 0
    config.loss.vision_aided_clip_path = backbone
    return config


@pytest.fixture(scope="module")
def setup(tiny_clip, backbone_dir):
    config = tiny_vision_config(tiny_clip, backbone_dir)
    clip, backbone = load_clip(tiny_clip), load_clip(backbone_dir, image_only=True)
    generator, disc, heads = build_generator(config), build_discriminator(config), VisionAidedHeads(hidden=16)
    steps = GanSteps(config, generator, disc, clip=clip, vision_heads=heads, vision_clip=backbone)
    init = functools.partial(steps.init_state, vision_inputs=vision_example_inputs(clip, backbone))
    state = jax.jit(init)(jax.random.PRNGKey(0))
    feats, eot, embeds = clip.encode_text(clip.tokenize(["a red circle", "a blue square"] * (B // 2)))
    images = jax.random.randint(jax.random.PRNGKey(1), (B, RESOLUTION, RESOLUTION, 3), 0, 256).astype(jnp.uint8)
    batch = {"image": images, "text_features": feats, "eot_index": eot, "text_embeds": embeds}
    return config, clip, backbone, steps, state, batch


def test_image_only_load_holds_no_text_weights(backbone_dir, tmp_path):
    """The text entries are replaced by bytes that cannot be restored: an image-only load must not
    parse them, and gives the full load's image features."""
    corrupt = save_with_unreadable_tower(backbone_dir, str(tmp_path / "corrupt"), "text_model")
    backbone = load_clip(str(corrupt), image_only=True)
    assert set(backbone.params) == {"vision_model", "visual_projection"}
    pixels = jnp.linspace(-1, 1, 2 * 32 * 32 * 3).reshape(2, 32, 32, 3)
    for ours, full in zip(backbone.encode_image(pixels)[1], load_clip(backbone_dir).encode_image(pixels)[1]):
        np.testing.assert_array_equal(ours, full)
    with pytest.raises(ValueError, match="image_only=True"):
        backbone.encode_text(np.zeros((1, 77), np.int32))


def test_the_heads_read_the_backbones_features_not_the_conditioning_clips(setup):
    config, clip, backbone, steps, state, batch = setup
    seen = []

    class Recording(GanSteps):
        def _vision_logits(self, vision_params, clip_features, batch):
            seen.append(clip_features)
            return super()._vision_logits(vision_params, clip_features, batch)

    recording = Recording(config, steps.generator, steps.discriminator, clip=clip, vision_heads=steps.vision_heads,
                          vision_clip=backbone)

    @jax.jit  # one executable: op by op, D's loss and the two CLIPs compiled ~450 programs
    def features_seen_and_expected(state, batch, clip_params, backbone_params):  # CLIPs as arguments, not constants
        recording.d_loss(state.d_params, batch, jax.random.PRNGKey(2), g_params=state.g_params,
                         clip_params=clip_params, vision_clip_params=backbone_params, with_vision=True)
        reals = to_signed(batch["image"])
        return (seen[0], backbone.encode_image(reals, params=backbone_params)[1],  # the reals go first
                clip.encode_image(reals, params=clip_params)[1])

    real_features, want, conditioning = features_seen_and_expected(state, batch, clip.params, backbone.params)
    assert len(seen) == 2 and len(real_features) == len(want) == 2
    for got, expected, other in zip(real_features, want, conditioning):
        assert got.shape == (B, 1 + 16, 32) and other.shape == (B, 1 + 4, 32)  # 32 px / 8 vs 16 px / 8 patches
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        assert float(jnp.max(jnp.abs(got[:, 0] - other[:, 0]))) > 1e-2  # CLS tokens: another network


def test_d_step_trains_the_heads_on_the_backbone_with_finite_nonzero_grads(setup):
    config, clip, backbone, steps, state, batch = setup
    rng = jax.random.PRNGKey(3)
    loss_fn = functools.partial(steps.d_loss, g_params=state.g_params, clip_params=clip.params,
                                vision_clip_params=backbone.params, with_vision=True)

    @jax.jit
    def step_and_head_grads(state):  # one executable: the D step, and the gradient it takes for the heads
        new, metrics = steps.d_step(state, batch, rng, clip.params, backbone.params, with_vision=True)
        grads = jax.grad(lambda v: loss_fn({**state.d_params, "vision": v}, batch, rng)[0])(state.d_params["vision"])
        return new, metrics, grads

    new, metrics, grads = step_and_head_grads(state)
    assert np.isfinite(float(metrics["d/vision_aided"])) and np.isfinite(float(metrics["d/grad_norm"]))
    leaves = jax.tree_util.tree_leaves(grads)
    assert len(leaves) == len(jax.tree_util.tree_leaves(state.d_params["vision"])) > 0
    assert all(bool(jnp.all(jnp.isfinite(g))) and float(jnp.max(jnp.abs(g))) > 0 for g in leaves)
    moved = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), new.d_params["vision"], state.d_params["vision"])
    assert all(jax.tree_util.tree_leaves(moved))


def test_the_loop_trains_on_the_backbone_and_refuses_another_on_resume(tiny_clip, backbone_dir, tmp_path):
    from gigagan_jax.train.loop import train

    backbone = str(tmp_path / "vit")
    save_tiny_clip(backbone, image_size=32, seed=1)
    config = tiny_vision_config(tiny_clip, backbone)
    config.train.num_steps, config.train.checkpoint_every, config.train.sample_every = 1, 1, 1000
    workdir = str(tmp_path / "run")
    summary = train(config, workdir)
    assert np.isfinite(summary["metrics"]["d/vision_aided"]) and np.isfinite(summary["metrics"]["g/vision_aided"])
    checkpointer = Checkpointer(checkpoint_dir(workdir), read_only=True)
    assert checkpointer.restore_clip_record(1, "vision_clip")["sha256"] == clip_record(backbone)["sha256"]
    checkpointer.close()

    save_tiny_clip(backbone, seed=2, image_size=32)  # same shapes, other weights: would load silently
    config.train.num_steps = 2
    with pytest.raises(CheckpointError, match=r"trained with the CLIP .*vit .*point "
                                              r"config\.loss\.vision_aided_clip_path at the CLIP"):
        train(config, workdir)


def test_t2i_64_switches_the_vision_aided_d_on_after_500k_images_on_its_own_backbone():
    config = load_config("configs/t2i_64.py")
    assert config.loss.vision_aided_start == math.ceil(500_000 / 512) == 977 and config.train.batch_size == 512
    assert config.loss.vision_aided_clip_path and has_vision_backbone(config)
    assert not os.path.isdir(config.loss.vision_aided_clip_path)  # not on this machine: still a valid config
    validate_config(config)
    # The conditioning CLIP still needs its image tower, for the CLIP loss (not for the vision heads).
    assert needs_image_tower(config)
    config.loss.clip_weight = 0.0
    assert not needs_image_tower(config)


def test_a_missing_backbone_folder_is_a_one_line_error(tiny_clip, tmp_path):
    missing = str(tmp_path / "nope")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "train.py"), "--config", "configs/tiny.py",
         "--workdir", str(tmp_path / "run"), f"--config.clip.path={tiny_clip}",
         "--config.loss.vision_aided_start=0", f"--config.loss.vision_aided_clip_path={missing}"],
        cwd=ROOT, env=local_cluster.process_env(1), capture_output=True, text=True, timeout=600)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert errors == [f"error: config.loss.vision_aided_clip_path={missing!r} is not a folder on this host: point "
                      "it at a local Hugging Face CLIP folder on every host (the paper's: clip-vit-base-patch32), "
                      "or set it to \"\" to use the run's own CLIP"], proc.stderr[-3000:]
