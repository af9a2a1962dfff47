"""Config schema shared by every `configs/*.py` file, and the one function that validates it.

Every config file starts from `default_config()` and overrides values; it never adds keys.
`validate_config` is called by every entry point before anything is built or compiled so
that a typo or an impossible shape is a one-line `ValueError`, not an XLA error.

Named model sizes (`tiny`, `demo`, `bench64`) live in `gigagan_jax.config.sizes`; configs pick
one with `apply_size`. D's text transformer and attention widths (`D_FOLLOWS_G`) follow G's
unless a config or a `--config.model.d.X=` override sets them; `to_dict()`, and so the config
saved with every checkpoint, holds the resolved numbers.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import ml_collections

from gigagan_jax.config.sizes import SIZES, apply_size  # noqa: F401  (re-exported for configs/)

DATA_KINDS = ("shapes", "folder", "emoji", "tfds")
CONDITIONINGS = ("text", "class", "none")
TASKS = ("t2i", "upsampler")
KERNEL_IMPLS = ("auto", "grouped", "bank", "patches", "per_sample")
DTYPES = ("float32", "bfloat16")
PERCEPTUAL_LOSSES = ("lpips", "fallback")
# G's noise inputs (gigagan_jax.models.layers.SynthesisLayer): fresh per call (training), one
# fixed map per layer, or off.
NOISE_MODES = ("random", "const", "none")
REMAT_MODES = ("none", "blocks")  # config.train.remat
# JAX keys take 32-bit seeds (without x64): 2**32 + s would draw what s draws.
MAX_SEED = 2**32


def _generator_defaults() -> ml_collections.ConfigDict:
    g = ml_collections.ConfigDict()
    g.z_dim = 128
    g.w_dim = 1024
    g.mapping_layers = 4
    g.mapping_lr_mult = 0.01
    # Learned text transformer T over the frozen encoder's token features.
    g.text_dim = 768
    g.text_layers = 4
    g.text_heads = 12
    # Channels at resolution r: min(channel_base // r, channel_max)  (StyleGAN2 convention).
    g.channel_base = 65536
    g.channel_max = 1024
    g.convs_per_level = 2
    # Sample-adaptive kernel selection: N kernels per conv layer, softmax-combined per sample.
    g.num_kernels = 6
    # "grouped" (per-sample grouped conv) | "bank" (N shared convs) | "patches" (per-sample
    # kernel as an im2col batched matmul) | "per_sample" (B plain convs in sequence) | "auto"
    # (the fastest measured on this machine for the shape, cached: gigagan_jax.models.kernel_choice).
    g.kernel_impl = "auto"
    g.self_attn_resolutions = (8, 16, 32)
    g.cross_attn_resolutions = (8, 16, 32)
    g.attn_blocks_per_level = 1
    g.attn_heads = 16
    g.attn_head_dim = 64
    # The paper reduces the residual gain of attention blocks for stability.
    g.attn_residual_gain = 0.5
    g.use_noise = True
    return g


# D's text transformer t_D and attention widths: G's, unless a config sets them.
D_FOLLOWS_G = ("text_dim", "text_layers", "text_heads", "attn_heads", "attn_head_dim")


def _follow(parent: ml_collections.ConfigDict, key: str) -> ml_collections.FieldReference:
    """A value that tracks `parent[key]` until it is assigned.

    Not `parent.get_ref(key)` itself: assigning to a field that holds a shared reference writes
    through it (d.text_dim = 64 would set g.text_dim too). `+ 0` makes a reference of its own
    that reads G's; an assignment replaces it and leaves G alone. (`+ 0`, not `.identity()`, whose
    lambda cannot be pickled.)
    """
    return parent.get_ref(key) + 0


def _discriminator_defaults(g: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    d = ml_collections.ConfigDict()
    # 1664 channels at every level: with the rest below, 391 M parameters (paper: 381.4 M).
    d.channel_base = 1664 * 64
    d.channel_max = 1664
    d.self_attn_resolutions = (8, 16, 32)
    # Resolutions of the pyramid levels fed to D (multi-scale input), besides the full one.
    # With 64 px: inputs 64/32/16/8/4 and predictions at 32/16/8/4/1, 15 (i, j) pairs (paper).
    d.input_resolutions = (32, 16, 8, 4)
    for key in D_FOLLOWS_G:
        d[key] = _follow(g, key)
    d.head_layers = 4  # depth of psi_j, the t_D-modulated 1x1 conv stack (paper: 4)
    # Upsampler only: each D input also gets the image minus the bicubic-upsampled low-res input
    # G was given (3 more channels), so D judges the detail G adds and its fit to that input
    # rather than re-deriving both from the whole image (not in the paper; BENCHMARKS.md).
    d.input_residual = False
    return d


def _upsampler_defaults() -> ml_collections.ConfigDict:
    """The super-resolution stage (config.task = "upsampler"); model.resolution is its output size."""
    u = ml_collections.ConfigDict()
    u.input_resolution = 64  # low-res input; the paper chains 64 -> 256 / 512
    u.down_blocks = 3  # encoder residual blocks (paper: 3, 64 -> 8 px)
    # Training-time degradation of the low-res input (paper: Gaussian blur / noise augmentation),
    # per sample: blur sigma ~ U(0, blur_sigma_max) low-res pixels, noise std ~ U(0, noise_std_max)
    # in [-1, 1] units. Sampling feeds the input as is.
    u.blur_sigma_max = 1.0
    u.noise_std_max = 0.05
    return u


def _loss_defaults() -> ml_collections.ConfigDict:
    loss = ml_collections.ConfigDict()
    loss.matching_weight = 1.0  # matching-aware loss (eq. 8), D's term
    # G's matching term, softplus(-D(G(c), c_other)) ("G is trained with it too", Table 1); follows
    # matching_weight unless set, so the G side can be ablated alone (0 = off).
    loss.g_matching_weight = _follow(loss, "matching_weight")
    loss.r1_gamma = 0.2048  # paper: 0.2048-2.048
    loss.r1_interval = 16  # lazy R1: every k D steps, scaled by k
    loss.clip_weight = 1.0  # CLIP contrastive loss (eq. 9) on G's output; needs a CLIP
    # Captions drawn once from the data (seeded by train.seed) whose CLIP embeddings join each batch's
    # own as negatives in that loss; 0 = the batch's only (the paper). At small batches few in-batch
    # negatives differ from a caption in one attribute alone, so the loss stops teaching the hard ones.
    loss.clip_negatives = 0
    # Captions whose CLIP text embeddings have at least this cosine count as the same caption (a
    # paraphrase): never a negative of each other, in the CLIP loss or the matching-aware terms.
    loss.same_caption_cosine = 0.99
    loss.vision_aided_weight = 0.5  # frozen-CLIP-feature discriminator (its D and G terms)
    loss.vision_aided_start = -1  # step from which it is on; -1 = never
    # Its own frozen image backbone (paper: CLIP ViT-B/32), a local Hugging Face CLIP folder of
    # which only the image tower is loaded; "" = the image tower of the run's own CLIP
    # (config.clip.path, or the small one trained for the run). Checked when a run starts.
    loss.vision_aided_clip_path = ""
    # Upsampler only: perceptual distance of the output to the real high-res image (paper: LPIPS,
    # weight 10). "lpips": LPIPS-VGG from lpips_path, a file made by `python -m
    # gigagan_jax.tools.convert_lpips` (a run without one refuses to start); "fallback": the offline
    # distance of gigagan_jax.losses.perceptual (multi-scale L1 [+ CLIP features]), chosen explicitly.
    loss.perceptual_weight = 10.0
    loss.perceptual = "lpips"
    loss.lpips_path = ""
    loss.perceptual_clip_weight = 1.0  # fallback only: weight of its frozen-CLIP feature term
    return loss


def _optim_defaults() -> ml_collections.ConfigDict:
    optim = ml_collections.ConfigDict()
    optim.g_lr = 0.0025
    optim.d_lr = 0.0025
    optim.beta1 = 0.0
    optim.beta2 = 0.99
    optim.eps = 1e-8
    optim.attention_weight_decay = 0.01  # decoupled weight decay on attention projection weights only
    # G_ema: the old weights' share halves every `ema_half_life_images` training images, so the
    # average spans the same data whatever the batch. The paper's 0.9999 per step at batch 512.
    optim.ema_half_life_images = ema_half_life_for_beta(0.9999, 512)
    # StyleGAN2-style ramp-up: the half-life is at most `ema_rampup` x the images seen so far, so
    # early G_ema follows G instead of averaging the random init in. 0 = no ramp-up.
    optim.ema_rampup = 0.05
    return optim


def ema_half_life_for_beta(beta: float, batch_size: int) -> float:
    """The half-life in images at which a per-step EMA decay `beta` at `batch_size` holds:
    0.5 ** (batch_size / half_life) = beta."""
    return batch_size * math.log(0.5) / math.log(beta)


def _data_defaults() -> ml_collections.ConfigDict:
    data = ml_collections.ConfigDict()
    data.kind = "shapes"  # one of DATA_KINDS
    data.path = ""  # caption folder, prepared-dataset dir, or TFDS data_dir
    data.name = ""  # TFDS catalogue name for kind="tfds"
    data.split = "train"
    data.cache_dir = ""  # where prepared datasets are cached ("" = ~/.cache/gigagan_jax)
    data.num_examples = 20000  # size of the procedural shapes set
    data.shape_scale = 1.0  # size of the procedural shapes relative to the default (kind="shapes")
    data.shape_positions = ()  # where shapes may sit (names from data.shapes.POSITIONS); () = all five
    data.random_flip = False
    data.prefetch = 2
    data.num_workers = 0  # decode processes per host (spawned; 0 = read in the prefetch thread)
    return data


def default_config() -> ml_collections.ConfigDict:
    """All keys any config may set, with the values of the paper's 64 px text-to-image model."""
    config = ml_collections.ConfigDict()
    config.task = "t2i"

    model = ml_collections.ConfigDict()
    model.resolution = 64
    model.conditioning = "text"
    model.num_classes = 0
    model.dtype = "float32"  # compute dtype; params stay float32
    model.text_encoder_dim = 768  # width of the frozen CLIP token features (ViT-L/14: 768)
    model.text_len = 77
    model.g = _generator_defaults()
    model.d = _discriminator_defaults(model.g)
    model.upsampler = _upsampler_defaults()
    config.model = model

    config.clip = ml_collections.ConfigDict()
    config.clip.path = ""  # local Hugging Face folder; "" = a small CLIP trained by the project
    config.clip.train_steps = 800  # training steps of that small CLIP (cached in the workdir)
    # Reuse a small CLIP trained earlier on the same data with the same recipe (kept under
    # ~/.cache/gigagan_jax/small_clip, or $GIGAGAN_JAX_CACHE/small_clip) instead of training it per workdir.
    config.clip.reuse_trained = True
    # Under config.train.time_budget_minutes, the share of the budget a small CLIP may take.
    config.clip.budget_share = 0.25

    config.data = _data_defaults()
    config.loss = _loss_defaults()
    config.optim = _optim_defaults()

    train = ml_collections.ConfigDict()
    train.batch_size = 512
    train.seed = 0
    train.num_steps = 100_000
    # > 0: end the run (checkpoint and samples included) within this many minutes of its start,
    # its steps sized from the measured pace (gigagan_jax/train/budget.py); num_steps stays the cap.
    train.time_budget_minutes = 0.0
    train.checkpoint_every = 1000
    train.keep_checkpoints = 3
    train.log_every = 50  # stdout + TensorBoard scalars (and the non-finite check)
    train.sample_every = 1000  # sample grid PNG of fixed prompts and seeds
    train.sample_prompts = ()  # () = the first captions of the data set
    # A Weights & Biases project to mirror the TensorBoard log to ("" = off; needs `pip install wandb`).
    train.wandb_project = ""
    train.grad_accum_steps = 1  # micro-batches per optimiser step (batches larger than memory)
    # "blocks": G's synthesis blocks and D's stages are recomputed in the backward pass instead of
    # keeping their activations (jax.checkpoint; same numbers, same noise). Saves memory on GPU and
    # TPU; XLA:CPU drops optimisation barriers and merges the recomputation away, so on CPU it is a no-op.
    train.remat = "none"
    train.nonfinite = "stop"  # "stop": end the run at a non-finite loss | "skip": drop that step
    train.distributed = False  # join a multi-host cluster (jax.distributed.initialize) before anything else
    # Explicit cluster for launchers JAX does not auto-detect (TPU pods, SLURM, Open MPI are):
    train.coordinator_address = ""  # "host:port" of process 0
    train.num_processes = 0  # 0 = auto-detect
    train.process_id = -1  # -1 = auto-detect
    config.train = train

    mesh = ml_collections.ConfigDict()
    # -1 means "all remaining devices". The batch is sharded over both axes (FSDP).
    mesh.shape = (1, -1)
    mesh.axes = ("data", "fsdp")
    config.mesh = mesh
    return config


