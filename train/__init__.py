"""Training (needs torch), except config.py: the options, which the CLI reads without torch."""
