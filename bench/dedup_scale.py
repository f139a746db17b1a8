"""Duplicate removal plus decontamination at 100k, 300k and 1M template rows: speed, recall and precision at each size.

The rows are contract excerpts under one long system prompt: boilerplate sentences whose slots take a handful of
values (governing law, term in months or years, renewal clause, notice period, payment terms) and a few that take
many (two party names, a date, an amount). Planted, each a copy of an earlier unplanted row picked uniformly (so at
1M most originals lie far back):
- 2% exact copies (half verbatim, half with case and spacing changed);
- 2% cosmetic copies at the edge: edits touching 3-10% of the words (filler words added, words' case changed,
  punctuation changed, or a sentence moved), which must be removed as near duplicates;
- 2% slot variants: a copy with one slot value changed (a party, the amount, the date, the notice period, or a
  negation added), which are distinct rows and must be kept.
The kept rows are then decontaminated against 1,000 eval rows drawn from the same generator, 100 of which also have
a cosmetic copy planted in the training rows. For each size the script prints seconds for each step, rows/s over
both and the ratio to the first size's rows/s (growth is linear when it stays near 1), the recall of each planted
kind, and the distinct rows (unplanted or slot variants) removed.

    python bench/dedup_scale.py [--sizes 100000 300000 1000000]
"""

from __future__ import annotations

import argparse
import random
import time

from tunestack.data.dedup import deduplicate
from tunestack.data.leaks import decontaminate

SYSTEM = ("You are a contracts analyst. Read the excerpt and extract the governing law, the initial term, the renewal "
          "terms, the notice period and the payment terms. Answer with one line of JSON using the keys law, term, "
          "renewal, notice and payment, with values exactly as written in the excerpt, and nothing else.")
PARTIES = [f"{a} {b}" for a in ("Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay",
                                "Soylent", "Tyrell", "Cyberdyne", "Wonka", "Gringotts", "Oscorp", "Monarch", "Dunder")
           for b in ("Corp", "Ltd", "LLC", "Group", "Partners", "Holdings")]
LAWS = ["Delaware", "New York", "Texas", "California", "England and Wales", "Ontario"]
RENEWALS = ["renews automatically for successive one-year periods", "does not renew automatically",
            "renews for one further term by written agreement"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
FILLER = ["please", "also", "the", "basically", "actually", "kindly"]


def contract(rng: random.Random) -> dict:
    slots = {"a": rng.choice(PARTIES), "b": rng.choice(PARTIES), "law": rng.choice(LAWS),
             "n": rng.choice([6, 12, 18, 24, 36]), "unit": rng.choice(["months", "years"]),
             "renewal": rng.choice(RENEWALS), "notice": rng.choice([30, 60, 90]), "net": rng.choice([30, 45, 60]),
             "date": f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(2010, 2025)}",
             "amount": f"{rng.randint(10, 990)},{rng.randint(0, 999):03d}", "neg": ""}
    return slots


def render(s: dict) -> dict:
    user = (f"This Master Services Agreement is entered into on {s['date']} between {s['a']} and {s['b']}. "
            f"This Agreement shall be governed by the laws of {s['law']}. The initial term is {s['n']} {s['unit']} "
            f"from the effective date. The Agreement {s['renewal']}. Either party may {s['neg']}terminate this "
            f"Agreement on {s['notice']} days written notice. Invoices are payable net {s['net']} days and the fees "
            f"total USD {s['amount']}.")
    answer = (f'{{"law": "{s["law"]}", "term": "{s["n"]} {s["unit"]}", "renewal": "{s["renewal"]}", '
              f'"notice": "{s["notice"]} days", "payment": "net {s["net"]}"}}')
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user},
            {"role": "assistant", "content": answer}]


