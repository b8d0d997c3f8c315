"""--method adversarial (Hung et al. 2018), --method dual-disc (two discriminators) and --method latent
(Zatsarynna et al.: latent classes), readable top to bottom. All train the same segmenter as every other
method, on labeled and unlabeled batches, with a discriminator beside it:

    adversarial  a fully convolutional discriminator D (prediction vs one-hot ground truth, per pixel).
                 Segmenter: L_ce + lambda_adv * L_adv (labeled; lambda_adv_unlabeled on unlabeled) and,
                 after the warm-up, lambda_semi * L_semi: its own arg-max where sigmoid(D) > T_semi.
                 D: trained on labeled batches only, Adam, poly decay.
    dual-disc    D1, image-level real/fake, and D2, a per-pixel confidence net trained against the
                 correctness map (the auxiliary net's target). During the warm-up the segmenter (L_ce +
                 lambda_adv * L_adv from D1) and both discriminators train on labeled images; then the
                 discriminators are frozen and the segmenter also learns from unlabeled images: its arg-max
                 where D2's confidence reaches D1's probability for the image, weight lambda_semi.
    latent       a second branch predicts latent classes, trained on labeled images with the conditional
                 entropy of the semantic classes given the latent ones; a co-occurrence EMA gives P(l|c),
                 which maps the semantic prediction on unlabeled images to latent classes, and the latent
                 branch's prediction supervises that mapping (L_cons). Hung's discriminator adds L_adv.
                 L = L_ce + L_latent + lambda_adv L_adv + lambda_semi (L_cons + lambda_adv L_adv_unlabeled).

Outputs like a supervised run (best.pt = the segmenter, by val mIoU). adversarial and dual-disc add
gater/best.pt: the confidence source saved with that segmenter, which export and ``ssseg eval --gate`` use
like the auxiliary net; latent adds latent_classes.md (which semantic classes each latent class groups) and
is gated with an auxiliary net trained on it (``--method aux --from-stage 2 --init RUN``). The run continues
from last.pt with --resume; done.json marks it finished."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ssseg.config import GATER_DIRS, TrainConfig, gater_threshold, hw_str, parse_warmup
from ssseg.errors import ConfigError
from ssseg.io import append_jsonl, atomic_write_text, write_json
from ssseg.models import LatentBranch, WithHead, create_model
from ssseg.train import distributed as dist
from ssseg.train.checkpoint import save_checkpoint
from ssseg.train.data import TrainSet, default_crop, normalize
from ssseg.train.loop import EpochProgress, endless, prepare, restore, resume_config, train_loader, validate, wrap_ddp
from ssseg.train.losses import (aux_targets, bce_map, bce_to, conditional_entropy, cooccurrence_update, dual_gate,
                                enet_class_weights, latent_consistency, latent_given_class, latent_joint, one_hot_probs,
                                pseudo_label_loss, segmentation_loss, semi_loss)
from ssseg.train.schedule import poly_lr

DISCRIMINATOR = {"adversarial": "fc-discriminator", "dual-disc": "dual-disc-gater", "latent": "fc-discriminator"}


class DiscriminatorLoss(nn.Module):
    """The discriminator step as one forward pass, so DistributedDataParallel sees every parameter."""

    def __init__(self, gater: nn.Module, method: str):
        super().__init__()
        self.gater, self.method = gater, method

    def forward(self, fake: torch.Tensor, real: torch.Tensor, correct: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if self.method != "dual-disc":
            return bce_to(self.gater(fake), 0.0) + bce_to(self.gater(real), 1.0)
        d1, d2 = self.gater.d1, self.gater.d2
        return bce_to(d1(fake), 0.0) + bce_to(d1(real), 1.0) + bce_map(d2(fake), correct, valid)


def run_adversarial(cfg: TrainConfig, explicit: set[str], info: dist.DistInfo, log: Callable[[str], None]) -> Path:
    if cfg.resume:
        cfg = resume_config(cfg, explicit)
    elif (cfg.out / "config.json").exists():
        raise ConfigError("already holds a run", path=cfg.out, fix="pass --resume to continue it, or choose another --out")
    elif cfg.labeled_fraction >= 1.0:
        raise ConfigError(f"--method {cfg.method} needs unlabeled images, and --labeled-fraction 1 leaves none",
                          fix="pass --labeled-fraction below 1 (the papers: 0.5 or less), or --method supervised")
    run = prepare(cfg, info, log)
    cfg = run.cfg
    unlabeled = run.train_all.subset(run.unlabeled_ids)
    if len(unlabeled) == 0:
        raise ConfigError(f"the split leaves no unlabeled images ({len(run.labeled)} labeled of {len(run.train_all)})",
                          path=cfg.out / "splits" / "unlabeled.txt", fix="start a new run with a lower --labeled-fraction")
    if (cfg.out / "done.json").is_file():
        log(f"{cfg.out} is finished; nothing to do")
        return cfg.out
    result = fit(cfg, run, unlabeled, info, log)
    if info.is_main:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_json(cfg.out / "done.json", {"finished": stamp, **result})
        gated = cfg.method in GATER_DIRS
        if gated:
            write_json(cfg.out / GATER_DIRS[cfg.method] / "done.json", {"finished": stamp, "model": DISCRIMINATOR[cfg.method]})
        write_json(cfg.out / "summary.json", {"method": cfg.method, "labeled_fraction": cfg.labeled_fraction,
                                              "val_miou": result["best_miou"],
                                              "gate_threshold": gater_threshold(cfg.to_dict()) if gated else None, **result})
        log(f"done: val mIoU {100 * result['best_miou']:.1f} (best epoch); segmenter {cfg.out / 'best.pt'}, " +
            (f"gater {cfg.out / GATER_DIRS[cfg.method] / 'best.pt'}" if gated else
             f"latent classes {cfg.out / 'latent_classes.md'}; gate it with: ssseg train --method aux --from-stage 2 "
             f"--init {cfg.out} --until-stage 2 --out {cfg.out}-aux"))
    dist.barrier(info)
    return cfg.out


def fit(cfg: TrainConfig, run, unlabeled, info: dist.DistInfo, log: Callable[[str], None]) -> dict:
    device, main, method = info.device, info.is_main, cfg.method
    amp = cfg.amp and device.type == "cuda"
    classes, out = run.classes, cfg.out
    num_classes = classes.num_classes
    class_weights = torch.from_numpy(enet_class_weights(run.pixel_counts, cfg.class_weight_c)).to(device)

    # --- models and optimisers, and the state of an interrupted run -----------------------------
    torch.manual_seed(cfg.seed)
    seg_kwargs, gater_kwargs = {"num_classes": num_classes}, {"num_classes": num_classes}
    seg = create_model(cfg.model, **seg_kwargs).to(device)
    gater = create_model(DISCRIMINATOR[method], **gater_kwargs).to(device)
    latent = method == "latent"
    # latent: the second branch trains with the segmenter; cooc is the co-occurrence EMA M [classes, latent]
    branch = LatentBranch(seg.classifier.in_channels, cfg.latent_classes).to(device) if latent else None
    trained = WithHead(seg, branch) if latent else seg
    cooc = torch.zeros(num_classes, cfg.latent_classes, device=device)
    opt_seg = torch.optim.SGD(trained.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    opt_d = torch.optim.Adam(gater.parameters(), lr=cfg.disc_lr, betas=(0.9, 0.99))
    scalers = [torch.amp.GradScaler(device.type, enabled=amp) for _ in range(2)]
    state = restore(out, seg, opt_seg, scalers[0], info, log,
                    more={"gater": gater, "gater_optimizer": opt_d, "gater_scaler": scalers[1],
                          **({"latent_branch": branch} if latent else {})})
    start_epoch, iteration, best_miou = state.get("epoch", 0), state.get("iteration", 0), state.get("best_miou", -1.0)
    if latent and "cooccurrence" in state:
        cooc = state["cooccurrence"].to(device)
    seg_net = wrap_ddp(trained, info)
    d_step = wrap_ddp(DiscriminatorLoss(gater, method), info)

    crop = default_crop(run.labeled, cfg)
    labeled_set, unlabeled_set = TrainSet(run.labeled, cfg, crop), TrainSet(unlabeled, cfg, crop)
    sampler, loader = train_loader(labeled_set, cfg, info)
    u_sampler, u_loader = train_loader(unlabeled_set, cfg, info)
    per_epoch = len(loader)
    max_iterations = cfg.epochs * per_epoch
    warmup = 0 if latent else parse_warmup(cfg.adv_warmup, per_epoch)  # the latent paper has no warm-up
    # the co-occurrence EMA's rate, as the paper; above 1 (tiny labeled sets, many processes) M would go negative
    alpha = min(1.0, cfg.batch_size * info.world_size / len(run.labeled))
    log(f"--method {method}: {len(run.labeled)} labeled + {len(unlabeled)} unlabeled images, crop {hw_str(crop)}, "
        f"batch {cfg.batch_size} x {info.world_size}, {cfg.epochs} epochs ({max_iterations} iterations, semi-supervised "
        f"terms from iteration {warmup}), lr {cfg.lr:g}, discriminator Adam lr {cfg.disc_lr:g} -> {out}")
    if warmup >= max_iterations:
        log(f"warning: the warm-up ({warmup} iterations) outlasts the run ({max_iterations}); the unlabeled images "
            f"will not be used (lower --adv-warmup, e.g. --adv-warmup {max(1, cfg.epochs // 3)}ep)")

    u_iter = (images for images, _ in endless(u_loader, u_sampler, iteration))  # their labels are never read
    t_start = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        labeled_set.epoch = epoch
        sampler.set_epoch(epoch)
        seg_net.train()
        with EpochProgress(f"epoch {epoch + 1}/{cfg.epochs}", len(loader), info) as progress:
            for images, labels in loader:
                lr = poly_lr(cfg.lr, iteration, max_iterations, cfg.poly_power)
                lr_d = poly_lr(cfg.disc_lr, iteration, max_iterations, cfg.poly_power)
                for group in opt_seg.param_groups:
                    group["lr"] = lr
                for group in opt_d.param_groups:
                    group["lr"] = lr_d
                semi = iteration >= warmup
                # dual-disc freezes its discriminators after the warm-up: eval mode keeps D2's BatchNorm still
                gater.train(method != "dual-disc" or not semi)
                xl, yl = normalize(images, device), labels.to(device, non_blocking=True)
                xu = normalize(next(u_iter), device)

                # --- the segmenter step: the discriminators judge but do not learn -----------------
                gater.requires_grad_(False)
                with_u = method != "dual-disc" or semi
                with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                    logits = seg_net(torch.cat([xl, xu]) if with_u else xl)  # one pass: one DDP forward per step
                if latent:
                    logits, latent_logits = logits
                logits_l, logits_u = logits[: len(xl)], logits[len(xl):]
                loss = segmentation_loss(logits_l, yl, class_weights)
                p_l = torch.softmax(logits_l.float(), 1)
                if method == "adversarial":
                    p_u = torch.softmax(logits_u.float(), 1)
                    d_u = gater(p_u)
                    loss = loss + cfg.lambda_adv * bce_to(gater(p_l), 1.0) + cfg.lambda_adv_unlabeled * bce_to(d_u, 1.0)
                    if semi:
                        loss = loss + cfg.lambda_semi * semi_loss(logits_u, torch.sigmoid(d_u), cfg.t_semi)
                elif latent:
                    joint = latent_joint(torch.softmax(latent_logits[: len(xl)].float(), 1), yl, num_classes)
                    # every process adds the same batch sums, so M stays identical across them
                    cooc = cooccurrence_update(cooc, dist.all_reduce_sum(joint.detach().clone(), info), alpha)
                    p_u = torch.softmax(logits_u.float(), 1)
                    unlabeled_loss = (latent_consistency(latent_logits[len(xl):], p_u, latent_given_class(cooc))
                                      + cfg.lambda_adv * bce_to(gater(p_u), 1.0))
                    loss = (loss + conditional_entropy(joint) + cfg.lambda_adv * bce_to(gater(p_l), 1.0)
                            + cfg.lambda_semi * unlabeled_loss)
                else:
                    loss = loss + cfg.lambda_adv * bce_to(gater.d1(p_l), 1.0)
                    if semi:
                        p_u = torch.softmax(logits_u.float(), 1)
                        with torch.no_grad():
                            trusted = dual_gate(gater.d2(p_u), gater.d1(p_u))
                        loss = (loss + cfg.lambda_adv * bce_to(gater.d1(p_u), 1.0)
                                + cfg.lambda_semi * pseudo_label_loss(logits_u, trusted))
                step(loss, opt_seg, scalers[0])

                # --- the discriminator step: the labeled batch's predictions are fake (latent: the unlabeled
                # batch's too, as its paper), its ground truth real; dual-disc: during the warm-up only -----
                if method != "dual-disc" or not semi:
                    gater.requires_grad_(True)
                    fake = torch.cat([p_l, p_u]).detach() if latent else p_l.detach()
                    real = one_hot_probs(yl, num_classes, p_l.detach())
                    correct, valid = aux_targets(logits_l.detach().argmax(1), yl)
                    step(d_step(fake, real, correct, valid.float()), opt_d, scalers[1])
                iteration += 1
                progress.step(loss, lr, images.shape[0])
        mean_loss = progress.mean_loss()

        last = epoch + 1 == cfg.epochs
        val_scores = validate(seg, run.val, cfg, epoch, info, amp)
        if main:
            improved = val_scores is not None and val_scores["miou"] > best_miou
            if improved:
                best_miou = val_scores["miou"]
            record = {"epoch": epoch + 1, "iteration": iteration, "best_miou": best_miou, "config": cfg.to_dict()}
            gater_record = {**record, "segmenter": "../best.pt", "threshold": gater_threshold(cfg.to_dict())}

            latent_state = {"latent_branch": branch.state_dict(), "cooccurrence": cooc.cpu()} if latent else {}
            save_checkpoint(out / "last.pt", model_name=cfg.model, model_kwargs=seg_kwargs, classes=classes,
                            state_dict=seg.state_dict(),
                            extra={**record, "optimizer": opt_seg.state_dict(), "scaler": scalers[0].state_dict(),
                                   "gater": gater.state_dict(), "gater_optimizer": opt_d.state_dict(),
                                   "gater_scaler": scalers[1].state_dict(), **latent_state})
            if latent:
                write_latent_table(out, cooc.cpu(), classes.names)
            if improved or (run.val is None and last):
                save_checkpoint(out / "best.pt", model_name=cfg.model, model_kwargs=seg_kwargs, classes=classes,
                                state_dict=seg.state_dict(), extra=record)
                if method in GATER_DIRS:  # the gater as it was when this segmenter was saved: the pair export deploys
                    save_checkpoint(out / GATER_DIRS[method] / "best.pt", model_name=DISCRIMINATOR[method],
                                    model_kwargs=gater_kwargs, classes=classes, state_dict=gater.state_dict(),
                                    extra=gater_record)
            append_jsonl(out / "metrics.jsonl", {
                "epoch": epoch + 1, "iteration": iteration, "loss": mean_loss, "lr": lr, "semi": iteration > warmup,
                **progress.record(),
                "val": None if val_scores is None else {k: val_scores[k] for k in ("miou", "pixel_acc", "per_class_iou")},
            })
            val_txt = "" if val_scores is None else f"  val mIoU {100 * val_scores['miou']:.1f}"
            log(f"epoch {epoch + 1}/{cfg.epochs}  loss {mean_loss:.4f}  lr {lr:.5f}{val_txt}"
                f"{'' if iteration > warmup else '  (warm-up)'}  {progress.seen / progress.seconds:.1f} img/s  "
                f"{progress.seconds:.1f} s")
        dist.barrier(info)
    return {"best_miou": best_miou, "epochs": cfg.epochs, "warmup_iterations": warmup, "iterations": iteration,
            "seconds": time.perf_counter() - t_start}


def step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def latent_groups(m: torch.Tensor, names: tuple[str, ...] | list[str], min_share: float = 1e-3) -> list[dict]:
    """What each latent class stands for, from the co-occurrence matrix M [classes, latent]: its share of the
    labeled pixels, the semantic classes it groups (those whose most likely latent class, P(l|c), it is) and
    its composition P(c|l). Latent classes below ``min_share`` of the pixels are left out (unused)."""
    m = m.double()
    total = float(m.sum())
    seen = (m.sum(1) > 0).tolist()  # classes the labeled batches showed
    owner = latent_given_class(m).argmax(1).tolist()
    rows = []
    for k in range(m.shape[1]):
        mass = float(m[:, k].sum())
        if total <= 0 or mass / total < min_share:
            continue
        composition = sorted(((float(m[c, k]) / mass, names[c]) for c in range(m.shape[0])), reverse=True)
        groups = [names[c] for c, o in enumerate(owner) if o == k and seen[c]]
        rows.append({"latent": k, "share": mass / total, "groups": groups,
                     "composition": {n: round(p, 4) for p, n in composition if p >= 0.01}})
    return rows


def write_latent_table(out: Path, m: torch.Tensor, names: tuple[str, ...] | list[str]) -> None:
    """latent_classes.json and latent_classes.md in the run directory."""
    rows = latent_groups(m, names)
    write_json(out / "latent_classes.json", {"classes": list(names), "cooccurrence": m.tolist(), "latent": rows})
    lines = ["| latent class | labeled pixels | groups | P(class given latent) |", "|---|---:|---|---|"]
    for r in rows:
        comp = ", ".join(f"{n} {100 * p:.0f}%" for n, p in r["composition"].items())
        lines.append(f"| {r['latent']} | {100 * r['share']:.1f}% | {', '.join(r['groups']) or '-'} | {comp} |")
    unused = m.shape[1] - len(rows)
    lines.append(f"\n{len(rows)} of {m.shape[1]} latent classes in use ({unused} below 0.1% of the labeled pixels).")
    atomic_write_text(out / "latent_classes.md", "\n".join(lines) + "\n")
