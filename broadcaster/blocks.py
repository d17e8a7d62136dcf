"""The block type audio is processed in, shared by conversion and processing.

A leaf module: the converter (:mod:`.audio`), the resamplers (:mod:`.resample`)
and the processing stages (:mod:`.processing`) all name these types, and none
of them needs another's module for it.  numpy is only named for type checking.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatBlock = npt.NDArray[np.float32]
    """Frames x 2 float32 samples in [-1, 1]: what processing stages see."""

Processor = Callable[["FloatBlock"], "FloatBlock"]
"""A processing stage: takes and returns a frames x 2 float32 block."""
