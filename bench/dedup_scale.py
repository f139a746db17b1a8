"""Near-duplicate removal plus decontamination at 100k, 300k and 1M synthetic rows: speed and recall at each size.

Rows are template-like (the demo's radiology generator, with a numbered accession so most rows are distinct), with
2% exact and 2% near duplicates planted, each a copy of an earlier unplanted row picked uniformly (so at 1M most
originals lie far back in crowded buckets); a near copy renames "Hx:" to "History:" or prefixes "Report: ", which
keeps its Jaccard similarity to the original above 0.84. The kept rows are then decontaminated against 1,000
eval rows. For each size the script prints:

- seconds for dedup and decontamination, rows/s over both, and the ratio to the first size's rows/s (growth is
  linear when the ratio stays near 1);
- recall: the share of planted exact and of planted near copies removed (a near copy counts when its original was
  kept; see `recall`);
- unplanted removals: rows the generator did not plant as copies that were removed anyway, and how many of them are
  confirmed by recomputing the Jaccard similarity of their word 3-gram strings (no hashing) and comparing answers.
  Independently generated rows can be near duplicates by construction (the same report, answer and system prompt,
  differing in the accession line only), so confirmed ones are true near duplicates, not errors.

    python bench/dedup_scale.py [--sizes 100000 300000 1000000]
"""

from __future__ import annotations

import argparse
import random
import time

from tunestack.data.dedup import decontaminate, deduplicate, example_pair, normalize
from tunestack.demo.radiology import one_row


def synthetic(n: int, seed: int = 0) -> tuple[list[tuple[str, str]], dict[int, tuple[str, int]]]:
    """Rows, and the planted copies: row -> ("exact" | "near", original row)."""
    rng = random.Random(seed)
    rows, originals, planted = [], [], {}
    for i in range(n):
        roll = rng.random()
        if originals and roll < 0.02:
            source = rng.choice(originals)
            planted[i] = ("exact", source)
            rows.append(rows[source])
            continue
        row = one_row(rng)
        text, answer = example_pair(row["messages"])
        if originals and roll < 0.04:
            source = rng.choice(originals)
            planted[i] = ("near", source)
            text, answer = rows[source]
            text = text.replace("Hx:", "History:", 1) if "Hx:" in text else "Report: " + text
        else:
            text = f"{text}\nAccession {i}: {rng.randrange(10**9)} ward {rng.randrange(100)}"
            originals.append(i)
        rows.append((text, answer))
    return rows, planted


def string_jaccard(a: str, b: str) -> float:
    """The reference definition, on word 3-gram strings rather than their hashes."""
    def grams(text):
        words = normalize(text).split()
        return {" ".join(words[i:i + 3]) for i in range(max(1, len(words) - 2))}
    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def recall(removed: list[dict], planted: dict[int, tuple[str, int]], kind: str) -> float:
    """Share of the planted copies of `kind` that were removed. A near copy counts only when its original was kept:
    an original that is itself a near duplicate was folded into an earlier row, which its copy, two edits away, may
    no longer reach."""
    gone = {r["row"] for r in removed}
    truth = [row for row, (k, source) in planted.items() if k == kind and (kind == "exact" or source not in gone)]
    return sum(row in gone for row in truth) / max(1, len(truth))


def confirmed(rows: list[tuple[str, str]], record: dict, threshold: float = 0.8) -> bool:
    (text, answer), (other_text, other_answer) = rows[record["row"]], rows[record["duplicate_of"]]
    return normalize(answer) == normalize(other_answer) and string_jaccard(text, other_text) >= threshold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    args = parser.parse_args()
    protected, _ = synthetic(1000, seed=99)
    baseline = None
    print(f"{'rows':>9} {'dedup s':>8} {'decontam s':>10} {'removed':>8} {'leaks':>6} {'rows/s':>8} {'vs first':>8} "
          f"{'exact rec':>9} {'near rec':>8} {'unplanted':>9} {'confirmed':>9}")
    for n in args.sizes:
        rows, planted = synthetic(n)
        start = time.perf_counter()
        kept, removed = deduplicate(rows)
        middle = time.perf_counter()
        leaks = decontaminate([rows[i] for i in kept], protected)
        end = time.perf_counter()
        rate = n / (end - start)
        baseline = baseline or rate
        unplanted = [r for r in removed if r["row"] not in planted]
        print(f"{n:>9} {middle - start:>8.1f} {end - middle:>10.1f} {len(removed):>8} {len(leaks):>6} {rate:>8.0f} "
              f"{rate / baseline:>8.2f} {recall(removed, planted, 'exact'):>9.4f} "
              f"{recall(removed, planted, 'near'):>8.4f} {len(unplanted):>9} "
              f"{sum(confirmed(rows, r) for r in unplanted):>9}", flush=True)


if __name__ == "__main__":
    main()
