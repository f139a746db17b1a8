"""Reading rows from JSONL, CSV, Parquet and `datasets` folders, with a column mapping. No torch.

Every reader yields `(line, record, reason, text)`: the line (a 1-based row number for Parquet and datasets, where
the header is not counted), the raw record as a dict or None, why it could not be read (or None) and its text for
the rejects file. `read_source` turns records into validated `Row`s and `Reject`s, so read = rows + rejects always.

A broken line never swallows the lines after it: a CSV record with an unbalanced quote, which a plain csv reader
would stretch to the end of the file, is rejected on its own first line and reading resumes on the next.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from tunestack.data.formats import Reject, Row, normalize_row, parse_json_cell
from tunestack.errors import DataError

Record = tuple[int, "dict | None", "str | None", str]
csv.field_size_limit(1 << 30)  # the default 128 KB would reject a long field as broken quoting; length is judged later
CSV_MULTILINE_LIMIT = 5000
"""A quoted CSV field may span lines, but not more than this many: beyond it the quoting is taken to be broken."""
MESSAGE_FIELDS = ("messages", "prompt", "completion", "chosen", "rejected")
OPENAI_FIELDS = {"tools": list, "functions": list, "input": dict, "preferred_output": list,
                 "non_preferred_output": list}
"""Columns of OpenAI's formats that hold JSON in a table cell, and what the JSON must be for the cell to be decoded
(alpaca's `input` is text, even text that looks like JSON)."""


def file_kind(path: Path) -> str:
    if path.is_dir():
        return "datasets"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise DataError(f"{path}: unknown file type {suffix!r}; use .jsonl, .csv, .tsv, .parquet or a folder saved with "
                    "datasets' save_to_disk")


def read_source(path: Path, *, declared: str = "auto", columns: dict[str, str] | None = None, origin: str = "",
                max_rows: int | None = None, split: str = "train") -> tuple[list[Row], list[Reject]]:
    """Every record of one source, normalised and validated."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    kind = file_kind(path)
    records = {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet, "datasets": _datasets}[kind]
    rename = {theirs: ours for ours, theirs in (columns or {}).items()}
    rows: list[Row] = []
    rejects: list[Reject] = []
    for line, record, reason, text in records(path, split) if records is _datasets else records(path):
        if max_rows is not None and len(rows) >= max_rows:
            break
        if record is not None:
            try:
                renamed = {rename.get(k, k): v for k, v in record.items()}
                if kind != "jsonl":  # table cells are strings: decode message lists where messages belong
                    renamed = {k: parse_json_cell(v) if k in MESSAGE_FIELDS else _openai_cell(k, v, renamed)
                               for k, v in renamed.items()}
                warnings: list[str] = []
                normalized = normalize_row(renamed, declared, warnings)
            except Exception as exc:  # noqa: BLE001 - one bad row must never stop the read; it is rejected
                reason = str(exc) if isinstance(exc, ValueError) else f"unreadable row ({type(exc).__name__}: {exc})"
                code = getattr(exc, "code", "malformed")
            else:
                messages = normalized.pop("messages")
                rows.append(Row(messages, str(path), line, normalized, origin, warnings=warnings))
                continue
        else:
            code = "unreadable"
        if reason:
            rejects.append(Reject(str(path), line, reason, text, origin=origin, code=code))
    return rows, rejects


def _openai_cell(key: str, value: object, record: dict) -> object:
    """A table cell of OpenAI's formats decoded from JSON: a list of tool definitions or outputs, or the `input`
    object of a preference row (with `messages`); any other cell, alpaca's `input` included, stays as it is."""
    if key not in OPENAI_FIELDS or not isinstance(value, str) or value.lstrip()[:1] not in ("[", "{"):
        return value
    if key == "input" and "preferred_output" not in record and "non_preferred_output" not in record:
        return value
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError:
        return value
    wanted = OPENAI_FIELDS[key]
    if not isinstance(decoded, wanted) or (wanted is dict and "messages" not in decoded) or (
            wanted is list and not all(isinstance(item, dict) for item in decoded)):
        return value
    return decoded


def _decode(raw: bytes, number: int) -> tuple[str | None, str | None]:
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # a UTF-8 byte-order mark on the first line is harmless
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 at byte {exc.start}; re-encode the file as UTF-8"


def _jsonl(path: Path) -> Iterator[Record]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            text, reason = _decode(raw, number)
            if reason:
                yield number, None, reason, raw.decode("utf-8", "replace")
                continue
            if not text.strip():
                continue  # blank lines are not rows
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, None, f"invalid JSON ({exc.msg} at column {exc.colno})", text
                continue
            except (ValueError, RecursionError) as exc:
                yield number, None, f"invalid JSON ({type(exc).__name__}: {str(exc)[:100]})", text[:2000]
                continue
            if not isinstance(obj, dict):
                yield number, None, f"expected a JSON object per line, got {type(obj).__name__}", text
                continue
            yield number, obj, None, text


def _csv(path: Path) -> Iterator[Record]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    lines: list[str | None] = []
    bad: dict[int, str] = {}
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            text, reason = _decode(raw, number)
            lines.append(text)
            if reason:
                bad[number] = reason
    if not lines or lines[0] is None:
        raise DataError(f"{path}: the first line must be a UTF-8 header naming the columns")
    header = next(csv.reader([lines[0]], delimiter=delimiter))
    i = 1  # index into lines of the next record's first line
    while i < len(lines):
        number = i + 1
        if number in bad:
            yield number, None, bad[number], ""
            i += 1
            continue
        if not lines[i].strip():
            i += 1
            continue
        cells, used, reason = _one_csv_record(lines, i, delimiter, len(header))
        if reason:
            yield number, None, reason, lines[i]
            i += 1  # resume on the next physical line: nothing after a broken line is lost
            continue
        yield number, {k: v for k, v in zip(header, cells) if v != ""}, None, "".join(
            lines[i:i + used])
        i += used


def _one_csv_record(lines: list, start: int, delimiter: str, width: int) -> tuple[list[str], int, str | None]:
    """Parse one record from lines[start:]; (cells, lines used, reason if broken)."""
    used = 0

    def feed():
        nonlocal used
        for text in lines[start:start + CSV_MULTILINE_LIMIT]:
            if text is None:
                return
            used += 1
            yield text

    try:
        cells = next(csv.reader(feed(), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        return [], used, f"broken CSV quoting ({exc}); quote fields containing commas or newlines, double inner quotes"
    except StopIteration:
        return [], used, "broken CSV quoting: a quoted field never closes"
    if len(cells) != width:
        return [], used, (f"{len(cells)} fields where the header has {width}"
                          + (" (a quote opened here seems to run on into later lines)" if used > 1 else ""))
    return cells, used, None


def _parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from exc
    for number, record in enumerate(table.to_pylist(), start=1):
        yield number, _json_safe(record), None, _show(record)


def _datasets(path: Path, split: str) -> Iterator[Record]:
    from datasets import DatasetDict, load_from_disk

    try:
        data = load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{path}: not a folder written by datasets' save_to_disk ({type(exc).__name__}: {exc}); "
                        "for a folder of Parquet or JSONL files, list each file as a source") from exc
    if isinstance(data, DatasetDict):
        if split not in data:
            raise DataError(f"{path}: no split {split!r}; it has {', '.join(data)} (set the source's `split`)")
        data = data[split]
    for number, record in enumerate(data, start=1):
        yield number, _json_safe(record), None, _show(record)


def _json_safe(record: dict) -> dict:
    """Table cells as JSON values: timestamps, decimals and bytes become strings; empty cells are dropped."""
    return {k: json.loads(json.dumps(v, default=str)) for k, v in record.items() if v is not None}


def _show(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, default=str)

