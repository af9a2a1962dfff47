"""Evaluation: FID (FID Inception-v3), CLIP-FID, improved precision/recall, CLIP score and
sampling throughput, reported as JSON + TensorBoard scalars (`evaluate` in report.py)."""

from gigagan_jax.eval.report import evaluate

__all__ = ["evaluate"]
