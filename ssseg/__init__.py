"""ssseg: semi-supervised real-time road-scene segmentation, from few labels to deployed labelers."""

from ssseg.versions import __version__  # noqa: F401 - the package's version, as ssseg.__version__


def __getattr__(name: str):
    """``ssseg.Labeler``, ``ssseg.Prediction``: the Python API (ssseg/api.py), imported when first used so that
    ``import ssseg`` (and ``ssseg --help``) stays light."""
    if name in ("Labeler", "Prediction"):
        from ssseg import api

        return getattr(api, name)
    raise AttributeError(f"module 'ssseg' has no attribute {name!r}")
