"""Every method's optimisers and its segmenter, made in one place.

``make_optim`` builds one optimiser with parameter groups: parameters a pretrained encoder filled get
``--encoder-lr-mult`` times the rate, norms and biases get no weight decay (decaying a BatchNorm scale toward zero
fights the normalisation it learned), and the engine applies warm-up and the poly decay to every group through its
``lr_mult`` (train/engine.py). ``new_segmenter`` creates the run's segmenter and fills it with its ImageNet weights."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ssseg.models import SegmenterBase, create_model
from ssseg.train.config import OPTIMIZERS, TrainConfig
from ssseg.train.task import Optim


def param_groups(modules: Iterable[nn.Module], weight_decay: float, pretrained_mult: float) -> list[dict]:
    """Up to four groups (pretrained or not x decayed or not), each parameter once (shared ones too)."""
    pretrained: set[int] = set()
    for m in modules:
        if isinstance(m, SegmenterBase):
            pretrained |= {id(p) for p in m.pretrained_parameters()}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for m in modules:
        for p in m.parameters():
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            groups.setdefault((id(p) in pretrained, p.ndim > 1), []).append(p)
    return [{"params": ps, "lr_mult": pretrained_mult if pre else 1.0, "weight_decay": weight_decay if decay else 0.0}
            for (pre, decay), ps in sorted(groups.items())]


def make_optim(modules: nn.Module | Iterable[nn.Module], cfg: TrainConfig, *, kind: str, lr: float,
               weight_decay: float, betas: tuple[float, float] | None = None, prefix: str = "") -> Optim:
    """``kind``: sgd (momentum --momentum), adam or adamw; ``betas`` for the Adam kinds."""
    if kind not in OPTIMIZERS:
        raise ValueError(f"unknown optimiser {kind!r}")
    modules = [modules] if isinstance(modules, nn.Module) else list(modules)
    groups = param_groups(modules, weight_decay, cfg.encoder_lr_mult)
    if kind == "sgd":
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    else:
        cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
        optimizer = cls(groups, lr=lr, **({"betas": betas} if betas else {}))
    return Optim(optimizer, lr, prefix)


def segmenter_optim(modules: nn.Module | Iterable[nn.Module], cfg: TrainConfig, lr: float | None = None) -> Optim:
    """The segmenter's optimiser as the run's options say (--optimizer, --lr, --weight-decay)."""
    return make_optim(modules, cfg, kind=cfg.optimizer, lr=cfg.lr if lr is None else lr, weight_decay=cfg.weight_decay)


def new_segmenter(cfg: TrainConfig, num_classes: int, device: torch.device, *, pretrained: bool | None = None,
                  log=None) -> SegmenterBase:
    """The run's segmenter (``cfg.model``) on ``device``, its encoder filled with ImageNet weights when its spec has
    them and --pretrained is on. Weights load after creation, so the random init of the rest stays the seed's."""
    model = create_model(cfg.model, num_classes=num_classes)
    if (cfg.pretrained if pretrained is None else pretrained) and model.spec.pretrained is not None:
        n = model.load_pretrained()
        if log is not None:
            log(f"encoder: {n} tensors from {model.spec.pretrained.package} ({model.spec.pretrained.origin})")
    model.freeze_encoder_bn = cfg.freeze_bn
    return model.to(device)
