# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Batch augmentations against slow, independent references: flips are mirrors, jitter stays in bounds, crops equal
a per-pixel bilinear reference, Mixup is the convex combination with the reversed batch, CutMix pastes the
partner's box and its lambda is the kept area, and the same generator seed always draws the same."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training import augment as aug


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def distinct_images(batch: int = 6, channels: int = 3, height: int = 8, width: int = 10) -> torch.Tensor:
    # Every sub-pixel of every image different, so any copied pixel can be traced to its source.
    values = torch.randperm(batch * channels * height * width, generator=gen(123)).double()
    return (values / values.numel()).view(batch, channels, height, width).float()


# ----------------------------------------------------------------------------------------------------------------
# Flips, jitter, generators
# ----------------------------------------------------------------------------------------------------------------


def test_random_flip_is_an_exact_mirror_per_image():
    images = distinct_images(64)
    out = aug.random_flip(images, gen(1))
    flipped = 0
    for i in range(len(images)):
        mirror = images[i][:, :, torch.arange(images.shape[-1] - 1, -1, -1)]
        assert torch.equal(out[i], images[i]) or torch.equal(out[i], mirror)
        flipped += torch.equal(out[i], mirror)
    assert 10 < flipped < 54  # p = 0.5 over 64 images
    assert torch.equal(aug.random_flip(images, gen(1), p=0.0), images)
    assert torch.equal(aug.random_flip(images, gen(1), p=1.0), images.flip(-1))


def test_pixel_flip_jitter_bounds_and_clamping():
    images = torch.randint(0, 256, (200, 3, 4, 5), dtype=torch.uint8, generator=gen(2))
    images[:, :, 0, :] = 0  # saturated rows: the clamp must show
    images[:, :, 1, :] = 255
    out = aug.pixel_flip_jitter(images, gen(3), jitter=10)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    flips, offsets = [], []
    for i in range(len(images)):
        source = images[i].long()
        # Each output must be the image or its mirror, plus one offset in [-10, 10] on every sub-pixel, clamped.
        matches = [
            (flip, offset)
            for flip, candidate in enumerate((source, source.flip(-1)))
            for offset in range(-10, 11)
            if torch.equal(out[i].long(), (candidate + offset).clamp(0, 255))
        ]
        assert len(matches) == 1, f"image {i} is not a flip plus one clamped offset in [-10, 10]"
        flips.append(matches[0][0])
        offsets.append(matches[0][1])
    assert len(set(offsets)) == 21  # the whole range is drawn
    assert 60 < sum(flips) < 140  # p = 0.5 over 200 images
    with pytest.raises(ValueError, match="uint8"):
        aug.pixel_flip_jitter(images.float(), gen())


def test_same_seed_same_draws_other_seed_other_draws():
    pixels = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=gen(4))
    images, labels = pixels.float() / 255, torch.arange(16) % 10

    def draws(generator):
        return [
            aug.pixel_flip_jitter(pixels, generator),
            aug.random_flip(images, generator),
            aug.random_resized_crop(images, 6, generator),
            *aug.mixup_cutmix(images, labels, 10, generator),
        ]

    first, again = draws(aug.make_generator(0, 5)), draws(aug.make_generator(0, 5))
    other = draws(aug.make_generator(0, 6))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not any(torch.equal(a, b) for a, b in zip(first[:3], other[:3]))
    streams = {aug.make_generator(s, t, p).initial_seed() for s in range(3) for t in range(3) for p in range(3)}
    assert len(streams) == 27


# ----------------------------------------------------------------------------------------------------------------
# Random resized crop
# ----------------------------------------------------------------------------------------------------------------


def naive_crop_resize(image: np.ndarray, box, size: int) -> np.ndarray:
    """float64, one output pixel at a time: sample the box at evenly spread pixel centres, bilinear between the
    four nearest input pixels, coordinates clamped to the image (edge pixels repeat)."""
    top, left, h, w = box
    channels, height, width = image.shape
    out = np.zeros((channels, size, size))
    for oy in range(size):
        for ox in range(size):
            sy = min(max(top + (oy + 0.5) * h / size - 0.5, 0.0), height - 1.0)
            sx = min(max(left + (ox + 0.5) * w / size - 0.5, 0.0), width - 1.0)
            y0, x0 = int(math.floor(sy)), int(math.floor(sx))
            y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
            fy, fx = sy - y0, sx - x0
            out[:, oy, ox] = (
                image[:, y0, x0] * (1 - fy) * (1 - fx)
                + image[:, y0, x1] * (1 - fy) * fx
                + image[:, y1, x0] * fy * (1 - fx)
                + image[:, y1, x1] * fy * fx
            )
    return out


