#!/usr/bin/env python3
"""Measures how the api treats slow clients (README, "Slow clients, measured").

  python3 scripts/slow-clients.py headers HOST:PORT [N] [SECONDS...]
      opens N connections (default 2000) that send half a request head and then nothing;
      prints how many are still open at each of SECONDS after the last one was opened.
  python3 scripts/slow-clients.py body HOST:PORT [SECONDS]
      sends `Content-Length: 10000000000` and one byte; prints when the server answered or
      closed, and what it answered (gives up after SECONDS, default 90).
"""
import socket
import sys
import time


def still_open(s):
    try:
        return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def headers(addr, n, checkpoints):
    host, port = addr.rsplit(":", 1)
    socks = []
    t0 = time.monotonic()
    for _ in range(n):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: measure\r\nX-Slow: ")
        socks.append(s)
    opened = time.monotonic()
    print(f"opened {n} half-header connections in {opened - t0:.2f} s", flush=True)
    for at in checkpoints:
        time.sleep(max(0.0, opened + at - time.monotonic()))
        alive = sum(1 for s in socks if still_open(s))
        print(f"after {at:>5.1f} s: {alive} of {n} still open", flush=True)
    for s in socks:
        s.close()


def body(addr, limit):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    t0 = time.monotonic()
    s.sendall(
        b"POST /ui/session HTTP/1.1\r\nHost: measure\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10000000000\r\n\r\n{"
    )
    s.settimeout(limit)
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            if not got:
                print(f"answer after {time.monotonic() - t0:.2f} s", flush=True)
            got += chunk
        print(f"closed after {time.monotonic() - t0:.2f} s", flush=True)
    except socket.timeout:
        print(f"still open after {limit} s", flush=True)
    except OSError as e:
        print(f"reset after {time.monotonic() - t0:.2f} s ({e})", flush=True)
    print(got.split(b"\r\n", 1)[0].decode() if got else "(no answer)")


if __name__ == "__main__":
    mode, addr = sys.argv[1], sys.argv[2]
    if mode == "headers":
        n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
        points = [float(x) for x in sys.argv[4:]] or [5.0, 9.0, 12.0, 40.0]
        headers(addr, n, points)
    else:
        body(addr, float(sys.argv[3]) if len(sys.argv) > 3 else 90.0)
