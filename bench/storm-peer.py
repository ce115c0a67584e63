#!/usr/bin/env python3
"""Both ends of bench/connect-storm.ts and bench/probe-cost.ts, run inside the benchmark's own network namespace.

  storm-peer.py serve PORT [HOST]                 accept and close, forever (until SIGTERM)
  storm-peer.py connect PORT RATE SECONDS [HOST]  RATE connects/s (0: as fast as possible) to HOST:PORT for SECONDS;
                                                  HOST defaults to 127.0.0.1; prints one JSON line {"connects": N, "failed": F, "seconds": S,
                                                  "cpu": user + system CPU seconds of this process (getrusage)}
  storm-peer.py slots PORT SECONDS [HOST]         as fast as possible for SECONDS; prints one JSON line
                                                  {"samples": [[CLOCK_MONOTONIC ns, connects so far], ...]}, a
                                                  sample every 16 connects (bench/probe-cost.ts)

Blocking connects paced in 10 ms slots; each socket is closed with an RST (SO_LINGER 0) so that no TIME_WAIT
piles up and the ephemeral ports last at 20,000 connects/s: a loop of nothing but connects, the worst case for what a
tool costs per connect.

  storm-peer.py --exchange REQ,RESP MODE ...      one request per connection instead (HTTP/1.0's shape), given to
                                                  both ends: the client sends REQ bytes and reads to EOF; the server
                                                  reads the REQ bytes, answers RESP bytes and closes first (its end
                                                  keeps the TIME_WAIT, as a web server's does); no RST
  storm-peer.py --http MODE ...                   one HTTP/1.0 GET per connection through the standard library
                                                  (http.client against http.server, a 1 KiB answer): an application's
                                                  own work per connect, about 5k connects/s on one core here
"""
import http.client
import http.server
import json
import resource
import socket
import struct
import sys
import time

LINGER0 = struct.pack('ii', 1, 0)
EXCHANGE = None  # (request bytes, response bytes) with --exchange
HTTP = False  # --http
HTTP_BODY = b'h' * 1024


class Answer(http.server.BaseHTTPRequestHandler):
    """--http: every GET answered with HTTP_BODY, HTTP/1.0 (the server closes), nothing logged."""
    protocol_version = 'HTTP/1.0'

    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Length', str(len(HTTP_BODY)))
        self.end_headers()
        self.wfile.write(HTTP_BODY)

    def log_message(self, *args):
        pass


def http_get(addr):
    c = http.client.HTTPConnection(*addr)
    try:
        c.request('GET', '/')
        r = c.getresponse()
        return r.status == 200 and len(r.read()) == len(HTTP_BODY)
    except (OSError, http.client.HTTPException):
        return False
    finally:
        c.close()


def one_connect(addr):
    """One connect (and with --exchange, its request and response); False if it failed."""
    if HTTP:
        return http_get(addr)
    s = socket.socket()
    try:
        if EXCHANGE is None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
            s.connect(addr)
            return True
        s.connect(addr)
        s.sendall(b'q' * EXCHANGE[0])
        got = 0
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        return got == EXCHANGE[1]
    except OSError:
        return False
    finally:
        s.close()


def answer(c):
    """The server's side of one --exchange connection."""
    want = EXCHANGE[0]
    try:
        while want > 0:
            chunk = c.recv(want)
            if not chunk:
                return
            want -= len(chunk)
        c.sendall(RESPONSE)
    except OSError:
        pass


def serve(port, host):
    if HTTP:
        http.server.HTTPServer.request_queue_size = 65535
        server = http.server.HTTPServer((host, port), Answer)
        print('L', flush=True)
        server.serve_forever()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(65535)
    print('L', flush=True)
    while True:
        c, _ = s.accept()
        if EXCHANGE is not None:
            answer(c)
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
            if one_connect(addr):
                connects += 1
            else:
                failed += 1
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
            one_connect(addr)
        connects += 16
        samples.append([time.monotonic_ns(), connects])
    print(json.dumps({'samples': samples}), flush=True)


if __name__ == '__main__':
    if len(sys.argv) > 2 and sys.argv[1] == '--exchange':
        req, resp = (int(n) for n in sys.argv[2].split(','))
        if req < 1 or resp < 0:
            sys.exit(f'storm-peer.py: --exchange {sys.argv[2]}: want REQ,RESP with REQ >= 1 and RESP >= 0 bytes')
        EXCHANGE = (req, resp)
        RESPONSE = b'r' * resp
        del sys.argv[1:3]
    elif len(sys.argv) > 1 and sys.argv[1] == '--http':
        HTTP = True
        del sys.argv[1]
    mode = sys.argv[1] if len(sys.argv) > 1 else ''
    if mode == 'serve' and len(sys.argv) in (3, 4):
        serve(int(sys.argv[2]), sys.argv[3] if len(sys.argv) == 4 else '127.0.0.1')
    elif mode == 'connect' and len(sys.argv) in (5, 6):
        connect(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5] if len(sys.argv) == 6 else '127.0.0.1')
    elif mode == 'slots' and len(sys.argv) in (4, 5):
        slots(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] if len(sys.argv) == 5 else '127.0.0.1')
    else:
        sys.exit('usage: storm-peer.py [--exchange REQ,RESP | --http] serve PORT [HOST] | connect PORT RATE SECONDS [HOST] | slots PORT SECONDS [HOST]')
