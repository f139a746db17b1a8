"""What the terminal shows: one line per stage start and end, one progress bar per long step, warnings once; the
full detail goes to the run's `run.log`.

- `setup_console(quiet, log_json)`: the terminal handler (stderr). `--quiet` shows warnings and errors only, and no
  bars; `--log-json` writes one JSON object per line (`time`, `level`, `logger`, `message`) and no bars, for scripts.
  A warning's text is shown once however often it is raised (`Once`); Python warnings go through logging, so they
  are shown once too and kept in run.log.
- `log_to(path)`: every record of this process (tunestack's, the libraries' warnings, each training step's full
  dictionary at DEBUG on `tunestack.steps`) appended to the run's log file.
- `TrainingProgress`: the Trainer's own progress callback replaced by one bar over the optimizer steps and, every
  `every` steps, one compact line (step, loss, learning rate, gradient norm, seconds per step) instead of TRL's
  dictionary per step.
- `quiet_bars()` silences, for the duration of a block, every tqdm bar a library opens (llm-compressor opens two per
  decoder layer and candidate, compressed-tensors one per pass over the weights, transformers one per load and save;
  evaluation while training inside the training bar) and the warnings named in `warnings_off`; the work inside is
  unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

__all__ = ["Once", "TrainingProgress", "log_to", "quiet_bars", "setup_console", "use_compact_progress"]

STEPS = "tunestack.steps"
"""The logger of each training step's full dictionary: run.log only."""


class Once(logging.Filter):
    """Passes each distinct warning (and error) text once; info lines always. Libraries' deprecation notices (about
    their own code, nothing a user can act on) stay in run.log only."""

    QUIET = ("DeprecationWarning", "PendingDeprecationWarning", "FutureWarning")

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        text = record.getMessage()
        if record.name == "py.warnings" and any(f": {kind}:" in text for kind in self.QUIET):
            return False
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


class BarAwareHandler(logging.StreamHandler):
    """Writes each line above the progress bar in use (tqdm clears it, writes, draws it again), so a log line never
    lands inside a bar's line."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm.auto import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must not raise
            self.handleError(record)


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"time": round(record.created, 3), "level": record.levelname.lower(),
                           "logger": record.name, "message": record.getMessage()}, ensure_ascii=False)


def setup_console(quiet: bool = False, log_json: bool = False) -> logging.Handler:
    """The terminal's handler on the root logger (replacing an earlier one of ours), INFO or, quiet, WARNING."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "tunestack_console", False)]:
        root.removeHandler(handler)
    handler = BarAwareHandler(sys.stderr)
    handler.tunestack_console = True
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    handler.setFormatter(JsonLines() if log_json else logging.Formatter("%(message)s"))
    handler.addFilter(Once())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    warnings.simplefilter("default")  # each warning once per place; `Once` then shows each text once
    if quiet or log_json:
        os.environ["TQDM_DISABLE"] = "1"  # tqdm reads it for every bar it opens
    return handler


def log_to(path: Path) -> None:
    """Append every record of this process (DEBUG and up for tunestack, the libraries' warnings) to `path`."""
    root = logging.getLogger()
    path = Path(path).resolve()
    if any(getattr(h, "baseFilename", None) == str(path) for h in root.handlers):
        return
    for handler in [h for h in root.handlers if getattr(h, "tunestack_run_log", False)]:
        root.removeHandler(handler)  # one run's log at a time
        handler.close()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.tunestack_run_log = True
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s %(name)s: %(message)s"))
    root.addHandler(handler)
    logging.getLogger(STEPS).setLevel(logging.DEBUG)


def _trainer_callback():
    from transformers import TrainerCallback

    return TrainerCallback


class TrainingProgress:
    """A Trainer callback (built by `use_compact_progress`): one bar, a compact line every `every` steps."""

    def __init__(self, every: int | None = None, desc: str = "train"):
        self.every, self.desc = every, desc
        self.bar = None
        self.started = self.last_time = 0.0
        self.last_step = 0
        self.log = logging.getLogger("tunestack")

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        if not state.is_world_process_zero:
            return
        self.every = self.every or max(1, -(-state.max_steps // 10))  # ten lines at most
        self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.desc, unit="step",
                        dynamic_ncols=True, leave=False)
        self.started = self.last_time = time.time()
        self.last_step = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        logging.getLogger(STEPS).debug("step %d %s", state.global_step, json.dumps(logs, default=str))
        if "loss" in logs and self.bar is not None:
            self.bar.set_postfix(loss=f"{float(logs['loss']):.3f}", refresh=False)
        step = state.global_step
        if "loss" in logs and (step % self.every == 0 or step == state.max_steps):
            now = time.time()
            pace = (now - self.last_time) / max(1, step - self.last_step)
            self.last_time, self.last_step = now, step
            parts = [f"loss {float(logs['loss']):.4f}"]
            if "reward" in logs:  # GRPO: the reward and how many groups taught nothing matter more than the loss
                parts += [f"reward {float(logs['reward']):.3f}",
                          f"groups without signal {float(logs.get('frac_reward_zero_std', 0)):.0%}"]
            if "learning_rate" in logs:
                parts.append(f"lr {float(logs['learning_rate']):.2e}")
            if "grad_norm" in logs:
                parts.append(f"grad-norm {float(logs['grad_norm']):.3f}")
            self._write(f"[{self.desc}] step {step}/{state.max_steps} " + ", ".join(parts) + f", {pace:.2f} s/step")

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if state.is_world_process_zero:
            self._write(f"[{self.desc}] {state.global_step} steps in {time.time() - self.started:.1f} s")

    def _write(self, line: str) -> None:
        self.log.info(line)  # the console handler writes it above the bar


def use_compact_progress(trainer, every: int | None = None, desc: str = "train") -> None:
    """Replace the Trainer's progress and printer callbacks (a bar plus a dictionary printed per logged step) by
    `TrainingProgress`."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    callback = type("CompactProgress", (TrainingProgress, _trainer_callback()), {})(every, desc)
    trainer.add_callback(callback)


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
