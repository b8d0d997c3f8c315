"""Losses and class weighting (pure helpers)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ssseg.classes import IGNORE_INDEX


def enet_class_weights(pixel_counts: np.ndarray, c: float = 1.1) -> np.ndarray:
    """ENet weighting w = 1 / ln(c + p_class), p_class = the class's share of non-ignore pixels."""
    counts = np.asarray(pixel_counts, np.float64)
    total = counts.sum()
    p = counts / total if total > 0 else np.zeros_like(counts)
    return (1.0 / np.log(c + p)).astype(np.float32)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None) -> torch.Tensor:
    """Class-weighted cross-entropy, ignore label excluded, mean over the weighted valid pixels.

    torch's "mean" divides by the weight sum, which is 0/0 = NaN for a batch with no valid pixel (a strict
    gate can ignore whole pseudo-labeled images); here such a batch gives 0 and no gradient."""
    target = target.long()
    total = F.cross_entropy(logits.float(), target, weight=class_weights, ignore_index=IGNORE_INDEX, reduction="sum")
    valid = target[target != IGNORE_INDEX]
    denom = (class_weights[valid].sum() if class_weights is not None
             else torch.tensor(float(valid.numel()), device=logits.device))
    return total / denom.clamp(min=1e-12)


# --- the auxiliary (confidence) network, paper eq. (1) ----------------------------------------------

