"""Shared plumbing of the command-line entry points: config flags and clean failures."""

from __future__ import annotations

import collections
import math
import os
import sys

# transformers imports PyTorch with itself whenever PyTorch is installed: 3-8 s of every command's
# start on a 2-core machine. Nothing here uses transformers' PyTorch side (PyTorch weight files are
# read directly), so a command leaves it out unless the environment says otherwise; a library
# user's own process is left as it is. Set before anything imports transformers.
os.environ.setdefault("USE_TORCH", "0")

import jax  # noqa: E402  (after the environment above is set)
from absl import app, flags, logging
from ml_collections import config_flags

from gigagan_jax.config import validate_config
from gigagan_jax.host_memory import restart_with_hugepages
from gigagan_jax.hosts import ClusterError, join_cluster
from gigagan_jax.workdir import blocking_file, folder_problem, is_url, user_cache_dir


def define_config_flag() -> flags.FlagHolder:
    return config_flags.DEFINE_config_file(
        "config", None, "Config file (configs/NAME.py[:arg]); override fields with --config.a.b=value.",
        lock_config=True)


def define_truncation_flag(help: str) -> flags.FlagHolder:
    """--truncation psi; any finite value is meaningful (above 1 extrapolates away from the mean w),
    nan or inf would draw a blank image."""
    holder = flags.DEFINE_float("truncation", 1.0, help)
    flags.register_validator(holder, math.isfinite, message="--truncation must be a finite number (1 = none, "
                             "below 1 toward the mean w, above 1 away from it)")
    return holder


def fail(message: str, code: int = 2) -> None:
    """Exit with a one-line error (no traceback): bad input is the user's to fix, not a crash."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def quiet_libraries() -> None:
    """Orbax logs every checkpoint phase at INFO and transformers warns about its Flax classes;
    keep the console for our progress bar, metrics and errors. transformers reads its level when
    first imported; importing it here (seconds) would slow every bad-flag exit."""
    logging.set_verbosity(logging.WARNING)
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    if "transformers" in sys.modules:  # train.py imports it with the training loop
        sys.modules["transformers"].logging.set_verbosity_error()


def enable_compilation_cache() -> None:
    """Persist compiled executables across runs (resume, sample.py) unless the user chose a
    cache already (JAX_COMPILATION_CACHE_DIR); compiling the steps dominates short runs."""
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", user_cache_dir("xla"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def _syntax_error(e: SyntaxError) -> str:
    return f"config file {e.filename} line {e.lineno}: {e.msg}"


def _bad_override(e: Exception, argv: list[str]) -> str:
    """config_flags reports an unknown override key as a KeyError (or an AttributeError around one)
    whose text is the quoted key and maybe a "Did you mean" line; name the flag that holds it."""
    while isinstance(e, AttributeError) and e.args and isinstance(e.args[0], KeyError):
        e = e.args[0]
    if not isinstance(e, KeyError):
        return str(e)
    key, *hint = str(e.args[0] if e.args else e).splitlines()
    key = key.strip("'\"")
    hint = f"; {hint[0][:1].lower()}{hint[0][1:]}" if hint else ""
    for arg in argv:
        flag = arg.split("=")[0]
        parts = flag.lstrip("-").split(".")
        if parts[0] == "config" and key in parts[1:]:
            owner = ".".join(parts[:parts.index(key, 1)])
            return f"{flag}: {owner} has no key {key!r}{hint}"
    return f"no config key {key!r}{hint}"


def parse_flags(argv: list[str]) -> list[str]:
    """absl flags parser for `app.run` that turns a bad flag or config override into one line."""
    quiet_libraries()
    enable_compilation_cache()
    try:
        return flags.FLAGS(argv)
    except SyntaxError as e:  # the --config file, executed to parse its overrides
        fail(_syntax_error(e))
    except (AttributeError, KeyError) as e:
        fail(f"bad command line: {_bad_override(e, argv)}")
    except (flags.Error, TypeError, ValueError) as e:
        fail(f"bad command line: {e}")


def parse_seeds(text: str, max_seed: int) -> list[int]:
    """'0-7,42' -> [0, 1, ..., 7, 42] (StyleGAN's gen_images convention): seeds and inclusive
    ranges, in the order given; a repeated seed, a reversed range or one outside [0, max_seed) is a
    ValueError naming it."""
    seeds = []
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"{part!r} is not a seed or a range of seeds (e.g. 0-7,42)")
        lo, hi = int(lo), int(hi) if sep else int(lo)
        if hi < lo:
            raise ValueError(f"the range {part} runs backwards")
        if hi >= max_seed:
            raise ValueError(f"seed {hi} is not below {max_seed}")
        seeds.extend(range(lo, hi + 1))
    repeated = [seed for seed, count in collections.Counter(seeds).items() if count > 1]
    if repeated:
        raise ValueError(f"seed {repeated[0]} is given twice")
    return seeds


def run_command(main, doc: str) -> None:
    """`app.run(main)` with the one-line flag errors of `parse_flags`; `doc` (the command module's
    docstring) is what --help prints, also when an installed entry point is the main module."""
    restart_with_hugepages()  # a no-op after train.py's or sample.py's own, earlier call
    sys.modules["__main__"].__doc__ = doc
    app.run(main, flags_parser=parse_flags)


def check_folder_flag(flag: str, path: str) -> None:
    """A folder flag (created when missing) that is, or lies under, a file fails now rather than
    after loading or compiling; bucket URLs are the path layer's to check."""
    problem = None if is_url(path) else folder_problem(path)
    if problem:
        fail(f"{flag} {path} {problem}")


def check_file_flag(flag: str, path: str) -> None:
    """An output file flag: not a folder, and its folder (created when missing) not under a file."""
    if os.path.isdir(path):
        fail(f"{flag} {path} is a folder; give a file name")
    blocker = blocking_file(os.path.dirname(os.path.abspath(path)))
    if blocker:
        fail(f"{flag} {path} lies under {blocker}, which is a file, not a folder")


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
    except SyntaxError as e:
        fail(_syntax_error(e))
    except (ValueError, ClusterError) as e:
        fail(str(e))
    return config
