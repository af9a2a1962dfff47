"""Config validation: every shipped config is valid, and each kind of mistake names itself."""

import glob
import os

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
