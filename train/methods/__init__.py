"""Training methods, one file each; each registers itself by name (train/registry.py)."""
