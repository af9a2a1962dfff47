"""Training system: sharding (mesh and logical axis rules)."""