def cosmetic(messages: list[dict], rng: random.Random) -> list[dict]:
    """Edits touching 3-10% of the user turn's words, none of which changes its meaning."""
    words = messages[1]["content"].split(" ")
    budget = max(1, round(len(words) * rng.uniform(0.03, 0.10)))
    move = rng.random() < 0.3
    for _ in range(budget - move):
        i = rng.randrange(len(words))
        roll = rng.random()
        if roll < 0.4:
            words.insert(i, rng.choice(FILLER))
        elif roll < 0.8 or move:  # punctuation changes would break a sentence move: case instead
            words[i] = words[i].upper() if words[i].islower() else words[i].lower()
        else:
            words[i] = words[i].rstrip(",") + ("," if not words[i].endswith((".", ",")) else "")
    text = " ".join(words)
    if move:
        sentences = text.replace(". ", ".\n").split("\n")
        sentences.insert(rng.randrange(len(sentences)), sentences.pop(rng.randrange(len(sentences))))
        text = " ".join(sentences)
    return [messages[0], {"role": "user", "content": text}, messages[2]]


def variant(slots: dict, rng: random.Random) -> dict:
    """The same row with one slot value changed: a different lesson."""
    changed = dict(slots)
    key = rng.choice(["a", "amount", "date", "notice", "neg"])
    while changed == slots:
        changed[key] = contract(rng)[key] if key != "neg" else "not "
    return changed


def synthetic(n: int, seed: int = 0) -> tuple[list[list[dict]], dict[int, tuple[str, int]]]:
    """Rows, and the planted ones: row -> (exact | near | variant, original row)."""
    rng = random.Random(seed)
    rows, slots, originals, planted, variants = [], [], [], {}, set()
    for i in range(n):
        roll = rng.random()
        if originals and roll < 0.06:
            source = rng.choice(originals)
            kind = "exact" if roll < 0.02 else "near" if roll < 0.04 else "variant"
            planted[i] = (kind, source)
            if kind == "exact":
                copy = rows[source] if rng.random() < 0.5 else [dict(m, content=m["content"].lower().replace(
                    " ", "  ")) if m["role"] == "user" else m for m in rows[source]]
            elif kind == "near":
                copy = cosmetic(rows[source], rng)
            else:  # two variants of one row can make the same change: a real duplicate, so draw another
                while (copy := render(variant(slots[source], rng)))[1]["content"] in variants:
                    pass
                variants.add(copy[1]["content"])
            rows.append(copy)
            slots.append(None)
            continue
        s = contract(rng)
        rows.append(render(s))
        slots.append(s)
        originals.append(i)
    return rows, planted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    args = parser.parse_args()
    pool, plants = synthetic(1100, seed=99)
    protected = [m for i, m in enumerate(pool) if i not in plants][:1000]  # distinct eval rows
    eval_copies = [cosmetic(m, random.Random(k)) for k, m in enumerate(protected[:100])]
    baseline = None
    print(f"{'rows':>9} {'dedup s':>8} {'decontam s':>10} {'rows/s':>8} {'vs first':>8} {'exact rec':>9} "
          f"{'near rec':>8} {'eval rec':>8} {'distinct removed':>16} {'of':>8}")
    for n in args.sizes:
        rows, planted = synthetic(n)
        rows += eval_copies
        start = time.perf_counter()
        kept, removed = deduplicate(rows)
        middle = time.perf_counter()
        leaks = decontaminate([rows[i] for i in kept], protected)
        end = time.perf_counter()
        rate = len(rows) / (end - start)
        baseline = baseline or rate
        gone = {r["row"] for r in removed} | {kept[h["row"]] for h in leaks}
        found = {r["row"]: r["duplicate_of"] for r in removed}

        def recall(kind: str) -> float:
            truth = [(row, source) for row, (k, source) in planted.items() if k == kind]
            return sum(found.get(row) == source for row, source in truth) / max(1, len(truth))

        eval_recall = sum(kept[h["row"]] >= n for h in leaks) / len(eval_copies)
        distinct = [i for i in range(n) if planted.get(i, ("distinct",))[0] in ("distinct", "variant")]
        lost = sum(i in gone for i in distinct)
        print(f"{n:>9} {middle - start:>8.1f} {end - middle:>10.1f} {rate:>8.0f} {rate / baseline:>8.2f} "
              f"{recall('exact'):>9.4f} {recall('near'):>8.4f} {eval_recall:>8.4f} {lost:>16} {len(distinct):>8}",
              flush=True)


if __name__ == "__main__":
    main()