def test_crop_with_full_scale_and_square_ratio_is_identity():
    images = distinct_images(4, height=12, width=12)
    out = aug.random_resized_crop(images, 12, gen(5), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.allclose(out, images, atol=1e-5, rtol=0)


def test_known_boxes_equal_references():
    images = distinct_images(3, height=16, width=20).double()
    # Pixel-aligned boxes the size of the output: the very pixels, as a slice.
    boxes = torch.tensor([[0, 0, 6, 6], [3, 7, 6, 6], [10, 14, 6, 6]])
    out = aug.crop_and_resize(images, boxes, 6)
    for i, (top, left, h, w) in enumerate(boxes.tolist()):
        assert torch.allclose(out[i], images[i, :, top : top + h, left : left + w], atol=1e-9, rtol=0)
    # Boxes twice the output: F.interpolate of the cropped pixels.
    boxes = torch.tensor([[0, 0, 12, 12], [2, 5, 12, 12], [4, 8, 12, 12]])
    out = aug.crop_and_resize(images, boxes, 6)
    for i, (top, left, h, w) in enumerate(boxes.tolist()):
        crop = images[i : i + 1, :, top : top + h, left : left + w]
        expected = F.interpolate(crop, size=(6, 6), mode="bilinear", align_corners=False)[0]
        assert torch.allclose(out[i], expected, atol=1e-9, rtol=0)
    # Any box, up- or down-sampled, against the per-pixel float64 reference.
    boxes = torch.tensor([[0, 0, 16, 20], [5, 3, 7, 11], [1, 17, 15, 3]])
    out = aug.crop_and_resize(images.float(), boxes, 9)
    for i, box in enumerate(boxes.tolist()):
        expected = naive_crop_resize(images[i].numpy(), box, 9)
        assert np.abs(out[i].double().numpy() - expected).max() < 1e-5


def test_sampled_boxes_follow_scale_and_ratio():
    height, width = 32, 24
    boxes = aug.sample_crop_boxes(4000, height, width, gen(6))
    top, left, h, w = boxes.double().unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= height).all() and (left + w <= width).all()
    # w, h are rounded sqrt(area * r), sqrt(area / r): bound what the unrounded draw could have been.
    area = height * width
    assert ((w + 0.5) * (h + 0.5) >= 0.08 * area).all() and ((w - 0.5) * (h - 0.5) <= area).all()
    assert ((w + 0.5) / (h - 0.5) >= 3 / 4).all() and ((w - 0.5) / (h + 0.5) <= 4 / 3).all()
    fraction = (w * h / area).numpy()
    assert fraction.min() < 0.12 and fraction.max() > 0.9  # the whole range is drawn
    assert abs(torch.log(w / h).median().item()) < 0.05  # log-uniform aspect, symmetric around 1
    assert len({tuple(b) for b in boxes.tolist()}) > 1000


