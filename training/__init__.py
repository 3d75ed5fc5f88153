# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Training, evaluation and the end-to-end demo of aft-transformers. Imports modeling_aft, never the reverse."""

from training import quiet as _quiet

_quiet.install()
