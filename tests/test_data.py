import numpy as np
import pytest
from PIL import Image

from ssseg.classes import IGNORE_INDEX
from ssseg.data import open_dataset
from ssseg.data.check import check_dataset
from ssseg.data.synthetic import SYNTHETIC, render_scene, write_synthetic
from ssseg.errors import DataError
from ssseg.train.data import scan


def test_synthetic_is_deterministic_per_seed_split_and_index():
    a = render_scene(0, "train", 3, (64, 96))
    b = render_scene(0, "train", 3, (64, 96))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], render_scene(1, "train", 3, (64, 96))[0])
    assert not np.array_equal(a[0], render_scene(0, "val", 3, (64, 96))[0])


def test_synthetic_draws_every_class_including_thin_and_small_ones():
    ds = open_dataset("synthetic:size=96x128,train=24", "train")
    seen = np.zeros(SYNTHETIC.num_classes, bool)
    for i in range(len(ds)):
        image, label = ds.load(i)
        assert image.shape == (96, 128, 3) and image.dtype == np.uint8 and label.shape == (96, 128)
        seen[np.unique(label)] = True
    assert seen.all(), [n for n, s in zip(SYNTHETIC.names, seen) if not s]


def test_synthetic_splits_have_fixed_sizes():
    assert [len(open_dataset("synthetic", s)) for s in ("train", "val", "test")] == [64, 16, 16]
    assert len(open_dataset("synthetic:train=5,size=40x40", "train")) == 5
    with pytest.raises(DataError, match="bad synthetic option"):
        open_dataset("synthetic:colour=red", "train")


def test_camvid_reads_segnet_lists_and_maps_unlabelled_to_ignore(camvid_root):
    ds = open_dataset(f"camvid:{camvid_root}", "train")
    assert len(ds) == 4 and ds.classes.num_classes == 11
    image, label = ds.load(0)
    assert image.shape == (48, 64, 3)
    assert (label[:2] == IGNORE_INDEX).all()
    assert set(np.unique(label)) <= set(range(11)) | {IGNORE_INDEX}
    assert len(open_dataset(f"camvid:{camvid_root}", "val")) == 2


def test_camvid_without_lists_pairs_by_stem(camvid_root):
    (camvid_root / "train.txt").unlink()
    ds = open_dataset(f"camvid:{camvid_root}", "train")
    assert ds.ids == ["f000", "f001", "f002", "f003"]


def test_cityscapes_maps_label_ids_to_train_ids(cityscapes_root):
    ds = open_dataset(f"cityscapes:{cityscapes_root}", "train")
    assert len(ds) == 2 and ds.classes.num_classes == 19
    _, label = ds.load(0)
    _, synth = render_scene(0, "train", len("aachen"), (48, 64))
    assert (label[:2] == IGNORE_INDEX).all()
    assert np.array_equal(label[2:], synth[2:])  # train id i <- labelId CITYSCAPES_LABEL_IDS[i]


def test_folder_layout_with_splits_and_flat(folder_root, tmp_path):
    ds = open_dataset(f"folder:{folder_root}", "val")
    image, label = ds.load(1)
    ref = render_scene(0, "val", 1, (48, 64))
    assert np.array_equal(image, ref[0]) and np.array_equal(label, ref[1])
    flat = tmp_path / "flat"
    (flat / "images").mkdir(parents=True)
    (flat / "labels").mkdir()
    (flat / "classes.json").write_text('{"preset": "synthetic"}')
    Image.fromarray(ref[0]).save(flat / "images" / "a.jpg")
    Image.fromarray(ref[1]).save(flat / "labels" / "a.png")
    assert open_dataset(f"folder:{flat}", "train").ids == ["a"]
    with pytest.raises(DataError, match="no val split"):
        open_dataset(f"folder:{flat}", "val")


def test_missing_label_names_the_file(camvid_root):
    (camvid_root / "train.txt").unlink()
    (camvid_root / "trainannot" / "f002.png").unlink()
    with pytest.raises(DataError) as e:
        open_dataset(f"camvid:{camvid_root}", "train")
    assert "f002.png" in str(e.value) and "no label" in str(e.value)


def test_size_mismatch_names_the_label(folder_root):
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(folder_root / "train" / "labels" / "train_00001.png")
    ds = open_dataset(f"folder:{folder_root}", "train")
    with pytest.raises(DataError, match=r"train_00001\.png.*label is 10x10"):
        ds.load(1)


