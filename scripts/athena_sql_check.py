#!/usr/bin/env python3
"""Checks the meaning of the SQL `ctguard scan --athena` sends, without Athena.

For each dataset: loads its CloudTrail records into DuckDB under the schema of the DDL ctguard
ships (forensics/sql/cloudtrail_table.sql, projected the way Athena's JSON SerDe does: struct
fields by lower-cased name, objects in STRING columns as JSON text), asks ctguard for the exact
SQL (`--plan --json`), translates it mechanically with sqlglot (Athena/Trino -> DuckDB), runs it,
replays the rows with `ctguard scan --athena --replay-rows`, and requires the alerts to equal a
local `ctguard scan` of the same files. Also checks every partition predicate survives the
translation. Besides the given datasets it checks generated corpora (`generate`) built to stress
the one thing the two paths could disagree on: records of one second (CloudTrail's precision),
from several identities, rotations and moves, spread over files whose names do not follow time.
Usage: athena_sql_check.py CTGUARD_BINARY DATASET_DIR...
"""
import gzip
import json
import os
import random
import re
import uuid
import subprocess
import sys
import tempfile

import duckdb
import sqlglot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DDL = open(os.path.join(ROOT, "forensics/sql/cloudtrail_table.sql")).read()
TABLE = "ct.cloudtrail"


def parse_type(s, i=0):
    """Parses a Hive type at s[i:]; returns ((kind, detail), next index)."""
    m = re.compile(r"\s*(STRUCT|ARRAY|MAP|STRING)\s*", re.I).match(s, i)
    if not m:
        raise ValueError(f"type at {s[i:i+40]!r}")
    kind, i = m.group(1).upper(), m.end()
    if kind == "STRING":
        return ("string", None), i
    assert s[i] == "<", s[i:i + 20]
    i += 1
    if kind == "ARRAY":
        t, i = parse_type(s, i)
        return ("array", t), s.index(">", i) + 1
    if kind == "MAP":
        k, i = parse_type(s, i)
        i = s.index(",", i) + 1
        v, i = parse_type(s, i)
        return ("map", (k, v)), s.index(">", i) + 1
    fields = []
    while True:
        m = re.compile(r"\s*(\w+)\s*:").match(s, i)
        t, i = parse_type(s, m.end())
        fields.append((m.group(1).lower(), t))
        m = re.compile(r"\s*([,>])").match(s, i)
        i = m.end()
        if m.group(1) == ">":
            return ("struct", fields), i


def schema():
    body = DDL[DDL.index("(", DDL.index("CREATE EXTERNAL TABLE")) + 1:DDL.index("\n)\nPARTITIONED BY")]
    cols, i = [], 0
    while i < len(body):
        m = re.compile(r"\s*(\w+)\s+").match(body, i)
        if not m:
            break
        t, i = parse_type(body, m.end())
        cols.append((m.group(1).lower(), t))
        m = re.compile(r"\s*,?").match(body, i)
        i = m.end()
    return cols


def duck_type(t):
    kind, d = t
    if kind == "string":
        return "VARCHAR"
    if kind == "array":
        return duck_type(d) + "[]"
    if kind == "map":
        return f"MAP({duck_type(d[0])}, {duck_type(d[1])})"
    return "STRUCT(" + ", ".join(f'"{n}" {duck_type(ft)}' for n, ft in d) + ")"


def project(v, t):
    """What Athena's JSON SerDe reads for value v under type t."""
    kind, d = t
    if v is None:
        return None
    if kind == "string":
        return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    if kind == "array":
        return [project(x, d) for x in v] if isinstance(v, list) else None
    if kind == "map":
        return {str(k): project(x, d[1]) for k, x in v.items()} if isinstance(v, dict) else None
    if not isinstance(v, dict):
        return None
    low = {k.lower(): x for k, x in v.items()}
    return {n: project(low.get(n), ft) for n, ft in d}


