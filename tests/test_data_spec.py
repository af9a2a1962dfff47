"""Data set specs (`shapes | emoji[:DIR] | folder:DIR | tfds:NAME[:DATA_DIR]`) set a config's data
section, and a bad one is one clear ValueError; train_clip and eval read the same syntax."""

import pytest

from gigagan_jax.config import default_config
from gigagan_jax.data.spec import SPEC_SYNTAX, apply_data_spec
from gigagan_jax.tools.train_clip import data_config, parse_args


@pytest.mark.parametrize("spec, kind, path, name", [
    ("shapes", "shapes", "", ""),
    ("emoji", "emoji", "", ""),
    ("emoji:/data/emoji", "emoji", "/data/emoji", ""),
    ("folder:/data/coco:val", "folder", "/data/coco:val", ""),  # only the first colon splits
    ("tfds:coco_captions", "tfds", "", "coco_captions"),
    ("tfds:coco_captions:/data/tfds", "tfds", "/data/tfds", "coco_captions"),
])
def test_specs_set_kind_path_and_name(spec, kind, path, name):
    config = default_config()
    config.data.path, config.data.name, config.data.split = "/old", "old_name", "validation"
    apply_data_spec(config.data, spec)
    assert (config.data.kind, config.data.path, config.data.name) == (kind, path, name)
    assert config.data.split == "validation"  # the other fields stay


@pytest.mark.parametrize("spec, message", [
    ("mnist", f"data spec 'mnist': unknown kind 'mnist'; expected {SPEC_SYNTAX}"),
    ("", "data spec '': unknown kind ''"),
    ("folder", "data spec 'folder': a folder needs its path, folder:DIR"),
    ("tfds:", "data spec 'tfds:': a TFDS data set needs its name, tfds:NAME[:DATA_DIR]"),
    ("shapes:/x", "data spec 'shapes:/x': the procedural shapes set takes no path"),
])
def test_bad_specs_are_one_value_error(spec, message):
    config = default_config()
    with pytest.raises(ValueError) as err:
        apply_data_spec(config.data, spec)
    assert str(err.value).startswith(message)
    assert config.data.kind == "shapes"  # untouched


def test_train_clip_reads_the_spec():
    config = data_config(parse_args(["--out", "x", "--data", "tfds:coco_captions:/data/tfds", "--num-examples", "7"]))
    assert (config.data.kind, config.data.name, config.data.path, config.data.num_examples) == (
        "tfds", "coco_captions", "/data/tfds", 7)
