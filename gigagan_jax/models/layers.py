"""Equalized-learning-rate layers and GigaGAN's sample-adaptive modulated convolution.

Equalized lr (StyleGAN2): weights are stored as N(0, (init_std/lr_mult)^2) and multiplied at run
time by `lr_mult / sqrt(fan_in)`, so Adam sees every layer at the same scale and `lr_mult`
slows a layer down (the mapping network uses 0.01).

Every parameter carries logical axis names; `gigagan_jax.train.sharding` maps them to mesh axes.
"""

from __future__ import annotations

import functools
import math
import zlib
from typing import Any, Callable, Optional, Tuple

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp

from gigagan_jax.config import NOISE_MODES, REMAT_MODES
from gigagan_jax.models.resample import DEFAULT_FILTER, blur2d, downsample2d
from gigagan_jax.models.upsampled_conv import upsampled_conv

Dtype = Any
LRELU_GAIN = math.sqrt(2.0)
DEMOD_EPS = 1e-8
MODCONV_IMPLS = ("grouped", "bank", "patches", "per_sample")


BATCH_MESH_AXES = ("data", "fsdp")  # the mesh axes a batch is split over (train.sharding's rules)


def split_over_batch(x: jax.Array) -> jax.Array:
    """`x` [B, ...] kept split over the batch across the abstract mesh in context (the training
    steps are traced under theirs: `train.sharding.traced_on`).

    FSDP splits every weight's output features over 'fsdp'; left to itself, sharding propagation
    carries that split into the activations (channel-split, as tensor parallelism would) and then
    reshards them with all-reduces and all-to-alls. Pinning activations to the batch split at
    block boundaries makes each layer all-gather its weights instead, which is what FSDP means.
    The identity outside a mesh context, or when the batch does not divide over it."""
    axes, size = _batch_axes()
    if not axes or x.shape[0] % size:
        return x
    spec = jax.sharding.PartitionSpec(axes, *([None] * (x.ndim - 1)))
    return jax.lax.with_sharding_constraint(x, spec)


def batch_shards(batch: int) -> int:
    """How many row blocks a batch of `batch` rows is split into over the abstract mesh in
    context (the product of its batch axes); 1 outside a mesh, or when the batch does not divide."""
    _, size = _batch_axes()
    return size if batch % size == 0 else 1


def _batch_axes() -> tuple[tuple[str, ...], int]:
    """The batch axes of the abstract mesh in context and the product of their sizes ((), 1 outside a mesh)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return (), 1
    axes = tuple(a for a in BATCH_MESH_AXES if a in mesh.axis_names)
    return axes, math.prod(mesh.shape[a] for a in axes)


def rematerialised(module_cls: type[nn.Module], remat: str, static_argnums: tuple[int, ...] = ()) -> type[nn.Module]:
    """`module_cls` as is (remat "none"), or recomputed in the backward pass from its inputs
    instead of keeping its activations ("blocks": jax.checkpoint, nothing saved inside). The
    parameter tree is the same either way. static_argnums count `self` as 0."""
    if remat not in REMAT_MODES:
        raise ValueError(f"remat must be one of {REMAT_MODES}, got {remat!r}")
    return module_cls if remat == "none" else nn.remat(module_cls, static_argnums=static_argnums)


def lrelu(x: jax.Array) -> jax.Array:
    """Leaky ReLU(0.2) with StyleGAN's gain sqrt(2), which keeps activations at unit variance."""
    return jax.nn.leaky_relu(x, 0.2) * LRELU_GAIN


@jax.custom_vjp
def add_bias(y: jax.Array, bias: jax.Array) -> jax.Array:
    """y [..., C] + bias [C] (of y's dtype). Its gradient sums dy over every other axis as a
    matmul with a vector of ones: XLA:CPU runs that column reduction 2-5x faster than its own
    reduce (at [16, 64, 64, 64]: 2.2 against 5.1 ms), and the D and G steps take one per biased
    layer (BENCHMARKS.md, "... and bias gradients as matmuls")."""
    return y + bias


def _add_bias_fwd(y, bias):
    return y + bias, None


def _add_bias_bwd(_, dy):  # dy [..., C]
    rows = dy.reshape(-1, dy.shape[-1])  # [N, C]
    db = jnp.dot(jnp.ones((rows.shape[0],), rows.dtype), rows, preferred_element_type=jnp.float32)
    return dy, db.astype(dy.dtype)  # [C]


