"""Training and evaluation (needs torch): ``ssseg.train``."""
