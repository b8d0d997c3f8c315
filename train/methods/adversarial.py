"""--method adversarial (Hung et al. 2018) and --method dual-disc (two discriminators). Both train the
segmenter on labeled and unlabeled batches with a discriminator beside it (--method latent builds on this):

    adversarial  a fully convolutional discriminator D (prediction vs one-hot ground truth, per pixel).
                 Segmenter: L_ce + lambda_adv * L_adv (labeled; lambda_adv_unlabeled on unlabeled) and,
                 after the warm-up, lambda_semi * L_semi: its own arg-max where sigmoid(D) > T_semi.
                 D: trained on labeled batches only, Adam, poly decay.
    dual-disc    D1, image-level real/fake, and D2, a per-pixel confidence net trained against the
                 correctness map (the auxiliary net's target). During the warm-up the segmenter (L_ce +
                 lambda_adv * L_adv from D1) and both discriminators train on labeled images; then the
                 discriminators are frozen and the segmenter also learns from unlabeled images: its arg-max
                 where D2's confidence reaches D1's probability for the image (a dynamic threshold).

Outputs like a supervised run (best.pt = the segmenter, by val mIoU), plus gater/best.pt: the confidence source
saved with that segmenter, which export and ``ssseg eval --gate`` use like the auxiliary net."""

from __future__ import annotations

import json

import torch
from torch import nn

from ssseg.checkpoint import save_checkpoint
from ssseg.io import write_json
from ssseg.models import create_model
from ssseg.rundir import BEST_FILE, DONE_FILE, SUMMARY_FILE, layout
from ssseg.train.config import parse_warmup
from ssseg.train.data import TrainSet, default_crop, endless, normalize, train_loader
from ssseg.train.distributed import wrap_ddp
from ssseg.train.losses import (
    aux_targets,
    bce_map,
    bce_to,
    dual_gate,
    enet_class_weights,
    one_hot_probs,
    pseudo_label_loss,
    segmentation_loss,
    semi_loss,
)
from ssseg.train.methods.supervised import validate_segmenter
from ssseg.train.optim import make_optim, new_segmenter, segmenter_optim
from ssseg.train.registry import register
from ssseg.train.setup import Run
from ssseg.train.task import Method, Stage, Task

GATER_DIR = "gater"


