"""Config validation: every shipped config is valid, and each kind of mistake names itself."""

import glob
import json
import os
import pickle
import re

import ml_collections
import pytest

from gigagan_jax.config import default_config, load_config, resolve_mesh_shape, validate_config

SHIPPED = sorted(glob.glob("configs/*.py"))


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_shipped_configs_are_valid(path):
    config = load_config(path)
    # Configs with a fixed single-device mesh (bench64) validate on 1 device; the rest on 8.
    validate_config(config, num_devices=1 if tuple(config.mesh.shape) == (1, 1) else 8)


def _tiny():
    return load_config("configs/tiny.py")


@pytest.mark.parametrize("mutate, message", [
    (lambda c: setattr(c.model, "resolution", 48), r"resolution must be a power of two >= 4, got 48"),
    (lambda c: setattr(c.model.g, "kernel_impl", "fft"), r"kernel_impl must be one of .* got 'fft'"),
    (lambda c: setattr(c.model.g, "self_attn_resolutions", (8, 12)), r"self_attn_resolutions contains 12"),
    (lambda c: setattr(c.model, "conditioning", "class"), r"num_classes must be > 0"),
    (lambda c: setattr(c.data, "kind", "imagenet"), r"data.kind must be one of .* got 'imagenet'"),
    (lambda c: setattr(c.model.g, "text_heads", 3), r"text_dim=32 is not divisible by text_heads=3"),
    (lambda c: setattr(c.mesh, "shape", (2, 2, 2)), r"differ in length"),
])
def test_mistakes_are_named(mutate, message):
    config = _tiny()
    mutate(config)
    with pytest.raises(ValueError, match=message):
        validate_config(config)


def test_caption_bank_needs_captions():
    config = load_config("configs/upsampler_imagenet256.py")  # class-conditional: no caption to draw
    config.loss.clip_negatives = 64
    with pytest.raises(ValueError, match=r"clip_negatives=64 adds captions to the CLIP loss, .* got 'class'"):
        validate_config(config)


def test_unknown_key_is_rejected():
    config = _tiny()
    config.unlock()
    config.model.g.chanel_base = 3  # typo
    with pytest.raises(ValueError, match=r"unknown config key\(s\): config.model.g.chanel_base"):
        validate_config(config)


def test_batch_must_divide_over_the_mesh():
    config = _tiny()
    config.train.batch_size = 12
    with pytest.raises(ValueError, match=r"batch_size=12 is not divisible by the mesh's data x fsdp = 8"):
        validate_config(config, num_devices=8)
    config.mesh.shape = (2, 2)
    with pytest.raises(ValueError, match=r"needs 4 devices but 8 are present"):
        validate_config(config, num_devices=8)


def test_mesh_shape_resolution():
    assert resolve_mesh_shape((1, -1), 8) == (1, 8)
    assert resolve_mesh_shape((2, -1), 8) == (2, 4)
    with pytest.raises(ValueError, match="cannot be filled"):
        resolve_mesh_shape((3, -1), 8)


def test_default_config_is_the_paper_model():
    config = default_config()
    assert config.model.resolution == 64 and config.model.g.z_dim == 128
    assert config.model.g.mapping_layers == 4 and config.model.g.mapping_lr_mult == 0.01


# --- named sizes, D following G, and the config as saved with a checkpoint -----------------

FOLLOWED = ("text_dim", "text_layers", "text_heads", "attn_heads", "attn_head_dim")


def test_sizes_set_the_named_values():
    from gigagan_jax.config import D_FOLLOWS_G, SIZES, apply_size

    assert D_FOLLOWS_G == FOLLOWED
    for name, size in SIZES.items():
        config = apply_size(default_config(), name)
        for net, values in size.items():
            assert {k: config.model[net][k] for k in values} == values, (name, net)
        assert not set(FOLLOWED) & set(size["d"]), f"size {name!r} restates what D takes from G"
        for key in FOLLOWED:
            assert config.model.d[key] == config.model.g[key], (name, key)
    config = _tiny()
    assert (config.model.g.z_dim, config.model.g.channel_base, config.model.g.attn_head_dim) == (32, 512, 16)
    assert (config.model.d.channel_base, config.model.d.text_dim, config.model.d.attn_heads) == (512, 32, 2)
    assert tuple(config.model.d.input_resolutions) == (8, 4)  # by resolution: the config's, not the size's
    with pytest.raises(ValueError, match=r"unknown model size 'huge'; sizes: tiny, demo, bench64"):
        apply_size(default_config(), "huge")


