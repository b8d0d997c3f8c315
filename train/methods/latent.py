"""--method latent (Zatsarynna et al.): latent classes. A second branch predicts latent classes, trained on
labeled images with the conditional entropy of the semantic classes given the latent ones; a co-occurrence EMA
gives P(l|c), which maps the semantic prediction on unlabeled images to latent classes, and the latent branch's
prediction supervises that mapping (L_cons). Hung's discriminator adds L_adv:

    L = L_ce + L_latent + lambda_adv L_adv + lambda_semi (L_cons + lambda_adv L_adv_unlabeled)

Outputs like a supervised run plus latent_classes.md (which semantic classes each latent class groups). It
trains no gater: gate it with an auxiliary net trained on it (``--method aux --from-stage 2 --init RUN``)."""

from __future__ import annotations

from pathlib import Path

import torch

from ssseg.io import atomic_write_text, write_json
from ssseg.models import LatentBranch, WithHead
from ssseg.rundir import LATENT_FILE
from ssseg.train import distributed as dist
from ssseg.train.losses import (
    bce_to,
    conditional_entropy,
    cooccurrence_update,
    latent_consistency,
    latent_given_class,
    latent_joint,
)
from ssseg.train.methods.adversarial import AdversarialTask, OneStageSemi
from ssseg.train.registry import register
from ssseg.train.setup import Run
from ssseg.train.task import TensorState


class LatentTask(AdversarialTask):
    warms_up = False  # the latent paper has no warm-up

    def build_more(self) -> None:
        n, k = self.run.classes.num_classes, self.cfg.latent_classes
        self.branch = LatentBranch(self.model.fused_channels, k).to(self.device)
        self.cooc = TensorState(torch.zeros(n, k, device=self.device))  # the co-occurrence EMA M [classes, latent]

    def segmenter_modules(self):
        return WithHead(self.model, self.branch)

    def more_state(self) -> dict:
        return {"latent_branch": self.branch, "cooccurrence": self.cooc}

    def begin(self, iteration: int, per_epoch: int) -> None:
        super().begin(iteration, per_epoch)
        # the co-occurrence EMA's rate, as the paper; above 1 (tiny labeled sets, many processes) M would go negative
        self.alpha = min(1.0, self.cfg.batch_size * self.run.info.world_size / len(self.run.labeled))

    def segmenter_loss(self, ce, p_l, logits_u, latent_logits, yl, semi):
        cfg, n = self.cfg, len(yl)
        joint = latent_joint(torch.softmax(latent_logits[:n].float(), 1), yl, self.run.classes.num_classes)
        # every process adds the same batch sums, so M stays identical across them
        m = cooccurrence_update(self.cooc.value, dist.all_reduce_sum(joint.detach().clone(), self.run.info), self.alpha)
        self.cooc.value = m
        p_u = torch.softmax(logits_u.float(), 1)
        unlabeled_loss = (latent_consistency(latent_logits[n:], p_u, latent_given_class(m))
                          + cfg.lambda_adv * bce_to(self.gater(p_u), 1.0))
        return (ce + conditional_entropy(joint) + cfg.lambda_adv * bce_to(self.gater(p_l), 1.0)
                + cfg.lambda_semi * unlabeled_loss), p_u

    def fakes(self, p_l, p_u):
        return torch.cat([p_l, p_u]).detach()

    def saved(self, out: Path, record: dict, best_saved: bool) -> None:
        write_latent_table(out, self.cooc.value.cpu(), self.run.classes.names)


@register("latent")
class Latent(OneStageSemi):
    task = LatentTask

    def closing(self, run: Run) -> str:
        out = run.dir.root
        return (f"latent classes {out / 'latent_classes.md'}; gate it with: ssseg train --method aux --from-stage 2 "
                f"--init {out} --until-stage 2 --out {out}-aux")


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
    write_json(out / LATENT_FILE, {"classes": list(names), "cooccurrence": m.tolist(), "latent": rows})
    lines = ["| latent class | labeled pixels | groups | P(class given latent) |", "|---|---:|---|---|"]
    for r in rows:
        comp = ", ".join(f"{n} {100 * p:.0f}%" for n, p in r["composition"].items())
        lines.append(f"| {r['latent']} | {100 * r['share']:.1f}% | {', '.join(r['groups']) or '-'} | {comp} |")
    unused = m.shape[1] - len(rows)
    lines.append(f"\n{len(rows)} of {m.shape[1]} latent classes in use ({unused} below 0.1% of the labeled pixels).")
    atomic_write_text(out / "latent_classes.md", "\n".join(lines) + "\n")
