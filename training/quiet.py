# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Keep two import-time messages out of the commands' output.

With torchao installed (the `tools` extra, for int8 quantisation), every `from_pretrained` imports it through
transformers' quantizer registry, and torchao 0.18 then logs that its CUDA kernels (`_C_cutlass_90a`, `_C_mxfp8`) do
not load, and torch logs a deprecation for each of its Enums. On a CPU build neither says anything about this run;
both would open every command's output, and `error:` lines must stand alone. Only those two messages are dropped:
every other warning of the two loggers still shows.
"""

import logging


class _DropKnownImportNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.name == "torchao" and message.startswith("Failed to load") and ".so" in message:
            return False
        return not (record.name == "torch.utils._pytree" and "is an Enum subclass" in message)


def install() -> None:
    for name in ("torchao", "torch.utils._pytree"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropKnownImportNoise) for f in logger.filters):
            logger.addFilter(_DropKnownImportNoise())
