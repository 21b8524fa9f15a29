#!/usr/bin/env python3
"""Load for the audit log's crash test: THREADS clients, each on its own keep-alive connection to the gateway's API,
alternating the health page and a CALL_NIK with a malformed NIK (answered 15 after the quota gate, so it spends a
unit without needing the warehouse), printing `ACK <audit seq> <request id> <quotaLimiter or ->` for every complete
answer it received (the quota only from an answer that went past the quota gate), and stopping at the first failure (the gateway was killed). Standard library only, written apart from the
gateway's code: what it prints is the clients' own account of what was answered."""

import http.client
import json
import sys
import threading

host, port, threads, user, password = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
lock = threading.Lock()
body = json.dumps({"user_id": user, "password": password, "NIK": "12345"})


def client(n):
    conn = http.client.HTTPConnection(host, port, timeout=2)
    i = 0
    while True:
        try:
            if (n + i) % 2:
                conn.request("GET", "/")
            else:
                conn.request("POST", "/dukcapil/get_json/DINSOS_3374/CALL_NIK", body,
                             {"Content-Type": "application/json"})
            reply = conn.getresponse()
            data = reply.read()
            seq, rid = reply.getheader("x-simpul-audit-seq"), reply.getheader("x-request-id")
            # Only an answer past the quota gate (200, code 15) tells what is left; a 429 tells nothing (0).
            quota = json.loads(data).get("quotaLimiter", "-") if (n + i) % 2 == 0 and reply.status == 200 else "-"
            if seq is None or rid is None:
                with lock:
                    print(f"UNAUDITED {reply.status}", flush=True)
                return
            with lock:
                print(f"ACK {seq} {rid} {quota}", flush=True)
        except Exception:
            return
        i += 1


workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
