#!/usr/bin/env python3
"""Floods a WireGuard responder with handshake initiations that pass its mac1 check, to show that under load it
answers with cookie replies (before doing any Diffie-Hellman) instead of handshake responses.

Usage:

    initiation_flood.py --public-key BASE64 --endpoint HOST:PORT [--count N] [--rate PER_SECOND] [--bind ADDR]
                        [--wait SECONDS]

Each initiation (148 bytes) has message type 1, a random sender index, random bytes for the ephemeral key, the
encrypted static key and the encrypted timestamp, a correct mac1 and an all-zero mac2:

    mac1 = BLAKE2s-128(key = BLAKE2s-256("mac1----" || responder public key), message[0:116])

A responder that is not under load checks mac1 and then fails to decrypt the garbage, silently; one under load checks
mac1, sees no valid mac2 and sends a 64-byte cookie reply (type 3) to the sender. A wrong mac1 gets nothing at all, so
cookie replies prove the mac1 is right. Handshake responses (type 2) cannot happen: the Diffie-Hellman parts are
garbage.

Everything goes out of one UDP socket, which is drained (non-blocking) between sends, then listened on for --wait
seconds (default 1) after the last send. One JSON line goes to stdout:

    {"sent": N, "cookie_replies": C, "responses": R, "other": O, "seconds": S}

where S is the time spent sending, and O counts datagrams of any other type. The exit status is 0 unless the
arguments are wrong (2) or the socket fails. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import select
import socket
import struct
import time

INITIATION = 1
RESPONSE = 2
COOKIE_REPLY = 3
INITIATION_LEN = 148
COOKIE_REPLY_LEN = 64
# type (4) + sender index (4) + ephemeral (32) + encrypted static (48) + encrypted timestamp (28): what mac1 covers.
MAC1_OFFSET = 116
LABEL_MAC1 = b'mac1----'


def mac1_key(public_key: bytes) -> bytes:
    """The responder's mac1 key: BLAKE2s-256("mac1----" || its static public key)."""
    return hashlib.blake2s(LABEL_MAC1 + public_key, digest_size=32).digest()


def initiation(key: bytes, sender_index: int) -> bytes:
    """A 148-byte handshake initiation with random contents, a valid mac1 under `key` and a zero mac2."""
    body = struct.pack('<II', INITIATION, sender_index) + os.urandom(32 + 48 + 28)
    mac1 = hashlib.blake2s(body, key=key, digest_size=16).digest()
    message = body + mac1 + bytes(16)
    assert len(body) == MAC1_OFFSET and len(message) == INITIATION_LEN
    return message


def public_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f'not base64: {e}') from e
    if len(key) != 32:
        raise argparse.ArgumentTypeError(f'a WireGuard public key is 32 bytes, not {len(key)}')
    return key


def endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(':')
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f'expected HOST:PORT, not {text!r}')
    return host.strip('[]'), int(port)


def positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f'must be positive, not {text}')
        return value
    return parse


class Counts:
    def __init__(self) -> None:
        self.cookie_replies = 0
        self.responses = 0
        self.other = 0

    def count(self, datagram: bytes) -> None:
        kind = struct.unpack_from('<I', datagram)[0] if len(datagram) >= 4 else None
        if kind == COOKIE_REPLY and len(datagram) == COOKIE_REPLY_LEN:
            self.cookie_replies += 1
        elif kind == RESPONSE:
            self.responses += 1
        else:
            self.other += 1

    def drain(self, sock: socket.socket) -> None:
        """Counts every datagram already queued on the non-blocking socket."""
        while True:
            try:
                datagram = sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:
                # An ICMP port unreachable: nobody listens there. Keep going; the counts will say so.
                continue
            self.count(datagram)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--public-key', type=public_key, required=True, help="the responder's public key, base64")
    parser.add_argument('--endpoint', type=endpoint, required=True, help="the responder's HOST:PORT")
    parser.add_argument('--count', type=positive(int), default=20000, help='initiations to send (default 20000)')
    parser.add_argument('--rate', type=positive(float), help='initiations per second (default: as fast as possible)')
    parser.add_argument('--bind', help='local address to send from (default: any)')
    parser.add_argument('--wait', type=float, default=1.0, help='seconds to listen after the last send (default 1)')
    args = parser.parse_args()

    host, port = args.endpoint
    family, _, _, _, target = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    # Room for the replies that arrive while a send waits.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    if args.bind:
        sock.bind((args.bind, 0))
    sock.setblocking(False)

    key = mac1_key(args.public_key)
    counts = Counts()
    sent = 0
    start = time.monotonic()
    for i in range(args.count):
        message = initiation(key, int.from_bytes(os.urandom(4), 'little'))
        if args.rate:
            ahead = start + i / args.rate - time.monotonic()
            while ahead > 0:
                select.select([sock], [], [], ahead)
                counts.drain(sock)
                ahead = start + i / args.rate - time.monotonic()
        while True:
            try:
                sock.sendto(message, target)
                sent += 1
                break
            except (BlockingIOError, InterruptedError):
                # The send buffer is full: read what came back while it empties.
                select.select([sock], [sock], [], 0.01)
                counts.drain(sock)
            except ConnectionRefusedError:
                # A late ICMP error for an earlier datagram; this one was not sent.
                continue
        counts.drain(sock)
    seconds = time.monotonic() - start

    deadline = time.monotonic() + args.wait
    while (left := deadline - time.monotonic()) > 0:
        select.select([sock], [], [], left)
        counts.drain(sock)
    sock.close()

    print(json.dumps({
        'sent': sent,
        'cookie_replies': counts.cookie_replies,
        'responses': counts.responses,
        'other': counts.other,
        'seconds': round(seconds, 3),
    }))


if __name__ == '__main__':
    main()
