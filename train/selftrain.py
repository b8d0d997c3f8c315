"""--method self-train: Ke, Aviles-Rivero et al.'s three-stage self-training (method.md section 5), readable
top to bottom.

    stage1/  the segmenter on the labeled images (supervised, as every method's baseline); then pseudo/: its
             arg-max on every training image (the initial pseudo-masks)
    stage2/  a multi-task network trained afresh: the segmenter f (L_seg on labeled images, plus L_con: cross-
             entropy to a mean teacher's prediction under strong augmentation) and a head g that owns f's last
             two blocks (block 4, decoder, classifier) and learns the stage-1 pseudo-masks (L_pl);
             L = L_seg + lambda_con L_con + lambda_pl L_pl. Then pseudo/: the new f's arg-max on every image
    stage3/  the same with a head that owns only f's last block (decoder and classifier), on stage 2's masks

Each mini-batch is a labeled sub-batch (weakly augmented, L_seg) and a sub-batch drawn from all training
images (--st-all-batch, default half the labeled one; the paper uses 1 to 3 in mini-batches of 5; the teacher sees the weak view; f and g the strong one: RandAugment + Cutout, the geometric part also
applied to the targets; L_con and L_pl). Adam with poly decay (--st-lr). Only f is kept: best.pt of a stage
is a plain segmenter, and the run's final one is stage 3's. Stages are resumable and skippable like --method
aux (train/stages.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import torch

from ssseg.config import TrainConfig, hw_str
from ssseg.data.pseudo import PseudoLabeled
from ssseg.io import append_jsonl, write_json
from ssseg.models import BranchHead, WithHead, create_model
from ssseg.train import distributed as dist
from ssseg.train.checkpoint import save_checkpoint
from ssseg.train.data import FILL, TrainSet, default_crop, normalize
from ssseg.train.loop import EpochProgress, Prepared, endless, optimizer_step, prepare, restore, train_loader, validate, wrap_ddp
from ssseg.train.losses import enet_class_weights, segmentation_loss, soft_cross_entropy
from ssseg.train.pseudo import write_pseudo_labels
from ssseg.train.schedule import poly_lr
from ssseg.train.stages import STAGES, frozen, is_done, mark_done, runs_stage, stage_one, staged_run_config, unlabeled_images
from ssseg.train.strong import StrongSet, warp, warp_labels, warp_valid

OWN_BLOCKS = {2: 2, 3: 1}  # the head g owns the segmenter's last two blocks in stage 2, the last one in stage 3


def run_self_train(cfg: TrainConfig, explicit: set[str], info: dist.DistInfo, log: Callable[[str], None]) -> Path:
    cfg = staged_run_config(cfg, explicit)
    out = cfg.out
    run = prepare(cfg, info, log)
    cfg = run.cfg
    unlabeled_images(run)  # refuses a split without any
    t0 = time.perf_counter()
    log(f"[stage 1/3] segmenter on {len(run.labeled)} labeled images, then pseudo-masks of all {len(run.train_all)}")
    s1 = stage_one(cfg, run, info, log)
    if runs_stage(cfg, 2):
        pseudo_masks(cfg, s1, run, info, log)

    for k in (2, 3):
        stage = out / STAGES[k]
        log(f"[stage {k}/3] segmenter + a head owning its last {OWN_BLOCKS[k]} block(s) on stage {k - 1}'s pseudo-masks, "
            f"mean teacher under strong augmentation")
        if not runs_stage(cfg, k):
            log(f"skipped (--until-stage {cfg.until_stage})")
            continue
        if is_done(stage):
            log(f"{stage} is finished; skipped")
        else:
            mark_done(stage, fit_multitask(cfg, stage, run, out / STAGES[k - 1] / "pseudo", OWN_BLOCKS[k], info, log), info)
        if k == 2:
            pseudo_masks(cfg, stage, run, info, log)

    if info.is_main:
        summary = {"method": "self-train", "labeled_fraction": cfg.labeled_fraction,
                   **{f"stage{k}_val_miou": json.loads((out / STAGES[k] / "done.json").read_text())["best_miou"]
                      for k in (1, 2, 3) if is_done(out / STAGES[k])},
                   "seconds_this_invocation": time.perf_counter() - t0}
        write_json(out / "summary.json", summary)
        log("done: " + ", ".join(f"{k.split('_')[0]} val mIoU {100 * v:.1f}" for k, v in summary.items() if k.endswith("_miou")))
    dist.barrier(info)
    return out


def pseudo_masks(cfg: TrainConfig, stage: Path, run: Prepared, info: dist.DistInfo, log: Callable[[str], None]) -> None:
    """stage/pseudo/: the stage's best segmenter's arg-max on every training image (resumable image by image)."""
    if (stage / "pseudo" / "manifest.json").is_file():
        return
    write_pseudo_labels(frozen(stage / "best.pt", info.device), None, run.train_all, stage / "pseudo", 0.0, cfg.scale, info,
                        log, workers=cfg.workers, amp=cfg.amp and info.device.type == "cuda",
                        provenance={"segmenter": str((stage / "best.pt").relative_to(cfg.out))})


def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, decay: float) -> None:
    """The mean teacher: teacher <- decay * teacher + (1 - decay) * student, parameters and float buffers
    (BatchNorm statistics); integer buffers (BatchNorm's step count) are copied."""
    with torch.no_grad():
        for t, s in zip(teacher.parameters(), student.parameters()):
            t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
        for t, s in zip(teacher.buffers(), student.buffers()):
            if t.dtype.is_floating_point:
                t.mul_(decay).add_(s, alpha=1.0 - decay)
            else:
                t.copy_(s)


def fit_multitask(cfg: TrainConfig, out: Path, run: Prepared, pseudo_dir: Path, own_blocks: int, info: dist.DistInfo,
                  log: Callable[[str], None]) -> dict:
    """Stage 2 or 3 into ``out`` (metrics.jsonl, last.pt, best.pt = the segmenter by val mIoU)."""
    device, main = info.device, info.is_main
    amp = cfg.amp and device.type == "cuda"
    classes = run.classes
    class_weights = torch.from_numpy(enet_class_weights(run.pixel_counts, cfg.class_weight_c)).to(device)

    # --- the multi-task network (re-initialised, as the paper), its teacher, and an interrupted run's state ----
    torch.manual_seed(cfg.seed)
    seg_kwargs = {"num_classes": classes.num_classes}
    seg = create_model(cfg.model, **seg_kwargs).to(device)
    head = BranchHead(seg, own_blocks).to(device)
    student = WithHead(seg, head)
    teacher = create_model(cfg.model, **seg_kwargs).to(device).eval()
    teacher.load_state_dict(seg.state_dict())
    teacher.requires_grad_(False)
    optimizer = torch.optim.Adam(student.parameters(), lr=cfg.st_lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    state = restore(out, seg, optimizer, scaler, info, log, more={"head": head, "teacher": teacher})
    start_epoch, iteration, best_miou = state.get("epoch", 0), state.get("iteration", 0), state.get("best_miou", -1.0)
    net = wrap_ddp(student, info)

    crop = default_crop(run.labeled, cfg)
    labeled_set = TrainSet(run.labeled, cfg, crop)
    all_set = StrongSet(TrainSet(PseudoLabeled(run.train_all, pseudo_dir / "labels"), cfg, crop), cfg.seed, FILL)
    sampler, loader = train_loader(labeled_set, cfg, info)
    all_batch = cfg.st_all_batch or max(1, cfg.batch_size // 2)
    a_sampler, a_loader = train_loader(all_set, cfg, info, all_batch)
    max_iterations = cfg.epochs * len(loader)
    log(f"training on {len(run.labeled)} labeled + {len(run.train_all)} pseudo-masked images (sub-batches of "
        f"{cfg.batch_size} + {all_batch}) x {info.world_size}, crop {hw_str(crop)}, {cfg.epochs} epochs, Adam lr "
        f"{cfg.st_lr:g}, lambda_con {cfg.lambda_con:g}, lambda_pl {cfg.lambda_pl:g}, EMA {cfg.ema_decay:g} -> {out}")

    a_iter = endless(a_loader, a_sampler, iteration)
    t_start = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        labeled_set.epoch = epoch
        sampler.set_epoch(epoch)
        net.train()
        parts = torch.zeros(3, device=device)  # L_seg, L_con, L_pl summed over the epoch
        with EpochProgress(f"stage epoch {epoch + 1}/{cfg.epochs}", len(loader), info) as progress:
            for images, labels in loader:
                lr = poly_lr(cfg.st_lr, iteration, max_iterations, cfg.poly_power)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                xl, yl = normalize(images, device), labels.to(device, non_blocking=True)
                weak, strong, masks, theta = next(a_iter)
                theta = theta.to(device)
                xs = warp(normalize(strong, device), theta)  # B(A x): the geometric part, on the device
                valid = warp_valid(theta, len(theta), tuple(xs.shape[-2:]), device)
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                    teacher_logits = teacher(normalize(weak, device))
                target = warp(torch.softmax(teacher_logits.float(), 1), theta)
                masks = warp_labels(masks.to(device).long(), theta)

                with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                    logits, head_logits = net(torch.cat([xl, xs]))
                n = len(xl)
                l_seg = segmentation_loss(logits[:n], yl, class_weights)
                l_con = soft_cross_entropy(logits[n:], target, valid)
                l_pl = segmentation_loss(head_logits[n:], masks, None)
                loss = l_seg + cfg.lambda_con * l_con + cfg.lambda_pl * l_pl
                optimizer_step(loss, optimizer, scaler)
                ema_update(teacher, seg, cfg.ema_decay)
                parts += torch.stack([l_seg.detach(), l_con.detach(), l_pl.detach()])
                iteration += 1
                progress.step(loss, lr, images.shape[0])
        mean_loss = progress.mean_loss()
        parts = (dist.all_reduce_sum(parts, info) / (max(progress.steps, 1) * info.world_size)).tolist()

        last = epoch + 1 == cfg.epochs
        val_scores = validate(seg, run.val, cfg, epoch, info, amp)
        if main:
            improved = val_scores is not None and val_scores["miou"] > best_miou
            if improved:
                best_miou = val_scores["miou"]
            record = {"epoch": epoch + 1, "iteration": iteration, "best_miou": best_miou, "config": cfg.to_dict(),
                      "stage": 2 if own_blocks == 2 else 3, "pseudo_masks": str(pseudo_dir.relative_to(cfg.out))}
            save_checkpoint(out / "last.pt", model_name=cfg.model, model_kwargs=seg_kwargs, classes=classes,
                            state_dict=seg.state_dict(),
                            extra={**record, "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                                   "head": head.state_dict(), "teacher": teacher.state_dict()})
            if improved or (run.val is None and last):
                save_checkpoint(out / "best.pt", model_name=cfg.model, model_kwargs=seg_kwargs, classes=classes,
                                state_dict=seg.state_dict(), extra=record)
            append_jsonl(out / "metrics.jsonl", {
                "epoch": epoch + 1, "iteration": iteration, "loss": mean_loss, "lr": lr,
                "l_seg": parts[0], "l_con": parts[1], "l_pl": parts[2], **progress.record(),
                "val": None if val_scores is None else {k: val_scores[k] for k in ("miou", "pixel_acc", "per_class_iou")},
            })
            val_txt = "" if val_scores is None else f"  val mIoU {100 * val_scores['miou']:.1f}"
            log(f"epoch {epoch + 1}/{cfg.epochs}  loss {mean_loss:.4f} (seg {parts[0]:.3f} con {parts[1]:.3f} pl "
                f"{parts[2]:.3f})  lr {lr:.6f}{val_txt}  {progress.seen / progress.seconds:.1f} img/s  {progress.seconds:.1f} s")
        dist.barrier(info)
    return {"best_miou": best_miou, "epochs": cfg.epochs, "iterations": iteration, "seconds": time.perf_counter() - t_start}
