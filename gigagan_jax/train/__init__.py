"""Training: the train state and optimisers, the pure jitted D/G steps, sharding over a device
mesh, the run's frozen CLIP (or a small one trained for it), and the loop that glues them."""
