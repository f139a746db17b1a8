"""A seeded generator of short radiology reports with abbreviations, each paired with one line of JSON.

The answer has five fixed keys with a closed vocabulary of normalised codes. Every value is derivable from the
report: each code has a few surface forms (abbreviations) and nothing else in the report decides it. A base model
fails here systematically (it does not know the codes or the exact format), which is what fine-tuning fixes.

>>> rows = generate(3, seed=1)
>>> [m["role"] for m in rows[0]["messages"]]
['system', 'user', 'assistant']
>>> sorted(json.loads(rows[0]["messages"][2]["content"])) == sorted(FIELDS)
True
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

SYSTEM_PROMPT = (
    "Extract the radiology report as one line of JSON with the keys modality, region, finding, side, severity."
)

MODALITY = {"ct": ["CT", "CT scan", "CECT"], "mri": ["MRI", "MR"], "xray": ["XR", "X-ray", "radiograph"],
            "ultrasound": ["US", "sono", "ultrasound"]}
REGION = {"chest": ["chest", "thorax"], "abdomen": ["abd", "abdomen"], "head": ["head", "brain"],
          "spine": ["spine", "L-spine"], "pelvis": ["pelvis", "pelv"]}
FINDING = {"pneumothorax": ["PTX", "pneumothorax"], "pleural_effusion": ["pl eff", "effusion"],
           "fracture": ["fx", "fracture"], "nodule": ["nod", "nodule"], "hemorrhage": ["bleed", "hmg"],
           "consolidation": ["consol", "consolidation"]}
NORMAL_FORMS = ["NAD", "WNL", "no acute abnormality"]
SIDE = {"left": ["L", "lt", "left"], "right": ["R", "rt", "right"], "bilateral": ["bilat", "B/L"]}
SEVERITY = {"mild": ["sm", "mild", "trace"], "moderate": ["mod", "moderate"], "severe": ["lg", "severe", "marked"]}
FIELDS = ("modality", "region", "finding", "side", "severity")
HISTORY = ["Hx: cough.", "Hx: fall.", "Hx: SOB.", "Hx: pain.", "Hx: fever.", "Comparison: none.", "Cf prior.", ""]

TEMPLATES = [
    "{mod} {reg}: {sev} {side} {find}. {hx}",
    "{hx} {mod} {reg}. Impression: {side} {find}, {sev}.",
    "Exam: {mod} {reg}. Findings: {sev} {find}, {side}. {hx}",
    "{mod} {reg} - {find} ({side}, {sev}). {hx}",
]
NO_SIDE_TEMPLATES = [
    "{mod} {reg}: {sev} {find}. {hx}",
    "{hx} {mod} {reg}. Impression: {find}, {sev}.",
]
NORMAL_TEMPLATES = ["{mod} {reg}: {normal}. {hx}", "{hx} Exam: {mod} {reg}. Impression: {normal}."]


def answer_schema() -> dict:
    """JSON Schema of one answer: the five keys, each from its closed vocabulary."""
    values = {
        "modality": list(MODALITY), "region": list(REGION), "finding": [*FINDING, "normal"],
        "side": [*SIDE, "none"], "severity": [*SEVERITY, "none"],
    }
    return {
        "type": "object",
        "properties": {key: {"type": "string", "enum": values[key]} for key in FIELDS},
        "required": list(FIELDS),
        "additionalProperties": False,
    }


def one_row(rng: random.Random) -> dict:
    codes = {"modality": rng.choice(list(MODALITY)), "region": rng.choice(list(REGION))}
    words = {"mod": rng.choice(MODALITY[codes["modality"]]), "reg": rng.choice(REGION[codes["region"]]),
             "hx": rng.choice(HISTORY)}
    roll = rng.random()
    if roll < 0.15:
        codes.update(finding="normal", side="none", severity="none")
        template = rng.choice(NORMAL_TEMPLATES)
        words["normal"] = rng.choice(NORMAL_FORMS)
    else:
        codes["finding"] = rng.choice(list(FINDING))
        codes["severity"] = rng.choice(list(SEVERITY))
        words["find"] = rng.choice(FINDING[codes["finding"]])
        words["sev"] = rng.choice(SEVERITY[codes["severity"]])
        if roll < 0.3:
            codes["side"] = "none"
            template = rng.choice(NO_SIDE_TEMPLATES)
        else:
            codes["side"] = rng.choice(list(SIDE))
            words["side"] = rng.choice(SIDE[codes["side"]])
            template = rng.choice(TEMPLATES)
    report = " ".join(template.format(**words).split())
    answer = json.dumps({key: codes[key] for key in FIELDS})
    return {"messages": [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": report},
        {"role": "assistant", "content": answer},
    ]}


def generate(n: int, seed: int = 0) -> list[dict]:
    """`n` distinct rows, the same for the same seed."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        row = one_row(rng)
        key = row["messages"][1]["content"]
        if key not in seen:  # distinct reports, so dedup and decontamination have nothing to remove
            seen.add(key)
            rows.append(row)
    return rows


def cosmetic(report: str) -> str:
    """The same report as a log system might store it: lower case, its last sentence first, or "please" in front.

    >>> cosmetic("CT chest: sm L PTX. Hx: cough.")
    'hx: cough. ct chest: sm l ptx.'
    """
    sentences = [s.strip() for s in report.replace(". ", ".\n").splitlines() if s.strip()]
    if len(sentences) > 1:
        return " ".join([sentences[-1], *sentences[:-1]]).lower()
    return "Please: " + report.lower()


def write_demo_data(folder: Path, n: int = 800, seed: int = 0) -> tuple[Path, Path]:
    """The demo's two sources and the answer schema; returns (JSONL path, schema path).

    - `radiology.jsonl`: about 85% of the `n` rows, chat format, `source: human`, reviewed.
    - `radiology_logs.csv`: the rest as production logs (columns `report`, `label`, `instructions`, `score`), a
      third of them unrated (the quality policy drops those), plus planted exact and cosmetic copies (case, sentence
      order, a filler word) of JSONL rows for dedup to find.
    """
    folder.mkdir(parents=True, exist_ok=True)
    data, logs, schema = folder / "radiology.jsonl", folder / "radiology_logs.csv", folder / "radiology.schema.json"
    rows = generate(n, seed)
    n_logs = n - int(n * 0.85)
    reviewed, production = rows[: n - n_logs], rows[n - n_logs:]
    with data.open("w", encoding="utf-8") as fh:
        for row in reviewed:
            fh.write(json.dumps({**row, "source": "human", "reviewed": True}) + "\n")
    rng = random.Random(seed + 1)
    with logs.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["report", "label", "instructions", "score"])
        for i, row in enumerate(production):
            system, report, answer = (m["content"] for m in row["messages"])
            writer.writerow([report, answer, system, "" if i % 3 == 2 else rng.choice([4, 5])])
        for i, row in enumerate(rng.sample(reviewed, 20)):  # planted copies: 10 exact, 10 cosmetic
            system, report, answer = (m["content"] for m in row["messages"])
            writer.writerow([report if i < 10 else cosmetic(report), answer, system, 5])
    schema.write_text(json.dumps(answer_schema(), indent=2) + "\n", encoding="utf-8")
    return data, schema