add_bias.defvjp(_add_bias_fwd, _add_bias_bwd)


def normalize_2nd_moment(x: jax.Array, axis: int = -1, eps: float = 1e-8) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + eps)


def matmul_last_axis(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """x [..., I] @ kernel [I, O], written as one 2-D matmul over the flattened leading axes.

    Its weight gradient is then the 2-D x^T dy, which XLA:CPU runs on dy as it lies. Written on
    3- or 4-D operands (`jnp.dot`, an einsum), XLA:CPU transposed the whole output gradient
    first: at D's 64 px from_rgb a 77 ms copy of [65536, 64] for a [3, 64] gradient
    (BENCHMARKS.md, "Dense layers as 2-D matmuls")."""
    rows = x.reshape(-1, x.shape[-1])  # [N, I]
    return jnp.dot(rows, kernel).reshape(x.shape[:-1] + kernel.shape[-1:])  # [..., O]


def _param(module: nn.Module, name: str, init_fn, shape: Tuple[int, ...], axes: Tuple[Optional[str], ...]):
    return module.param(name, nn.with_logical_partitioning(init_fn, axes), shape, jnp.float32)


class EqualizedDense(nn.Module):
    """Dense layer with equalized learning rate (optionally a leaky-ReLU activation)."""

    features: int
    lr_mult: float = 1.0
    init_std: float = 1.0
    bias_init: float = 0.0
    use_bias: bool = True
    activation: Optional[str] = None  # None | "lrelu"
    axes: Tuple[Optional[str], Optional[str]] = ("embed", "mlp")
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        kernel = _param(self, "kernel", nn.initializers.normal(self.init_std / self.lr_mult),
                        (fan_in, self.features), self.axes)
        scale = self.lr_mult / math.sqrt(fan_in)
        y = matmul_last_axis(x.astype(self.dtype), (kernel * scale).astype(self.dtype))
        if self.use_bias:
            bias = _param(self, "bias", nn.initializers.constant(self.bias_init / self.lr_mult),
                          (self.features,), (self.axes[1],))
            y = add_bias(y, (bias * self.lr_mult).astype(self.dtype))
        if self.activation == "lrelu":
            y = lrelu(y)
        elif self.activation is not None:
            raise ValueError(f"unknown activation {self.activation!r}")
        return y


Padding = Optional[Tuple[Tuple[int, int], Tuple[int, int]]]  # ((top, bottom), (left, right)); None: SAME


def _same(padding: Padding, k: int) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """`padding`, or SAME's for an odd k x k kernel."""
    return padding or ((k // 2, k // 2), (k // 2, k // 2))


def conv2d(x: jax.Array, kernel: jax.Array, padding: Padding = None, groups: int = 1) -> jax.Array:
    """Stride-1 NHWC convolution with an HWIO kernel, SAME-padded (odd kernel sizes) unless
    `padding` says otherwise. A 1x1 SAME kernel is a matmul over channels, written as one:
    XLA:CPU runs it 1.5-2.5x faster than the same 1x1 convolution (BENCHMARKS.md, "1x1
    convolutions as matmuls")."""
    if kernel.shape[:2] == (1, 1) and groups == 1 and padding is None:
        return matmul_last_axis(x, kernel[0, 0])
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(1, 1), padding=_same(padding, kernel.shape[0]),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)


def _conv_valid(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
    """VALID NHWC convolution with an HWIO kernel; a 1x1 stride-1 kernel as a matmul (as `conv2d`)."""
    if kernel.shape[:2] == (1, 1) and stride == 1:
        return matmul_last_axis(x, kernel[0, 0])
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(stride, stride), padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))


@jax.custom_vjp
def conv2d_stride2(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """VALID stride-2 NHWC convolution with a k x k HWIO kernel (StyleGAN2's conv-down).

    Its input gradient is taken per pixel parity of x. Autodiff writes it as one convolution over
    dy dilated with zeros, and XLA:CPU multiplies those zeros too: 4x the useful work, 2-3x the
    forward's time. Each pixel parity (r, s) of dx instead sees only the taps kernel[r::2, s::2],
    so dx is four small stride-1 convs of dy, interleaved (`_stride2_input_grad`). The kernel
    gradient stays XLA's (taken per phase it was slower: BENCHMARKS.md)."""
    return _conv_valid(x, kernel, stride=2)


def _conv2d_stride2_fwd(x, kernel):
    return _conv_valid(x, kernel, stride=2), (x, kernel)


def _conv2d_stride2_bwd(residuals, dy):  # dy [B, M, M', Cout]
    x, kernel = residuals
    dkernel, = jax.linear_transpose(lambda k: _conv_valid(x, k, stride=2), kernel)(dy)  # no forward conv traced
    return _stride2_input_grad(dy, kernel, x.shape[1:3]).astype(x.dtype), dkernel


conv2d_stride2.defvjp(_conv2d_stride2_fwd, _conv2d_stride2_bwd)


def _stride2_input_grad(dy: jax.Array, kernel: jax.Array, size: tuple[int, int]) -> jax.Array:
    """dx [B, H, W, Cin] of y = conv2d_stride2(x, kernel) for x of spatial `size`, from dy [B, M, M', Cout].

    y[i] = sum_a x[2i + a] k[a], so dx[2m + r] = sum_t dy[m - t] k[r + 2t] (per axis): for parity r
    a stride-1 VALID conv of dy, padded by T_r - 1 in front, with the taps k[r::2] reversed."""
    cin = kernel.shape[2]
    b, m_h, m_w, _ = dy.shape
    counts = [[(n - r + 1) // 2 for r in range(2)] for n in size]  # dx rows (columns) of each parity
    phases = []
    for r in range(2):
        row = []
        for s in range(2):
            taps = jnp.swapaxes(kernel[r::2, s::2][::-1, ::-1], 2, 3)  # [T_r, T_s, Cout, Cin]
            t_r, t_s = taps.shape[:2]
            n_r, n_s = counts[0][r], counts[1][s]
            if t_r == 0 or t_s == 0:  # k = 1: no tap has parity 1
                row.append(jnp.zeros((b, n_r, n_s, cin), dy.dtype))
                continue
            dyp = jnp.pad(dy, [(0, 0), (t_r - 1, n_r - m_h), (t_s - 1, n_s - m_w), (0, 0)])
            row.append(_conv_valid(dyp, taps.astype(dy.dtype)))  # [B, n_r, n_s, Cin]
        phases.append(row)
    h2, w2 = counts[0][0], counts[1][0]  # parity 0 has the most
    padded = [[jnp.pad(p, [(0, 0), (0, h2 - p.shape[1]), (0, w2 - p.shape[2]), (0, 0)]) for p in row] for row in phases]
    dx = einops.rearrange(jnp.stack([jnp.stack(row) for row in padded]), "r s b m n c -> b (m r) (n s) c")
    return dx[:, :size[0], :size[1]]  # [B, H, W, Cin]


def _conv_each(x: jax.Array, kernels: jax.Array, padding: Padding) -> jax.Array:
    """x [B, H, W, Cin] with kernels [B, k, k, Cin, Cout]: B plain convs in sequence."""
    return jax.lax.map(lambda xk: conv2d(xk[0][None], xk[1], padding)[0], (x, kernels))  # [B, H', W', Cout]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def per_sample_conv2d(x: jax.Array, kernels: jax.Array, padding: Padding = None) -> jax.Array:
    """Conv of each sample with its own kernel [B, k, k, Cin, Cout]: SAME (odd k) unless `padding`
    says otherwise.

    Forward and input gradient are B plain convs (the input gradient uses the flipped,
    transposed kernels); the kernel gradient is k*k batched matmuls, one per kernel tap.
    XLA:CPU's own derivative of the sequence of convs (through `lax.map`) is 10-20x slower.
    """
    return _conv_each(x, kernels, padding)


def _per_sample_conv2d_fwd(x, kernels, padding):
    return _conv_each(x, kernels, padding), (x, kernels)


def _per_sample_conv2d_bwd(padding, residuals, dy):  # dy [B, H', W', Cout]
    x, kernels = residuals
    k = kernels.shape[1]
    flipped = einops.rearrange(kernels[:, ::-1, ::-1], "b x y i o -> b x y o i")
    # The transpose of a stride-1 conv padded (lo, hi) is the flipped conv padded (k-1-lo, k-1-hi).
    (top, bottom), (left, right) = _same(padding, k)
    transposed = None if padding is None else ((k - 1 - top, k - 1 - bottom), (k - 1 - left, k - 1 - right))
    dx = _conv_each(dy, flipped, transposed)  # [B, H, W, Cin]
    return dx, _per_sample_kernel_grad(x, dy, k, padding)


def _per_sample_kernel_grad(x: jax.Array, dy: jax.Array, k: int, padding: Padding) -> jax.Array:
    """dK[b, i, j] = shifted(x_b, i, j)^T dy_b for every tap: [B, k, k, Cin, Cout].

    One matmul per tap over a shifted view of the padded input, not one over im2col(x): it
    needs no k*k-wide copy of x, and the kernel gradient alone runs 1.5-3x faster at 32-64 px
    on CPU (the whole G step only a few %: BENCHMARKS.md). Each is written dy^T view, not
    view^T dy: XLA:CPU's batched matmul wants its left operand's contracted axis minor, so it
    transposes dy once for all taps instead of every view (at [8, 64, 64, 64], 76 against 96 ms).
    """
    taps = [jnp.einsum("bhwo,bhwc->boc", dy, view) for view in shifted_views(x, k, padding)]  # k*k x [B, Cout, Cin]
    return einops.rearrange(jnp.stack(taps, axis=1), "b (i j) o c -> b i j c o", i=k)


per_sample_conv2d.defvjp(_per_sample_conv2d_fwd, _per_sample_conv2d_bwd)


def shifted_views(x: jax.Array, k: int, padding: Padding = None) -> list[jax.Array]:
    """[B, H, W, C] -> k*k arrays [B, H', W', C] (H' = H for SAME): the padded input shifted by
    each kernel tap (dy, dx), in the row-major order of an HWIO kernel's (x, y) axes."""
    (top, bottom), (left, right) = _same(padding, k)
    xp = jnp.pad(x, [(0, 0), (top, bottom), (left, right), (0, 0)])
    h, w = xp.shape[1] - k + 1, xp.shape[2] - k + 1
    return [xp[:, dy:dy + h, dx:dx + w] for dy in range(k) for dx in range(k)]


def im2col(x: jax.Array, k: int, padding: Padding = None) -> jax.Array:
    """[B, H, W, C] -> [B, H', W', k*k*C]: the padded (SAME unless `padding` says otherwise) k x k
    neighbourhood of every output pixel, ordered (dy, dx, channel) like a flattened HWIO kernel."""
    return jnp.concatenate(shifted_views(x, k, padding), axis=-1)


class EqualizedConv(nn.Module):
    """Conv with equalized lr; `down=True` low-pass filters then strides by 2 (StyleGAN2 D)."""

    features: int
    kernel_size: int = 3
    down: bool = False
    use_bias: bool = True
    activation: Optional[str] = None
    dtype: Dtype = jnp.float32
    kernel_init: Callable = nn.initializers.normal(1.0)  # unit scale: the 1/sqrt(fan_in) is applied at run time

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cin, k = x.shape[-1], self.kernel_size
        kernel = _param(self, "kernel", self.kernel_init, (k, k, cin, self.features),
                        (None, None, "conv_in", "conv_out"))
        kernel = (kernel / math.sqrt(k * k * cin)).astype(self.dtype)
        x = x.astype(self.dtype)
        if self.down:
            # StyleGAN2's conv-down: blur with enough padding that a VALID stride-2 k x k conv
            # gives exactly H/2, so the low-pass happens before the subsampling.
            if k == 1:  # a strided 1x1 conv (D's skip) reads every other blurred pixel: downsample2d's
                y = conv2d(downsample2d(x), kernel)
            else:
                p = len(DEFAULT_FILTER) - 2 + k - 1
                y = conv2d_stride2(blur2d(x, ((p + 1) // 2, p // 2)), kernel)
        else:
            y = conv2d(x, kernel)
        if self.use_bias:
            bias = _param(self, "bias", nn.initializers.zeros, (self.features,), ("conv_out",))
            y = add_bias(y, bias.astype(self.dtype))
        if self.activation == "lrelu":
            y = lrelu(y)
        return y


def residual_down(x: jax.Array, features: int, dtype: Dtype = jnp.float32) -> jax.Array:
    """StyleGAN2's residual block r -> r/2: two 3x3 convs (the second low-passed and strided)
    plus a strided 1x1 skip. Call it inside a compact method: its convs become that module's
    `skip`, `conv0` and `conv1` (the discriminator's blocks and the upsampler's encoder share it)."""
    skip = EqualizedConv(features, kernel_size=1, down=True, use_bias=False, dtype=dtype, name="skip")(x)
    y = EqualizedConv(x.shape[-1], activation="lrelu", dtype=dtype, name="conv0")(x)
    y = EqualizedConv(features, down=True, activation="lrelu", dtype=dtype, name="conv1")(y)
    return (y + skip) * (1.0 / math.sqrt(2.0))


class KernelSelection(nn.Module):
    """a = softmax(W_filter w + b_filter): each sample's weights over the N kernels.  [B, w_dim] -> [B, N]"""

    num_kernels: int

    @nn.compact
    def __call__(self, w: jax.Array) -> jax.Array:
        fan_in = w.shape[-1]
        kernel = _param(self, "kernel", nn.initializers.normal(1.0), (fan_in, self.num_kernels), ("embed", None))
        bias = _param(self, "bias", nn.initializers.zeros, (self.num_kernels,), (None,))
        logits = jnp.dot(w.astype(jnp.float32), kernel / math.sqrt(fan_in)) + bias
        return jax.nn.softmax(logits, axis=-1)


class AdaptiveModulatedConv(nn.Module):
    """Sample-adaptive kernel selection + StyleGAN2 (de)modulation (GigaGAN eq. 1-2).

    A bank of N kernels K_i; each sample mixes them with a = softmax(W_filter w + b_filter),
    modulates the input channels by s = W_mod w + b_mod (bias 1), and demodulates each output
    channel to unit expected variance. `impl` chooses between three equal computations:
      "grouped": build each sample's kernel and run one grouped conv (feature_group_count=B);
      "bank":    run the N shared kernels on the modulated input as one wide conv, then mix the
                 N outputs with a and apply the demodulation factor afterwards (N x the FLOPs);
      "patches": build each sample's kernel and apply it as one batched matmul over the
                 k*k shifted copies of the input (im2col): the grouped conv's FLOPs, but as a
                 plain matmul, which XLA:CPU runs far faster than a grouped conv;
      "per_sample": build each sample's kernel and run B plain convs one after another
                 (`per_sample_conv2d`): the grouped conv's FLOPs with neither a grouped conv nor,
                 in the forward pass, the k*k input copies of im2col.
    """

    features: int
    kernel_size: int = 3
    num_kernels: int = 1
    demodulate: bool = True
    up: bool = False
    impl: str = "grouped"
    dtype: Dtype = jnp.float32
    kernel_init: Callable = nn.initializers.normal(1.0)

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        b, _, _, cin = x.shape
        k, n = self.kernel_size, self.num_kernels
        if self.impl not in MODCONV_IMPLS:
            raise ValueError(f"kernel impl must be one of {MODCONV_IMPLS}, got {self.impl!r}")
        styles = EqualizedDense(cin, bias_init=1.0, name="affine", dtype=jnp.float32)(w)  # [B, Cin]
        a = KernelSelection(n, name="select")(w) if n > 1 else jnp.ones((b, 1), jnp.float32)  # [B, N]
        bank = _param(self, "kernel", self.kernel_init, (n, k, k, cin, self.features),
                      ("conv_kernels", None, None, "conv_in", "conv_out"))
        bank = bank / math.sqrt(k * k * cin)  # [N, k, k, Cin, Cout]
        if self.up and k != 3:
            raise ValueError(f"an upsampling modulated conv takes a 3x3 kernel, got {k}x{k}")

        def convolve(conv, x, kernel):  # conv(x, kernel, padding): SAME, or of x upsampled 2x ([B, 2H, 2W, C])
            return upsampled_conv(x, kernel, conv) if self.up else conv(x, kernel, None)

        def demod_factor(mixed):  # [B, k, k, Cin, Cout] -> [B, Cout]
            return jax.lax.rsqrt(jnp.sum(jnp.square(mixed), axis=(1, 2, 3)) + DEMOD_EPS)

        def sample_kernels():  # each sample's mixed, modulated kernel  [B, k, k, Cin, Cout]
            mixed = jnp.einsum("bn,nxyio->bxyio", a, bank)
            return mixed * styles[:, None, None, :, None]

        # A 1x1 kernel is a matmul over channels whatever the impl; the style then goes where it
        # costs fewer multiplies: into each sample's kernel [B, Cin, Cout] when the image has more
        # pixels than the kernel has outputs (ToRGB), else into x [B, H, W, Cin] (D's heads at small sizes).
        bank_form = self.impl == "bank" if k > 1 else x.shape[1] * x.shape[2] <= self.features
        if bank_form:
            xm = (x * styles[:, None, None, :]).astype(self.dtype)  # [B, H, W, Cin]
            kernel = einops.rearrange(bank, "n x y i o -> x y i (n o)").astype(self.dtype)
            y = convolve(conv2d, xm, kernel)  # [B, H, W, N*Cout]
            if n > 1:
                y = einops.rearrange(y, "b h w (n o) -> b h w n o", n=n)
                y = jnp.einsum("bhwno,bn->bhwo", y, a.astype(self.dtype))
            if self.demodulate:
                y = y * demod_factor(sample_kernels())[:, None, None, :].astype(self.dtype)
            return y
        kernel = sample_kernels()  # the other impls (and a 1x1 bank on a large image): each sample's own kernel
        if self.demodulate:
            kernel = kernel * demod_factor(kernel)[:, None, None, None, :]
        kernel, x = split_over_batch(kernel.astype(self.dtype)), x.astype(self.dtype)  # per sample, like x
        if k == 1:  # to RGB over 64 images at 64 px, forward: 3.7 ms, against 67 ms as a 1x1 conv
            return jnp.einsum("bhwc,bco->bhwo", x, kernel[:, 0, 0])
        return convolve(PER_SAMPLE_CONVS[self.impl], x, kernel)


def _patches_conv(x: jax.Array, kernels: jax.Array, padding: Padding) -> jax.Array:
    """Each sample's kernel [B, k, k, Cin, Cout] as one batched matmul over im2col(x)."""
    k = kernels.shape[1]
    return jnp.einsum("bhwc,bco->bhwo", im2col(x, k, padding), einops.rearrange(kernels, "b x y i o -> b (x y i) o"))


def _grouped_conv(x: jax.Array, kernels: jax.Array, padding: Padding) -> jax.Array:
    """Each sample's kernel [B, k, k, Cin, Cout] as one grouped conv, the batch folded into channels."""
    b = x.shape[0]
    xg = einops.rearrange(x, "b h w c -> 1 h w (b c)")
    y = conv2d(xg, einops.rearrange(kernels, "b x y i o -> x y i (b o)"), padding, groups=b)  # [1, H', W', B*Cout]
    return einops.rearrange(y, "1 h w (b o) -> b h w o", b=b)


# The impls that apply each sample's own kernel: conv(x, kernels [B, k, k, Cin, Cout], padding).
PER_SAMPLE_CONVS = {"patches": _patches_conv, "grouped": _grouped_conv, "per_sample": per_sample_conv2d}


class SynthesisLayer(nn.Module):
    """Adaptive modulated conv + per-pixel noise + bias + leaky ReLU (one generator layer).

    noise_mode (NOISE_MODES): "random" draws fresh noise from the 'noise' rng (training, and the
    metrics by default); "const" adds a fixed map per layer, the same for every sample and run
    (StyleGAN's sampling default: noise at its trained strength, images a function of the seed);
    "none" adds none.
    """

    features: int
    num_kernels: int
    up: bool = False
    use_noise: bool = True
    impl: str = "grouped"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array, noise_mode: str = "random") -> jax.Array:
        y = AdaptiveModulatedConv(self.features, 3, self.num_kernels, up=self.up, impl=self.impl,
                                  dtype=self.dtype, name="conv")(x, w)
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if self.use_noise:
            strength = self.param("noise_strength", nn.initializers.zeros, (), jnp.float32)
            b, h, wd, _ = y.shape
            if noise_mode == "random":
                noise = jax.random.normal(self.make_rng("noise"), (b, h, wd, 1), jnp.float32)
            elif noise_mode == "const":  # one map per layer, keyed by the layer's name: same in every run
                key = jax.random.PRNGKey(zlib.crc32("/".join(self.scope.path).encode()))
                noise = jax.random.normal(key, (1, h, wd, 1), jnp.float32)
            if noise_mode != "none":
                y = y + (noise * strength).astype(y.dtype)
        bias = _param(self, "bias", nn.initializers.zeros, (self.features,), ("conv_out",))
        return lrelu(add_bias(y, bias.astype(y.dtype)))


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB without demodulation (StyleGAN2 skip generator)."""

    channels: int = 3
    dtype: Dtype = jnp.float32
    kernel_init: Callable = nn.initializers.normal(1.0)

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        y = AdaptiveModulatedConv(self.channels, 1, 1, demodulate=False, impl="bank",
                                  dtype=self.dtype, kernel_init=self.kernel_init, name="conv")(x, w)
        bias = _param(self, "bias", nn.initializers.zeros, (self.channels,), (None,))
        return add_bias(y, bias.astype(y.dtype)).astype(jnp.float32)
