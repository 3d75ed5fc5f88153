# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The image processor saved next to an AFT image classifier, and the grey <-> RGB conversion it relies on.

`pipeline("image-classification")` turns every PIL image into RGB before the processor sees it, so
`AFTImageProcessorPil` converts each image to the model's channel count (grey "L" for one channel) and then does what
a ViT processor does: short side to `size`, centre crop, rescale, normalise.

`save_pretrained` copies this file next to `preprocessor_config.json` (see the `register_for_auto_class` call at the
bottom), and transformers' dynamic module loader copies only the files a module names in relative imports. So this
file imports nothing from its own package: torch, numpy, PIL and transformers are all it needs, and a saved folder
loads with `trust_remote_code=True` where aft-transformers is not installed.
"""

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling
from transformers.processing_utils import ImagesKwargs

# PIL's "L" conversion, ITU-R 601-2 luma in 16-bit fixed point: the weights sum to 65536, so grey -> RGB -> L
# gives back the same value exactly.
LUMA_WEIGHTS = (19595, 38470, 7471)


def convert_channels(images: torch.Tensor, num_channels: int) -> torch.Tensor:
    """uint8 `(..., C, H, W)` images to `num_channels` (1 or 3): grey is repeated, RGB becomes PIL's "L" luma."""
    channels = images.shape[-3]
    if channels == num_channels:
        return images
    if channels == 1 and num_channels == 3:
        return images.expand(*images.shape[:-3], 3, *images.shape[-2:]).contiguous()  # (..., 3, H, W)
    if channels == 3 and num_channels == 1:
        weights = torch.tensor(LUMA_WEIGHTS, dtype=torch.int64, device=images.device).view(3, 1, 1)
        luma = (images.to(torch.int64) * weights).sum(dim=-3, keepdim=True)  # (..., 1, H, W)
        # Round half up in fixed point, as PIL's L conversion does.
        return ((luma + 32768) >> 16).to(torch.uint8)
    raise ValueError(f"cannot convert {channels}-channel images to num_channels={num_channels}; use 1 or 3.")


def _match_channels(array: np.ndarray, num_channels: int) -> np.ndarray:
    """A channel-first array (from numpy or torch input) with `num_channels` channels; alpha is dropped."""
    if array.shape[0] == 4:
        array = array[:3]
    if array.shape[0] == num_channels:
        return array
    if array.dtype == np.uint8:
        # The same integer luma as a PIL image gets, so arrays and images of the same pixels agree exactly.
        return convert_channels(torch.from_numpy(np.ascontiguousarray(array)), num_channels).numpy()
    if array.shape[0] == 1 and num_channels == 3:
        return np.repeat(array, 3, axis=0)  # (3, H, W)
    if array.shape[0] == 3 and num_channels == 1:
        weights = np.array(LUMA_WEIGHTS, dtype=np.float64).reshape(3, 1, 1) / 65536
        return (array * weights).sum(axis=0, keepdims=True).astype(array.dtype)  # (1, H, W)
    raise ValueError(
        f"an image with {array.shape[0]} channels cannot feed a {num_channels}-channel model; pass grey (1), RGB (3) "
        "or RGBA (4) images."
    )


class AFTImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    num_channels (`int`, *optional*, defaults to `self.num_channels`):
        The model's channel count: every image is converted to grey ("L", 1) or RGB (3) before resizing.
    """

    num_channels: int


class AFTImageProcessorPil(PilBackend):
    """ViT-style PIL processor (short side to `size`, centre crop, rescale, normalise) that also converts every image
    to the model's `num_channels`: the pipeline hands over RGB even for a grey image, and a 1-channel model needs L."""

    valid_kwargs = AFTImageProcessorKwargs
    resample = PILImageResampling.BILINEAR
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"shortest_edge": 224}
    crop_size = {"height": 224, "width": 224}
    default_to_square = False
    do_resize = True
    do_center_crop = True
    do_rescale = True
    do_normalize = True
    num_channels = 3

    def process_image(
        self,
        image: "Image.Image | np.ndarray | torch.Tensor",
        do_convert_rgb: bool | None = None,
        input_data_format: str | None = None,
        num_channels: int | None = None,
        **kwargs,
    ) -> np.ndarray:
        num_channels = self.num_channels if num_channels is None else num_channels
        if isinstance(image, Image.Image):
            image = image.convert("L" if num_channels == 1 else "RGB")
            return super().process_image(image, do_convert_rgb=False, input_data_format=input_data_format)
        array = super().process_image(image, do_convert_rgb=False, input_data_format=input_data_format)  # (C, H, W)
        return _match_channels(array, num_channels)


# `save_pretrained` then writes an `auto_map` into preprocessor_config.json and copies this file next to it, so the
# folder also loads with `trust_remote_code=True` where this package is not installed.
AFTImageProcessorPil.register_for_auto_class("AutoImageProcessor")
