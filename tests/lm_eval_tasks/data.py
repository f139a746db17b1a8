"""The data of the local lm-eval tasks beside this file: JSON lines read into a `datasets` split, found next to the
task YAML (lm-eval imports this module by the YAML's `!function`), so the tasks run from any working folder and
offline."""

from __future__ import annotations

from pathlib import Path

import datasets

HERE = Path(__file__).resolve().parent


def choice(**_):
    return datasets.DatasetDict({"test": datasets.load_dataset("json", data_files=str(HERE / "choice.jsonl"),
                                                               split="train")})


def echo(**_):
    return datasets.DatasetDict({"test": datasets.load_dataset("json", data_files=str(HERE / "echo.jsonl"),
                                                               split="train")})
