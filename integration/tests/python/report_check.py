#!/usr/bin/env python3
"""Independent oracle for the semester (monev) report and the CSV export, for core/tests/audit_report_python.rs.

Written from the report's specification with the standard library only (json, csv, zoneinfo), not from the Rust code:
every figure of every report CSV is recomputed from the JSONL audit export alone and compared, row by row and then
byte for byte.

usage: report_check.py JSONL CSV_DIR SEMESTER ZONE QUOTAS_JSON [--only INSTITUTION] [--export EXPORT_CSV]

Rules (from the specification):
- Counted: request records with an institution whose time, as a calendar day in ZONE, lies in SEMESTER
  ("YYYY-1" = January..June, "YYYY-2" = July..December); with --only, that institution's alone.
- Institutions listed: those in QUOTAS plus those with counted records (with --only, just that one, even if idle).
- CSV: comma separated, CRLF line ends, RFC 4180 quoting; a field longer than one character starting with
  = + - @ TAB or CR gets a leading apostrophe (formula guard).
Exit status 0 when everything matches; otherwise 1 and the first difference on stderr.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo


class Mismatch(Exception):
    pass


def parse_semester(text: str) -> tuple[dt.date, dt.date]:
    match = re.fullmatch(r"(\d{4})-([12])", text)
    if not match:
        raise SystemExit(f"bad semester {text!r}")
    year, half = int(match.group(1)), int(match.group(2))
    if half == 1:
        return dt.date(year, 1, 1), dt.date(year, 6, 30)
    return dt.date(year, 7, 1), dt.date(year, 12, 31)


def parse_time(text: str) -> dt.datetime:
    # yyyy-mm-ddThh:mm:ss.nnnnnnnnnZ; Python keeps microseconds, and dropping the last three digits never changes the
    # second, so never the day.
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{9})Z", text)
    if not match:
        raise Mismatch(f"time {text!r} is not in the canonical form")
    base = dt.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    return base + dt.timedelta(microseconds=int(match.group(2)[:6]))


def outcome_text(outcome) -> str:
    if outcome == "data":
        return "data"
    if "code" in outcome:
        return outcome["code"]
    return f"http {outcome['http']}"


def outcome_order(text: str):
    if text.startswith("http "):
        return (1, int(text[5:]), "")
    return (0, 0, text)


def guard(value: str) -> str:
    if len(value) > 1 and value[0] in "=+-@\t\r":
        return "'" + value
    return value


def encode_csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    for row in rows:
        writer.writerow([guard(field) for field in row])
    return out.getvalue().encode("utf-8")


def compare(name: str, path: Path, want: list[list[str]]) -> None:
    data = path.read_bytes()
    got = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    guarded = [[guard(field) for field in row] for row in want]
    for line, (g, w) in enumerate(zip(got, guarded), start=1):
        if g != w:
            raise Mismatch(f"{name} row {line}: got {g!r}, want {w!r}")
    if len(got) != len(guarded):
        raise Mismatch(f"{name}: {len(got)} rows, want {len(guarded)}")
    expected = encode_csv(want)
    if data != expected:
        at = next((i for i, (a, b) in enumerate(zip(data, expected)) if a != b), min(len(data), len(expected)))
        raise Mismatch(f"{name}: same values but different bytes at offset {at}: {data[at - 20:at + 20]!r}")


def canonical_json(value) -> str:
    """The record encoding's rules for the free-form admin detail: sorted keys, no spaces, \\u00xx escapes."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        out = ['"']
        for ch in value:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ord(ch) < 0x20:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        out.append('"')
        return "".join(out)
    if isinstance(value, list):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-8"))
        return "{" + ",".join(canonical_json(k) + ":" + canonical_json(value[k]) for k in keys) + "}"
    raise Mismatch(f"unexpected JSON value {value!r}")


def actor_text(admin: dict) -> str:
    """Who acted, as the CSV export spells it: v1 records name a uid only, v2 a typed actor."""
    if "actor_uid" in admin:
        return f"cli uid {admin['actor_uid']}"
    actor = admin["actor"]
    if actor["kind"] == "cli":
        pid = "" if actor["pid"] is None else f" pid {actor['pid']}"
        return f"cli uid {actor['uid']}{pid}"
    field = {"console": "admin", "device": "device", "system": "task"}[actor["kind"]]
    return f"{actor['kind']} {actor[field]}"


