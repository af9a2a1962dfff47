"""FID: streaming statistics, the eigh-based trace of the matrix square root against scipy,
FID of a set against itself, and reference-statistics files."""

import numpy as np
import pytest
import scipy.linalg

from gigagan_jax.eval.fid import (
    FeatureStats,
    feature_stats,
    frechet_distance,
    load_stats,
    save_stats,
    sqrtm_psd,
    trace_sqrt_product,
)


def random_features(n, d, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing + shift  # correlated, not isotropic


def scipy_fid(mu1, s1, mu2, s2):
    """The textbook formula with scipy's general matrix square root (pytorch-fid's recipe)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2)
                 - 2 * np.trace(covmean).real)


def test_streaming_stats_match_numpy_on_offset_features():
    # Features far from the origin: a naive sum(x x^T) - n mu mu^T would lose digits here.
    x = random_features(1000, 16, 0, shift=1e4)
    stats = FeatureStats(16)
    for chunk in np.array_split(x, [1, 7, 300, 301, 999]):  # uneven batches, incl. size 1
        stats.update(chunk)
    mu, sigma = stats.result()
    assert stats.count == 1000
    np.testing.assert_allclose(mu, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)


def test_covariance_needs_two_samples():
    stats = FeatureStats(4)
    stats.update(np.ones((1, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        stats.covariance()


def test_sqrtm_psd_matches_scipy():
    _, sigma = feature_stats(random_features(500, 64, 1))
    root = sqrtm_psd(sigma)
    np.testing.assert_allclose(root, scipy.linalg.sqrtm(sigma).real, atol=1e-10)
    np.testing.assert_allclose(root @ root, sigma, atol=1e-10)


@pytest.mark.parametrize("n", [2000, 40])  # full-rank, and rank-deficient (n < d) covariances
def test_trace_sqrt_product_matches_scipy(n):
    _, s1 = feature_stats(random_features(n, 64, 2))
    _, s2 = feature_stats(random_features(n, 64, 3, shift=0.5) * 1.7)
    expected = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-7)


def test_fid_matches_scipy_formula_and_is_symmetric():
    mu1, s1 = feature_stats(random_features(3000, 32, 4))
    mu2, s2 = feature_stats(random_features(3000, 32, 5, shift=0.3))
    fid = frechet_distance(mu1, s1, mu2, s2)
    assert fid == pytest.approx(scipy_fid(mu1, s1, mu2, s2), rel=1e-8)
    assert fid == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-8)
    assert fid > 1.0  # clearly different sets give a clearly positive distance


def test_fid_of_gaussians_has_closed_form():
    """Isotropic Gaussians: FID = |mu1 - mu2|^2 + d (a - b)^2 for covariances a^2 I, b^2 I."""
    d = 8
    fid = frechet_distance(np.zeros(d), 4.0 * np.eye(d), np.full(d, 0.5), 9.0 * np.eye(d))
    assert fid == pytest.approx(d * 0.25 + d * (2.0 - 3.0) ** 2, rel=1e-12)


@pytest.mark.parametrize("n, d", [(5000, 256), (200, 256),  # n < d: singular covariance
                                  pytest.param(600, 2048, marks=pytest.mark.slow)])
def test_fid_of_a_set_against_itself_is_zero(n, d):
    mu, sigma = feature_stats(random_features(n, d, 6))
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8 * np.trace(sigma))


def test_stats_round_trip(tmp_path):
    x = random_features(100, 8, 7)
    mu, sigma = feature_stats(x)
    save_stats(str(tmp_path / "ref.npz"), mu, sigma, len(x), resize="clean")
    ref = load_stats(str(tmp_path / "ref.npz"), resize="clean")
    np.testing.assert_array_equal(mu, ref.mu)
    np.testing.assert_array_equal(sigma, ref.sigma)
    assert (ref.count, ref.resize) == (100, "clean")
    with np.load(tmp_path / "ref.npz") as data:
        assert sorted(data.files) == ["count", "mu", "resize", "sigma"]
    # FID against the file is FID against the features it was computed from, bit for bit.
    y = random_features(100, 8, 8, shift=0.3)
    assert frechet_distance(ref.mu, ref.sigma, *feature_stats(y)) == frechet_distance(mu, sigma, *feature_stats(y))


def test_stats_files_of_other_tools_and_wrong_files(tmp_path):
    mu, sigma = feature_stats(random_features(50, 4, 9))
    np.savez_compressed(tmp_path / "clean_fid.npz", mu=mu, sigma=sigma)  # clean-fid's layout: no count, no resize
    ref = load_stats(str(tmp_path / "clean_fid.npz"), resize="legacy")
    np.testing.assert_array_equal(ref.sigma, sigma)
    assert (ref.count, ref.resize) == (None, None)

    save_stats(str(tmp_path / "legacy.npz"), mu, sigma, 50, resize="legacy")
    with pytest.raises(ValueError, match="taken under the 'legacy' FID resize, but this evaluation resizes "
                                         "with 'clean'.*--fid_resize legacy"):
        load_stats(str(tmp_path / "legacy.npz"), resize="clean")
    np.savez(tmp_path / "features.npz", inception=np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"holds no FID statistics: it needs arrays 'mu' and 'sigma'.*\['inception'\]"):
        load_stats(str(tmp_path / "features.npz"))
    (tmp_path / "notes.txt").write_text("mu, sigma")
    with pytest.raises(ValueError, match="notes.txt is not an .npz of FID statistics"):
        load_stats(str(tmp_path / "notes.txt"))
    with pytest.raises(FileNotFoundError, match="none.npz does not exist"):
        load_stats(str(tmp_path / "none.npz"))


def test_mismatched_shapes_raise():
    with pytest.raises(ValueError, match="disagree"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
