"""Writes pillow_expected.inc: Pillow's resize outputs on small deterministic images, which the C++
resize functions must reproduce exactly (python cpp/tests/make_pillow_expected.py > cpp/tests/pillow_expected.inc)."""

import numpy as np
from PIL import Image


def arr(name, a):
    print(f"// {name}: {a.shape}, from Pillow {Image.__version__}")
    print(f"const std::vector<int> {name} = {{{', '.join(str(int(v)) for v in a.ravel())}}};")


h, w = 5, 7
img = np.array([[[((y * w + x) * 37 + c * 11) % 256 for c in range(3)] for x in range(w)] for y in range(h)], np.uint8)
print(f"// input: value = ((y * {w} + x) * 37 + c * 11) % 256")
arr("kBilinearDown3x4", np.asarray(Image.fromarray(img).resize((4, 3), Image.BILINEAR)))
arr("kBilinearUp8x11", np.asarray(Image.fromarray(img).resize((11, 8), Image.BILINEAR)))
arr("kBilinearDown2x7", np.asarray(Image.fromarray(img).resize((7, 2), Image.BILINEAR)))
lab = img[:, :, 0]
arr("kNearestDown3x4", np.asarray(Image.fromarray(lab).resize((4, 3), Image.NEAREST)))
arr("kNearestUp9x13", np.asarray(Image.fromarray(lab).resize((13, 9), Image.NEAREST)))
# scales that are not binary fractions, like 184 -> 360
lab2 = (np.arange(23 * 30) % 251).astype(np.uint8).reshape(23, 30)
arr("kNearestUp45x60", np.asarray(Image.fromarray(lab2).resize((60, 45), Image.NEAREST)))
img2 = np.stack([lab2, lab2[::-1], lab2[:, ::-1]], 2).copy()
arr("kBilinearDown10x13", np.asarray(Image.fromarray(img2).resize((13, 10), Image.BILINEAR)))
# 64 -> 48 rows and 64 -> 80 columns: accumulated positions differ from (i + 0.5) * scale here
lab3 = ((np.arange(64 * 64) * 7) % 251).astype(np.uint8).reshape(64, 64)
arr("kNearest64To48x80", np.asarray(Image.fromarray(lab3).resize((80, 48), Image.NEAREST)))
