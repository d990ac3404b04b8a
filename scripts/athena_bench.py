#!/usr/bin/env python3
"""Benchmark of `scan --athena`'s reduction: rows returned per event scanned, and the local replay
time of those rows next to a full local scan of the same logs (issue 14's benchmark).

Athena is not available here, so the exact SQL ctguard sends (`--plan --output json`) runs on
DuckDB after sqlglot's mechanical translation, over the corpus loaded as Athena's JSON SerDe
reads it (the loader of athena_sql_check.py). The replay and the local scan are whole `ctguard`
processes, interleaved over rounds; medians are printed. Usage:

    CTGUARD_BENCH_MB=32 CTGUARD_BENCH_BIG_MB=0 CTGUARD_BENCH_KEEP=1 cargo bench -p ctguard-forensics --bench scan
    python scripts/athena_bench.py target/release/ctguard /tmp/ctguard-bench-scan-NNN [ROUNDS]

(the scan benchmark prints the kept corpus's path), or with `generated` instead of a path: a
corpus where, as in a live organization, each temporary key is used hundreds of times (100 keys,
150 to 450 calls each, a third also used from a second address, rotations and moves). No
reduction can return fewer rows than there are distinct (key, identity) pairs, so the ratio says
as much about the corpus as about the SQL. The goal is <= 1 row per 100 events.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import duckdb
import sqlglot

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import athena_sql_check as check  # noqa: E402


def timed(args):
    started = time.perf_counter()
    p = subprocess.run(args, capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - started
    if p.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return elapsed, len(check.alerts(p.stdout))


def main():
    binary, corpus = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    if corpus == "generated":
        with tempfile.TemporaryDirectory() as tmp:
            return bench(binary, check.generate(os.path.join(tmp, "generated"), 7, keys=100, uses=(150, 450)), rounds)
    return bench(binary, corpus, rounds)


def bench(binary, corpus, rounds):
    con = duckdb.connect()
    started = time.perf_counter()
    events = check.load(con, check.schema(), check.files_of(corpus))
    load_s = time.perf_counter() - started
    plan = json.loads(check.ctguard(binary, "scan", "--athena", check.TABLE, "--plan", "--output", "json"))
    sql = sqlglot.transpile(plan["sql"], read="athena", write="duckdb")[0]
    started = time.perf_counter()
    cur = con.execute(sql)
    names = [c[0] for c in cur.description]
    fetched = cur.fetchall()
    query_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        rows = os.path.join(tmp, "rows.jsonl")
        with open(rows, "w") as f:
            for r in fetched:
                f.write(json.dumps(dict(zip(names, r))) + "\n")
        replay, local = [], []
        for _ in range(rounds):
            replay.append(timed([binary, "--json", "scan", "--athena", check.TABLE, "--replay-rows", rows]))
            local.append(timed([binary, "--json", "scan", corpus]))
    n = len(fetched)
    (r_alerts, l_alerts) = (replay[0][1], local[0][1])
    r_med = statistics.median(t for t, _ in replay)
    l_med = statistics.median(t for t, _ in local)
    print(f"corpus: {corpus}: {events} events (loaded into DuckDB in {load_s:.1f}s; the query ran in {query_s:.2f}s)")
    print(f"rows returned: {n} = 1 per {events / max(n, 1):.0f} events "
          f"({n / max(events, 1):.4f} per event; goal <= 0.01: {'met' if n * 100 <= events else 'not met'})")
    print(f"replay of the rows: median {r_med * 1000:.0f} ms over {rounds} rounds, {r_alerts} alerts")
    print(f"full local scan:    median {l_med * 1000:.0f} ms over {rounds} rounds, {l_alerts} alerts")
    print(f"replay / local scan: {r_med / l_med:.3f}")
    if r_alerts != l_alerts:
        raise SystemExit("the replay and the local scan disagree on the number of alerts")


if __name__ == "__main__":
    main()
