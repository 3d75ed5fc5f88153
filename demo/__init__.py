# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The Gradio demo (app.py, a Hugging Face Space) and the command that publishes it (publish.py)."""
