"""--method aux: the paper's three stages (method.md section 1).

    stage1/  the segmenter on the labeled images (supervised)
    stage2/  the auxiliary confidence net on the labeled images, stage-1 segmenter frozen, loss eq. (1)
    stage3/  pseudo/: gated pseudo-labels of the unlabeled images (PNG + manifest); then the segmenter
             retrained on labeled + pseudo-labeled images

The pseudo-labels continue from the images already written; ``--from-stage 2 --init RUN --until-stage 2`` trains
an auxiliary net for another run's segmenter (a latent or self-train run, say), which export then deploys with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ssseg.data.pseudo import Concat, PseudoLabeled
from ssseg.io import sha256_file, write_json
from ssseg.models import create_model
from ssseg.models.confidence import width_kwargs
from ssseg.rundir import AUX_TERMS_FILE, BEST_FILE, DONE_FILE, MANIFEST_FILE, PSEUDO_DIR, SUMMARY_FILE, layout
from ssseg.train.data import normalize, scan, standardize, to_unit
from ssseg.train.distributed import wrap_ddp
from ssseg.train.evaluate import confusion_matrix, frozen
from ssseg.train.gate import gate_counts
from ssseg.train.losses import aux_gamma, aux_loss, aux_targets, enet_class_weights
from ssseg.train.methods.supervised import SegmenterTask, labeled_stage
from ssseg.train.mix import photometric, step_generator
from ssseg.train.optim import make_optim
from ssseg.train.pseudo import write_pseudo_labels
from ssseg.train.registry import register
from ssseg.train.setup import Run
from ssseg.train.task import Method, Stage, Task

AUX_MODEL = "aux-confidence"


class AuxTask(Task):
    """Stage 2: the confidence net learns where the frozen stage-1 segmenter is right; best.pt by val AUROC."""

    title = "aux "
    best = "best_auroc"

    def __init__(self, run: Run, out: Path, segmenter_path: Path):
        super().__init__(run, run.labeled, run.cfg.aux_epochs)
        self.out, self.segmenter_path = out, segmenter_path

    def prepare(self) -> None:
        run, classes = self.run, self.run.classes
        self.segmenter = frozen(self.segmenter_path, self.device)
        terms_path = self.out / AUX_TERMS_FILE
        if terms_path.is_file():
            terms = json.loads(terms_path.read_text())
        else:
            terms = self.class_terms()
            if run.info.is_main:
                write_json(terms_path, terms)
        self.w = torch.tensor(terms["weights"], dtype=torch.float32, device=self.device)
        self.gamma = torch.tensor(terms["gamma"], dtype=torch.float32, device=self.device)
        right = (f"{n} {100 * p / max(p + q, 1):.0f}% right"
                 for n, p, q in zip(classes.names, terms["positive"], terms["negative"]))
        run.log("auxiliary targets on the labeled set (stage-1 predictions): " + ", ".join(right))
        self.provenance = {"segmenter": str(Path("..") / self.segmenter_path.parent.name / self.segmenter_path.name),
                           "segmenter_sha256": sha256_file(self.segmenter_path) if run.info.is_main else None}

    def class_terms(self) -> dict:
        """W (class weights, c = 1.04, from the labeled pixel shares) and gamma (#negative / #positive per
        ground-truth class in the auxiliary targets, from the stage-1 predictions on the labeled images)."""
        run, cfg = self.run, self.cfg
        conf = confusion_matrix(self.segmenter, run.labeled, cfg.scale, self.device, run.info, amp=run.amp)
        positive = np.diag(conf)
        negative = conf.sum(1) - positive
        return {"classes": list(run.classes.names), "pixels": run.pixel_counts.tolist(),
                "weights": enet_class_weights(run.pixel_counts, cfg.aux_class_weight_c).tolist(),
                "c": cfg.aux_class_weight_c,
                "positive": positive.tolist(), "negative": negative.tolist(),
                "gamma": aux_gamma(positive, negative).tolist()}

    def build(self) -> None:
        cfg = self.cfg
        self.model_name = AUX_MODEL
        self.model_kwargs = {"num_classes": self.run.classes.num_classes, "with_rgb": cfg.aux_input == "probs+rgb",
                             **width_kwargs(cfg.aux_width)}
        self.model = create_model(AUX_MODEL, **self.model_kwargs).to(self.device)
        self.optims = {"loss": make_optim(self.model, cfg, kind="adam", lr=cfg.aux_lr,
                                          weight_decay=cfg.aux_weight_decay)}

    def start(self, state: dict) -> None:
        self.net = wrap_ddp(self.model, self.run.info)

    def step(self, batch, iteration):
        images, labels = batch
        amp, device = self.run.amp, self.device
        x, gt = normalize(images, device, self.run.norm), labels.to(device, non_blocking=True)
        if self.cfg.aux_strong_view:  # the strong view's colours; geometry untouched, so the labels still fit
            x = standardize(photometric(to_unit(images, device), step_generator(self.cfg.seed, iteration)),
                            self.run.norm)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            seg_logits = self.segmenter(x)
        probs = torch.softmax(seg_logits.float(), 1)
        y, _ = aux_targets(seg_logits.argmax(1), gt)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            z = self.net(probs, x if self.model.with_rgb else None)
        return {"loss": aux_loss(z, y, gt, self.w, self.gamma)}

    def evaluate(self):
        run, t = self.run, self.cfg.t_aux
        if run.val is None:
            return None, None, ""
        counts, _ = gate_counts(self.segmenter, self.model, run.val, self.cfg.scale, self.device, (t,), run.info,
                                amp=run.amp, compare=False)
        s = counts.summary(run.classes.names)
        gate = s["gates"][0]
        pct = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
        auroc = "-" if s["auroc"] is None else f"{s['auroc']:.3f}"
        text = (f"  val AUROC {auroc}, at T {t:g}: kept mIoU {pct(gate['kept_miou'])} on "
                f"{pct(gate['selected_share'])}% of pixels")
        record = {"auroc": s["auroc"], "ece": s["ece"], "t_aux": t, "kept_miou": gate["kept_miou"],
                  "selected_share": gate["selected_share"], "class_semi_ratio": gate["class_semi_ratio"]}
        return s["auroc"], record, text

    def record(self) -> dict:
        return {"stage": 2, **self.provenance}

    def describe(self) -> str:
        return f"the auxiliary net ({self.cfg.aux_input}) on {len(self.data)} labeled images, stage-1 segmenter frozen"


@register("aux")
class Aux(Method):
    staged = True
    unlabeled_from_stage = 3  # stages 1-2 train on the labeled images

    def layout(self, cfg) -> dict:
        return layout(self.name, stages=3, segmenter_stages=(3, 1), gater="stage2", gate_threshold=cfg.t_aux,
                      segmenter_model=cfg.model)

    def stages(self, run: Run) -> list[Stage]:
        cfg, s1, s2, s3 = run.cfg, run.dir.stage(1), run.dir.stage(2), run.dir.stage(3)
        unlabeled = run.unlabeled() if self.reads_unlabeled(cfg) else []  # --until-stage 2 reads none
        pseudo_dir = s3 / PSEUDO_DIR

        def write_pseudo() -> None:
            if (pseudo_dir / MANIFEST_FILE).is_file():
                return
            provenance = {"segmenter": "stage1/best.pt", "aux": "stage2/best.pt",
                          "scale": list(cfg.scale) if cfg.scale else None}
            device = run.info.device
            write_pseudo_labels(frozen(s1 / BEST_FILE, device), frozen(s2 / BEST_FILE, device), unlabeled, pseudo_dir,
                                cfg.t_aux, cfg.scale, run.info, run.log, workers=cfg.workers, amp=run.amp,
                                provenance=provenance)

        def retrain(out: Path) -> Task:
            manifest = json.loads((pseudo_dir / MANIFEST_FILE).read_text())
            if manifest["kept_share"] < 0.01:
                run.log(f"warning: the gate kept {100 * manifest['kept_share']:.2f}% of the unlabeled pixels at T_aux "
                        f"{cfg.t_aux:g}; stage 3 adds next to nothing (see ssseg eval {cfg.out} --gate 0,0.5,0.7,0.9)")
            pseudo, pseudo_counts, _ = scan(PseudoLabeled(unlabeled, pseudo_dir / "labels"), False, run.log)
            return SegmenterTask(run, out, Concat([run.labeled, pseudo]), run.pixel_counts + pseudo_counts, stage=3,
                                 init=s1 / BEST_FILE if cfg.stage3_init == "finetune" else None,
                                 epochs=cfg.stage3_epochs,
                                 what=f"{len(run.labeled)} labeled + {len(pseudo)} pseudo-labeled images "
                                      f"({100 * manifest['kept_share']:.1f}% of their pixels kept)")

        return [labeled_stage(run),
                Stage(2, f"auxiliary net ({cfg.aux_input}) on the labeled images, stage-1 segmenter frozen",
                      lambda out: AuxTask(run, out, s1 / BEST_FILE)),
                Stage(3, f"pseudo-labels for {len(unlabeled)} unlabeled images (T_aux {cfg.t_aux:g}), then the "
                         f"segmenter on labeled + pseudo-labeled images ({cfg.stage3_init} start)", retrain,
                      before=write_pseudo)]

    def finish(self, run: Run, seconds: float) -> list[str]:
        rundir, cfg = run.dir, run.cfg
        done = {k: json.loads((rundir.stage(k) / DONE_FILE).read_text())
                for k in (1, 2, 3) if rundir.is_done(rundir.stage(k))}
        s = {"method": "aux", "labeled_fraction": cfg.labeled_fraction, "stage1_val_miou": done[1]["best_miou"],
             "stage1_init": done[1].get("init"), "stage2_val_auroc": done[2]["best_auroc"] if 2 in done else None,
             "t_aux": cfg.t_aux, "seconds_this_invocation": seconds}
        if 3 in done:
            manifest = json.loads((rundir.stage(3) / PSEUDO_DIR / MANIFEST_FILE).read_text())
            s.update({"pseudo_images": manifest["images"], "pseudo_kept_share": manifest["kept_share"],
                      "stage3_val_miou": done[3]["best_miou"],
                      "gain": done[3]["best_miou"] - done[1]["best_miou"] if done[1]["best_miou"] >= 0 else None})
        write_json(rundir.root / SUMMARY_FILE, s)
        if "stage3_val_miou" not in s:
            auroc = "-" if s["stage2_val_auroc"] is None else f"{s['stage2_val_auroc']:.3f}"
            return [f"stopped after stage {2 if s['stage2_val_auroc'] is not None else 1} (--until-stage): stage-1 "
                    f"segmenter {s['stage1_init'] or 'stage1/best.pt'}, val mIoU {100 * s['stage1_val_miou']:.1f}; "
                    f"auxiliary net val AUROC {auroc}"]
        if s["stage1_val_miou"] < 0:
            return [f"done (no val split: no mIoU to compare); pseudo-labels kept "
                    f"{100 * s['pseudo_kept_share']:.1f}% of pixels"]
        return [f"baseline (stage 1, labeled only): val mIoU {100 * s['stage1_val_miou']:.1f}",
                f"semi-supervised (stage 3, + {s['pseudo_images']} pseudo-labeled images, T_aux {s['t_aux']:g}, "
                f"{100 * s['pseudo_kept_share']:.1f}% of their pixels kept): val mIoU {100 * s['stage3_val_miou']:.1f} "
                f"({100 * s['gain']:+.1f})"]
