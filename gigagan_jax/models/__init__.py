"""Flax linen modules: generator layers, attention, text path, mapping and the full generator."""
