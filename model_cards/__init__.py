# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Model card templates (Jinja, filled through huggingface_hub.ModelCard from measured results)."""
