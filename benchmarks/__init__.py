"""Speed measurements (train step, sampling, modulated conv implementations, input pipeline); figures go to BENCHMARKS.md."""
