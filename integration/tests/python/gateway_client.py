#!/usr/bin/env python3
"""A regional office application calling the Simpul gateway through its WireGuard tunnel, written the way such
applications are: Python `requests`, upper-case keys, every value a string (or the NIK as a JSON number), an IP
claim, the odd Content-Type, credentials in the query string. Nothing here knows it talks to a gateway rather than
to Dukcapil itself: only the base URL differs.

Run by gateway/tests/api.rs inside the client's network namespace (`ip netns exec`), with the tunnel up:

    gateway_client.py clients BASE_URL CASES_JSON
    gateway_client.py concurrent BASE_URL CASES_JSON

CASES_JSON: {"consumer": ..., "user": ..., "password": ..., "nik": "...", "nama": ..., "tgl_lhr": "yyyy-mm-dd"} for
`clients`, which prints one JSON line per request: {"case", "status", "content_type", "allow", "body"}, the body
parsed as JSON when it is JSON. For `concurrent`, {"consumer", "user", "password", "nik", "requests": N, "warm": bool}:
N threads, each with a connection of its own, released together by a barrier; one JSON line with the N results
({"status", "body"}). With "warm", each thread first opens its connection (a GET of the health page, one thread at a
time) and the barrier releases N requests on open connections; without, N new connections at once.
The Rust side asserts on them; this script only fails if `requests` itself raises.
"""

from __future__ import annotations

import json
import sys
import threading

import requests

# What the application believes its address is; the gateway trusts the tunnel instead.
IP_USER = "192.168.10.5"
# Seen in the field: the Accept header glued into the Content-Type.
HEADERS = {"Content-Type": "application/json,Accept: application/json"}
TIMEOUT = 30


def result(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return {
        "status": response.status_code,
        "content_type": response.headers.get("Content-Type"),
        "allow": response.headers.get("Allow"),
        "body": body,
    }


def report(case: str, response: requests.Response) -> None:
    print(json.dumps({"case": case, **result(response)}), flush=True)


def clients(base: str, cases: dict) -> None:
    user, password, nik = cases["user"], cases["password"], cases["nik"]
    central = f"{base}/dukcapil/get_json/{cases['consumer']}"
    session = requests.Session()

    # Upper-case keys, every value a string, an IP claim, the malformed Content-Type, a hand-serialised body.
    body = {"USER_ID": user, "PASSWORD": password, "IP_USER": IP_USER, "NIK": nik}
    report("upper_case_strings", session.post(f"{central}/CALL_NIK", data=json.dumps(body), headers=HEADERS,
                                              timeout=TIMEOUT))
    # `json=`: lower-case keys, the NIK as a JSON number, a key the gateway does not know.
    body = {"user_id": user, "password": password, "NIK": int(nik), "transactionId": "TRX-0001"}
    report("nik_as_number", session.post(f"{central}/call_nik", json=body, timeout=TIMEOUT))
    # Everything in the query string, with an empty body.
    params = {"USER_ID": user, "PASSWORD": password, "NIK": nik}
    report("query_string", session.post(f"{central}/CALL_NIK", params=params, data=b"", timeout=TIMEOUT))
    # The older regional route with the method in lower case, and `USERID`.
    body = {"USERID": user, "PASSWORD": password, "NIK": nik, "IP_USER": IP_USER}
    report("regional_route", session.post(f"{base}/dukcapil/get_json/33-74/dinsos_3374/call_nik",
                                          data=json.dumps(body), headers=HEADERS, timeout=TIMEOUT))
    # Verification: the threshold as a string, the date as dd-mm-yyyy, the name in lower case.
    yyyy, mm, dd = cases["tgl_lhr"].split("-")
    body = {"USER_ID": user, "PASSWORD": password, "IP_USER": IP_USER, "NIK": nik, "NAMA_LGKP": cases["nama"].lower(),
            "TGL_LHR": f"{dd}-{mm}-{yyyy}", "TRESHOLD": "80"}
    report("verify", session.post(f"{central}/CALL_VERIFY_BY_ELEMEN", data=json.dumps(body), headers=HEADERS,
                                  timeout=TIMEOUT))
    # requests sends the whole body before reading the answer: the 413 must still arrive.
    report("too_large", session.post(f"{central}/CALL_NIK", data=b" " * (100 * 1024), headers=HEADERS,
                                     timeout=TIMEOUT))
    report("get", session.get(f"{central}/CALL_NIK", timeout=TIMEOUT))


def concurrent(base: str, cases: dict) -> None:
    url = f"{base}/dukcapil/get_json/{cases['consumer']}/CALL_NIK"
    body = json.dumps({"USER_ID": cases["user"], "PASSWORD": cases["password"], "NIK": cases["nik"]})
    count = int(cases["requests"])
    warm = bool(cases.get("warm"))
    start = threading.Barrier(count)
    one_at_a_time = threading.Lock()
    results: list = [None] * count

    def one(i: int) -> None:
        session = requests.Session()
        try:
            if warm:
                # The connection the request will reuse, opened one thread at a time before the barrier.
                with one_at_a_time:
                    session.get(f"{base}/", timeout=60).raise_for_status()
            start.wait()
            results[i] = result(session.post(url, data=body, headers=HEADERS, timeout=60))
        except requests.RequestException as e:
            results[i] = {"status": 0, "body": str(e)}

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(results), flush=True)


def main() -> None:
    mode, base, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    {"clients": clients, "concurrent": concurrent}[mode](base, cases)


if __name__ == "__main__":
    main()
