"""Research probes: small stand-alone experiments that isolate one question about training, not part of any run."""
