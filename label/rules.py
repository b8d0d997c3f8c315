"""The naming and numbering rules both runtimes share, read from label/rules.json (ssseg-cpp compiles the same
file in): the job's own file names no source may take (matched ignoring case), how many hex digits of
sha256 tell same-named sources apart, how long a name may be, and the constants by which a video's timestamps
number its frames (label/decode.py)."""

from __future__ import annotations

import json
import re
from importlib import resources

_RULES = json.loads(resources.files("ssseg.label").joinpath("rules.json").read_text(encoding="utf-8"))

RESERVED = re.compile(_RULES["reserved_names"], re.IGNORECASE)
HASH_DIGITS: int = _RULES["hash_digits"]
NAME_LENGTH: int = _RULES["name_length"]
# Frames after damaged data within which a gap in the timestamps counts as frames it took: the decoder hands
# frames out with a delay (reordering), so the gap shows a few frames late.
GAP_WINDOW: int = _RULES["gap_window"]
# How far (in frame periods) a timestamp may sit off the frame grid for the video to count as constant-rate,
# whose timestamps then number the frames: a jump in them is frames lost even when FFmpeg says nothing.
GRID_TOLERANCE: float = _RULES["grid_tolerance"]
MIN_REGULAR: int = _RULES["min_regular"]  # frames one period apart before a jump counts as frames lost
