"""Loss terms of the GigaGAN objective, each a pure function."""
