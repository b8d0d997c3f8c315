"""ssseg: semi-supervised real-time road-scene segmentation, from few labels to deployed labelers."""

__version__ = "0.1.0"
