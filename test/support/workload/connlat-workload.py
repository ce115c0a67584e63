#!/usr/bin/env python3
# The tests' workload (image localhost/connlat-test-workload:1): a TCP server, or a client that makes an exact number
# of connects, so a test can compare what connlat counted with what was made. Only python3-minimal's modules.
#   connlat-workload serve <port> [--host 0.0.0.0]
#       accept and close every connection, forever; prints "listening <host>:<port>" once bound.
#   connlat-workload connect <host> <port> <count> [--interval-ms 100] [--timeout-ms 2000] [--exit]
#       <count> sequential connects (each closed at once); prints "connect ok=<n> failed=<n>" when done, then sleeps
#       forever (a Deployment's pod must not restart and connect again) unless --exit (Jobs). Exit status 0: every
#       connect was attempted; refused or timed-out connects are counted as failed, not errors.
import argparse
import signal
import socket
import sys
import time


def serve(host: str, port: int) -> None:
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, port))
        server.listen(128)
        print(f'listening {host}:{port}', flush=True)
        while True:
            conn, _ = server.accept()
            conn.close()


def connect(host: str, port: int, count: int, interval_ms: int, timeout_ms: int) -> tuple[int, int]:
    ok = failed = 0
    address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    for i in range(count):
        if i:
            time.sleep(interval_ms / 1000)
        with socket.socket(address[0], socket.SOCK_STREAM) as s:
            s.settimeout(timeout_ms / 1000)
            try:
                s.connect(address[4])
                ok += 1
            except OSError:
                failed += 1
    return ok, failed


def main() -> int:
    parser = argparse.ArgumentParser(prog='connlat-workload')
    sub = parser.add_subparsers(dest='mode', required=True)
    p_serve = sub.add_parser('serve')
    p_serve.add_argument('port', type=int)
    p_serve.add_argument('--host', default='0.0.0.0')
    p_connect = sub.add_parser('connect')
    p_connect.add_argument('host')
    p_connect.add_argument('port', type=int)
    p_connect.add_argument('count', type=int)
    p_connect.add_argument('--interval-ms', type=int, default=100)
    p_connect.add_argument('--timeout-ms', type=int, default=2000)
    p_connect.add_argument('--exit', action='store_true')
    args = parser.parse_args()
    # As PID 1 of a container nothing else handles SIGTERM: exit at once, so pods stop without a grace-period wait.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.mode == 'serve':
        serve(args.host, args.port)
        return 0
    if args.count < 0 or not 0 < args.port < 65536:
        print(f'connlat-workload: bad count {args.count} or port {args.port}', file=sys.stderr)
        return 2
    ok, failed = connect(args.host, args.port, args.count, args.interval_ms, args.timeout_ms)
    print(f'connect ok={ok} failed={failed}', flush=True)
    if not args.exit:
        signal.pause()
    return 0


if __name__ == '__main__':
    sys.exit(main())
