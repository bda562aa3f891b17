"""Shared test set-up: one torch thread (the machine is shared and small), a private data
directory so no test touches the user's saved conversations, and deterministic hypothesis."""

import os
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="glasschat-test-data-")

from hypothesis import settings  # noqa: E402

settings.register_profile("glasschat", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("glasschat")
