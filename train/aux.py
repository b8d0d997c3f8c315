"""--method aux: the paper's three stages (method.md section 1), readable top to bottom.

    stage1/  the segmenter on the labeled images (supervised)
    stage2/  the auxiliary confidence net on the labeled images, stage-1 segmenter frozen, loss eq. (1)
    stage3/  pseudo/: gated pseudo-labels of the unlabeled images (PNG + manifest); then the segmenter
             retrained on labeled + pseudo-labeled images

Stages are resumable, skippable and redone with --from-stage N as train/stages.py describes (the pseudo-labels
continue from the images already written); ``--from-stage 2 --init RUN --until-stage 2`` trains an auxiliary
net for another run's segmenter (a latent or self-train run, say), which export then deploys with it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ssseg.config import TrainConfig, hw_str
from ssseg.data.pseudo import Concat, PseudoLabeled
from ssseg.io import append_jsonl, sha256_file, write_json
from ssseg.models import create_model
from ssseg.train import distributed as dist
from ssseg.train.checkpoint import save_checkpoint
from ssseg.train.data import TrainSet, default_crop, normalize, scan
from ssseg.train.evaluate import confusion_matrix
from ssseg.train.gate import gate_counts
from ssseg.train.loop import EpochProgress, Prepared, fit_segmenter, optimizer_step, prepare, restore, train_loader, wrap_ddp
from ssseg.train.losses import aux_gamma, aux_loss, aux_targets, enet_class_weights
from ssseg.train.pseudo import write_pseudo_labels
from ssseg.train.stages import (STAGES, frozen, is_done, mark_done, runs_stage, stage_one, staged_run_config,
                                unlabeled_images)
from ssseg.train.schedule import poly_lr

AUX_MODEL = "aux-confidence"


def run_aux(cfg: TrainConfig, explicit: set[str], info: dist.DistInfo, log: Callable[[str], None]) -> Path:
    cfg = staged_run_config(cfg, explicit)
    out = cfg.out
    run = prepare(cfg, info, log)
    cfg = run.cfg
    unlabeled = unlabeled_images(run)
    s1, s2, s3 = (out / STAGES[k] for k in (1, 2, 3))
    t0 = time.perf_counter()
    log(f"[stage 1/3] segmenter on {len(run.labeled)} labeled images")
    stage_one(cfg, run, info, log)

    log(f"[stage 2/3] auxiliary net ({cfg.aux_input}) on the labeled images, stage-1 segmenter frozen")
    if not runs_stage(cfg, 2):
        log("skipped (--until-stage 1)")
    elif is_done(s2):
        log(f"{s2} is finished; skipped")
    else:
        mark_done(s2, train_aux(cfg, s2, run, s1 / "best.pt", info, log), info)

    pseudo_dir = s3 / "pseudo"
    log(f"[stage 3/3] pseudo-labels for {len(unlabeled)} unlabeled images (T_aux {cfg.t_aux:g}), then the segmenter "
        f"on labeled + pseudo-labeled images ({cfg.stage3_init} start)")
    if not runs_stage(cfg, 3):
        log(f"skipped (--until-stage {cfg.until_stage})")
    elif is_done(s3):
        log(f"{s3} is finished; skipped")
    else:
        if not (pseudo_dir / "manifest.json").is_file():
            write_pseudo(cfg, s1 / "best.pt", s2 / "best.pt", unlabeled, pseudo_dir, info, log)
        manifest = json.loads((pseudo_dir / "manifest.json").read_text())
        if manifest["kept_share"] < 0.01:
            log(f"warning: the gate kept {100 * manifest['kept_share']:.2f}% of the unlabeled pixels at T_aux "
                f"{cfg.t_aux:g}; stage 3 adds next to nothing (see ssseg eval {out} --gate 0,0.5,0.7,0.9)")
        pseudo, pseudo_counts, _ = scan(PseudoLabeled(unlabeled, pseudo_dir / "labels"), False, log)
        r3 = fit_segmenter(cfg, s3, Concat([run.labeled, pseudo]), run.pixel_counts + pseudo_counts, run.val, info, log,
                           init=s1 / "best.pt" if cfg.stage3_init == "finetune" else None, extra={"stage": 3},
                           what=f"{len(run.labeled)} labeled + {len(pseudo)} pseudo-labeled images "
                                f"({100 * manifest['kept_share']:.1f}% of their pixels kept)")
        mark_done(s3, r3, info)

    if info.is_main:
        summary = write_summary(out, cfg, time.perf_counter() - t0)
        for line in summary_lines(summary):
            log(line)
    dist.barrier(info)
    return out


# --- stage 2: the auxiliary net -------------------------------------------------------------------

def aux_class_terms(segmenter: torch.nn.Module, run: Prepared, cfg: TrainConfig, info: dist.DistInfo) -> dict:
    """W (class weights, c = 1.04, from the labeled pixel shares) and gamma (#negative / #positive per
    ground-truth class in the auxiliary targets, from the stage-1 predictions on the labeled images)."""
    conf = confusion_matrix(segmenter, run.labeled, cfg.scale, info.device, info, amp=cfg.amp and info.device.type == "cuda")
    positive = np.diag(conf)
    negative = conf.sum(1) - positive
    return {"classes": list(run.classes.names), "pixels": run.pixel_counts.tolist(),
            "weights": enet_class_weights(run.pixel_counts, cfg.aux_class_weight_c).tolist(), "c": cfg.aux_class_weight_c,
            "positive": positive.tolist(), "negative": negative.tolist(),
            "gamma": aux_gamma(positive, negative).tolist()}


def train_aux(cfg: TrainConfig, out: Path, run: Prepared, segmenter_path: Path, info: dist.DistInfo,
              log: Callable[[str], None]) -> dict:
    """Train the confidence net into ``out`` (aux_terms.json, metrics.jsonl, last.pt, best.pt by val AUROC)."""
    device, main = info.device, info.is_main
    amp = cfg.amp and device.type == "cuda"
    classes = run.classes
    segmenter = frozen(segmenter_path, device)
    terms_path = out / "aux_terms.json"
    if terms_path.is_file():
        terms = json.loads(terms_path.read_text())
    else:
        terms = aux_class_terms(segmenter, run, cfg, info)
        if main:
            write_json(terms_path, terms)
    w = torch.tensor(terms["weights"], dtype=torch.float32, device=device)
    gamma = torch.tensor(terms["gamma"], dtype=torch.float32, device=device)
    log("auxiliary targets on the labeled set (stage-1 predictions): " + ", ".join(
        f"{n} {100 * p / max(p + q, 1):.0f}% right" for n, p, q in zip(classes.names, terms["positive"], terms["negative"])))

    torch.manual_seed(cfg.seed)
    aux_kwargs = {"num_classes": classes.num_classes, "with_rgb": cfg.aux_input == "probs+rgb"}
    aux = create_model(AUX_MODEL, **aux_kwargs).to(device)
    optimizer = torch.optim.Adam(aux.parameters(), lr=cfg.aux_lr, betas=(0.9, 0.999), weight_decay=cfg.aux_weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    state = restore(out, aux, optimizer, scaler, info, log)
    start_epoch, iteration, best_auroc = state.get("epoch", 0), state.get("iteration", 0), state.get("best_auroc", -1.0)
    net = wrap_ddp(aux, info)

    crop = default_crop(run.labeled, cfg)
    train_set = TrainSet(run.labeled, cfg, crop)
    sampler, loader = train_loader(train_set, cfg, info)
    max_iterations = cfg.aux_epochs * len(loader)
    provenance = {"segmenter": str(Path("..") / segmenter_path.parent.name / segmenter_path.name),
                  "segmenter_sha256": sha256_file(segmenter_path) if main else None}
    log(f"training the auxiliary net on {len(run.labeled)} labeled images, crop {hw_str(crop)}, batch {cfg.batch_size} x "
        f"{info.world_size}, {cfg.aux_epochs} epochs, Adam lr {cfg.aux_lr:g} wd {cfg.aux_weight_decay:g} -> {out}")

    t_start = time.perf_counter()
    for epoch in range(start_epoch, cfg.aux_epochs):
        train_set.epoch = epoch
        sampler.set_epoch(epoch)
        net.train()
        with EpochProgress(f"aux epoch {epoch + 1}/{cfg.aux_epochs}", len(loader), info) as progress:
            for images, labels in loader:
                lr = poly_lr(cfg.aux_lr, iteration, max_iterations, cfg.poly_power)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x, gt = normalize(images, device), labels.to(device, non_blocking=True)
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                    seg_logits = segmenter(x)
                probs = torch.softmax(seg_logits.float(), 1)
                y, _ = aux_targets(seg_logits.argmax(1), gt)
                with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                    z = net(probs, x if aux.with_rgb else None)
                loss = aux_loss(z, y, gt, w, gamma)
                optimizer_step(loss, optimizer, scaler)
                iteration += 1
                progress.step(loss, lr, images.shape[0])
        mean_loss = progress.mean_loss()

        val_summary = None
        last = epoch + 1 == cfg.aux_epochs
        if run.val is not None and ((epoch + 1) % cfg.eval_every == 0 or last):
            counts = gate_counts(segmenter, aux, run.val, cfg.scale, device, (cfg.t_aux,), info, amp=amp)
            val_summary = counts.summary(classes.names)
        if main:
            val_auroc = None if val_summary is None else val_summary["auroc"]
            improved = val_auroc is not None and val_auroc > best_auroc
            if improved:
                best_auroc = val_auroc
            record = {"epoch": epoch + 1, "iteration": iteration, "best_auroc": best_auroc, "config": cfg.to_dict(),
                      "stage": 2, **provenance}
            save_checkpoint(out / "last.pt", model_name=AUX_MODEL, model_kwargs=aux_kwargs, classes=classes,
                            state_dict=aux.state_dict(),
                            extra={**record, "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()})
            if improved or (val_auroc is None and last):
                save_checkpoint(out / "best.pt", model_name=AUX_MODEL, model_kwargs=aux_kwargs, classes=classes,
                                state_dict=aux.state_dict(), extra=record)
            gate = None if val_summary is None else val_summary["gates"][0]
            append_jsonl(out / "metrics.jsonl", {
                "epoch": epoch + 1, "iteration": iteration, "loss": mean_loss, "lr": lr, **progress.record(),
                "val": None if val_summary is None else {
                    "auroc": val_auroc, "ece": val_summary["ece"], "t_aux": cfg.t_aux, "kept_miou": gate["kept_miou"],
                    "selected_share": gate["selected_share"], "class_semi_ratio": gate["class_semi_ratio"]},
            })
            val_txt = ""
            if val_summary is not None:
                pct = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
                val_txt = (f"  val AUROC {'-' if val_auroc is None else f'{val_auroc:.3f}'}, at T {cfg.t_aux:g}: kept "
                           f"mIoU {pct(gate['kept_miou'])} on {pct(gate['selected_share'])}% of pixels")
            log(f"aux epoch {epoch + 1}/{cfg.aux_epochs}  loss {mean_loss:.4f}  lr {lr:.6f}{val_txt}  "
                f"{progress.seen / progress.seconds:.1f} img/s  {progress.seconds:.1f} s")
        dist.barrier(info)
    return {"best_auroc": best_auroc, "epochs": cfg.aux_epochs, "seconds": time.perf_counter() - t_start}


# --- stage 3, first half: the gated pseudo-labels ---------------------------------------------------

def write_pseudo(cfg: TrainConfig, segmenter_path: Path, aux_path: Path, unlabeled, out: Path, info: dist.DistInfo,
                 log: Callable[[str], None]) -> dict:
    device = info.device
    segmenter = frozen(segmenter_path, device)
    aux = frozen(aux_path, device)
    provenance = {"segmenter": str(segmenter_path.relative_to(cfg.out)), "aux": str(aux_path.relative_to(cfg.out)),
                  "scale": list(cfg.scale) if cfg.scale else None}
    return write_pseudo_labels(segmenter, aux, unlabeled, out, cfg.t_aux, cfg.scale, info, log, workers=cfg.workers,
                               amp=cfg.amp and device.type == "cuda", provenance=provenance)


# --- the run's summary -------------------------------------------------------------------------------

def write_summary(out: Path, cfg: TrainConfig, seconds: float) -> dict:
    done = {k: json.loads((out / STAGES[k] / "done.json").read_text()) for k in (1, 2, 3) if is_done(out / STAGES[k])}
    summary = {
        "method": "aux",
        "labeled_fraction": cfg.labeled_fraction,
        "stage1_val_miou": done[1]["best_miou"],
        "stage1_init": done[1].get("init"),
        "stage2_val_auroc": done[2]["best_auroc"] if 2 in done else None,
        "t_aux": cfg.t_aux,
        "seconds_this_invocation": seconds,
    }
    if 3 in done:
        manifest = json.loads((out / "stage3" / "pseudo" / "manifest.json").read_text())
        summary.update({"pseudo_images": manifest["images"], "pseudo_kept_share": manifest["kept_share"],
                        "stage3_val_miou": done[3]["best_miou"],
                        "gain": done[3]["best_miou"] - done[1]["best_miou"] if done[1]["best_miou"] >= 0 else None})
    write_json(out / "summary.json", summary)
    return summary


def summary_lines(s: dict) -> list[str]:
    if "stage3_val_miou" not in s:
        auroc = "-" if s["stage2_val_auroc"] is None else f"{s['stage2_val_auroc']:.3f}"
        return [f"stopped after stage {2 if s['stage2_val_auroc'] is not None else 1} (--until-stage): stage-1 segmenter "
                f"{s['stage1_init'] or 'stage1/best.pt'}, val mIoU {100 * s['stage1_val_miou']:.1f}; auxiliary net val AUROC {auroc}"]
    if s["stage1_val_miou"] < 0:
        return [f"done (no val split: no mIoU to compare); pseudo-labels kept {100 * s['pseudo_kept_share']:.1f}% of pixels"]
    return [f"baseline (stage 1, labeled only): val mIoU {100 * s['stage1_val_miou']:.1f}",
            f"semi-supervised (stage 3, + {s['pseudo_images']} pseudo-labeled images, T_aux {s['t_aux']:g}, "
            f"{100 * s['pseudo_kept_share']:.1f}% of their pixels kept): val mIoU {100 * s['stage3_val_miou']:.1f} "
            f"({100 * s['gain']:+.1f})"]
