"""Example data and the config for the quickstart. Nothing in the pipeline knows about it: it only writes files.

`quickstart_config()` is the packaged `quickstart.yaml` (`configs/quickstart.yaml` in the repository links to it):
its paths are relative to the folder `tunestack demo` runs in (data/demo/, runs/)."""

from pathlib import Path


def quickstart_config() -> Path:
    from importlib.resources import files

    return Path(str(files("tunestack.demo") / "quickstart.yaml"))
