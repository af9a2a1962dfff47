"""Speed measurements (train step, sampling, modulated conv implementations, input pipeline),
run as `python -m benchmarks.NAME`; figures go to BENCHMARKS.md."""
