"""The command lines users run: `train.py` / `sample.py` at the repository root and the installed
`gigagan-train` / `gigagan-sample` entry points are the same `run()` functions."""
