# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The main job on its embedded default: every AFT variant, built, saved, loaded back through the Auto classes.

    python -m training.demo [--output-dir demo_output] [--seed 0]

For each variant (full, local, simple, conv) it builds a small byte-level language model and a small image
classifier (28 x 28 grey images), writes each as a Hugging Face folder (safetensors, config with auto_map, the
modeling code; the classifier with its image processor), loads them with AutoModelForCausalLM and
AutoModelForImageClassification, and checks that the reloaded models give the same outputs. No network, no hub.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForImageClassification
from transformers.utils import logging as hf_logging

from modeling_aft import AFT_VARIANTS, AFTConfig, AFTForCausalLM, AFTForImageClassification

SAMPLE_TEXT = "The Attention Free Transformer replaces dot-product attention with element-wise operations."


def save_atomically(model, folder: Path, processor=None) -> None:
    """Write the folder under a temporary name beside it, then rename: a crash never leaves half a checkpoint."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model.save_pretrained(staging)
        if processor is not None:
            processor.save_pretrained(staging)
        if folder.exists():
            old = folder.with_name(f".{folder.name}-old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(staging, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def image_processor_for(config: AFTConfig):
    """A PIL-backed ViT image processor sized for the model (torchvision is not needed)."""
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    grey = config.num_channels == 1
    return ViTImageProcessorPil(
        size={"height": config.image_size, "width": config.image_size},
        image_mean=[0.5] * config.num_channels,
        image_std=[0.5] * config.num_channels,
        do_convert_rgb=not grey,
    )


def run(output_dir: Path, seed: int) -> list[dict]:
    torch.manual_seed(seed)
    text_ids = torch.tensor([list(SAMPLE_TEXT.encode("utf-8"))])  # (1, T) byte ids
    images = torch.rand(2, 1, 28, 28) * 2 - 1  # (2, 1, 28, 28), already normalised
    rows = []
    for variant in AFT_VARIANTS:
        for kind in ("text", "image"):
            start = time.perf_counter()
            config = AFTConfig.from_preset(f"cpu-{kind}-{variant}")
            if kind == "text":
                model = AFTForCausalLM(config).eval()
                inputs, auto_class, processor = {"input_ids": text_ids}, AutoModelForCausalLM, None
            else:
                model = AFTForImageClassification(config).eval()
                inputs, auto_class = {"pixel_values": images}, AutoModelForImageClassification
                processor = image_processor_for(config)
            with torch.no_grad():
                before = model(**inputs).logits
            folder = output_dir / f"aft-{variant}-{kind}"
            save_atomically(model, folder, processor)
            reloaded = auto_class.from_pretrained(folder).eval()
            with torch.no_grad():
                after = reloaded(**inputs).logits
            diff = (before - after).abs().max().item()
            rows.append(
                dict(
                    variant=variant,
                    kind=kind,
                    parameters=sum(p.numel() for p in model.parameters()),
                    loaded_as=type(reloaded).__name__,
                    max_abs_diff=diff,
                    seconds=time.perf_counter() - start,
                    folder=str(folder),
                )
            )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("demo_output"), help="where the folders go")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    hf_logging.disable_progress_bar()
    rows = run(args.output_dir, args.seed)
    print(f"{'variant':8} {'model':6} {'params':>9} {'loaded as':28} {'max |diff|':>10} {'s':>6}  folder")
    for r in rows:
        print(
            f"{r['variant']:8} {r['kind']:6} {r['parameters']:9,d} {r['loaded_as']:28} {r['max_abs_diff']:10.2e} "
            f"{r['seconds']:6.2f}  {r['folder']}"
        )
    failed = [r for r in rows if r["max_abs_diff"] != 0.0]
    if failed:
        print(f"reloaded outputs differ for {len(failed)} model(s)", file=sys.stderr)
        return 1
    print(f"all {len(rows)} models reload through the Auto classes with identical outputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
