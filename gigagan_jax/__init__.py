"""GigaGAN in JAX/Flax: models, training, data and evaluation."""