def test_boxes_fall_back_to_the_centre_crop():
    # No 2:1 box has the whole area of a square image: torchvision's centre crop with the ratio clamped.
    boxes = aug.sample_crop_boxes(5, 20, 20, gen(7), scale=(1.0, 1.0), ratio=(2.0, 2.0))
    assert boxes.tolist() == [[5, 0, 10, 20]] * 5
    boxes = aug.sample_crop_boxes(2, 10, 30, gen(7), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert boxes.tolist() == [[0, 10, 10, 10]] * 2
    with pytest.raises(ValueError, match="scale="):
        aug.sample_crop_boxes(2, 10, 10, gen(), scale=(0.5, 0.1))


def test_random_resized_crop_uses_the_sampled_boxes():
    images = distinct_images(5, height=14, width=18)
    out = aug.random_resized_crop(images, (7, 9), gen(8))
    boxes = aug.sample_crop_boxes(5, 14, 18, gen(8))
    assert out.shape == (5, 3, 7, 9)
    assert torch.equal(out, aug.crop_and_resize(images, boxes, (7, 9)))
    with pytest.raises(ValueError, match="float"):
        aug.random_resized_crop(images.to(torch.uint8), 7, gen())


# ----------------------------------------------------------------------------------------------------------------
# Mixup / CutMix and the soft-target loss
# ----------------------------------------------------------------------------------------------------------------


def smoothed(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    targets = torch.full((len(labels), num_classes), smoothing / num_classes, dtype=torch.float64)
    for i, label in enumerate(labels.tolist()):
        targets[i, label] += 1 - smoothing
    return targets


def lambda_from_targets(targets, labels, num_classes, smoothing):
    # Image 0 and its partner (the last image) have different labels: its target on label 0 is lam * on + ...
    off, on = smoothing / num_classes, 1 - smoothing + smoothing / num_classes
    return (targets[0, labels[0]].item() - off) / (on - off)


def test_mixup_is_the_convex_combination_with_the_reversed_batch():
    images, labels = distinct_images(6), torch.tensor([0, 1, 2, 3, 4, 5])
    before = images.clone()
    for seed in range(5):
        out, targets = aug.mixup_cutmix(images, labels, 10, gen(seed), mixup_alpha=0.8, cutmix_alpha=0.0)
        lam = lambda_from_targets(targets, labels, 10, 0.1)
        assert 0 <= lam <= 1
        expected_targets = lam * smoothed(labels, 10, 0.1) + (1 - lam) * smoothed(labels.flip(0), 10, 0.1)
        assert torch.allclose(targets.double(), expected_targets, atol=1e-6)
        expected = lam * images.double() + (1 - lam) * images.double()[torch.arange(5, -1, -1)]
        assert torch.allclose(out.double(), expected, atol=1e-6)
        assert torch.allclose(targets.sum(1), torch.ones(6))
    assert torch.equal(images, before)  # the input is not modified


def test_cutmix_pastes_the_partners_box_and_lambda_is_the_kept_area():
    images, labels = distinct_images(6, height=16, width=20), torch.tensor([0, 1, 2, 3, 4, 5])
    partner = images[torch.arange(5, -1, -1)]
    boxes_seen = 0
    for seed in range(8):
        out, targets = aug.mixup_cutmix(images, labels, 10, gen(seed), mixup_alpha=0.0, cutmix_alpha=1.0)
        from_partner = (out == partner).all(dim=1)  # (B, H, W): every channel of the pixel copied
        from_self = (out == images).all(dim=1)
        assert (from_partner ^ from_self).all()  # each pixel is wholly one image's
        mask = from_partner[0]
        assert (from_partner == mask).all()  # one box for the whole batch
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        if mask.any():  # a rectangle
            assert mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
            assert mask.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
            boxes_seen += 1
        lam = 1 - mask.sum().item() / mask.numel()
        assert abs(lambda_from_targets(targets, labels, 10, 0.1) - lam) < 1e-6
        expected_targets = lam * smoothed(labels, 10, 0.1) + (1 - lam) * smoothed(labels.flip(0), 10, 0.1)
        assert torch.allclose(targets.double(), expected_targets, atol=1e-6)
        assert torch.allclose(targets.sum(1), torch.ones(6))
    assert boxes_seen >= 5


def test_mixing_off_leaves_only_label_smoothing():
    images, labels = distinct_images(4), torch.tensor([3, 1, 4, 1])
    for kwargs in (dict(mixup_alpha=0.0, cutmix_alpha=0.0), dict(prob=0.0)):
        out, targets = aug.mixup_cutmix(images, labels, 5, gen(9), label_smoothing=0.2, **kwargs)
        assert torch.equal(out, images)
        assert torch.allclose(targets.double(), smoothed(labels, 5, 0.2), atol=1e-7)


def test_switch_prob_picks_cutmix_or_mixup():
    images, labels = distinct_images(4), torch.arange(4)
    partner = images.flip(0)
    for seed in range(5):
        out, _ = aug.mixup_cutmix(images, labels, 4, gen(seed), switch_prob=1.0)  # always CutMix
        assert ((out == images) | (out == partner)).all()
        out, _ = aug.mixup_cutmix(images, labels, 4, gen(seed), switch_prob=0.0)  # always Mixup
        assert not ((out == images) | (out == partner)).all()


def test_beta_draws_have_beta_moments():
    generator = gen(10)
    for alpha in (0.8, 1.0):
        draws = np.array([aug.sample_beta(alpha, generator) for _ in range(4000)])
        assert ((draws >= 0) & (draws <= 1)).all()
        assert abs(draws.mean() - 0.5) < 0.02
        assert abs(draws.var() - 1 / (4 * (2 * alpha + 1))) < 0.01


def test_soft_target_cross_entropy():
    logits, labels = torch.randn(7, 5, generator=gen(11), dtype=torch.float64), torch.tensor([0, 4, 2, 2, 1, 3, 0])
    targets = aug.smooth_one_hot(labels, 5, 0.1).double()
    assert torch.allclose(targets, smoothed(labels, 5, 0.1))
    expected = F.cross_entropy(logits, labels, label_smoothing=0.1)
    assert torch.allclose(aug.soft_target_cross_entropy(logits, targets), expected, atol=1e-12)
    mixed = torch.rand(7, 5, generator=gen(12), dtype=torch.float64)
    mixed = mixed / mixed.sum(1, keepdim=True)
    log_p = [[math.log(p) for p in row] for row in logits.softmax(1).tolist()]
    naive = np.mean([-sum(mixed[i, k].item() * log_p[i][k] for k in range(5)) for i in range(7)])
    assert abs(aug.soft_target_cross_entropy(logits, mixed).item() - naive) < 1e-10
    with pytest.raises(ValueError, match="must both be"):
        aug.soft_target_cross_entropy(logits, targets[:, :4])


def test_bad_inputs_name_the_value():
    images = distinct_images(2)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        aug.random_flip(images[0], gen())
    with pytest.raises(ValueError, match="long tensor of shape"):
        aug.mixup_cutmix(images, torch.tensor([0.0, 1.0]), 2, gen())
    with pytest.raises(ValueError, match="mixup_alpha=-1"):
        aug.mixup_cutmix(images, torch.tensor([0, 1]), 2, gen(), mixup_alpha=-1)
    with pytest.raises(ValueError, match="jitter=300"):
        aug.pixel_flip_jitter(images.to(torch.uint8), gen(), jitter=300)
