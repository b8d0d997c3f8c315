"""Torch-side data: labeled/unlabeled splits, the validating scan, and augmenting datasets."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ssseg.data import SegDataset, class_histogram
from ssseg.errors import DataError
from ssseg.segmenters import get_spec
from ssseg.train.config import TrainConfig
from ssseg.train.distributed import DistInfo
from ssseg.train.transforms import augment, resize_pair


@dataclass(frozen=True)
class Norm:
    """A segmenter's input normalisation on 0..1 RGB (its spec's; checkpoints record it, export bakes it in)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, segmenter: str | torch.nn.Module) -> "Norm":
        spec = get_spec(segmenter) if isinstance(segmenter, str) else segmenter.spec
        return cls(tuple(spec.mean), tuple(spec.std))

    @property
    def fill(self) -> tuple[int, int, int]:
        """The padding colour of crops: the mean, so padded pixels are zero after normalisation."""
        return tuple(int(round(m * 255)) for m in self.mean)


def split_labeled(ids: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded split of the training ids into labeled / unlabeled (sorted lists)."""
    ids = sorted(ids)
    n = max(1, int(round(fraction * len(ids))))
    order = np.random.default_rng(seed).permutation(len(ids))
    labeled = sorted(ids[i] for i in order[:n])
    keep = set(labeled)
    return labeled, [i for i in ids if i not in keep]


def write_list(path: Path, ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


def read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def scan(ds: SegDataset, skip_bad: bool, log=print, labels: bool = True) -> tuple[SegDataset, np.ndarray, list[str]]:
    """Decode every sample before the first epoch (a truncated image found mid-epoch would cost the epoch, and
    fail inside a loader worker); return the dataset (bad samples removed only with skip_bad), its class pixel
    counts, and one "id<TAB>reason" line per skipped sample. ``labels=False``: images only (unlabeled ones)."""
    hist = np.zeros(ds.classes.num_classes, np.int64)
    bad: dict[str, str] = {}
    for i in range(len(ds)):
        try:
            if labels:
                label = ds.check(i)
            else:
                ds.load_image(i)
                continue
        except DataError as e:
            if not skip_bad:
                raise
            bad[ds.samples[i].id] = str(e)
            continue
        hist += class_histogram([label], ds.classes.num_classes)
    if bad:
        log(f"warning: skipped {len(bad)} bad sample(s) of {ds.split} (--skip-bad); first: {next(iter(bad.values()))}")
        ds = ds.subset([s.id for s in ds.samples if s.id not in bad])
    if len(ds) == 0:
        raise DataError(f"the {ds.split} split has no usable samples", path=ds.root,
                        fix="check the dataset path and layout")
    return ds, hist, [f"{k}\t{v}" for k, v in bad.items()]


class TrainSet(torch.utils.data.Dataset):
    """Augmented (image, label) pairs as uint8 tensors; randomness is a function of (seed, epoch, index)
    so a resumed run sees exactly the crops an uninterrupted one would."""

    def __init__(self, ds: SegDataset, cfg: TrainConfig, crop: tuple[int, int]):
        self.ds, self.cfg, self.crop = ds, cfg, crop
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        image, label = self.ds.load(i)
        if self.cfg.scale:
            image, label = resize_pair(image, label, self.cfg.scale)
        rng = np.random.default_rng([self.cfg.seed, self.epoch, i])
        image, label = augment(image, label, rng, self.cfg.aug_scales, self.crop, Norm.of(self.cfg.model).fill)
        return torch.from_numpy(image), torch.from_numpy(label)


class EvalSet(torch.utils.data.Dataset):
    """Un-augmented pairs, resized to the training scale when one is set."""

    def __init__(self, ds: SegDataset, scale: tuple[int, int] | None):
        self.ds, self.scale = ds, scale

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        image, label = self.ds.load(i)
        if self.scale:
            image, label = resize_pair(image, label, self.scale)
        return torch.from_numpy(np.array(image)), torch.from_numpy(np.array(label))


def normalize(images: torch.Tensor, device: torch.device, norm: Norm) -> torch.Tensor:
    """uint8 NHWC on the host -> normalised float NCHW on ``device`` (done on the device: cheaper)."""
    return standardize(to_unit(images, device), norm)


def to_unit(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 NHWC on the host -> float NCHW in 0..1 on ``device``."""
    return images.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)


def standardize(x: torch.Tensor, norm: Norm) -> torch.Tensor:
    """0..1 RGB -> the segmenter's input."""
    mean = torch.tensor(norm.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(norm.std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class ImagesOnly(SegDataset):
    """Unlabeled images for augmentation: the label is 0 everywhere, so after a crop 255 marks exactly the
    padding, and no annotation of the underlying dataset is ever read."""

    def __init__(self, ds: SegDataset):
        self.ds = ds
        super().__init__(ds.root, ds.split, ds.classes, ds.samples, None)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image = self.ds.load_image(i)
        return image, np.zeros(image.shape[:2], np.uint8)


def default_crop(ds: SegDataset, cfg: TrainConfig) -> tuple[int, int]:
    if cfg.crop:
        return cfg.crop
    if cfg.scale:
        return cfg.scale
    return tuple(ds.load_label(0).shape)


def train_loader(train_set: torch.utils.data.Dataset, cfg: TrainConfig, info: DistInfo, batch_size: int | None = None):
    """A distributed sampler (one replica without torchrun) and its loader (batches of ``batch_size``, default
    --batch-size); drop_last unless the set is tiny."""
    batch = batch_size or cfg.batch_size
    sampler = torch.utils.data.DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank,
                                                  shuffle=True, seed=cfg.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=batch, sampler=sampler, num_workers=cfg.workers,
                                         drop_last=len(sampler) >= batch, pin_memory=info.device.type == "cuda")
    return sampler, loader


def endless(loader, sampler, start: int = 0):
    """The batches of ``loader`` forever: the unlabeled side of a labeled epoch. Each pass p reshuffles
    (sampler epoch p) and re-draws the augmentation (dataset epoch p); the first ``start`` batches are
    skipped, so a run resumed at iteration ``start`` sees the batches an uninterrupted one would."""
    per_pass = max(len(loader), 1)
    for p in itertools.count(start // per_pass):
        sampler.set_epoch(p)
        loader.dataset.epoch = p  # workers copy the dataset when a pass starts
        batches = iter(loader)
        if p == start // per_pass:
            batches = itertools.islice(batches, start % per_pass, None)
        yield from batches