def test_out_of_set_labels_are_an_error_not_ignore(folder_root):
    Image.fromarray(np.full((48, 64), 42, np.uint8)).save(folder_root / "train" / "labels" / "train_00000.png")
    with pytest.raises(DataError, match=r"train_00000\.png: label values \[42\] are outside the class set"):
        open_dataset(f"folder:{folder_root}", "train").load(0)


def test_corrupt_image_is_named_and_skip_bad_counts_it(folder_root):
    bad = folder_root / "train" / "images" / "train_00003.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = open_dataset(f"folder:{folder_root}", "train")
    with pytest.raises(DataError, match="train_00003.png"):
        ds.load(3)
    with pytest.raises(DataError, match="train_00003.png"):
        scan(ds, skip_bad=False)
    kept, hist, skipped = scan(ds, skip_bad=True, log=lambda *_: None)
    assert len(kept) == 3 and len(skipped) == 1 and "train_00003" in skipped[0] and hist.sum() > 0
    report = check_dataset(f"folder:{folder_root}", ["train"], skip_bad=True)
    assert report["splits"]["train"]["images"] == 3 and len(report["splits"]["train"]["bad"]) == 1


def test_bad_specs_and_paths(tmp_path):
    with pytest.raises(DataError, match="unknown dataset spec"):
        open_dataset("kitti:/x", "train")
    with pytest.raises(DataError, match="has no path"):
        open_dataset("camvid", "train")
    with pytest.raises(DataError, match=str(tmp_path / "nope")):
        open_dataset(f"camvid:{tmp_path / 'nope'}", "train")
    (tmp_path / "f").mkdir()
    with pytest.raises(DataError, match="classes.json is missing"):
        open_dataset(f"folder:{tmp_path / 'f'}", "train")


def test_check_reports_histograms_and_missing_splits(camvid_root):
    report = check_dataset(f"camvid:{camvid_root}", ["train", "val", "test"])
    assert report["splits"]["train"]["images"] == 4
    assert (sum(report["splits"]["train"]["pixels"].values()) + report["splits"]["train"]["ignored_pixels"]
            == 4 * 48 * 64)
    assert "missing" in report["splits"]["test"]


def test_write_synthetic_round_trips(tmp_path):
    write_synthetic(tmp_path / "s", (40, 48), 7, {"train": 2, "val": 1, "test": 1})
    ds = open_dataset(f"folder:{tmp_path / 's'}", "train")
    assert ds.classes == SYNTHETIC
    assert np.array_equal(ds.load(1)[0], render_scene(7, "train", 1, (40, 48))[0])


def test_every_image_mode_reads_as_8_bit_rgb(tmp_path):
    # Before: 16-bit grey frames became all-white (Pillow's RGB conversion saturates), so their masks were wrong.
    from label_files import mode_images

    from ssseg.data.base import read_image

    for name, want in mode_images(tmp_path).items():
        got = read_image(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == (48, 80, 3), name
        if name == "cmyk.jpg":
            assert np.abs(got - want).max() <= 1, name  # ssseg-cpp's (OpenCV's) integer formula: same bytes
        else:
            assert np.array_equal(got, want), name
    grey16 = read_image(tmp_path / "grey16.png")
    assert 0 < grey16.mean() < 250 and len(np.unique(grey16)) > 10  # not the saturated white frame


@pytest.mark.slow
def test_truncated_images_are_found_before_the_first_epoch(folder_root, tmp_path):
    # Before: data checks read headers only; a truncated image failed mid-epoch inside a loader worker with a
    # 23-line traceback (even with --skip-bad), and a truncated val image cost a whole training epoch.
    from conftest import run_cli

    for path in (folder_root / "train" / "images" / "train_00002.png",
                 folder_root / "val" / "images" / "val_00001.png"):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])  # the header survives, the pixels do not
    args = ["train", "--method", "weak-strong", "--data", f"folder:{folder_root}", "--epochs", "1", "--batch-size",
            "2", "--workers", "1", "--device", "cpu", "--labeled-fraction", "0.5"]
    proc = run_cli(*args, "--out", str(tmp_path / "strict"))
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "cannot decode image" in proc.stderr and "--skip-bad" in proc.stderr
    assert not (tmp_path / "strict" / "metrics.jsonl").exists()  # refused before any training
    proc = run_cli(*args, "--out", str(tmp_path / "skip"), "--skip-bad")
    assert proc.returncode == 0, proc.stderr
    skipped = (tmp_path / "skip" / "skipped.txt").read_text()
    assert "train_00002" in skipped and "val_00001" in skipped
