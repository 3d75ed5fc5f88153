# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Export: torch.export with a dynamic length, the ONNX prefill + decode_step graphs against the PyTorch model and
its cache, the onnxruntime generation loop (which never imports torch), and the command's one-line errors."""


import pytest
import torch
from torch.export import Dim

from modeling_aft import AFTConfig, AFTForCausalLM
from tests.helpers import randomize

VARIANTS = ("full", "local", "simple", "conv")


def tiny(variant: str) -> AFTForCausalLM:
    config = AFTConfig(aft_variant=variant, causal=True, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_heads=4, position_bias_dim=8, max_position_embeddings=128, local_window=8,
                       conv_kernel_size=5)
    torch.manual_seed(0)
    return randomize(AFTForCausalLM(config)).eval()


def left_padded(lengths, seed=0):
    """Prompts of the given lengths, left-padded to the longest: input_ids, attention_mask (B, T) int64."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(1, 256, (len(lengths), width), generator=gen)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, width - n:] = 1
        ids[row, :width - n] = 0
    return ids, mask


# ----------------------------------------------------------------------------------------------------------------
# torch.export: the model's own forward, length symbolic
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_torch_export_forward_with_a_dynamic_length(variant):
    model = tiny(variant)
    ids, mask = left_padded([8, 6])
    batch, length = Dim("batch", min=1, max=16), Dim("length", min=2, max=128)
    program = torch.export.export(
        model, (), kwargs=dict(input_ids=ids, attention_mask=mask, use_cache=False),
        dynamic_shapes=dict(input_ids={0: batch, 1: length}, attention_mask={0: batch, 1: length}, use_cache=None),
    )
    exported = program.module()
    for lengths in ([5, 3, 5], [37], [100, 64]):  # other batches and lengths than the example's (2, 8)
        ids, mask = left_padded(lengths, seed=len(lengths))
        got = exported(input_ids=ids, attention_mask=mask, use_cache=False).logits
        with torch.no_grad():
            want = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        real = mask.bool()
        torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=1e-5)
