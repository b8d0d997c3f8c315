"""Learning-rate schedules (pure functions)."""

from __future__ import annotations


def poly_lr(base_lr: float, iteration: int, max_iterations: int, power: float = 0.9) -> float:
    """The 'poly' policy of DeepLab: base * (1 - it / max_it) ** power."""
    return base_lr * (1.0 - min(iteration, max_iterations) / max(max_iterations, 1)) ** power


def scheduled_lr(base_lr: float, iteration: int, max_iterations: int, power: float = 0.9, warmup: int = 0) -> float:
    """Poly decay, ramped up linearly over the first ``warmup`` iterations (from base / warmup)."""
    lr = poly_lr(base_lr, iteration, max_iterations, power)
    return lr * min(1.0, (iteration + 1) / warmup) if warmup > 0 else lr
