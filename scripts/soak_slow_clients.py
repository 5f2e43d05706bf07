#!/usr/bin/env python3
"""Slow clients of the soak test (scripts/soak.sh): each worker asks for /albums/slow?seconds=S
on a raw socket, again and again until the time is up, and hangs up at a random moment.

Usage: soak_slow_clients.py PORT SECONDS WORKERS OUT_JSON

A request is *abandoned* if the client closes its socket before it has the whole response: the
server must then log one `request ended early ... cause="client disconnected"` for it, and
for no other request. Two kinds of request, so that the count is exact:

- 60 % abandoned: a 30 s query, and a hang-up at 0.1..2.5 s: long before the query could
  end, and before the server's 5 s timeout. A query that the hang-up does not stop would hold
  its database connection for 30 s, which the soak's checks see (no query left running, the
  audit trail, wrk's errors once the connections run out). The hang-up is a close (FIN), or
  from 0.5 s on, in half the cases, a reset (SO_LINGER 0: RST); a reset that comes before
  the server has read the request would erase the request, so it waits that long.
- 40 % complete before the hang-up: an S = 0.3..2.5 s query on a keep-alive connection; the
  client reads the whole answer, checks it, and hangs up (FIN or RST) 0..0.5 s later, with no
  request in flight. Hanging up at a set time instead would race the answer: one that the
  server has written but the client has not read yet is done for the server (no event) and
  missing for the client.
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
        self.counts = {"sent": 0, "abandoned": 0, "completed": 0, "fin": 0, "rst": 0}
        self.errors = []

    def add(self, key):
        with self.lock:
            self.counts[key] += 1

    def error(self, text):
        with self.lock:
            self.errors.append(text)


def reset_on_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def one(port, rng, stats):
    abandon = rng.random() < 0.6
    if abandon:
        seconds, hang_up = 30, rng.uniform(0.1, 2.5)
        head = "Connection: close\r\n"
    else:
        seconds, hang_up = round(rng.uniform(0.3, 2.5), 3), None
        head = ""
    path = f"/albums/slow?seconds={seconds}"
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    start = time.monotonic()
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: soak\r\n{head}\r\n".encode())
    stats.add("sent")
    # Abandoned: read until the hang-up (nothing should come). Complete: until the answer is
    # whole, at most the server's 5 s timeout and then some.
    until = start + (hang_up if abandon else seconds + 10)
    buf = b""
    answer = None
    while answer is None:
        left = until - time.monotonic()
        if left <= 0:
            break
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        answer = complete(buf)
    rst = rng.random() < 0.5
    if abandon:
        if buf:
            stats.error(f"{path}: {buf[:200]!r} before the hang-up at {hang_up:.3f} s")
        if rst and hang_up >= 0.5:
            reset_on_close(sock)
            stats.add("rst")
        else:
            stats.add("fin")
        sock.close()
        stats.add("abandoned")
        return
    if answer is None:
        sock.close()
        stats.error(f"{path}: no whole answer within {seconds + 10} s: {buf[:200]!r}")
        return
    status, body = answer
    if status != 200 or json.loads(body) != SEED:
        stats.error(f"{path}: status {status}, body {body[:200]!r}")
    stats.add("completed")
    time.sleep(rng.uniform(0, 0.5))
    if rst:
        reset_on_close(sock)
    sock.close()


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