def aux_targets(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """y = 1 where the segmenter's arg-max equals the ground truth, 0 where it differs; ``valid`` excludes ignore."""
    valid = target != IGNORE_INDEX
    return ((pred == target) & valid).float(), valid


def aux_gamma(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """gamma = #negative / #positive per ground-truth class, counted in the auxiliary targets.

    A class with no positive or no negative pixels gives no evidence to rebalance with; it gets 1 (plain
    BCE) instead of the formula's inf or 0, which would blow up, or silence, the class when augmentation
    produces the rare pixel the count did not see."""
    pos, neg = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    gamma = np.ones_like(pos)
    both = (pos > 0) & (neg > 0)
    gamma[both] = neg[both] / pos[both]
    return gamma.astype(np.float32)


def aux_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor, class_weight: torch.Tensor,
             gamma: torch.Tensor) -> torch.Tensor:
    """Paper eq. (1): -sum W (gamma y log a + (1 - y) log(1 - a)), a = sigmoid(logits), W and gamma picked
    by the ground-truth class; divided by the number of valid pixels so the scale does not depend on the
    batch or image size (the optimum is the same). log a = -softplus(-z) and log(1 - a) = -softplus(z)
    keep it finite for any logit."""
    z = logits.float().squeeze(1)
    valid = target != IGNORE_INDEX
    cls = torch.where(valid, target.long(), torch.zeros_like(target, dtype=torch.long))
    w, g = class_weight[cls], gamma[cls]
    per_pixel = w * (g * y * F.softplus(-z) + (1.0 - y) * F.softplus(z))
    return (per_pixel * valid).sum() / valid.sum().clamp(min=1)


# --- adversarial confidence sources (Hung et al. 2018; the two-discriminator method) ----------------

def bce_to(logits: torch.Tensor, value: float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy of discriminator logits against a constant label (1 = ground truth, 0 =
    prediction), averaged over the map (or its ``valid`` pixels)."""
    z = logits.float()
    per = F.binary_cross_entropy_with_logits(z, torch.full_like(z, value), reduction="none")
    if valid is None:
        return per.mean()
    mask = valid.reshape(per.shape).float()
    return (per * mask).sum() / mask.sum().clamp(min=1)


def bce_map(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-pixel binary cross-entropy against a 0/1 map (the correctness map), over the valid pixels."""
    z = logits.float().reshape(target.shape)
    per = F.binary_cross_entropy_with_logits(z, target.float(), reduction="none")
    return (per * valid).sum() / valid.sum().clamp(min=1)


def one_hot_probs(target: torch.Tensor, num_classes: int, fill: torch.Tensor) -> torch.Tensor:
    """Ground truth as a probability map [N, C, H, W]. Ignore pixels take ``fill`` (the prediction's softmax)
    so the discriminator cannot tell real from predicted maps by them."""
    valid = target != IGNORE_INDEX
    idx = torch.where(valid, target.long(), torch.zeros_like(target, dtype=torch.long))
    oh = F.one_hot(idx, num_classes).permute(0, 3, 1, 2).to(fill.dtype)
    return torch.where(valid[:, None], oh, fill)


def semi_loss(logits: torch.Tensor, confidence: torch.Tensor, threshold: float) -> torch.Tensor:
    """Hung et al.'s L_semi: cross-entropy of the segmenter against its own arg-max on the pixels whose
    discriminator confidence exceeds ``threshold`` (strictly, as the paper's rule; the deployed gate keeps
    confidence >= its threshold, ssseg.gate); mean over those pixels, 0 when there are none."""
    return pseudo_label_loss(logits, confidence.detach() > threshold)


def pseudo_label_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the segmenter's own arg-max where ``mask`` (the gate) holds."""
    target = logits.detach().argmax(1)
    mask = mask.detach().reshape(target.shape).float()
    ce = F.cross_entropy(logits.float(), target, reduction="none")
    return (ce * mask).sum() / mask.sum().clamp(min=1)


def dual_gate(d2_logits: torch.Tensor, d1_logits: torch.Tensor) -> torch.Tensor:
    """The two-discriminator rule: a pixel is trusted where D2's confidence reaches D1's probability for its
    image (the dynamic threshold): sigmoid(z2) >= sigmoid(z1), i.e. z2 >= z1."""
    return d2_logits >= d1_logits.reshape(-1, *([1] * (d2_logits.dim() - 1)))


# --- latent classes (Zatsarynna et al.) ----------------------------------------------------------------

def latent_joint(latent_probs: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """sum over the batch's valid pixels of S_l(l) * Y(c): the unnormalised joint of semantic class c (rows)
    and latent class l (columns), [C, L]. Differentiable in ``latent_probs``."""
    n_latent = latent_probs.shape[1]
    valid = target != IGNORE_INDEX
    s = latent_probs.float().permute(0, 2, 3, 1)[valid]  # [P, L]
    return torch.zeros(num_classes, n_latent, device=s.device, dtype=s.dtype).index_add(0, target[valid].long(), s)


def conditional_entropy(joint: torch.Tensor) -> torch.Tensor:
    """The latent loss -sum_{l,c} P(c,l) log P(c|l), P = joint / its sum, P(c|l) = P(c,l) / sum_c P(c,l).
    0 when every latent class holds one semantic class; H(c) when a single latent class holds them all."""
    p = joint / joint.sum().clamp(min=1e-12)
    p_c_given_l = p / p.sum(0, keepdim=True).clamp(min=1e-12)
    return -(p * torch.log(p_c_given_l.clamp(min=1e-12))).sum()


def cooccurrence_update(m: torch.Tensor, joint: torch.Tensor, alpha: float) -> torch.Tensor:
    """The co-occurrence EMA M <- (1 - alpha) M + alpha * sum S_l Y (alpha = batch size / labeled set size)."""
    return (1.0 - alpha) * m + alpha * joint.detach().to(m.dtype)


def latent_given_class(m: torch.Tensor) -> torch.Tensor:
    """P(l|c) = M[c, l] / sum_k M[c, k]; uniform for a class the labeled batches have not shown yet."""
    rows = m.sum(1, keepdim=True)
    uniform = torch.full_like(m, 1.0 / m.shape[1])
    return torch.where(rows > 0, m / rows.clamp(min=1e-12), uniform)


def latent_consistency(latent_logits: torch.Tensor, semantic_probs: torch.Tensor,
                       p_l_given_c: torch.Tensor) -> torch.Tensor:
    """L_cons: mean over pixels of -sum_l S_l log S_lc, S_lc(l) = sum_c P(l|c) S_c(c). The latent branch is the
    target (it learns on labeled images only); the gradient reaches the semantic branch."""
    s_lc = torch.einsum("nchw,cl->nlhw", semantic_probs.float(), p_l_given_c.to(semantic_probs.device).float())
    target = torch.softmax(latent_logits.detach().float(), 1)
    return -(target * torch.log(s_lc.clamp(min=1e-8))).sum(1).mean()


# --- three-stage self-training (Ke et al.) ----------------------------------------------------------------

def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """d_c of the consistency loss: -sum_c t log softmax(logits) per pixel, averaged over the ``valid`` pixels
    (those a geometric augmentation kept inside the frame); 0 when there are none."""
    per = -(target_probs.detach().float() * F.log_softmax(logits.float(), 1)).sum(1)
    mask = valid.reshape(per.shape).float()
    return (per * mask).sum() / mask.sum().clamp(min=1)