def test_discriminator_follows_the_generator_unless_set():
    config = _tiny()
    config.lock()  # as --config loads it (lock_config=True)
    g, d = config.model.g, config.model.d
    g.text_dim, g.attn_heads = 64, 4  # G moves: D follows
    assert (d.text_dim, d.attn_heads) == (64, 4)
    d.text_dim = 16  # D set: G stays, and D no longer follows
    assert (g.text_dim, d.text_dim) == (64, 16)
    g.text_dim = 128
    assert (g.text_dim, d.text_dim, d.attn_heads) == (128, 16, 4)
    with pytest.raises(TypeError):
        d.text_layers = 1.5  # the followed keys stay integers
    # A copy made through pickle (a worker process) keeps the link and its own values.
    copy = pickle.loads(pickle.dumps(config))
    copy.model.g.attn_heads = 8
    assert (copy.model.d.attn_heads, d.attn_heads) == (8, 4)


@pytest.mark.parametrize("overrides, g_dim, d_dim", [
    ([], 32, 32),
    (["--config.model.g.text_dim=64"], 64, 64),
    (["--config.model.d.text_dim=16"], 32, 16),
    (["--config.model.d.text_dim=16", "--config.model.g.text_dim=64"], 64, 16),
    (["--config.model.g.text_dim=64", "--config.model.d.text_dim=16"], 64, 16),
])
def test_command_line_overrides(overrides, g_dim, d_dim):
    """--config.model.{g,d}.X= through ml_collections' config_flags, as train.py parses them."""
    from absl import flags
    from ml_collections import config_flags

    argv = ["train.py", "--config", "configs/tiny.py", *overrides]
    flag_values = flags.FlagValues()  # (config_flags finds the override flags in sys_argv)
    holder = config_flags.DEFINE_config_file("config", None, "", flag_values=flag_values, lock_config=True,
                                             sys_argv=argv)
    flag_values(argv)
    config = holder.value
    assert (config.model.g.text_dim, config.model.d.text_dim) == (g_dim, d_dim)
    assert config.model.d.text_heads == config.model.g.text_heads == 2
    validate_config(config)


def test_d_overrides_are_validated_by_name():
    config = _tiny()
    config.model.d.text_heads = 5
    with pytest.raises(ValueError, match=r"config.model.d.text_dim=32 is not divisible by text_heads=5"):
        validate_config(config)


def _saved(config):
    """config.to_dict() as the checkpoint's JSON holds it."""
    return json.loads(json.dumps(config.to_dict()))


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_saved_config_holds_numbers(path):
    config = load_config(path)
    saved = _saved(config)
    for key in FOLLOWED:
        assert type(saved["model"]["d"][key]) is int and saved["model"]["d"][key] == config.model.d[key]
    # Restored without references (as generate/restore.py and a resume read it), it is the same config.
    restored = ml_collections.ConfigDict(saved)
    assert _saved(restored) == saved
    validate_config(restored, num_devices=1 if tuple(config.mesh.shape) == (1, 1) else 8)


@pytest.mark.parametrize("path", ["configs/tiny.py", "configs/upsampler_tiny.py", "configs/upsampler_512.py"])
def test_specs_from_a_saved_config_equal_the_live_ones(path):
    from gigagan_jax.models.build import discriminator_spec, generator_spec

    config = load_config(path)
    restored = ml_collections.ConfigDict(_saved(config))
    assert generator_spec(restored, "shapes") == generator_spec(config, "shapes")
    assert discriminator_spec(restored) == discriminator_spec(config)
    assert type(generator_spec(config, "shapes")).__name__ == ("UpsamplerSpec" if config.task == "upsampler" else "GeneratorSpec")


def test_tiny_specs():
    from gigagan_jax.models.build import discriminator_spec, generator_spec

    config = _tiny()
    g, d = generator_spec(config), discriminator_spec(config)
    assert g.channels == (32, 32, 32) and (g.z_dim, g.text_dim, g.cross_attn_resolutions) == (32, 32, (8,))
    assert g.kernel_impl != "auto"
    assert d.channels == (32, 32, 32) and d.input_resolutions == (16, 8, 4)
    assert (d.text_dim, d.text_layers, d.text_heads, d.attn_heads, d.attn_head_dim) == (32, 1, 2, 2, 16)
    config.model.d.attn_head_dim = 8
    assert discriminator_spec(config).attn_head_dim == 8 and generator_spec(config).attn_head_dim == 16


