"""Auto-labeling: ``ssseg.label``. Torch-free like the runtime it drives: videos, image folders and
streams in, confidence-gated masks, manifests and overlays out."""


def run_label(cfg, say):
    from ssseg.label.job import run_label as run

    return run(cfg, say)