def load_config(path: str) -> ml_collections.ConfigDict:
    """Load `configs/name.py[:arg]` the way `--config` does: call its get_config([arg])."""
    import importlib.util

    file, _, arg = path.partition(":")
    spec = importlib.util.spec_from_file_location("gigagan_config", file)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load config file {file!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()


def uses_vision_aided(config: ml_collections.ConfigDict) -> bool:
    return config.loss.vision_aided_start >= 0 and config.loss.vision_aided_weight > 0


def has_vision_backbone(config: ml_collections.ConfigDict) -> bool:
    """The vision-aided D reads its own frozen image tower (config.loss.vision_aided_clip_path)."""
    return uses_vision_aided(config) and bool(config.loss.vision_aided_clip_path)


def needs_clip(config: ml_collections.ConfigDict) -> bool:
    """Text conditioning reads CLIP's tokens; the vision-aided D its caption embeddings."""
    return config.model.conditioning == "text" or uses_vision_aided(config)


def needs_image_tower(config: ml_collections.ConfigDict) -> bool:
    """CLIP loss, the upsampler's fallback perceptual term and a vision-aided D without a backbone
    of its own read images through the run's CLIP."""
    text = config.model.conditioning == "text"
    upsampler_fallback = (config.task == "upsampler" and config.loss.perceptual_weight > 0
                          and config.loss.perceptual == "fallback" and config.loss.perceptual_clip_weight > 0)
    return ((text and (config.loss.clip_weight > 0 or upsampler_fallback))
            or (uses_vision_aided(config) and not has_vision_backbone(config)))


def level_resolutions(resolution: int) -> list[int]:
    """Pyramid levels 4, 8, ..., resolution."""
    return [2**i for i in range(2, int(math.log2(resolution)) + 1)]


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // resolution, channel_max)


def _flatten_keys(cfg: ml_collections.ConfigDict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, ml_collections.ConfigDict):
            out.update(_flatten_keys(value, name + "."))
        else:
            out[name] = value
    return out


def _is_power_of_two(x: Any) -> bool:
    return isinstance(x, int) and x >= 4 and (x & (x - 1)) == 0


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _check_attn_resolutions(name: str, values: Iterable[int], levels: list[int]) -> None:
    for r in values:
        _require(r in levels, f"config.{name} contains {r!r}, which is not a pyramid level {levels}")


def resolve_mesh_shape(shape: Iterable[int], num_devices: int) -> tuple[int, ...]:
    """Replace a single -1 in the mesh shape by the remaining device count."""
    shape = tuple(int(s) for s in shape)
    _require(shape.count(-1) <= 1, f"config.mesh.shape {shape} may contain at most one -1")
    known = math.prod(s for s in shape if s != -1)
    _require(all(s == -1 or s >= 1 for s in shape), f"config.mesh.shape {shape} has a non-positive size")
    if -1 in shape:
        _require(num_devices % known == 0,
                 f"config.mesh.shape {shape} cannot be filled with {num_devices} devices")
        shape = tuple(num_devices // known if s == -1 else s for s in shape)
    _require(math.prod(shape) == num_devices,
             f"config.mesh.shape {shape} needs {math.prod(shape)} devices but {num_devices} are present")
    return shape


def upsampler_levels(resolution: int, input_resolution: int, down_blocks: int) -> list[int]:
    """Decoder levels of the upsampler: one above the encoder's bottom, ..., the output size."""
    bottom = input_resolution // 2**down_blocks
    return [r for r in level_resolutions(resolution) if r > bottom] if bottom >= 2 else []


def _validate_upsampler(config: ml_collections.ConfigDict) -> list[int]:
    m, u = config.model, config.model.upsampler
    _require(_is_power_of_two(u.input_resolution),
             f"config.model.upsampler.input_resolution must be a power of two >= 4, got {u.input_resolution!r}")
    _require(u.input_resolution < m.resolution,
             f"config.model.upsampler.input_resolution={u.input_resolution} must be below "
             f"config.model.resolution={m.resolution} (the output size)")
    _require(isinstance(u.down_blocks, int) and u.down_blocks >= 1
             and u.input_resolution // 2**u.down_blocks >= 2,
             f"config.model.upsampler.down_blocks={u.down_blocks!r} must be >= 1 and leave the "
             f"{u.input_resolution} px input at >= 2 px")
    for key in ("blur_sigma_max", "noise_std_max"):
        _require(u[key] >= 0, f"config.model.upsampler.{key} must be >= 0, got {u[key]}")
    return upsampler_levels(m.resolution, u.input_resolution, u.down_blocks)


def validate_config(config: ml_collections.ConfigDict, num_devices: int | None = None) -> None:
    """Raise ValueError with a message naming the offending key/value; silent when all is well.

    `num_devices` enables the mesh and batch-divisibility checks (pass `jax.device_count()`).
    """
    known = _flatten_keys(default_config())
    given = _flatten_keys(config)
    unknown = sorted(set(given) - set(known))
    _require(not unknown, f"unknown config key(s): {', '.join('config.' + k for k in unknown)}")
    missing = sorted(set(known) - set(given))
    _require(not missing, f"config is missing key(s): {', '.join('config.' + k for k in missing)}")
    # nan compares False and inf passes every bound below. All named at once: a key that follows
    # another (loss.g_matching_weight) inherits the bad value the user gave the other one.
    infinite = [f"config.{key}" for key, value in given.items()
                if isinstance(value, float) and not math.isfinite(value)]
    values = ", ".join(str(given[k[len("config."):]]) for k in infinite)
    _require(not infinite, f"{', '.join(infinite)} must be "
             f"{'a finite number' if len(infinite) == 1 else 'finite numbers'}, got {values}")

    m, g, d = config.model, config.model.g, config.model.d
    _require(config.task in TASKS, f"config.task must be one of {TASKS}, got {config.task!r}")
    _require(_is_power_of_two(m.resolution),
             f"config.model.resolution must be a power of two >= 4, got {m.resolution!r}")
    levels = level_resolutions(m.resolution)
    generated = levels  # pyramid levels G emits
    if config.task == "upsampler":
        generated = _validate_upsampler(config)
    _require(m.conditioning in CONDITIONINGS,
             f"config.model.conditioning must be one of {CONDITIONINGS}, got {m.conditioning!r}")
    _require(m.num_classes >= 0, f"config.model.num_classes must be >= 0, got {m.num_classes}")
    if m.conditioning == "class":
        _require(m.num_classes > 0, "config.model.num_classes must be > 0 for class conditioning")
    _require(m.dtype in DTYPES, f"config.model.dtype must be one of {DTYPES}, got {m.dtype!r}")
    _require(m.text_encoder_dim > 0, f"config.model.text_encoder_dim must be > 0, got {m.text_encoder_dim}")
    _require(m.text_len >= 2, f"config.model.text_len must be >= 2 (SOT and EOT), got {m.text_len}")

    _require(g.kernel_impl in KERNEL_IMPLS,
             f"config.model.g.kernel_impl must be one of {KERNEL_IMPLS}, got {g.kernel_impl!r}")
    for key in ("z_dim", "w_dim", "mapping_layers", "text_dim", "text_heads", "num_kernels", "convs_per_level",
                "attn_heads", "attn_head_dim", "channel_base", "channel_max"):
        _require(g[key] >= 1, f"config.model.g.{key} must be >= 1, got {g[key]!r}")
    _require(g.text_layers >= 0, f"config.model.g.text_layers must be >= 0, got {g.text_layers}")
    _require(0 <= g.attn_blocks_per_level <= g.convs_per_level,
             f"config.model.g.attn_blocks_per_level must be in [0, convs_per_level={g.convs_per_level}] "
             f"(each block follows a conv), got {g.attn_blocks_per_level}")
    _require(g.text_dim % g.text_heads == 0,
             f"config.model.g.text_dim={g.text_dim} is not divisible by text_heads={g.text_heads}")
    _require(g.mapping_lr_mult > 0, f"config.model.g.mapping_lr_mult must be > 0, got {g.mapping_lr_mult}")
    _require(channels_at(m.resolution, g.channel_base, g.channel_max) >= 1,
             f"config.model.g.channel_base={g.channel_base} gives no channels at {m.resolution} px")
    _check_attn_resolutions("model.g.self_attn_resolutions", g.self_attn_resolutions, generated)
    _check_attn_resolutions("model.g.cross_attn_resolutions", g.cross_attn_resolutions, generated)
    if m.conditioning != "text":
        _require(not g.cross_attn_resolutions,
                 f"config.model.g.cross_attn_resolutions must be empty for {m.conditioning} conditioning (no text)")
    _require(0.0 < g.attn_residual_gain <= 1.0,
             f"config.model.g.attn_residual_gain must be in (0, 1], got {g.attn_residual_gain}")
    _check_attn_resolutions("model.d.self_attn_resolutions", d.self_attn_resolutions, levels)
    _check_attn_resolutions("model.d.input_resolutions", d.input_resolutions, generated)
    for key in ("channel_base", "channel_max", "head_layers", "text_dim", "text_heads", "attn_heads", "attn_head_dim"):
        _require(d[key] >= 1, f"config.model.d.{key} must be >= 1, got {d[key]!r}")
    _require(d.text_layers >= 0, f"config.model.d.text_layers must be >= 0, got {d.text_layers}")
    _require(channels_at(m.resolution, d.channel_base, d.channel_max) >= 1,
             f"config.model.d.channel_base={d.channel_base} gives no channels at {m.resolution} px")
    _require(not d.input_residual or config.task == "upsampler",
             "config.model.d.input_residual needs config.task='upsampler' (it reads the upsampler's low-res input)")
    if m.conditioning == "text":
        _require(d.text_dim % d.text_heads == 0,
                 f"config.model.d.text_dim={d.text_dim} is not divisible by text_heads={d.text_heads}")

    loss, optim = config.loss, config.optim
    _require(loss.r1_interval >= 1, f"config.loss.r1_interval must be >= 1, got {loss.r1_interval}")
    for key in ("matching_weight", "g_matching_weight", "r1_gamma", "clip_weight", "vision_aided_weight",
                "perceptual_weight", "perceptual_clip_weight"):
        _require(loss[key] >= 0, f"config.loss.{key} must be >= 0, got {loss[key]}")
    _require(loss.clip_negatives >= 0, f"config.loss.clip_negatives must be >= 0, got {loss.clip_negatives}")
    _require(loss.clip_negatives == 0 or m.conditioning == "text",
             f"config.loss.clip_negatives={loss.clip_negatives} adds captions to the CLIP loss, so it needs "
             f"config.model.conditioning='text', got {m.conditioning!r}")
    _require(0 < loss.same_caption_cosine <= 1,
             f"config.loss.same_caption_cosine must be in (0, 1], got {loss.same_caption_cosine}")
    _require(loss.perceptual in PERCEPTUAL_LOSSES,
             f"config.loss.perceptual must be one of {PERCEPTUAL_LOSSES}, got {loss.perceptual!r}")
    _require(loss.perceptual == "lpips" or not loss.lpips_path,
             f"config.loss.lpips_path={loss.lpips_path!r} is set but config.loss.perceptual='fallback' would not "
             "read it: set config.loss.perceptual=lpips, or clear lpips_path")
    _require(loss.vision_aided_start >= -1,
             f"config.loss.vision_aided_start must be a step >= 0, or -1 for never, got {loss.vision_aided_start}")
    for key in ("g_lr", "d_lr", "eps", "ema_half_life_images"):
        _require(optim[key] > 0, f"config.optim.{key} must be > 0, got {optim[key]}")
    _require(optim.ema_rampup >= 0, f"config.optim.ema_rampup must be >= 0 (0 = none), got {optim.ema_rampup}")
    _require(optim.attention_weight_decay >= 0,
             f"config.optim.attention_weight_decay must be >= 0, got {optim.attention_weight_decay}")
    for key in ("beta1", "beta2"):
        _require(0 <= optim[key] < 1, f"config.optim.{key} must be in [0, 1), got {optim[key]}")

    _require(config.clip.train_steps >= 1, f"config.clip.train_steps must be >= 1, got {config.clip.train_steps}")

    data = config.data
    _require(data.kind in DATA_KINDS, f"config.data.kind must be one of {DATA_KINDS}, got {data.kind!r}")
    _require(data.num_examples >= 1, f"config.data.num_examples must be >= 1, got {data.num_examples}")
    _require(data.shape_scale > 0, f"config.data.shape_scale must be > 0, got {data.shape_scale}")
    for key in ("prefetch", "num_workers"):
        _require(data[key] >= 0, f"config.data.{key} must be >= 0 (0 = none), got {data[key]}")
    if data.kind == "tfds":
        _require(bool(data.name), "config.data.name must name a TFDS dataset when data.kind='tfds'")
    if data.kind == "folder":
        _require(bool(data.path), "config.data.path must point at a caption folder when data.kind='folder'")

    t = config.train
    _require(t.batch_size >= 1, f"config.train.batch_size must be >= 1, got {t.batch_size}")
    _require(0 <= t.seed < MAX_SEED, f"config.train.seed must be in [0, 2**32), got {t.seed}")
    _require(t.num_steps >= 0, f"config.train.num_steps must be >= 0, got {t.num_steps}")
    _require(math.isfinite(t.time_budget_minutes) and t.time_budget_minutes >= 0,
             f"config.train.time_budget_minutes must be >= 0 (0 = no budget), got {t.time_budget_minutes}")
    _require(0 < config.clip.budget_share < 1,
             f"config.clip.budget_share must be in (0, 1), got {config.clip.budget_share}")
    for key in ("checkpoint_every", "keep_checkpoints", "log_every", "sample_every", "grad_accum_steps"):
        _require(t[key] >= 1, f"config.train.{key} must be >= 1, got {t[key]}")
    _require(t.num_processes >= 0, f"config.train.num_processes must be >= 0 (0 = auto-detect), got {t.num_processes}")
    _require(t.process_id >= -1, f"config.train.process_id must be >= 0, or -1 to auto-detect, got {t.process_id}")
    explicit = bool(t.coordinator_address) or t.num_processes > 0 or t.process_id >= 0
    _require(t.distributed or not explicit, "config.train.coordinator_address / num_processes / process_id "
             "describe a cluster: set config.train.distributed=True too")
    _require(t.num_processes <= 0 or 0 <= t.process_id < t.num_processes or t.process_id < 0,
             f"config.train.process_id={t.process_id} is outside 0..num_processes-1={t.num_processes - 1}")
    _require(t.nonfinite in ("stop", "skip"), f"config.train.nonfinite must be 'stop' or 'skip', got {t.nonfinite!r}")
    _require(t.remat in REMAT_MODES, f"config.train.remat must be one of {REMAT_MODES}, got {t.remat!r}")
    _require(t.batch_size % t.grad_accum_steps == 0,
             f"config.train.batch_size={t.batch_size} is not divisible by grad_accum_steps={t.grad_accum_steps}")
    _require(t.batch_size // t.grad_accum_steps >= 2,
             "each micro-batch needs >= 2 samples (the matching-aware loss pairs samples within it)")

    _require(len(config.mesh.shape) == len(config.mesh.axes),
             f"config.mesh.shape {tuple(config.mesh.shape)} and config.mesh.axes "
             f"{tuple(config.mesh.axes)} differ in length")
    _require(set(config.mesh.axes) >= {"data", "fsdp"},
             f"config.mesh.axes must contain 'data' and 'fsdp', got {tuple(config.mesh.axes)}")
    if num_devices is not None:
        shape = resolve_mesh_shape(config.mesh.shape, num_devices)
        sizes = dict(zip(config.mesh.axes, shape))
        batch_shards = sizes["data"] * sizes["fsdp"]
        _require(t.batch_size % batch_shards == 0,
                 f"config.train.batch_size={t.batch_size} is not divisible by the mesh's "
                 f"data x fsdp = {batch_shards} devices")
