"""Everything after training: restore a trained generator, sample it, edit in its latent space,
chain the upsampler, and lay images out as grids."""
