"""Shared plumbing of the command-line entry points: config flags and clean failures."""

from __future__ import annotations

import os
import sys

import jax
from absl import flags, logging
from ml_collections import config_flags

from gigagan_jax.config import validate_config
from gigagan_jax.hosts import ClusterError, join_cluster


def define_config_flag() -> flags.FlagHolder:
    return config_flags.DEFINE_config_file(
        "config", None, "Config file (configs/NAME.py[:arg]); override fields with --config.a.b=value.",
        lock_config=True)


def fail(message: str, code: int = 2) -> None:
    """Exit with a one-line error (no traceback): bad input is the user's to fix, not a crash."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def quiet_libraries() -> None:
    """Orbax logs every checkpoint phase at INFO and transformers warns about its Flax classes;
    keep the console for our progress bar, metrics and errors."""
    logging.set_verbosity(logging.WARNING)
    import transformers

    transformers.logging.set_verbosity_error()


def enable_compilation_cache() -> None:
    """Persist compiled executables across runs (resume, sample.py) unless the user chose a
    cache already (JAX_COMPILATION_CACHE_DIR); compiling the steps dominates short runs."""
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", os.path.expanduser("~/.cache/gigagan_jax/xla"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def parse_flags(argv: list[str]) -> list[str]:
    """absl flags parser for `app.run` that turns a bad flag or config override into one line."""
    quiet_libraries()
    enable_compilation_cache()
    try:
        return flags.FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
        fail(f"bad command line: {e}")


def validated(config_flag: flags.FlagHolder):
    """The parsed config, validated against the devices present, or a one-line exit.

    With config.train.distributed the process joins its cluster first: that must happen before
    anything (counting devices included) touches the XLA backend."""
    try:
        config = config_flag.value
        if config is None:
            fail("--config is required, e.g. --config configs/demo.py")
        validate_config(config)
        if config.train.distributed:
            join_cluster(config.train)
        validate_config(config, num_devices=jax.device_count())
    except OSError as e:  # config_flags loads the file lazily, on first access
        fail(str(e).splitlines()[-1].strip())
    except (ValueError, ClusterError) as e:
        fail(str(e))
    return config
