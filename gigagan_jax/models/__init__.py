"""GigaGAN's own Flax linen networks (generator, upsampler, discriminator and their layers);
`build.py` turns a config into them. Frozen third-party networks live in `gigagan_jax.pretrained`."""
