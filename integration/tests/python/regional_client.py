#!/usr/bin/env python3
"""A regional office application's Dukcapil client, written the way such applications are: Python `requests`,
upper-case keys, every value a string, an IP claim, the odd Content-Type, `verify=` pointing at the server's
certificate.

Run by integration/tests/warehouse_clients.rs against an in-process simpul-warehouse:

    regional_client.py BASE_URL CERT_PEM CASES_JSON

CASES_JSON names the NIKs to use ({"alive": ..., "unknown": ..., "nama": ..., "tgl_lhr": "yyyy-mm-dd"}). One JSON
line per request goes to stdout: {"case", "status", "content_type", "allow", "body"}, the body parsed as JSON when
it is JSON. The Rust side asserts on them; this script only fails if `requests` itself raises.
"""

from __future__ import annotations

import json
import sys

import requests

USER_ID = "rsud01"
PASSWORD = "rahasia-rsud"
# What the application believes its address is; the warehouse logs it and trusts the TCP peer address instead.
IP_USER = "192.168.10.5"
# Seen in the field: the Accept header glued into the Content-Type.
HEADERS = {"Content-Type": "application/json,Accept: application/json"}


def report(case: str, response: requests.Response) -> None:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    print(json.dumps({
        "case": case,
        "status": response.status_code,
        "content_type": response.headers.get("Content-Type"),
        "allow": response.headers.get("Allow"),
        "body": body,
    }), flush=True)


def main() -> None:
    base, cert, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    regional = f"{base}/dukcapil/get_json/32-76/rsud_3276"
    session = requests.Session()
    # `verify=` on every call, as applications do: a Session's own `verify` loses to REQUESTS_CA_BUNDLE when that is
    # set in the environment (requests issue 3829), and CI images often set it.
    tls = {"verify": cert, "timeout": 30}

    def post(case: str, method: str, payload: dict) -> None:
        body = {"USER_ID": USER_ID, "PASSWORD": PASSWORD, "IP_USER": IP_USER, **payload}
        report(case, session.post(f"{regional}/{method}", data=json.dumps(body), headers=HEADERS, **tls))

    post("cek_pasien", "cek_pasien", {"NIK": cases["alive"]})
    post("call_nik_lower", "call_nik", {"NIK": cases["alive"], "transactionId": "TRX-0001"})
    post("not_found", "CALL_NIK", {"NIK": cases["unknown"]})
    yyyy, mm, dd = cases["tgl_lhr"].split("-")
    post("verify", "CALL_VERIFY_BY_ELEMEN", {
        "NIK": cases["alive"],
        "NAMA_LGKP": cases["nama"].lower(),
        "TGL_LHR": f"{dd}-{mm}-{yyyy}",
        "TMPT_LHR": "ANTAH BERANTAH",
        "TRESHOLD": "80",
    })
    report("wrong_password", session.post(
        f"{regional}/call_nik",
        data=json.dumps({"USER_ID": USER_ID, "PASSWORD": "salah", "NIK": cases["alive"], "IP_USER": IP_USER}),
        headers=HEADERS,
        **tls,
    ))
    # The client that sends everything in the query string with an empty body.
    report("query_string", session.post(
        f"{regional}/call_nik",
        params={"USER_ID": USER_ID, "PASSWORD": PASSWORD, "NIK": cases["alive"]},
        data=b"",
        **tls,
    ))
    # requests sends the whole body before reading the answer: the 413 must still arrive.
    report("too_large", session.post(f"{regional}/call_nik", data=b" " * (2 * 1024 * 1024), headers=HEADERS, **tls))
    report("get", session.get(f"{regional}/call_nik", **tls))


if __name__ == "__main__":
    main()