class DiscriminatorLoss(nn.Module):
    """The discriminator step as one forward pass, so DistributedDataParallel sees every parameter."""

    def __init__(self, gater: nn.Module, two_discriminators: bool):
        super().__init__()
        self.gater, self.two = gater, two_discriminators

    def forward(self, fake: torch.Tensor, real: torch.Tensor, correct: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
        if not self.two:
            return bce_to(self.gater(fake), 0.0) + bce_to(self.gater(real), 1.0)
        d1, d2 = self.gater.d1, self.gater.d2
        return bce_to(d1(fake), 0.0) + bce_to(d1(real), 1.0) + bce_map(d2(fake), correct, valid)


class AdversarialTask(Task):
    """The segmenter and a discriminator ("gater") on labeled + unlabeled batches; subclasses give the
    segmenter's loss (``segmenter_loss``) and when the discriminator learns."""

    discriminator = "fc-discriminator"
    two_discriminators = False
    warms_up = True  # the semi-supervised terms start after --adv-warmup
    unlabeled_in_warmup = True  # the segmenter sees the unlabeled batch during the warm-up too

    def __init__(self, run: Run, unlabeled, gate_threshold: float | None):
        super().__init__(run, run.labeled, run.cfg.epochs)
        self.unlabeled, self.gate_threshold = unlabeled, gate_threshold

    def prepare(self) -> None:
        weights = enet_class_weights(self.run.pixel_counts, self.cfg.class_weight_c)
        self.class_weights = torch.from_numpy(weights).to(self.device)

    def segmenter_modules(self) -> nn.Module:
        """What the segmenter's optimiser trains (the segmenter; latent: with its branch)."""
        return self.model

    def build(self) -> None:
        cfg, n = self.cfg, self.run.classes.num_classes
        self.model_name, self.model_kwargs, self.gater_kwargs = cfg.model, {"num_classes": n}, {"num_classes": n}
        self.model = new_segmenter(cfg, n, self.device, log=self.run.log)
        self.gater = create_model(self.discriminator, **self.gater_kwargs).to(self.device)
        self.build_more()
        self.trained = self.segmenter_modules()
        self.optims = {"loss": segmenter_optim(self.trained, cfg),
                       "loss_d": make_optim(self.gater, cfg, kind="adam", lr=cfg.disc_lr, weight_decay=0.0,
                                            betas=(0.9, 0.99), prefix="gater_")}
        self.state = {"gater": self.gater, **self.more_state()}

    def build_more(self) -> None:
        """More networks, created after the gater (their order is the initialisation)."""

    def more_state(self) -> dict:
        return {}

    def start(self, state: dict) -> None:
        self.seg_net = wrap_ddp(self.trained, self.run.info)
        self.d_step = wrap_ddp(DiscriminatorLoss(self.gater, self.two_discriminators), self.run.info)

    def begin(self, iteration: int, per_epoch: int) -> None:
        cfg, info = self.cfg, self.run.info
        unlabeled_set = TrainSet(self.unlabeled, cfg, default_crop(self.run.labeled, cfg))
        u_sampler, u_loader = train_loader(unlabeled_set, cfg, info)
        self.u_iter = (images for images, _ in endless(u_loader, u_sampler, iteration))  # their labels are never read
        self.warmup = parse_warmup(cfg.adv_warmup, per_epoch) if self.warms_up else 0
        if self.warmup >= self.epochs * per_epoch:
            self.run.log(f"warning: the warm-up ({self.warmup} iterations) outlasts the run "
                         f"({self.epochs * per_epoch}); the unlabeled images will not be used (lower --adv-warmup, "
                         f"e.g. --adv-warmup "
                         f"{max(1, cfg.epochs // 3)}ep)")

    def train(self) -> None:
        self.seg_net.train()

    def discriminator_learns(self, semi: bool) -> bool:
        return True

    def step(self, batch, iteration):
        images, labels = batch
        device = self.device
        semi = iteration >= self.warmup
        self.gater.train(self.discriminator_learns(semi))  # a frozen discriminator's BatchNorm stays still
        xl, yl = normalize(images, device, self.run.norm), labels.to(device, non_blocking=True)
        xu = normalize(next(self.u_iter), device, self.run.norm)

        # the segmenter's loss: the discriminators judge but do not learn
        self.gater.requires_grad_(False)
        with_u = self.unlabeled_in_warmup or semi
        with torch.autocast(device.type, dtype=torch.float16, enabled=self.run.amp):
            out = self.seg_net(torch.cat([xl, xu]) if with_u else xl)  # one pass: one DDP forward per step
        logits, extra = out if isinstance(out, tuple) else (out, None)
        logits_l, logits_u = logits[: len(xl)], logits[len(xl):]
        p_l = torch.softmax(logits_l.float(), 1)
        ce = segmentation_loss(logits_l, yl, self.class_weights)
        loss, p_u = self.segmenter_loss(ce, p_l, logits_u, extra, yl, semi)
        losses = {"loss": loss}

        # the discriminator's: the labeled batch's predictions are fake (latent: the unlabeled batch's too),
        # its ground truth real; dual-disc: during the warm-up only
        if self.discriminator_learns(semi):
            self.gater.requires_grad_(True)
            fake = self.fakes(p_l, p_u)
            real = one_hot_probs(yl, self.run.classes.num_classes, p_l.detach())
            correct, valid = aux_targets(logits_l.detach().argmax(1), yl)
            losses["loss_d"] = self.d_step(fake, real, correct, valid.float())
        return losses

    def segmenter_loss(self, ce, p_l, logits_u, extra, yl, semi):
        """(the segmenter's loss, the unlabeled softmax or None) from the labeled cross-entropy ``ce``."""
        cfg = self.cfg
        p_u = torch.softmax(logits_u.float(), 1)
        d_u = self.gater(p_u)
        loss = ce + cfg.lambda_adv * bce_to(self.gater(p_l), 1.0) + cfg.lambda_adv_unlabeled * bce_to(d_u, 1.0)
        if semi:
            loss = loss + cfg.lambda_semi * semi_loss(logits_u, torch.sigmoid(d_u), cfg.t_semi)
        return loss, p_u

    def fakes(self, p_l, p_u):
        return p_l.detach()

    def evaluate(self):
        return validate_segmenter(self, self.model)

    def saved(self, out, record, best_saved) -> None:
        # the gater as it was with this segmenter: the pair export deploys
        if best_saved and self.gate_threshold is not None:
            save_checkpoint(out / GATER_DIR / BEST_FILE, model_name=self.discriminator, model_kwargs=self.gater_kwargs,
                            segmenter=self.cfg.model,
                            classes=self.run.classes, state_dict=self.gater.state_dict(),
                            extra={**record, "segmenter": "../best.pt", "threshold": self.gate_threshold})

    def epoch_fields(self, iteration: int) -> dict:
        return {"semi": iteration > self.warmup}

    def epoch_note(self, iteration: int) -> str:
        return "" if iteration > self.warmup else "  (warm-up)"

    def result(self) -> dict:
        return {"warmup_iterations": self.warmup}

    def describe(self) -> str:
        return (f"--method {self.cfg.method} on {len(self.run.labeled)} labeled + {len(self.unlabeled)} unlabeled "
                f"images (semi-supervised terms after the warm-up, --adv-warmup {self.cfg.adv_warmup}), "
                f"discriminator Adam lr "
                f"{self.cfg.disc_lr:g}")


class DualDiscTask(AdversarialTask):
    discriminator = "dual-disc-gater"
    two_discriminators = True
    unlabeled_in_warmup = False

    def discriminator_learns(self, semi: bool) -> bool:
        return not semi  # frozen after the warm-up

    def segmenter_loss(self, ce, p_l, logits_u, extra, yl, semi):
        cfg, gater = self.cfg, self.gater
        loss = ce + cfg.lambda_adv * bce_to(gater.d1(p_l), 1.0)
        if not semi:
            return loss, None
        p_u = torch.softmax(logits_u.float(), 1)
        with torch.no_grad():
            trusted = dual_gate(gater.d2(p_u), gater.d1(p_u))
        return (loss + cfg.lambda_adv * bce_to(gater.d1(p_u), 1.0)
                + cfg.lambda_semi * pseudo_label_loss(logits_u, trusted)), p_u


class OneStageSemi(Method):
    """A one-stage method on labeled + unlabeled images, laid out like a supervised run."""

    task = AdversarialTask

    def gate_threshold(self, cfg) -> float | None:
        return None

    def layout(self, cfg) -> dict:
        threshold = self.gate_threshold(cfg)
        return layout(self.name, gater=GATER_DIR if threshold is not None else None, gate_threshold=threshold,
                      segmenter_model=cfg.model)

    def stages(self, run: Run) -> list[Stage]:
        unlabeled = run.unlabeled()
        threshold = self.gate_threshold(run.cfg)

        def gater_done(result: dict) -> None:
            if threshold is not None:
                run.dir.mark_done(run.dir.root / GATER_DIR, {"model": self.task.discriminator})

        return [Stage(0, self.name, lambda out: self.task(run, unlabeled, threshold), after=gater_done)]

    def finish(self, run: Run, seconds: float) -> list[str]:
        result = {k: v for k, v in json.loads((run.dir.root / DONE_FILE).read_text()).items() if k != "finished"}
        threshold = self.gate_threshold(run.cfg)
        write_json(run.dir.root / SUMMARY_FILE, {"method": self.name, "labeled_fraction": run.cfg.labeled_fraction,
                                                   "val_miou": result["best_miou"], "gate_threshold": threshold,
                                                   **result})
        return [f"done: val mIoU {100 * result['best_miou']:.1f} (best epoch); segmenter {run.dir.root / 'best.pt'}, "
                + self.closing(run)]

    def closing(self, run: Run) -> str:
        return f"gater {run.dir.root / GATER_DIR / 'best.pt'}"


@register("adversarial")
class Adversarial(OneStageSemi):
    task = AdversarialTask

    def gate_threshold(self, cfg) -> float:
        return cfg.t_semi


@register("dual-disc")
class DualDisc(OneStageSemi):
    task = DualDiscTask

    def gate_threshold(self, cfg) -> float:
        return 0.5  # its confidence sigmoid(z2 - z1) passes 0.5 where D2 reaches D1 (see DualDiscGater)
