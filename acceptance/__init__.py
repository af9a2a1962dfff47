"""Acceptance checks of trained demo runs: does a run follow its prompts, beat bicubic, or has a
CLIP that reads the shapes? Run as `python -m acceptance.NAME --workdir ...`."""
