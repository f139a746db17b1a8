"""Near-duplicate removal plus decontamination at 100k, 300k and 1M synthetic rows: rows/s at each size.

Rows are template-like (the demo's radiology generator, with a numbered accession so most rows are distinct), with
2% exact and 2% near duplicates planted, decontaminated against 1,000 eval rows. Growth should be roughly linear:
the script prints each size's rows/s and its ratio to the smallest size's, measured in this same run.

    python bench/dedup_scale.py [--sizes 100000 300000 1000000]
"""

from __future__ import annotations

import argparse
import random
import time

from tunestack.data.dedup import deduplicate, decontaminate, example_pair
from tunestack.demo.radiology import one_row


def synthetic(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        roll = rng.random()
        if rows and roll < 0.02:
            rows.append(rows[rng.randrange(len(rows))])  # exact duplicate
            continue
        row = one_row(rng)
        text, answer = example_pair(row["messages"])
        if rows and roll < 0.04:
            text, answer = rows[rng.randrange(len(rows))]
            text = text.replace("Hx:", "History:", 1) if "Hx:" in text else "Report: " + text
        else:
            text = f"{text}\nAccession {i}: {rng.randrange(10**9)} ward {rng.randrange(100)}"
        rows.append((text, answer))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    args = parser.parse_args()
    protected = synthetic(1000, seed=99)
    baseline = None
    print(f"{'rows':>9} {'dedup s':>8} {'decontam s':>10} {'removed':>8} {'leaks':>6} {'rows/s':>8} {'vs first':>8}")
    for n in args.sizes:
        rows = synthetic(n)
        start = time.perf_counter()
        kept, removed = deduplicate(rows)
        middle = time.perf_counter()
        leaks = decontaminate([rows[i] for i in kept], protected)
        end = time.perf_counter()
        rate = n / (end - start)
        baseline = baseline or rate
        print(f"{n:>9} {middle - start:>8.1f} {end - middle:>10.1f} {len(removed):>8} {len(leaks):>6} "
              f"{rate:>8.0f} {rate / baseline:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
