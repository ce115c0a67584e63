#!/usr/bin/env python3
"""Both ends of bench/connect-storm.ts, run inside the benchmark's own network namespace.

  storm-peer.py serve PORT [HOST]                 accept and close, forever (until SIGTERM)
  storm-peer.py connect PORT RATE SECONDS [HOST]  RATE connects/s (0: as fast as possible) to HOST:PORT for SECONDS;
                                                  HOST defaults to 127.0.0.1; prints one JSON line {"connects": N, "failed": F, "seconds": S,
                                                  "cpu": user + system CPU seconds of this process (getrusage)}
  storm-peer.py slots PORT SECONDS [HOST]         as fast as possible for SECONDS; prints one JSON line
                                                  {"samples": [[CLOCK_MONOTONIC ns, connects so far], ...]}, a
                                                  sample every 16 connects (bench/probe-cost.ts)

Blocking connects paced in 10 ms slots; each socket is closed with an RST (SO_LINGER 0) so that no TIME_WAIT
piles up and the ephemeral ports last at 20,000 connects/s.
"""
import json
import resource
import socket
import struct
import sys
import time

LINGER0 = struct.pack('ii', 1, 0)


def serve(port, host):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(65535)
    print('L', flush=True)
    while True:
        c, _ = s.accept()
        c.close()


def connect(port, rate, seconds, host):
    addr = (host, port)
    connects = failed = 0
    start = time.monotonic()
    end = start + seconds
    slot = 0.01
    per_slot = rate * slot
    due = 0.0
    now = start
    while now < end:
        if rate:
            due += per_slot
            burst = int(due)
            due -= burst
        else:
            burst = 64
        for _ in range(burst):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
            try:
                s.connect(addr)
                connects += 1
            except OSError:
                failed += 1
            s.close()
        now = time.monotonic()
        if rate:
            # next slot boundary; a slot that overran is caught up by the next bursts
            wait = start + slot * (int((now - start) / slot) + 1) - now
            if wait > 0:
                time.sleep(wait)
                now = time.monotonic()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({'connects': connects, 'failed': failed, 'seconds': time.monotonic() - start,
                      'cpu': usage.ru_utime + usage.ru_stime}), flush=True)


def slots(port, seconds, host):
    addr = (host, port)
    samples = [[time.monotonic_ns(), 0]]
    connects = 0
    end = time.monotonic_ns() + int(seconds * 1e9)
    while samples[-1][0] < end:
        for _ in range(16):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
            try:
                s.connect(addr)
            except OSError:
                pass
            s.close()
        connects += 16
        samples.append([time.monotonic_ns(), connects])
    print(json.dumps({'samples': samples}), flush=True)


if __name__ == '__main__':
    mode = sys.argv[1] if len(sys.argv) > 1 else ''
    if mode == 'serve' and len(sys.argv) in (3, 4):
        serve(int(sys.argv[2]), sys.argv[3] if len(sys.argv) == 4 else '127.0.0.1')
    elif mode == 'connect' and len(sys.argv) in (5, 6):
        connect(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5] if len(sys.argv) == 6 else '127.0.0.1')
    elif mode == 'slots' and len(sys.argv) in (4, 5):
        slots(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] if len(sys.argv) == 5 else '127.0.0.1')
    else:
        sys.exit('usage: storm-peer.py serve PORT [HOST] | connect PORT RATE SECONDS [HOST] | slots PORT SECONDS [HOST]')
