# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Conversion of weights from other formats into AFT checkpoint folders, one module per source, each a command:

    python -m conversion.deit_to_aft SOURCE OUT          transformers DeiT / ViT classifiers (the paper's Table 8)
    python -m conversion.aft_pytorch_to_aft SD.pt OUT    the aft-pytorch package's AFTFull / AFTSimple / AFTLocal
    python -m conversion.resize_positions FOLDER OUT     position biases and embeddings to a new maximum length
    python -m conversion.checkpoint_to_hf CKPT OUT       a trainer checkpoint (or an HF folder) to a clean HF folder,
                                                         with --dtype and --max-shard-size

Nothing is written until a conversion has succeeded (a `.tmp-*` folder renamed into place). The model package never
imports this one.
"""

from training import quiet as _quiet

_quiet.install()
