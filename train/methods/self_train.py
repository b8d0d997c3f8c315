"""--method self-train: Ke, Aviles-Rivero et al.'s three-stage self-training (method.md section 5).

    stage1/  the segmenter on the labeled images (supervised, as every method's baseline); its pseudo/: its
             arg-max on every training image (the initial pseudo-masks)
    stage2/  a multi-task network trained afresh: the segmenter f (L_seg on labeled images, plus L_con: cross-
             entropy to a mean teacher's prediction under strong augmentation) and a head g that owns f's last
             two blocks (block 4, decoder, classifier) and learns the stage-1 pseudo-masks (L_pl);
             L = L_seg + lambda_con L_con + lambda_pl L_pl. Its pseudo/: the new f's arg-max on every image
    stage3/  the same with a head that owns only f's last block (decoder and classifier), on stage 2's masks

Each mini-batch is a labeled sub-batch (weakly augmented, L_seg) and a sub-batch drawn from all training
images (--st-all-batch, default half the labeled one; the paper uses 1 to 3 in mini-batches of 5; the teacher
sees the weak view; f and g the strong one: RandAugment + Cutout, the geometric part also applied to the
targets; L_con and L_pl). Adam with poly decay (--st-lr). Only f is kept: best.pt of a stage is a plain
segmenter, and the run's final one is stage 3's."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ssseg.data.pseudo import PseudoLabeled
from ssseg.io import write_json
from ssseg.models import BranchHead, WithHead, create_model
from ssseg.rundir import BEST_FILE, DONE_FILE, MANIFEST_FILE, PSEUDO_DIR, SUMMARY_FILE, layout
from ssseg.train.data import Norm, TrainSet, default_crop, endless, normalize, train_loader
from ssseg.train.distributed import wrap_ddp
from ssseg.train.evaluate import frozen
from ssseg.train.losses import enet_class_weights, segmentation_loss, soft_cross_entropy
from ssseg.train.methods.supervised import labeled_stage, validate_segmenter
from ssseg.train.optim import make_optim, new_segmenter
from ssseg.train.pseudo import write_pseudo_labels
from ssseg.train.registry import register
from ssseg.train.setup import Run
from ssseg.train.strong import StrongSet, warp, warp_labels, warp_valid
from ssseg.train.task import Method, Stage, Task

OWN_BLOCKS = {2: 2, 3: 1}  # the head g owns the segmenter's last two blocks in stage 2, the last one in stage 3


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


class MultiTaskTask(Task):
    """Stage 2 or 3: the segmenter (re-initialised, as the paper), a head on its last ``own_blocks`` blocks and
    their mean teacher; best.pt is the segmenter by val mIoU."""

    def __init__(self, run: Run, stage: int, pseudo_dir: Path):
        super().__init__(run, run.labeled, run.cfg.epochs)
        self.stage, self.pseudo_dir, self.own_blocks = stage, pseudo_dir, OWN_BLOCKS[stage]

    def prepare(self) -> None:
        weights = enet_class_weights(self.run.pixel_counts, self.cfg.class_weight_c)
        self.class_weights = torch.from_numpy(weights).to(self.device)

    def build(self) -> None:
        cfg, device = self.cfg, self.device
        self.model_name, self.model_kwargs = cfg.model, {"num_classes": self.run.classes.num_classes}
        self.model = new_segmenter(cfg, self.run.classes.num_classes, device, log=self.run.log)
        self.head = BranchHead(self.model, self.own_blocks).to(device)
        self.student = WithHead(self.model, self.head)
        self.teacher = create_model(cfg.model, **self.model_kwargs).to(device).eval()
        self.teacher.load_state_dict(self.model.state_dict())
        self.teacher.requires_grad_(False)
        self.optims = {"loss": make_optim(self.student, cfg, kind="adam", lr=cfg.st_lr, weight_decay=cfg.weight_decay)}
        self.state = {"head": self.head, "teacher": self.teacher}

    def start(self, state: dict) -> None:
        self.net = wrap_ddp(self.student, self.run.info)

    def begin(self, iteration: int, per_epoch: int) -> None:
        run, cfg = self.run, self.cfg
        crop = default_crop(run.labeled, cfg)
        masked = PseudoLabeled(run.all_images(), self.pseudo_dir / "labels")
        all_set = StrongSet(TrainSet(masked, cfg, crop), cfg.seed, Norm.of(cfg.model).fill)
        self.all_batch = cfg.st_all_batch or max(1, cfg.batch_size // 2)
        a_sampler, a_loader = train_loader(all_set, cfg, run.info, self.all_batch)
        self.a_iter = endless(a_loader, a_sampler, iteration)

    def train(self) -> None:
        self.net.train()

    def step(self, batch, iteration):
        images, labels = batch
        cfg, device, amp = self.cfg, self.device, self.run.amp
        xl, yl = normalize(images, device, self.run.norm), labels.to(device, non_blocking=True)
        weak, strong, masks, theta = next(self.a_iter)
        theta = theta.to(device)
        xs = warp(normalize(strong, device, self.run.norm), theta)  # B(A x): the geometric part, on the device
        valid = warp_valid(theta, len(theta), tuple(xs.shape[-2:]), device)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            teacher_logits = self.teacher(normalize(weak, device, self.run.norm))
        target = warp(torch.softmax(teacher_logits.float(), 1), theta)
        masks = warp_labels(masks.to(device).long(), theta)

        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits, head_logits = self.net(torch.cat([xl, xs]))
        n = len(xl)
        l_seg = segmentation_loss(logits[:n], yl, self.class_weights)
        l_con = soft_cross_entropy(logits[n:], target, valid)
        l_pl = segmentation_loss(head_logits[n:], masks, None)
        loss = l_seg + cfg.lambda_con * l_con + cfg.lambda_pl * l_pl
        return {"loss": loss, "l_seg": l_seg, "l_con": l_con, "l_pl": l_pl}

    def after_step(self) -> None:
        ema_update(self.teacher, self.model, self.cfg.ema_decay)

    def evaluate(self):
        return validate_segmenter(self, self.model)

    def record(self) -> dict:
        return {"stage": self.stage, "pseudo_masks": str(self.pseudo_dir.relative_to(self.cfg.out))}

    def describe(self) -> str:
        return (f"the segmenter + a head owning its last {self.own_blocks} block(s) on {len(self.run.labeled)} labeled "
                f"+ {len(self.run.all_images())} pseudo-masked images (sub-batches of {self.cfg.batch_size} + "
                f"{self.all_batch}), lambda_con {self.cfg.lambda_con:g}, lambda_pl {self.cfg.lambda_pl:g}, "
                f"EMA {self.cfg.ema_decay:g}")


@register("self-train")
class SelfTrain(Method):
    staged = True

    def layout(self, cfg) -> dict:
        return layout(self.name, stages=3, segmenter_stages=(3, 2, 1), segmenter_model=cfg.model)

    def stages(self, run: Run) -> list[Stage]:
        run.unlabeled()  # refuses a split without any

        def pseudo_masks(k: int):
            """stage{k}/pseudo/: the stage's best segmenter's arg-max on every training image (resumable)."""
            stage = run.dir.stage(k)

            def write() -> None:
                if not (stage / PSEUDO_DIR / MANIFEST_FILE).is_file():
                    segmenter = frozen(stage / BEST_FILE, run.info.device)
                    write_pseudo_labels(segmenter, None, run.all_images(), stage / PSEUDO_DIR, 0.0, run.cfg.scale,
                                        run.info, run.log, workers=run.cfg.workers, amp=run.amp,
                                        provenance={"segmenter": f"{stage.name}/best.pt"})
            return write

        return [labeled_stage(run)] + [
            Stage(k, f"segmenter + a head owning its last {OWN_BLOCKS[k]} block(s) on stage {k - 1}'s pseudo-masks, "
                     f"mean teacher under strong augmentation",
                  lambda out, k=k: MultiTaskTask(run, k, run.dir.stage(k - 1) / PSEUDO_DIR), before=pseudo_masks(k - 1))
            for k in (2, 3)]

    def finish(self, run: Run, seconds: float) -> list[str]:
        rundir = run.dir
        summary = {"method": "self-train", "labeled_fraction": run.cfg.labeled_fraction,
                   **{f"stage{k}_val_miou": json.loads((rundir.stage(k) / DONE_FILE).read_text())["best_miou"]
                      for k in (1, 2, 3) if rundir.is_done(rundir.stage(k))},
                   "seconds_this_invocation": seconds}
        write_json(rundir.root / SUMMARY_FILE, summary)
        return ["done: " + ", ".join(f"{k.split('_')[0]} val mIoU {100 * v:.1f}" for k, v in summary.items()
                                     if k.endswith("_miou"))]
