"""``ssseg report``: one self-contained report.html (and report.json beside it) of a label job or a training run.
Reports read the files those commands wrote, never the networks, so they are quick and need no torch."""
