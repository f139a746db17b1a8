"""One exception tree for everything a user can get wrong.

    TunestackError                 every error we raise on purpose; the CLI prints it cleanly, exit code 2
    ├── ConfigError                the YAML config or an override is not well-formed (lists every problem)
    ├── DataError                  an input file or row is unusable (file:line, what was expected, how to fix)
    ├── ModelError                 a model cannot be found, loaded or converted
    ├── StageError                 a stage cannot run: a missing upstream artifact, a failed check
    │   └── GuardError             a correctness guard tripped (labels all masked, export changed outputs, ...)
    ├── EndpointError              an OpenAI-compatible endpoint refused a request, or kept failing after retries
    └── MissingDependencyError     an optional package is not installed (says what to install)

Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class TunestackError(Exception):
    """Base class: a problem the user can fix; the message says how."""

    exit_code = 2


class ConfigError(TunestackError):
    """The config is not well-formed. `problems` holds (yaml_path, message) pairs, all of them."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None):
        self.problems = problems
        self.source = source
        where = f" ({source})" if source else ""
        lines = [f"Config is not well-formed{where}, found the following errors:"]
        lines += [f"  {path}: {message}" if path else f"  {message}" for path, message in problems]
        super().__init__("\n".join(lines))


class DataError(TunestackError):
    """An input file or row is unusable."""


class ModelError(TunestackError):
    """A model cannot be found, loaded or converted."""


class StageError(TunestackError):
    """A stage cannot run or did not pass its own checks."""


class GuardError(StageError):
    """A correctness guard tripped: training or export would silently produce a wrong model."""


class EndpointError(TunestackError):
    """An OpenAI-compatible endpoint refused a request (bad key, unknown model) or kept failing after every retry."""


class MissingDependencyError(TunestackError):
    """An optional dependency is missing."""

    def __init__(self, package: str, extra: str):
        super().__init__(
            f"This needs the package '{package}', which is not installed. "
            f"Make sure you've installed everything with: pip install 'tunestack[{extra}]' (or run `make test`)."
        )
