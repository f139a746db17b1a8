"""Duplicate removal, near-copy listing and decontamination at 100k, 300k and 1M rows: speed, recall and precision.

Half the rows are contract excerpts under one long system prompt: boilerplate sentences whose slots take a handful of
values (governing law, term in months or years, renewal clause, notice period, payment terms) and a few that take
many (two party names, a date, an amount). The other half are pathology snippets whose answer is the receptor status,
where the symbols are the content: `ER+, PR-, HER2 2+, Ki-67 <10%` against `ER-, PR+, ...`. Planted, each a copy of an
earlier unplanted row picked uniformly (so at 1M most originals lie far back):
- 2% exact copies (half verbatim, half with case and spacing changed);
- 2% cosmetic copies at the edge: edits touching 3-10% of the words (filler words added, words' case changed,
  punctuation changed, or a sentence moved), which must be removed as near duplicates;
- 1% inserted-word copies ("hereby", "duly", "Note:" added), which must be listed as near copies (`near_copies`);
- 2% slot variants: a copy with one slot value changed (a party, the amount, the date, the notice period, a negation
  added; in pathology one receptor's sign flipped, a comparison reversed, or a decimal point moved), which are
  distinct rows and must be kept.
The kept rows are then decontaminated against 1,000 eval rows drawn from the same generators, 100 of which also have
a cosmetic copy and 100 an inserted-word copy planted in the training rows (both must go).

For each size the script prints seconds for each step (deduplicate, near_copies on the kept rows, decontaminate),
rows/s over all three and the ratio to the first size's rows/s (growth is linear when it stays near 1), the seconds
of the baseline a careful user runs first (exact deduplication on lower-cased, whitespace-collapsed text, in a dict)
and our time over it, the recall of each planted kind, and the distinct rows (unplanted or slot variants) removed.

    python bench/dedup_scale.py [--sizes 100000 300000 1000000]
"""

from __future__ import annotations

import argparse
import random
import time

from tunestack.data.dedup import deduplicate, near_copies
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
INSERTED = ["hereby", "duly", "Note:"]
PATHOLOGY = ("You are a pathology assistant. Read the report and give the receptor status as one line of JSON with "
             "the keys ER, PR, HER2 and Ki67, signs and comparisons exactly as written.")
HISTOLOGY = ["invasive ductal carcinoma", "invasive lobular carcinoma", "mucinous carcinoma", "tubular carcinoma",
             "ductal carcinoma in situ", "metaplastic carcinoma"]


def contract(rng: random.Random) -> dict:
    slots = {"kind": "contract", "a": rng.choice(PARTIES), "b": rng.choice(PARTIES), "law": rng.choice(LAWS),
             "n": rng.choice([6, 12, 18, 24, 36]), "unit": rng.choice(["months", "years"]),
             "renewal": rng.choice(RENEWALS), "notice": rng.choice([30, 60, 90]), "net": rng.choice([30, 45, 60]),
             "date": f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(2010, 2025)}",
             "amount": f"{rng.randint(10, 990)},{rng.randint(0, 999):03d}", "neg": ""}
    return slots


def pathology(rng: random.Random) -> dict:
    return {"kind": "pathology", "id": f"S{rng.randint(10, 99)}-{rng.randint(1000, 99999)}",
            "histology": rng.choice(HISTOLOGY), "grade": rng.randint(1, 3), "size": f"{rng.randint(2, 60) / 10}",
            "er": rng.choice("+-"), "pr": rng.choice("+-"), "her2": rng.choice(["0", "1+", "2+", "3+"]),
            "cmp": rng.choice("<>"), "ki": rng.choice([5, 10, 14, 20, 30])}


def render(s: dict) -> list[dict]:
    if s["kind"] == "pathology":
        user = (f"Specimen {s['id']}: {s['histology']}, grade {s['grade']}, {s['size']} cm. Immunohistochemistry: "
                f"ER{s['er']}, PR{s['pr']}, HER2 {s['her2']}. Ki-67 {s['cmp']}{s['ki']}% of tumour nuclei.")
        answer = (f'{{"ER": "{s["er"]}", "PR": "{s["pr"]}", "HER2": "{s["her2"]}", '
                  f'"Ki67": "{s["cmp"]}{s["ki"]}%"}}')
        return [{"role": "system", "content": PATHOLOGY}, {"role": "user", "content": user},
                {"role": "assistant", "content": answer}]
    user = (f"This Master Services Agreement is entered into on {s['date']} between {s['a']} and {s['b']}. "
            f"This Agreement shall be governed by the laws of {s['law']}. The initial term is {s['n']} {s['unit']} "
            f"from the effective date. The Agreement {s['renewal']}. Either party may {s['neg']}terminate this "
            f"Agreement on {s['notice']} days written notice. Invoices are payable net {s['net']} days and the fees "
            f"total USD {s['amount']}.")
    answer = (f'{{"law": "{s["law"]}", "term": "{s["n"]} {s["unit"]}", "renewal": "{s["renewal"]}", '
              f'"notice": "{s["notice"]} days", "payment": "net {s["net"]}"}}')
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user},
            {"role": "assistant", "content": answer}]


