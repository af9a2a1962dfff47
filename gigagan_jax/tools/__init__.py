"""Command-line tools (python -m gigagan_jax.tools.NAME)."""
