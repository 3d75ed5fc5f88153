# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Conversion of weights from other formats into AFT checkpoints (one module per source format).

The converters themselves arrive with the conversion issue; the package exists so that setup.cfg can name it.
"""
