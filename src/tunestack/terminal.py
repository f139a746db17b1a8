"""What the terminal shows: tunestack's own progress bars, one per long step, and not the libraries' nested ones.

`quiet_bars()` silences, for the duration of a block, every tqdm bar a library opens (llm-compressor opens two per
decoder layer and candidate, compressed-tensors one per pass over the weights, transformers one per load and save)
and the warnings named in `warnings_off`; the work inside is unchanged.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

__all__ = ["quiet_bars"]


@contextmanager
def quiet_bars(*warnings_off: str):
    """Library progress bars off inside the block (tqdm's, and transformers' own switch), and the warnings whose
    message starts with one of `warnings_off` ignored."""
    import tqdm.std

    original = tqdm.std.tqdm.__init__

    def silent(self, *args, **kwargs):
        kwargs["disable"] = True
        original(self, *args, **kwargs)

    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # the light install: no transformers
        hf_logging = None
    was_enabled = hf_logging.is_progress_bar_enabled() if hf_logging else False
    tqdm.std.tqdm.__init__ = silent
    if hf_logging:
        hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            for message in warnings_off:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        tqdm.std.tqdm.__init__ = original
        if hf_logging and was_enabled:
            hf_logging.enable_progress_bar()
