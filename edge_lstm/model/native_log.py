"""Keep one known notice of the TFLite C++ runtime off stderr, and nothing else.

Every interpreter with the default delegates prints ``INFO: Created TensorFlow Lite XNNPACK
delegate for CPU.`` from C++ straight to file descriptor 2 when its tensors are first allocated;
no environment variable or API of ai-edge-litert or tflite-runtime turns it off, and XNNPACK is
what we want. So for the length of that call fd 2 goes to a temporary file, and whatever else was
written there (a real error, another thread's log line) is written back to stderr afterwards.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

NOTICE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"


@contextlib.contextmanager
def without_xnnpack_notice() -> Iterator[None]:
    """Run the body with the XNNPACK notice dropped from fd 2; all other output is kept."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no fd 2 (a detached process): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            rest = captured.read().replace(NOTICE, b"", 1)
            if rest:
                os.write(2, rest)