def records_of(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
        items = doc.get("Records", [doc]) if isinstance(doc, dict) else doc
    except json.JSONDecodeError:
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    for r in items:
        if isinstance(r, dict) and isinstance(r.get("detail"), dict) and "detail-type" in r:
            r = r["detail"]
        if isinstance(r, dict):
            yield r


def files_of(d):
    out = []
    for base, _, names in os.walk(d):
        for n in names:
            if re.search(r"\.(json|jsonl|json\.gz)$", n):
                out.append(os.path.join(base, n))
    return sorted(out)


def load(con, cols, files):
    con.execute("CREATE SCHEMA IF NOT EXISTS ct")
    con.execute(f"DROP TABLE IF EXISTS {TABLE}")
    defs = ", ".join(f'"{n}" {duck_type(t)}' for n, t in cols)
    con.execute(f'CREATE TABLE {TABLE} ({defs}, "$path" VARCHAR, account VARCHAR, region VARCHAR, day VARCHAR)')
    rows = []
    for f in files:
        m = re.search(r"AWSLogs/(?:o-[a-z0-9]+/)?(\d{12})/CloudTrail/([a-z0-9-]+)/(\d{4}/\d{2}/\d{2})/", f)
        for r in records_of(f):
            row = [project(r.get(next((k for k in r if k.lower() == n), n)), t) for n, t in cols]
            et = r.get("eventTime") if isinstance(r.get("eventTime"), str) else ""
            part = m.groups() if m else (r.get("recipientAccountId"), r.get("awsRegion"), et[:10].replace("-", "/"))
            rows.append(row + ["s3://trail/" + os.path.relpath(f, "/"), *part])
    marks = ", ".join(["?"] * (len(cols) + 4))
    con.executemany(f"INSERT INTO {TABLE} VALUES ({marks})", rows)
    return len(rows)


def ctguard(binary, *args):
    p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=600)
    if p.returncode not in (0, 1, 3):
        raise SystemExit(f"ctguard {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p.stdout


def alerts(text):
    try:
        items = json.loads(text or "[]")
    except json.JSONDecodeError:
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(items, dict):
        items = [items]
    # `scan --output json` ends with one summary line (`"kind": "summary"`).
    items = [a for a in items if a.get("kind") != "summary"]
    assert all("access_key_id" in a for a in items), "alerts expected"
    return sorted(json.dumps(a, sort_keys=True) for a in items)


def check(binary, d, cols, tmp):
    con = duckdb.connect()
    events = load(con, cols, files_of(d))
    accounts = [a for (a,) in con.execute(f"SELECT DISTINCT account FROM {TABLE} WHERE regexp_matches(account, '^[0-9]{{12}}$')").fetchall()]
    regions = [r for (r,) in con.execute(f"SELECT DISTINCT region FROM {TABLE} WHERE regexp_matches(region, '^[a-z0-9-]+$')").fetchall()]
    failures = []
    # Unfiltered: the rows must replay to the local scan's alerts.
    variants = [[]]
    if accounts and regions:
        variants.append(["--accounts", ",".join(sorted(accounts)), "--regions", ",".join(sorted(regions))])
    # CloudTrail times have one-second precision, so same-second uses of one key from several
    # identities are common. Both paths break such ties the same way (time, then event id, then
    # the engine's own order of identities), so every alert must be identical, ties included.
    tied = con.execute(f"""SELECT count(*) FROM (SELECT 1 FROM {TABLE}
        WHERE useridentity.accesskeyid LIKE 'ASIA%' GROUP BY useridentity.accesskeyid, eventtime
        HAVING count(DISTINCT coalesce(vpcendpointid, sourceipaddress)) > 1)""").fetchone()[0]
    local = alerts(ctguard(binary, "scan", d, "--output", "json"))
    print(f"{os.path.basename(d)}: {tied} (key, second) pairs with uses from several identities")
    for extra in variants:
        plan = json.loads(ctguard(binary, "scan", "--athena", TABLE, "--plan", "--output", "json", *extra))
        duck = sqlglot.transpile(plan["sql"], read="athena", write="duckdb")[0]
        for p in plan["partition_predicates"]:
            tp = sqlglot.transpile(p, read="athena", write="duckdb")[0]
            if tp not in duck:
                failures.append(f"{d}: partition predicate {p!r} ({tp!r}) lost in translation")
        cur = con.execute(duck)
        names = [c[0] for c in cur.description]
        out = os.path.join(tmp, "rows.jsonl")
        n = 0
        with open(out, "w") as f:
            for row in cur.fetchall():
                f.write(json.dumps(dict(zip(names, row))) + "\n")
                n += 1
        replayed = (alerts(ctguard(binary, "scan", "--athena", TABLE, "--replay-rows", out, "--output", "json")))
        label = "filtered" if extra else "all"
        print(f"{os.path.basename(d)} [{label}]: {events} events -> {n} rows; alerts local {len(local)}, athena {len(replayed)}")
        if replayed != local:
            failures.append(f"{d} [{label}]: alerts differ\n local: {local}\n athena: {replayed}")
    for key in trace_keys(con, local):
        failures += check_trace(binary, d, con, key, tmp)
    return failures


def generate(root, seed, keys=150, uses=(3, 12)):
    """Writes a CloudTrail corpus under root/AWSLogs/... and returns root.

    Every key is used many times by its home address within a few minutes (so most uses share a
    second with another), a third of the keys also from a second address, often in the very
    second of the home's first use; instance keys come with their rotation (`AssumeRole` by EC2)
    and some instances with a move (`AssociateAddress`) in the same second as a use. Records are
    shuffled over files whose names do not follow time, so file order decides nothing."""
    rng = random.Random(seed)
    accounts = ["111122223333", "444455556666"]
    regions = ["us-east-1", "eu-west-1"]
    base = 1_700_000_000
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

    def when(sec):
        import datetime
        return datetime.datetime.fromtimestamp(base + sec, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def rec(sec, acct, region, **kw):
        r = {"eventVersion": "1.08", "eventTime": when(sec), "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
             "awsRegion": region, "recipientAccountId": acct, "eventType": "AwsApiCall",
             "userAgent": "aws-cli/2.15.0", "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets"}
        r.update(kw)
        return r

    records = []
    for k in range(keys):
        key = "ASIA" + "".join(rng.choice(alphabet) for _ in range(16))
        acct, region = rng.choice(accounts), rng.choice(regions)
        instance = f"i-{rng.getrandbits(68):017x}" if k % 3 == 0 else None
        session = instance or f"job-{k}"
        ui = {"type": "AssumedRole", "accountId": acct, "accessKeyId": key,
              "arn": f"arn:aws:sts::{acct}:assumed-role/web/{session}",
              "sessionContext": {"sessionIssuer": {"arn": f"arn:aws:iam::{acct}:role/web"},
                                 "attributes": {"creationDate": when(0)}}}
        if instance:
            ui["sessionContext"]["ec2RoleDelivery"] = "2.0"
        home = f"198.51.{rng.randrange(100)}.{rng.randrange(1, 255)}"
        start = rng.randrange(0, 600)
        if instance:
            records.append(rec(start, acct, region, eventSource="sts.amazonaws.com", eventName="AssumeRole",
                               sourceIPAddress="ec2.amazonaws.com", userAgent="ec2.amazonaws.com",
                               userIdentity={"type": "AWSService", "invokedBy": "ec2.amazonaws.com"},
                               requestParameters={"roleArn": f"arn:aws:iam::{acct}:role/web",
                                                  "roleSessionName": instance},
                               responseElements={"credentials": {"accessKeyId": key,
                                                                 "expiration": when(start + 6 * 3600)}}))
        for _ in range(rng.randrange(*uses)):
            records.append(rec(start + rng.randrange(0, max(4, uses[1] // 3)), acct, region, sourceIPAddress=home, userIdentity=ui))
        if k % 3 == 1:
            continue
        thief = f"203.0.{rng.randrange(100)}.{rng.randrange(1, 255)}"
        at = start + rng.choice([0, 0, 1, 30])
        for _ in range(rng.randrange(1, 4)):
            records.append(rec(at, acct, region, sourceIPAddress=thief, userIdentity=ui,
                               eventName=rng.choice(["GetCallerIdentity", "ListBuckets"])))
        if instance and rng.random() < 0.5:
            records.append(rec(at, acct, region, eventSource="ec2.amazonaws.com", eventName="AssociateAddress",
                               sourceIPAddress="198.51.100.7",
                               userIdentity={"type": "IAMUser", "accountId": acct,
                                             "arn": f"arn:aws:iam::{acct}:user/ops", "accessKeyId": "AKIAIOSFODNN7EXAMPLE"},
                               requestParameters={"instanceId": instance, "allocationId": "eipalloc-1"}))
    # As in Panther's fixtures (and CloudTrail's own redeliveries): some event ids come twice,
    # in another file, here with another API name so the choice between copies shows; some
    # records carry an empty event id.
    for r in list(records):
        x = rng.random()
        if x < 0.05:
            records.append(dict(r, eventName="GetObject", awsRegion=rng.choice(regions)))
        elif x < 0.07:
            r["eventID"] = ""
    rng.shuffle(records)
    files = {}
    for r in records:
        day = r["eventTime"][:10].replace("-", "/")
        name = f"{uuid.UUID(int=rng.getrandbits(128))}.json.gz" if rng.random() < 0.3 else None
        d = os.path.join(root, "AWSLogs", r["recipientAccountId"], "CloudTrail", r["awsRegion"], day)
        bucket = files.setdefault(d, [[]])
        if name or len(bucket[-1]) >= 40:
            bucket.append([])
        bucket[-1].append(r)
    for d, chunks in files.items():
        os.makedirs(d, exist_ok=True)
        for chunk in chunks:
            if chunk:
                name = f"{uuid.UUID(int=rng.getrandbits(128))}.json.gz"
                with gzip.open(os.path.join(d, name), "wt") as f:
                    json.dump({"Records": chunk}, f)
    return root


def trace_keys(con, local_alerts, limit=3):
    """The keys worth tracing: every alerted one, else the most used temporary keys."""
    keys = sorted({json.loads(a)["access_key_id"] for a in local_alerts})
    if not keys:
        # Only keys whose records carry eventTime, as every file a trail delivers does (OTRF's
        # SIEM export has only @timestamp, which the local reader accepts and a table has not).
        keys = [k for (k,) in con.execute(f"""SELECT useridentity.accesskeyid FROM {TABLE}
            WHERE useridentity.accesskeyid LIKE 'ASIA%' AND eventtime IS NOT NULL
            GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT {limit}""").fetchall()]
    return [k for k in keys if re.fullmatch(r"[A-Za-z0-9]{16,128}", k)][:limit]


def check_trace(binary, d, con, key, tmp):
    """`trace --athena`'s SQL on DuckDB against a local `trace` of the same files: calls, first
    and last use, calls and errors per network source, and the high-risk APIs must agree."""
    failures = []
    plan = json.loads(ctguard(binary, "trace", "--athena", TABLE, "--access-key", key, "--plan", "--output", "json"))
    cur = con.execute(sqlglot.transpile(plan["sql"], read="athena", write="duckdb")[0])
    names = [c[0] for c in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    out = os.path.join(tmp, "trace-rows.jsonl")
    with open(out, "w") as f:
        for r in rows:
            f.write(json.dumps(r, default=str) + "\n")
    items = [json.loads(l) for l in ctguard(binary, "--json", "trace", "--athena", TABLE, "--access-key", key,
                                            "--replay-rows", out).splitlines() if l.strip()]
    local = [json.loads(l) for l in ctguard(binary, "--json", "trace", "--access-key", key, d).splitlines() if l.strip()]
    summary = next(x for x in local if x.get("kind") == "summary")
    uses = [r for r in rows if r["kind"] == "use"]
    got = {
        "calls": sum(int(r["calls"]) for r in uses),
        "first_use": min((r["first_time"] for r in uses), default=None),
        "last_use": max((r["last_time"] for r in uses), default=None),
    }
    want = {k: summary.get(k) for k in got}
    if got != want:
        failures.append(f"{d} trace {key}: {got} != local {want}")
    per_src, local_src = {}, {}
    for r in uses:
        src = r.get("vpcendpointid") or r.get("sourceipaddress")
        c = per_src.setdefault(src, [0, 0])
        c[0] += int(r["calls"])
        c[1] += int(r["calls"]) if r.get("errorcode") else 0
    for x in local:
        if x.get("kind") == "source":
            s = x["source"]
            # Local labels name private addresses ("private 10.0.1.50"); the rows carry the address.
            local_src[s["network"].removeprefix("private ")] = [s["calls"], s["errors"]]
    if per_src != local_src:
        failures.append(f"{d} trace {key}: per source {per_src} != local {local_src}")
    risky = sorted({(i.get("eventsource"), i.get("eventname")) for i in items if i.get("risk") and i.get("kind") == "use"})
    local_risky = sorted({(x["event"]["event_source"], x["event"]["event_name"]) for x in local if x.get("kind") == "high_risk"})
    if risky != local_risky:
        failures.append(f"{d} trace {key}: high-risk APIs {risky} != local {local_risky}")
    print(f"{os.path.basename(d)} trace {key}: {got['calls']} calls in {len(rows)} rows, {len(per_src)} sources, "
          f"{len(risky)} high-risk APIs")
    return failures


def main():
    binary, dirs = sys.argv[1], sys.argv[2:]
    cols = schema()
    assert any(n == "useridentity" for n, _ in cols), "the DDL parsed"
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (1, 2, 3):
            d = generate(os.path.join(tmp, f"generated-{seed}"), seed)
            n = len(alerts(ctguard(binary, "scan", d, "--output", "json")))
            if n == 0:
                failures.append(f"{d}: the generated corpus raised no alert, so it compares nothing")
            dirs.append(d)
        for d in dirs:
            failures += check(binary, d, cols, tmp)
    if failures:
        print("\n".join(failures), file=sys.stderr)
        raise SystemExit(1)
    print(f"athena SQL check: {len(dirs)} datasets (3 generated), alerts identical")


if __name__ == "__main__":
    main()