def test_resume_check_accepts_the_same_model_and_names_a_change():
    from gigagan_jax.train.loop import _check_compatible

    saved = _saved(_tiny())
    _check_compatible(saved, _tiny(), "runs/x")
    changed = _tiny()
    changed.model.g.text_dim = 64  # D follows: both keys differ
    with pytest.raises(ValueError, match=r"config.model.d.text_dim=32, but this config has 64; "
                                         r"config.model.g.text_dim=32, but this config has 64; use a new"):
        _check_compatible(saved, changed, "runs/x")
    changed = _tiny()
    changed.model.resolution = 32
    with pytest.raises(ValueError, match=r"config.model.resolution=16, but this config has 32"):
        _check_compatible(saved, changed, "runs/x")


# --- numbers: every numeric key refuses what is meaningless, by name --------------------------

def _numeric_keys():
    from gigagan_jax.config import _flatten_keys

    return [pytest.param(k, v, id=k) for k, v in sorted(_flatten_keys(default_config()).items())
            if isinstance(v, (int, float)) and not isinstance(v, bool)]


@pytest.mark.parametrize("key, default", _numeric_keys())
def test_every_numeric_key_refuses_negatives_and_non_finite(key, default):
    """-2 is meaningless for every numeric key (ids, sizes, rates, weights, steps); nan/inf for every float."""
    bad = [-2] if isinstance(default, int) else [-2.0, float("nan"), float("inf")]
    for value in bad:
        config = load_config("configs/upsampler_tiny.py" if key.startswith("model.upsampler.") else "configs/tiny.py")
        *path, name = key.split(".")
        parent = config
        for part in path:
            parent = parent[part]
        parent[name] = value
        with pytest.raises(ValueError, match=re.escape(f"config.{key}")):
            validate_config(config)


@pytest.mark.parametrize("mutate, message", [
    (lambda c: setattr(c.model.g, "text_heads", 0), r"config.model.g.text_heads must be >= 1, got 0"),
    (lambda c: setattr(c.model.d, "text_heads", 0), r"config.model.d.text_heads must be >= 1, got 0"),
    (lambda c: setattr(c.model.g, "attn_heads", 0), r"config.model.g.attn_heads must be >= 1, got 0"),
    (lambda c: setattr(c.model.d, "attn_heads", 0), r"config.model.d.attn_heads must be >= 1, got 0"),
    (lambda c: setattr(c.train, "batch_size", 0), r"config.train.batch_size must be >= 1, got 0"),
    (lambda c: setattr(c.optim, "g_lr", 0.0), r"config.optim.g_lr must be > 0, got 0.0"),
    (lambda c: setattr(c.loss, "clip_weight", -0.5), r"config.loss.clip_weight must be >= 0, got -0.5"),
    (lambda c: setattr(c.loss, "r1_gamma", float("nan")), r"config.loss.r1_gamma must be a finite number, got nan"),
    (lambda c: setattr(c.optim, "d_lr", float("inf")), r"config.optim.d_lr must be a finite number, got inf"),
    (lambda c: setattr(c.model.g, "attn_residual_gain", float("-inf")), r"attn_residual_gain must be a finite"),
    (lambda c: setattr(c.train, "seed", 2**32), r"config.train.seed must be in \[0, 2\*\*32\), got 4294967296"),
    (lambda c: setattr(c.model.g, "attn_blocks_per_level", 3),
     r"attn_blocks_per_level must be in \[0, convs_per_level=2\] \(each block follows a conv\), got 3"),
    (lambda c: setattr(c.loss, "vision_aided_start", -2), r"vision_aided_start must be a step >= 0, or -1 for never"),
    (lambda c: setattr(c.clip, "train_steps", 0), r"config.clip.train_steps must be >= 1, got 0"),
    (lambda c: setattr(c.data, "num_examples", 0), r"config.data.num_examples must be >= 1, got 0"),
    (lambda c: setattr(c.data, "shape_scale", 0.0), r"config.data.shape_scale must be > 0, got 0.0"),
    (lambda c: setattr(c.loss, "same_caption_cosine", 1.5), r"same_caption_cosine must be in \(0, 1\], got 1.5"),
    (lambda c: setattr(c.model.d, "channel_base", 8), r"config.model.d.channel_base=8 gives no channels at 16 px"),
])
def test_meaningless_numbers_are_named(mutate, message):
    config = _tiny()
    mutate(config)
    with pytest.raises(ValueError, match=message):
        validate_config(config)

