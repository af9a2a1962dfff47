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

import numpy as np


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


def save_stats(path: str, mu, sigma, count: int) -> None:
    """Write reference statistics as .npz with keys mu / sigma (pytorch-fid's layout) + count."""
    np.savez(path, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64),
             count=np.asarray(count, np.int64))


def load_stats(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) from a .npz written by `save_stats` or by pytorch-fid."""
    with np.load(path) as data:
        return data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
