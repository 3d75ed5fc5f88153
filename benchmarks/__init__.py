# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
