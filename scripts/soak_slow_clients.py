#!/usr/bin/env python3
"""Slow clients of the soak test (scripts/soak.sh): each worker asks for /albums/slow?seconds=S
on a raw socket, again and again until the time is up, and hangs up at a random moment.

Usage: soak_slow_clients.py PORT SECONDS WORKERS OUT_JSON

A request is *abandoned* if the client closes its socket before it has the whole response: the
server must then log one `request ended early ... cause="client disconnected"` for it. Two
kinds of request:

- 60 %: a 30 s query, abandoned at 0.1..2.5 s ("early"): long before the query could end, and
  before the server's 5 s timeout, so an abandoned request for certain. A query that the
  hang-up does not stop would hold its database connection for 30 s: the soak's checks (no
  query left running, the audit trail, wrk's errors once the connections run out) see it.
- 40 %: an S = 0.3..2.5 s query, and a hang-up at S + 0.5..2 s ("late"). Normally the answer
  has arrived by then: the client reads it whole, checks it, and closes a finished exchange
  (not abandoned). If the server was slower than that, the client hangs up first and counts
  the request as abandoned ("late").

Half of the hang-ups close the socket (FIN), half reset it (SO_LINGER 0: RST).
"""

import json
import random
import select
import socket
import struct
import sys
import threading
import time

SEED = [
    {"id": 1, "title": "Blue Train", "artist": "John Coltrane", "price": 56.99},
    {"id": 2, "title": "Jeru", "artist": "Gerry Mulligan", "price": 17.99},
    {"id": 3, "title": "Sarah Vaughan and Clifford Brown", "artist": "Sarah Vaughan", "price": 39.99},
    {"id": 4, "title": "Kind of Blue", "artist": "Miles Davis", "price": 24.99},
    {"id": 5, "title": "Mingus Ah Um", "artist": "Charles Mingus", "price": 19.99},
]


def complete(buf):
    """The status and body of a whole HTTP/1.1 response in `buf`, or None if it is not whole."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = buf[:head_end].decode("latin-1").split("\r\n")
    length = None
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length is None:
        raise ValueError(f"no content-length in {head!r}")
    body = buf[head_end + 4:]
    if len(body) < length:
        return None
    return int(head[0].split()[1]), body[:length]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {"sent": 0, "abandoned_early": 0, "abandoned_late": 0, "completed": 0,
                       "fin": 0, "rst": 0}
        self.errors = []

    def add(self, key):
        with self.lock:
            self.counts[key] += 1

    def error(self, text):
        with self.lock:
            self.errors.append(text)


def one(port, rng, stats):
    early = rng.random() < 0.6
    if early:
        seconds, hang_up = 30, rng.uniform(0.1, 2.5)
    else:
        seconds = round(rng.uniform(0.3, 2.5), 3)
        hang_up = seconds + rng.uniform(0.5, 2.0)
    path = f"/albums/slow?seconds={seconds}"
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    start = time.monotonic()
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n".encode())
    stats.add("sent")
    buf = b""
    answer = None
    closed_by_server = False
    while answer is None:
        left = start + hang_up - time.monotonic()
        if left <= 0:
            break
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            break
        chunk = sock.recv(65536)
        if not chunk:
            closed_by_server = True
            break
        buf += chunk
        answer = complete(buf)
    if answer is not None:
        sock.close()
        status, body = answer
        stats.add("completed")
        if early:
            stats.error(f"{path}: answered {time.monotonic() - start:.3f} s in, before its query could end")
        elif status != 200 or json.loads(body) != SEED:
            stats.error(f"{path}: status {status}, body {body[:200]!r}")
        return
    if closed_by_server:
        sock.close()
        stats.error(f"{path}: the server closed the connection without a whole answer: {buf[:200]!r}")
        return
    # Hang up with the answer not (wholly) here.
    if rng.random() < 0.5:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stats.add("rst")
    else:
        stats.add("fin")
    sock.close()
    stats.add("abandoned_early" if early else "abandoned_late")


def worker(port, until, seed, stats):
    rng = random.Random(seed)
    while time.monotonic() < until:
        try:
            one(port, rng, stats)
        except Exception as err:  # a refused or reset connection: the server failed
            stats.error(f"slow client: {err!r}")
            time.sleep(0.1)


def main():
    port, seconds, workers, out = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    until = time.monotonic() + seconds
    stats = Stats()
    threads = [threading.Thread(target=worker, args=(port, until, 1000 + i, stats))
               for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(out, "w") as f:
        json.dump({**stats.counts, "errors": stats.errors[:20], "error_count": len(stats.errors)}, f)


if __name__ == "__main__":
    main()
