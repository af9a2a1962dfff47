"""Fréchet distance between Gaussian fits of two feature sets (FID, and CLIP-FID in CLIP space).

FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)). The statistics are accumulated
batch by batch in float64, so feature sets of any size stream through in constant memory. The
trace term needs no general (scipy) matrix square root: S1 S2 is similar to the symmetric PSD
matrix S1^(1/2) S2 S1^(1/2), so both have the same eigenvalues and
tr((S1 S2)^(1/2)) = sum(sqrt(eig(S1^(1/2) S2 S1^(1/2)))), two symmetric eigendecompositions.
This is also exact when S1 is singular (fewer samples than dimensions), where scipy's `sqrtm`
returns small imaginary parts that pytorch-fid has to discard.
"""

from __future__ import annotations

import zipfile
from typing import NamedTuple

import numpy as np

from gigagan_jax.workdir import exists, open_file


class FeatureStats:
    """Streaming mean and covariance of feature vectors, in float64.

    Batches are merged with Chan et al.'s pairwise update (per-batch centred scatter plus a
    correction for the shift of the mean), which avoids the cancellation of sum(x x^T) - n mu mu^T
    when features sit far from the origin.
    """

    def __init__(self, dim: int):
        self.count = 0
        self.mean = np.zeros(dim, np.float64)  # [D]
        self.scatter = np.zeros((dim, dim), np.float64)  # [D, D]: sum of (x - mean)(x - mean)^T

    def update(self, features) -> None:
        x = np.asarray(features, np.float64).reshape(-1, self.mean.shape[0])  # [B, D]
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(axis=0)  # [D]
        centred = x - batch_mean
        delta = batch_mean - self.mean
        total = self.count + n
        self.scatter += centred.T @ centred + np.outer(delta, delta) * (self.count * n / total)
        self.mean += delta * (n / total)
        self.count = total

    def covariance(self) -> np.ndarray:
        """Unbiased covariance [D, D] (divides by n - 1, like numpy.cov and pytorch-fid)."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 feature vectors, got {self.count}")
        return self.scatter / (self.count - 1)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean [D], covariance [D, D])."""
        return self.mean.copy(), self.covariance()


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of features [N, D] held in memory."""
    stats = FeatureStats(np.shape(features)[-1])
    stats.update(features)
    return stats.result()


def sqrtm_psd(matrix) -> np.ndarray:
    """Principal square root of a symmetric positive semi-definite matrix, via eigh.

    Eigenvalues that round-off pushes slightly below zero are clipped to 0.
    """
    a = np.asarray(matrix, np.float64)
    values, vectors = np.linalg.eigh((a + a.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def trace_sqrt_product(sigma1, sigma2) -> float:
    """tr((S1 S2)^(1/2)) for covariances S1, S2 [D, D], as sum(sqrt(eig(S1^½ S2 S1^½)))."""
    root = sqrtm_psd(sigma1)  # [D, D]
    inner = root @ np.asarray(sigma2, np.float64) @ root  # [D, D], symmetric PSD
    values = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(values, 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (FID on Inception features)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics disagree in shape: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    distance = (diff @ diff + np.trace(sigma1) + np.trace(sigma2)
                - 2.0 * trace_sqrt_product(sigma1, sigma2))
    return float(max(distance, 0.0))  # round-off can leave -1e-12 for identical sets


class ReferenceStats(NamedTuple):
    """FID statistics of a reference set, as stored in an .npz (`save_stats`, pytorch-fid or
    clean-fid); `count` and `resize` are None where the file does not record them."""

    mu: np.ndarray  # [D]
    sigma: np.ndarray  # [D, D]
    count: int | None
    resize: str | None


def save_stats(path: str, mu, sigma, count: int, resize: str | None = None) -> None:
    """Write reference statistics as .npz with keys mu / sigma (pytorch-fid's and clean-fid's
    layout) + count and, when given, the resize protocol the features were taken under."""
    extra = {} if resize is None else {"resize": np.asarray(resize)}
    with open_file(path, "wb") as f:
        np.savez(f, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64),
                 count=np.asarray(count, np.int64), **extra)


def load_stats(path: str, resize: str | None = None) -> ReferenceStats:
    """Reference statistics from an .npz written by `save_stats`, pytorch-fid or clean-fid.
    With `resize`, a file that records its protocol must record that one: FIDs taken under
    different resizes are not comparable (ValueError). A file without mu / sigma is a ValueError."""
    if not exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with open_file(path, "rb") as f:
            data = np.load(f)
            if not isinstance(data, np.lib.npyio.NpzFile):  # a lone .npy array
                raise ValueError
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile):
        raise ValueError(f"{path} is not an .npz of FID statistics (arrays mu, sigma)") from None
    if "mu" not in arrays or "sigma" not in arrays:
        raise ValueError(f"{path} holds no FID statistics: it needs arrays 'mu' and 'sigma' "
                         f"(pytorch-fid's and clean-fid's layout), it has {sorted(arrays)}")
    recorded = str(arrays["resize"]) if "resize" in arrays else None
    if resize is not None and recorded is not None and recorded != resize:
        raise ValueError(f"{path} holds statistics taken under the {recorded!r} FID resize, but this "
                         f"evaluation resizes with {resize!r}: FIDs across resize protocols are not "
                         f"comparable (evaluate with --fid_resize {recorded}, or recompute the statistics)")
    count = int(arrays["count"]) if "count" in arrays else None
    return ReferenceStats(arrays["mu"].astype(np.float64), arrays["sigma"].astype(np.float64), count, recorded)