def export_rows(records: list[dict]) -> list[list[str]]:
    header = (
        "seq at kind request_id institution user device tunnel_source ip_claim route method elements_requested "
        "elements_returned outcome source quota_charged latency_us bytes_in bytes_out subjects admin_actor "
        "admin_action admin_target admin_detail"
    ).split()
    rows = [header]
    text = lambda v: "" if v is None else str(v)  # noqa: E731
    for rec in records:
        row = {"seq": str(rec["seq"]), "at": rec["at"]}
        if "request" in rec:
            r = rec["request"]
            row.update(
                kind="request",
                request_id=r["request_id"],
                institution=text(r["institution"]),
                user=text(r["user"]),
                device=r["device"],
                tunnel_source=r["tunnel_source"],
                ip_claim=text(r["ip_claim"]),
                route=r["route"],
                method=text(r["method"]),
                elements_requested=" ".join(r["elements_requested"]),
                elements_returned=" ".join(r["elements_returned"]),
                outcome=outcome_text(r["outcome"]),
                source=r["source"],
                quota_charged="true" if r["quota_charged"] else "false",
                latency_us=str(r["latency_us"]),
                bytes_in=str(r["bytes_in"]),
                bytes_out=str(r["bytes_out"]),
                subjects=" ".join(r["subjects"]),
            )
        else:
            a = rec["admin"]
            row.update(
                kind="admin",
                subjects=" ".join(a.get("subjects", [])),
                admin_actor=actor_text(a),
                admin_action=a["action"],
                admin_target=a["target"],
                admin_detail=canonical_json(a["detail"]),
            )
        rows.append([row.get(column, "") for column in header])
    return rows


def report_tables(records, first, last, zone, quotas, only):
    requests = Counter()
    data = Counter()
    charged = Counter()
    day_method = Counter()
    day_charged = defaultdict(Counter)
    refusals = Counter()
    users = defaultdict(Counter)
    persons = defaultdict(set)
    institutions = {i for i in quotas if only is None or i == only}
    if only is not None:
        institutions.add(only)
    for rec in records:
        r = rec.get("request")
        if r is None or r["institution"] is None:
            continue
        inst = r["institution"]
        if only is not None and inst != only:
            continue
        day = parse_time(rec["at"]).astimezone(zone).date()
        if not first <= day <= last:
            continue
        institutions.add(inst)
        requests[inst] += 1
        outcome = outcome_text(r["outcome"])
        if outcome == "data":
            data[inst] += 1
        else:
            refusals[(inst, outcome)] += 1
        day_method[(inst, day.isoformat(), r["method"] or "-")] += 1
        day_charged[inst][day.isoformat()] += 1 if r["quota_charged"] else 0
        charged[inst] += 1 if r["quota_charged"] else 0
        if r["user"] is not None:
            users[inst][r["user"]] += 1
        persons[inst].update(r["subjects"])

    def quota(inst):
        return str(quotas[inst]) if inst in quotas else ""

    order = sorted(institutions)
    summary = [["institution", "requests", "data_answers", "refusals", "quota_charged", "distinct_persons",
                "daily_quota"]]
    for inst in order:
        summary.append([inst, str(requests[inst]), str(data[inst]), str(requests[inst] - data[inst]),
                        str(charged[inst]), str(len(persons[inst])), quota(inst)])
    by_day_method = [["institution", "day", "method", "requests"]]
    by_day_method += [[i, d, m, str(n)] for (i, d, m), n in sorted(day_method.items())]
    refusal_rows = [["institution", "outcome", "count"]]
    refusal_rows += [
        [i, o, str(n)] for (i, o), n in sorted(refusals.items(), key=lambda kv: (kv[0][0], outcome_order(kv[0][1])))
    ]
    quota_rows = [["institution", "day", "charged", "daily_quota"]]
    for inst in order:
        quota_rows += [[inst, d, str(n), quota(inst)] for d, n in sorted(day_charged[inst].items())]
    top = [["institution", "rank", "user", "requests"]]
    for inst in order:
        ranked = sorted(users[inst].items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        top += [[inst, str(rank), user, str(n)] for rank, (user, n) in enumerate(ranked, start=1)]
    return {
        "summary.csv": summary,
        "requests_by_day_method.csv": by_day_method,
        "refusals_by_code.csv": refusal_rows,
        "quota_by_day.csv": quota_rows,
        "top_users.csv": top,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("jsonl", type=Path)
    parser.add_argument("csv_dir", type=Path)
    parser.add_argument("semester")
    parser.add_argument("zone")
    parser.add_argument("quotas")
    parser.add_argument("--only")
    parser.add_argument("--export", type=Path)
    args = parser.parse_args()

    first, last = parse_semester(args.semester)
    zone = ZoneInfo(args.zone)
    quotas = json.loads(args.quotas)
    raw = args.jsonl.read_bytes()
    try:
        if not raw.endswith(b"\n"):
            raise Mismatch("JSONL does not end with a newline")
        records = [json.loads(line) for line in raw[:-1].split(b"\n")]
        for name, rows in report_tables(records, first, last, zone, quotas, args.only).items():
            compare(name, args.csv_dir / name, rows)
        if args.export is not None:
            compare(args.export.name, args.export, export_rows(records))
    except Mismatch as difference:
        print(f"report_check: {difference}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
