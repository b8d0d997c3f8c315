"""Every label belongs to its frame, as a viewer shows it (issue 30): output names that no other input can
change, frames numbered right after damage, orientation applied, files that end early or masks cut short
caught, and every source's outcome on the console. Each test failed on the main of before."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from conftest import run_cli
from label_files import cut_short_mkv, exif_jpeg, gop_damaged_clip, rotated_clip, timelapse_clip
from PIL import Image

from ssseg.data.synthetic import render_scene, write_synthetic_clip


def label(*args, model: Path, out: Path):
    # --threshold 0: every pixel keeps its class, so masks can be compared by content
    return run_cli("label", *map(str, args), "--threshold", "0", "--model", str(model), "--out", str(out))


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def manifest(out: Path, key: str) -> dict:
    return json.loads((out / key / "manifest.json").read_text())


def test_names_never_depend_on_other_inputs_and_the_manifest_says_whose_mask_it_is(exported, tmp_path):
    # Before: labels/a_b.png held the mask of "a b.png", the real a_b.png became a_b-3.png; 日本.png and
    # 中文.png became input.png and input-2.png, and nothing recorded which was which.
    from ssseg.label.inputs import short_hash

    folder = tmp_path / "in"
    folder.mkdir()
    sizes = {"a b.png": (40, 56), "a_b.jpg": (48, 64), "a_b.png": (56, 72), "日本.png": (64, 80), "中文.png": (72, 88),
             "plain.png": (32, 48)}
    for i, (name, hw) in enumerate(sizes.items()):  # a size per file: a mask's shape says whose it is
        Image.fromarray(render_scene(1, "val", i, hw)[0]).save(folder / name, quality=95)
    out = tmp_path / "out"
    r = label(folder, model=exported, out=out)
    assert r.returncode == 0, r.stderr
    frames = manifest(out, "in")["frames"]
    assert sorted(Path(f["source"]).name for f in frames) == sorted(sizes)
    for f in frames:
        original = Path(f["source"]).name
        assert png(out / f["files"][0]).shape == sizes[original], original
        assert f["bytes"] == (folder / original).stat().st_size and f["mtime"] > 0
        expected = "plain" if original == "plain.png" else None
        assert f["name"] == expected or f["name"].endswith("-" + short_hash(original))
    names = [f["name"] for f in frames]
    assert len(set(names)) == len(names) and "a_b" not in names and "input" not in names
    # the report shows the original names
    assert run_cli("report", str(out)).returncode == 0
    picked = json.loads((out / "report.json").read_text())["next_to_label"]
    assert picked and all(Path(p["file"]).name in sizes for p in picked)


def test_resume_with_an_added_same_stem_input_labels_it_beside(exported, tmp_path):
    # Before: names followed sort order, so in/h264.mkv took the mp4's name, and the resume was refused with
    # "in/h264.mkv changed since it was labeled".
    folder = tmp_path / "in"
    folder.mkdir()
    mp4 = write_synthetic_clip(folder / "h264.mp4", 6, (48, 80))
    out = tmp_path / "out"
    assert label(mp4, model=exported, out=out).returncode == 0
    before = (out / "h264" / "manifest.json").read_bytes()
    mkv = write_synthetic_clip(folder / "h264.mkv", 4, (48, 80))
    r = label(mp4, mkv, "--resume", model=exported, out=out)
    assert r.returncode == 0, r.stderr
    assert "h264: complete in an earlier run" in r.stdout
    assert (out / "h264" / "manifest.json").read_bytes() == before  # untouched
    keys = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(keys) == 2 and keys[0] == "h264" and keys[1].startswith("h264-")
    m = manifest(out, keys[1])
    assert m["complete"] and m["frames_written"] == 4 and m["source"]["path"] == str(mkv.resolve())


def test_rotated_video_and_exif_jpeg_are_labeled_as_shown(exported, tmp_path):
    # Before: both were labeled in stored orientation, so masks did not line up with what viewers show.
    import av

    clip = rotated_clip(tmp_path / "phone.mp4")
    (tmp_path / "photos").mkdir()
    jpeg = exif_jpeg(tmp_path / "photos" / "upright.jpg")
    # the references: the frames turned by hand and stored losslessly, with no orientation to apply
    ref, photoref = tmp_path / "ref", tmp_path / "photoref"
    ref.mkdir()
    photoref.mkdir()
    with av.open(str(clip)) as c:
        for i, f in enumerate(c.decode(video=0)):
            Image.fromarray(np.rot90(f.to_ndarray(format="rgb24"), k=-1)).save(ref / f"{i:06d}.png")
    with Image.open(jpeg) as im:
        Image.fromarray(np.rot90(np.asarray(im.convert("RGB")), k=-1)).save(photoref / "upright.png")

    out = tmp_path / "out"
    assert label(clip, jpeg, ref, photoref, model=exported, out=out).returncode == 0
    video, photo = manifest(out, "phone"), manifest(out, "photos")
    assert video["settings"]["orientation"] == "displayed"
    for f in video["frames"]:
        shown = png(out / f["files"][0])
        assert shown.shape == (80, 48) and f["turned"] == "rotate 270"
        np.testing.assert_array_equal(shown, png(out / "ref" / "labels" / f"{f['name']}.png"))
    (f,) = photo["frames"]
    assert f["turned"] == "exif 6"
    np.testing.assert_array_equal(png(out / f["files"][0]), png(out / "photoref" / "labels" / "upright.png"))

    stored = tmp_path / "stored"
    assert label(clip, "--orientation", "stored", model=exported, out=stored).returncode == 0
    assert png(stored / "phone" / "labels" / "000000.png").shape == (48, 80)
    # a resume must repeat the choice: the masks on disk are in the other orientation
    r = label(clip, "--resume", model=exported, out=stored)
    assert r.returncode == 1 and "orientation 'stored' -> 'displayed'" in r.stderr


def test_a_cut_short_mkv_is_a_failure_that_resume_retries(exported, tmp_path):
    # Before: the container declares 4.0 s, frames end at 2.0 s: "0 frame(s) skipped", exit 3, complete.
    cut = cut_short_mkv(tmp_path / "cut.mkv")
    out = tmp_path / "out"
    r = label(cut, model=exported, out=out)
    assert r.returncode == 1, r.stdout
    assert "FAILED" in r.stdout and "4.00 s the file declares" in r.stdout
    m = manifest(out, "cut")
    assert not m["complete"] and m["frames_written"] >= 15  # what decoded is kept
    r = label(cut, "--resume", model=exported, out=out)
    assert r.returncode == 1 and "complete in an earlier run" not in r.stdout  # decoded again
    assert len(manifest(out, "cut")["runs"]) == 2


def test_a_mask_cut_short_is_flagged_by_the_report_and_redone_by_resume(exported, tmp_path):
    # Before: a mask truncated to 100 bytes (header intact) stayed, the job reported complete, the report
    # noticed nothing.
    clip = write_synthetic_clip(tmp_path / "drive.mp4", 6, (48, 80))
    out = tmp_path / "out"
    assert label(clip, model=exported, out=out).returncode == 0
    mask = out / "drive" / "labels" / "000003.png"
    good = mask.read_bytes()
    mask.write_bytes(good[:100])
    assert run_cli("report", str(out)).returncode == 0
    report = json.loads((out / "report.json").read_text())
    assert report["totals"]["corrupt_outputs"] == 1
    assert report["sources"][0]["corrupt"][0]["files"] == ["drive/labels/000003.png"]
    assert "Label files not as written" in (out / "report.html").read_text()
    r = label(clip, "--resume", model=exported, out=out)
    assert r.returncode == 0, r.stderr
    assert mask.read_bytes() == good and manifest(out, "drive")["runs"][-1]["frames_labeled"] == 1
    assert run_cli("report", str(out)).returncode == 0
    assert json.loads((out / "report.json").read_text())["totals"]["corrupt_outputs"] == 0


def test_damage_costs_only_its_own_frames_and_later_frames_keep_their_numbers(exported, tmp_path):
    # Before: frames the demuxer dropped without a word from FFmpeg were not noticed, and a frame it handed out
    # late took the next number: every mask after the damage sat under another frame's name (27 of 60).
    import av

    from ssseg.label.decode import Damage, RawFrame, import_av, video_frames

    clip = gop_damaged_clip(tmp_path / "gop.ts")
    clean = [render_scene(0, "test", i, (48, 80))[0].astype(int) for i in range(16)]
    import_av()
    with av.open(str(clip)) as c:
        items = list(video_frames(c))
    frames = [f for f in items if isinstance(f, RawFrame)]
    lost = [(d.first, d.last) for d in items if isinstance(d, Damage) and d.skipped]
    assert len(frames) >= 50 and lost and sum(b - a + 1 for a, b in lost) == 60 - len(frames)
    numbers = [f.index for f in frames]
    assert len(set(numbers)) == len(numbers)
    near = {n for a, b in lost for n in range(a - 5, b + 6)}  # the damaged group of pictures may be concealed
    for f in frames:  # every other frame is nearest to the scene of its own number
        err = [np.abs(f.rgb().astype(int) - clean[n]).mean() for n in range(16)]
        assert f.index in near or int(np.argmin(err)) == f.index % 16, (f.index, int(np.argmin(err)))
    out = tmp_path / "out"
    r = label(clip, model=exported, out=out)
    assert r.returncode == 3 and "DAMAGED" in r.stdout
    m = manifest(out, "gop")
    assert m["frames_written"] >= 50 and m["frames_skipped"] == 60 - m["frames_written"]

    # a time-lapse in a 30 fps container: its timestamps jump by 3 to 9 periods, and nothing is lost
    with av.open(str(timelapse_clip(tmp_path / "lapse.mkv"))) as c:
        items = list(video_frames(c))
    assert not [d for d in items if isinstance(d, Damage)] and [f.index for f in items] == list(range(30))


def test_every_source_outcome_is_printed_and_ffmpeg_stays_off_the_terminal(exported, tmp_path):
    # Before: with one source failing, the DAMAGED lines of the others were not printed; FFmpeg's own
    # "File ended prematurely" reached the terminal in some runs.
    from label_files import damaged_clip

    bad = cut_short_mkv(tmp_path / "cut.mkv")
    damaged = damaged_clip(tmp_path / "damaged.mp4")
    ts = gop_damaged_clip(tmp_path / "gop.ts")  # its demuxer logs "Packet corrupt" outside any capture
    out = tmp_path / "out"
    r = label(bad, damaged, ts, model=exported, out=out)
    assert r.returncode == 1
    assert f"FAILED {bad}" in r.stdout and f"DAMAGED {damaged}" in r.stdout and f"DAMAGED {ts}" in r.stdout
    assert "prematurely" not in r.stderr and "Packet corrupt" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2  # the TensorRT note and the one error line


def test_ffmpeg_lines_no_capture_takes_go_to_the_job_log(tmp_path, capfd):
    import logging

    from ssseg.label.decode import FFMPEG_LOG, import_av, log_ffmpeg_to

    import_av()
    handler = log_ffmpeg_to(tmp_path / "ffmpeg.log")
    try:
        logging.getLogger("libav.mp3float").warning("File ended prematurely")  # as PyAV forwards one
    finally:
        FFMPEG_LOG.removeHandler(handler)
        handler.close()
    assert "libav.mp3float: File ended prematurely" in (tmp_path / "ffmpeg.log").read_text()
    logging.getLogger("libav.mp3float").warning("File ended prematurely")  # no job: dropped, not printed
    assert "prematurely" not in capfd.readouterr().err


def test_folders_say_what_they_leave_out_and_recursive_labels_it(exported, tmp_path):
    # Before: videos and subfolders inside an input folder were skipped without a word; a folder of .MP4
    # files failed with "holds no images" and no hint.
    cams = tmp_path / "dashcam"
    for day in ("2026-01-01", "2026-01-02"):  # a dash cam's habit: the same file names in dated folders
        (cams / day).mkdir(parents=True)
        write_synthetic_clip(cams / day / "0001.MP4", 3, (48, 80))
    clips = tmp_path / "clips"
    clips.mkdir()
    write_synthetic_clip(clips / "a.MP4", 3, (48, 80))
    Image.fromarray(render_scene(0, "val", 0, (48, 80))[0]).save(cams / "still.png")

    out = tmp_path / "out"
    r = label(cams, clips, model=exported, out=out)
    assert r.returncode == 1
    assert f"{cams}: 2 subfolder(s) in it not labeled (pass --recursive to label them)" in r.stdout
    assert "holds no images (.png/.jpg/...); it holds 1 video(s): pass --recursive to label them" in r.stdout
    out2 = tmp_path / "out2"
    r = label(cams, clips, "--recursive", model=exported, out=out2)
    assert r.returncode == 0, r.stdout + r.stderr
    keys = sorted(p.name for p in out2.iterdir() if p.is_dir())
    assert keys == ["clips-a", "dashcam", "dashcam-2026-01-01-0001", "dashcam-2026-01-02-0001"]
    assert manifest(out2, "dashcam-2026-01-02-0001")["source"]["path"] == os.path.abspath(cams / "2026-01-02" /
                                                                                         "0001.MP4")