def inserted(messages: list[dict], rng: random.Random) -> list[dict]:
    """A copy with one non-filler word put in at a word boundary of the user turn (never in place of another)."""
    words = messages[1]["content"].split(" ")
    words.insert(rng.randrange(1, len(words)), rng.choice(INSERTED))
    return [messages[0], {"role": "user", "content": " ".join(words)}, messages[2]]


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
    """The same row with one slot value changed: a different lesson (in pathology, a sign, comparison or decimal)."""
    changed = dict(slots)
    if slots["kind"] == "pathology":
        key = rng.choice(["er", "pr", "cmp", "size"])
        flip = {"+": "-", "-": "+", "<": ">", ">": "<"}
        changed[key] = flip[slots[key]] if key != "size" else slots["size"].replace(".", "") + ".0"
        return changed
    key = rng.choice(["a", "amount", "date", "notice", "neg"])
    while changed == slots:
        changed[key] = contract(rng)[key] if key != "neg" else "not "
    return changed


def synthetic(n: int, seed: int = 0) -> tuple[list[list[dict]], dict[int, tuple[str, int]]]:
    """Rows, and the planted ones: row -> (exact | near | inserted | variant, original row)."""
    rng = random.Random(seed)
    rows, slots, originals, planted, variants = [], [], [], {}, set()
    for i in range(n):
        roll = rng.random()
        if originals and roll < 0.07:
            source = rng.choice(originals)
            kind = "exact" if roll < 0.02 else "near" if roll < 0.04 else "inserted" if roll < 0.05 else "variant"
            planted[i] = (kind, source)
            if kind == "exact":
                copy = rows[source] if rng.random() < 0.5 else [dict(m, content=m["content"].lower().replace(
                    " ", "  ")) if m["role"] == "user" else m for m in rows[source]]
            elif kind == "near":
                copy = cosmetic(rows[source], rng)
            elif kind == "inserted":
                copy = inserted(rows[source], rng)
            else:  # two variants of one row can make the same change: a real duplicate, so draw another
                while (copy := render(variant(slots[source], rng)))[1]["content"] in variants:
                    pass
                variants.add(copy[1]["content"])
            rows.append(copy)
            slots.append(None)
            continue
        s = (contract if rng.random() < 0.5 else pathology)(rng)
        rows.append(render(s))
        slots.append(s)
        originals.append(i)
    return rows, planted


def baseline(rows: list[list[dict]]) -> list[int]:
    """What a careful user runs first: exact duplicates of lower-cased, whitespace-collapsed text, in a dict."""
    seen, kept = set(), []
    for i, messages in enumerate(rows):
        key = "\x1e".join(" ".join(m["content"].lower().split()) for m in messages)
        if key not in seen:
            seen.add(key)
            kept.append(i)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    args = parser.parse_args()
    pool, plants = synthetic(1100, seed=99)
    protected = [m for i, m in enumerate(pool) if i not in plants][:1000]  # distinct eval rows
    eval_copies = [cosmetic(m, random.Random(k)) for k, m in enumerate(protected[:100])]
    eval_copies += [inserted(m, random.Random(k)) for k, m in enumerate(protected[100:200])]
    first = None
    print(f"{'rows':>9} {'dedup s':>7} {'near s':>6} {'decon s':>7} {'total s':>7} {'rows/s':>6} {'vs first':>8} "
          f"{'base s':>6} {'vs base':>7} {'exact':>6} {'near':>6} {'insert':>6} {'eval':>6} {'eval ins':>8} "
          f"{'distinct removed':>16} {'of':>7}")
    for n in args.sizes:
        rows, planted = synthetic(n)
        rows += eval_copies
        start = time.perf_counter()
        kept, removed = deduplicate(rows)
        after_dedup = time.perf_counter()
        listed = near_copies([rows[i] for i in kept])
        after_near = time.perf_counter()
        leaks = decontaminate([rows[i] for i in kept], protected)
        end = time.perf_counter()
        base_kept = baseline(rows)
        base_seconds = time.perf_counter() - end
        rate = len(rows) / (end - start)
        first = first or rate
        gone = {r["row"] for r in removed} | {kept[h["row"]] for h in leaks}
        found = {r["row"]: r["duplicate_of"] for r in removed}
        found.update({kept[r["row"]]: kept[r["duplicate_of"]] for r in listed})

        def recall(kind: str) -> float:
            truth = [(row, source) for row, (k, source) in planted.items() if k == kind]
            return sum(found.get(row) == source for row, source in truth) / max(1, len(truth))

        hit = {kept[h["row"]]: h["matched"] for h in leaks}
        eval_recall = sum(hit.get(n + k) == k for k in range(100)) / 100
        inserted_recall = sum(hit.get(n + 100 + k) == 100 + k for k in range(100)) / 100
        distinct = [i for i in range(n) if planted.get(i, ("distinct",))[0] in ("distinct", "variant")]
        lost = sum(i in gone for i in distinct)
        assert len(base_kept) >= len(kept)
        print(f"{n:>9} {after_dedup - start:>7.1f} {after_near - after_dedup:>6.1f} {end - after_near:>7.1f} "
              f"{end - start:>7.1f} {rate:>6.0f} {rate / first:>8.2f} {base_seconds:>6.1f} "
              f"{(end - start) / base_seconds:>7.1f} {recall('exact'):>6.4f} {recall('near'):>6.4f} "
              f"{recall('inserted'):>6.4f} {eval_recall:>6.4f} {inserted_recall:>8.4f} {lost:>16} {len(distinct):>7}",
              flush=True)


if __name__ == "__main__":
    main()
