#!/usr/bin/env python3
"""NIK oracle for integration/tests/nik_oracle.rs: lokal-id's parse_nik, an independent implementation.

Usage: nik_oracle.py YYYY-MM-DD < inputs > results
stdin: one JSON string per line (the raw input, separators and all).
stdout: first a header {"lokal_id": version, "reference": date}, then one JSON object per input, in order, with
lokal-id's verdict: valid, error and warning codes, the digits, region codes and names, gender, birth date, serial.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from importlib import metadata

from lokal.nik import parse_nik
from lokal.wilayah import wilayah_name


def main() -> None:
    reference = dt.date.fromisoformat(sys.argv[1])
    # Split on '\n' only: str.splitlines would also split inside inputs that hold U+0085 or U+2028.
    inputs = [json.loads(line) for line in sys.stdin.buffer.read().decode('utf-8').split('\n') if line]
    out = sys.stdout
    out.write(json.dumps({'lokal_id': metadata.version('lokal-id'), 'reference': reference.isoformat()}) + '\n')
    for text in inputs:
        info = parse_nik(text, lookup_wilayah=wilayah_name, reference_date=reference)
        out.write(json.dumps({
            'valid': info.valid,
            'errors': [issue.code for issue in info.errors],
            'warnings': [issue.code for issue in info.warnings],
            'nik': info.nik,
            'province_code': info.province_code,
            'regency_code': info.regency_code,
            'district_code': info.district_code,
            'regency': info.regency,
            'district': info.district,
            'gender': info.gender,
            'birth_date': info.birth_date,
            'serial': info.serial,
        }) + '\n')


if __name__ == '__main__':
    main()
