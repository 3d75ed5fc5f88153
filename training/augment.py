# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Batch-wise image augmentations for the two image trainers, deterministic given a `torch.Generator`.

Every random number is drawn from the generator passed in (on the generator's device, then moved to the images'
device), so a trainer that seeds one generator per (seed, step, process) with `make_generator` draws exactly the
same augmentations when a run is resumed.

- The pixel language model (the paper's CIFAR-10 protocol): `pixel_flip_jitter`, a random horizontal flip and a
  per-image intensity offset in [-10, 10].
- The classifier (the DeiT recipe): `random_resized_crop`, `random_flip`, `mixup_cutmix` with label smoothing,
  and `soft_target_cross_entropy` for the mixed targets (timm semantics throughout).
"""

import hashlib
import math

import torch
import torch.nn.functional as F


def make_generator(seed: int, step: int, process_index: int = 0, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator seeded from (seed, step, process): distinct streams per step and process, the same on resume."""
    digest = hashlib.sha256(f"{seed}:{step}:{process_index}".encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def _uniform(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64).to(device)


def _check_images(images: torch.Tensor, name: str) -> None:
    if images.dim() != 4:
        raise ValueError(f"{name} takes a batch (B, C, H, W); got shape {tuple(images.shape)} (add the batch axis).")


# ----------------------------------------------------------------------------------------------------------------
# Flips and intensity jitter
# ----------------------------------------------------------------------------------------------------------------


def random_flip(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Each image mirrored left-right with probability `p`."""
    _check_images(images, "random_flip")
    flip = _uniform((images.shape[0],), generator, images.device) < p  # (B,)
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)  # (B, C, H, W)


def pixel_flip_jitter(images: torch.Tensor, generator: torch.Generator, jitter: int = 10) -> torch.Tensor:
    """The AFT paper's CIFAR-10 autoregressive protocol: a random horizontal flip (p = 0.5) and one integer offset in
    [-jitter, jitter] per image added to every sub-pixel, clamped to 0..255. uint8 in, uint8 out."""
    if images.dtype != torch.uint8:
        raise ValueError(f"pixel_flip_jitter takes uint8 sub-pixels (0..255); got {images.dtype}.")
    if jitter < 0 or jitter > 255:
        raise ValueError(f"jitter={jitter} must be in 0..255 (the paper uses 10).")
    flipped = random_flip(images, generator)
    offsets = torch.randint(
        -jitter, jitter + 1, (images.shape[0],), generator=generator, device=generator.device
    ).to(images.device)  # (B,)
    shifted = flipped.to(torch.int16) + offsets.to(torch.int16).view(-1, 1, 1, 1)  # (B, C, H, W)
    return shifted.clamp(0, 255).to(torch.uint8)


# ----------------------------------------------------------------------------------------------------------------
# Random resized crop
# ----------------------------------------------------------------------------------------------------------------


def _centre_boxes(batch: int, height: int, width: int, ratio: tuple[float, float]) -> torch.Tensor:
    """torchvision's fallback: the largest centred box whose aspect ratio is clamped into `ratio`."""
    aspect = width / height
    if aspect < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif aspect > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    box = torch.tensor([(height - h) // 2, (width - w) // 2, h, w], dtype=torch.long)
    return box.expand(batch, 4)


def sample_crop_boxes(
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    tries: int = 10,
) -> torch.Tensor:
    """RandomResizedCrop boxes `(B, 4)` = (top, left, height, width) in pixels, as torchvision draws them: area
    fraction uniform in `scale`, aspect ratio log-uniform in `ratio`, the first of `tries` draws that fits the image,
    else the centre crop. A fixed number of draws per call, whatever the outcome."""
    if not 0 < scale[0] <= scale[1] or not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"scale={scale} and ratio={ratio} must be increasing pairs of positive numbers.")
    cpu = torch.device("cpu")
    area = height * width * (scale[0] + (scale[1] - scale[0]) * _uniform((batch, tries), generator, cpu))
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_low + (log_high - log_low) * _uniform((batch, tries), generator, cpu))  # (B, tries)
    w = torch.round(torch.sqrt(area * aspect)).long()
    h = torch.round(torch.sqrt(area / aspect)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # (B, tries)
    first = fits.long().argmax(dim=1, keepdim=True)  # (B, 1): index of the first fitting draw
    h, w = h.gather(1, first).squeeze(1), w.gather(1, first).squeeze(1)  # (B,)
    offsets = _uniform((batch, 2), generator, cpu)  # (B, 2)
    top = torch.minimum((offsets[:, 0] * (height - h + 1)).long(), height - h)
    left = torch.minimum((offsets[:, 1] * (width - w + 1)).long(), width - w)
    boxes = torch.stack([top, left, h, w], dim=1)  # (B, 4)
    return torch.where(fits.any(dim=1, keepdim=True), boxes, _centre_boxes(batch, height, width, ratio))


def crop_and_resize(images: torch.Tensor, boxes: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Each image's box (top, left, height, width) resampled bilinearly to `size`, in one `grid_sample`: output
    pixel centres spread evenly over the box (half-pixel convention of `F.interpolate(align_corners=False)`), edge
    pixels repeated where a sample falls in the outer half pixel."""
    _check_images(images, "crop_and_resize")
    if not images.is_floating_point():
        raise ValueError(f"crop_and_resize takes float images; got {images.dtype} (convert with images.float()).")
    out_h, out_w = (size, size) if isinstance(size, int) else size
    batch, channels, height, width = images.shape
    # Sample positions in half precision would be off by a good fraction of a pixel.
    work = images if images.dtype in (torch.float32, torch.float64) else images.float()
    top, left, h, w = boxes.to(work.device, work.dtype).unbind(dim=1)  # (B,) each
    theta = torch.zeros(batch, 2, 3, dtype=work.dtype, device=work.device)  # output -> input, in [-1, 1]
    theta[:, 0, 0] = w / width
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    grid = F.affine_grid(theta, [batch, channels, out_h, out_w], align_corners=False)  # (B, h, w, 2)
    out = F.grid_sample(work, grid, mode="bilinear", padding_mode="border", align_corners=False)  # (B, C, h, w)
    return out.to(images.dtype)


def random_resized_crop(
    images: torch.Tensor,
    size: int | tuple[int, int],
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """torchvision's RandomResizedCrop for a float batch `(B, C, H, W)`, one box per image, bilinear (no
    antialiasing), vectorised with `affine_grid` / `grid_sample`."""
    _check_images(images, "random_resized_crop")
    boxes = sample_crop_boxes(images.shape[0], images.shape[2], images.shape[3], generator, scale, ratio)
    return crop_and_resize(images, boxes, size)


# ----------------------------------------------------------------------------------------------------------------
# Mixup / CutMix with label smoothing (DeiT / timm, mode "batch")
# ----------------------------------------------------------------------------------------------------------------


def sample_beta(alpha: float, generator: torch.Generator) -> float:
    """One draw of Beta(alpha, alpha), from two Gamma(alpha) draws of the generator."""
    gammas = torch._standard_gamma(  # the sampler torch.distributions uses; it takes a generator
        torch.full((2,), float(alpha), dtype=torch.float64, device=generator.device), generator=generator
    )
    total = float(gammas.sum())
    return float(gammas[0]) / total if total > 0 else 0.5  # both underflow only for alpha near 0


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.1) -> torch.Tensor:
    """`(B, num_classes)` targets: 1 - smoothing + smoothing / K on the label, smoothing / K elsewhere."""
    off = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return targets.scatter_(1, labels.view(-1, 1), 1.0 - smoothing + off)


def _cutmix_box(height: int, width: int, lam: float, generator: torch.Generator) -> tuple[int, int, int, int]:
    """timm's rand_bbox: a box of sides sqrt(1 - lam) * (H, W) around a uniform centre, clipped to the image."""
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy = int(torch.randint(0, height, (1,), generator=generator, device=generator.device))
    cx = int(torch.randint(0, width, (1,), generator=generator, device=generator.device))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return top, bottom, left, right


def _mix_parameters(
    generator: torch.Generator, mixup_alpha: float, cutmix_alpha: float, prob: float, switch_prob: float
) -> tuple[float, bool]:
    """timm's per-batch draw: (lambda, use cutmix); lambda = 1 means no mixing."""
    if (mixup_alpha <= 0 and cutmix_alpha <= 0) or float(_uniform((1,), generator, torch.device("cpu"))) >= prob:
        return 1.0, False
    use_cutmix = cutmix_alpha > 0 and (
        mixup_alpha <= 0 or float(_uniform((1,), generator, torch.device("cpu"))) < switch_prob
    )
    return sample_beta(cutmix_alpha if use_cutmix else mixup_alpha, generator), use_cutmix


def mixup_cutmix(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    generator: torch.Generator,
    mixup_alpha: float = 0.8,
    cutmix_alpha: float = 1.0,
    prob: float = 1.0,
    switch_prob: float = 0.5,
    label_smoothing: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DeiT's Mixup/CutMix (timm, mode "batch"): with probability `prob`, one lambda per batch from Beta(alpha,
    alpha); CutMix (chosen with `switch_prob` when both are on) pastes a box from the partner and sets lambda to the
    kept area; Mixup blends. Each image's partner is the batch reversed. Targets: smoothed one-hot, mixed with the
    same lambda. An alpha of 0 turns that one off; both 0: only label smoothing. The inputs are not modified."""
    _check_images(images, "mixup_cutmix")
    if not images.is_floating_point():
        raise ValueError(f"mixup_cutmix takes float images; got {images.dtype} (normalise them first).")
    if labels.shape != (images.shape[0],) or labels.dtype != torch.long:
        raise ValueError(
            f"labels must be a long tensor of shape ({images.shape[0]},); got {labels.dtype} {tuple(labels.shape)}."
        )
    if mixup_alpha < 0 or cutmix_alpha < 0 or not 0 <= prob <= 1 or not 0 <= switch_prob <= 1:
        raise ValueError(
            f"mixup_alpha={mixup_alpha}, cutmix_alpha={cutmix_alpha} must be >= 0 (0 turns it off) and "
            f"prob={prob}, switch_prob={switch_prob} in [0, 1]."
        )
    lam, use_cutmix = _mix_parameters(generator, mixup_alpha, cutmix_alpha, prob, switch_prob)
    partner = images.flip(0)  # (B, C, H, W)
    if lam == 1.0:
        mixed = images
    elif use_cutmix:
        top, bottom, left, right = _cutmix_box(images.shape[2], images.shape[3], lam, generator)
        mixed = images.clone()
        mixed[:, :, top:bottom, left:right] = partner[:, :, top:bottom, left:right]
        lam = 1.0 - (bottom - top) * (right - left) / (images.shape[2] * images.shape[3])
    else:
        mixed = lam * images + (1.0 - lam) * partner
    targets = smooth_one_hot(labels, num_classes, label_smoothing).to(images.dtype)  # (B, K)
    return mixed, lam * targets + (1.0 - lam) * targets.flip(0)


def soft_target_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_k target_k log softmax(logits)_k (timm's SoftTargetCrossEntropy)."""
    if logits.shape != soft_targets.shape or logits.dim() != 2:
        raise ValueError(
            f"logits {tuple(logits.shape)} and soft_targets {tuple(soft_targets.shape)} must both be (B, classes)."
        )
    return -(soft_targets * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()
