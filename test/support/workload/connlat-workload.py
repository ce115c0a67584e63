#!/usr/bin/env python3
# The tests' workload (image localhost/connlat-test-workload:1): a TCP server, or a client that makes an exact number
# of connects, so a test can compare what connlat counted with what was made. Only python3-minimal's modules.
#   connlat-workload serve <port> [--host 0.0.0.0] [--delay-ms N]
#       accept and close every connection, forever; prints "listening <host>:<port>" once bound. --delay-ms holds each
#       SYN-ACK the server sends for N ms (iptables NFQUEUE + a netlink queue reader below), so every client's connect
#       takes N ms more: a slow server, where the kernel has no netem. Needs CAP_NET_ADMIN and the pod's OWN network
#       namespace (never hostNetwork: the rule would apply to the node).
#   connlat-workload connect <host> <port> <count> [--interval-ms 100] [--timeout-ms 2000] [--exit]
#       <count> sequential connects (each closed at once); prints "connect ok=<n> failed=<n> median_ms=<ms>" when done,
#       then sleeps forever (a Deployment's pod must not restart and connect again) unless --exit (Jobs). Exit status
#       0: every connect was attempted; refused or timed-out connects are counted as failed, not errors.
import argparse
import collections
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

QUEUE = 40  # NFQUEUE number the delay uses


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


# nfnetlink_queue, spoken directly over netlink (no libnetfilter_queue in python3-minimal). Every message is
# nlmsghdr + nfgenmsg(family, version 0, queue number) + attributes; type = NFNL_SUBSYS_QUEUE << 8 | message.
NETLINK_NETFILTER, NLM_F_REQUEST, NLM_F_ACK, NLMSG_ERROR = 12, 1, 4, 2
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0x300, 0x301, 0x302
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2, 1, 2
NFQNL_CFG_CMD_BIND, NFQNL_COPY_META, NF_ACCEPT = 1, 1, 1


def nfq_message(msg_type: int, attrs: list[tuple[int, bytes]], flags: int = NLM_F_REQUEST) -> bytes:
    body = struct.pack('!BBH', socket.AF_UNSPEC, 0, QUEUE)
    for kind, data in attrs:
        body += struct.pack('=HH', 4 + len(data), kind) + data + b'\0' * (-len(data) % 4)
    return struct.pack('=IHHII', 16 + len(body), msg_type, flags, 0, 0) + body


def nfq_config(nl: socket.socket, attr: tuple[int, bytes]) -> None:
    """Sends a config message and raises the kernel's error (e.g. EPERM without CAP_NET_ADMIN) from its ack."""
    nl.send(nfq_message(NFQNL_MSG_CONFIG, [attr], NLM_F_REQUEST | NLM_F_ACK))
    reply = nl.recv(65536)
    msg_type = struct.unpack_from('=H', reply, 4)[0]
    error = struct.unpack_from('=i', reply, 16)[0] if msg_type == NLMSG_ERROR else 0
    if error:
        raise OSError(-error, f'nfnetlink_queue config: {os.strerror(-error)}')


def packet_ids(datagram: bytes):
    """The packet ids of the NFQNL_MSG_PACKET messages in one netlink datagram."""
    offset = 0
    while offset + 16 <= len(datagram):
        length, msg_type = struct.unpack_from('=IH', datagram, offset)
        if length < 16:
            return
        if msg_type == NFQNL_MSG_PACKET:
            attr = offset + 20  # after nlmsghdr and nfgenmsg
            while attr + 4 <= offset + length:
                attr_len, kind = struct.unpack_from('=HH', datagram, attr)
                if attr_len < 4:
                    break
                if kind & 0x7FFF == NFQA_PACKET_HDR:
                    yield struct.unpack_from('!I', datagram, attr + 4)[0]
                attr += (attr_len + 3) & ~3
        offset += (length + 3) & ~3


def delay_syn_acks(port: int, delay_ms: int) -> None:
    """Queues this netns's outgoing SYN-ACKs from `port` and accepts each delay_ms after it was queued."""
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    nl.bind((0, 0))
    nfq_config(nl, (NFQA_CFG_CMD, struct.pack('!BxH', NFQNL_CFG_CMD_BIND, socket.AF_INET)))
    nfq_config(nl, (NFQA_CFG_PARAMS, struct.pack('!IB', 0, NFQNL_COPY_META)))
    subprocess.run(['iptables', '-w', '-I', 'OUTPUT', '-p', 'tcp', '--sport', str(port), '--tcp-flags', 'SYN,ACK', 'SYN,ACK',
                    '-j', 'NFQUEUE', '--queue-num', str(QUEUE)], check=True)
    due: collections.deque[tuple[float, int]] = collections.deque()  # FIFO: every packet waits the same time
    ready = threading.Condition()

    def release() -> None:
        while True:
            with ready:
                while not due:
                    ready.wait()
                at, packet_id = due[0]
            wait = at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            with ready:
                due.popleft()
            nl.send(nfq_message(NFQNL_MSG_VERDICT, [(NFQA_VERDICT_HDR, struct.pack('!II', NF_ACCEPT, packet_id))]))

    threading.Thread(target=release, daemon=True).start()

    def receive() -> None:
        while True:
            datagram = nl.recv(65536)
            now = time.monotonic()
            for packet_id in packet_ids(datagram):
                with ready:
                    due.append((now + delay_ms / 1000, packet_id))
                    ready.notify()

    threading.Thread(target=receive, daemon=True).start()


def connect(host: str, port: int, count: int, interval_ms: int, timeout_ms: int) -> tuple[int, int, list[float]]:
    ok = failed = 0
    took: list[float] = []
    address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    for i in range(count):
        if i:
            time.sleep(interval_ms / 1000)
        with socket.socket(address[0], socket.SOCK_STREAM) as s:
            s.settimeout(timeout_ms / 1000)
            started = time.monotonic()
            try:
                s.connect(address[4])
                ok += 1
                took.append((time.monotonic() - started) * 1000)
            except OSError:
                failed += 1
    return ok, failed, took


def main() -> int:
    parser = argparse.ArgumentParser(prog='connlat-workload')
    sub = parser.add_subparsers(dest='mode', required=True)
    p_serve = sub.add_parser('serve')
    p_serve.add_argument('port', type=int)
    p_serve.add_argument('--host', default='0.0.0.0')
    p_serve.add_argument('--delay-ms', type=int, default=0)
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
    if not 0 < args.port < 65536:
        print(f'connlat-workload: bad port {args.port}', file=sys.stderr)
        return 2
    if args.mode == 'serve':
        if args.delay_ms < 0:
            print(f'connlat-workload: bad --delay-ms {args.delay_ms}', file=sys.stderr)
            return 2
        if args.delay_ms:
            try:
                delay_syn_acks(args.port, args.delay_ms)
            except (OSError, subprocess.CalledProcessError) as err:
                print(f'connlat-workload: --delay-ms needs CAP_NET_ADMIN in its own network namespace: {err}', file=sys.stderr)
                return 1
        serve(args.host, args.port)
        return 0
    if args.count < 0:
        print(f'connlat-workload: bad count {args.count}', file=sys.stderr)
        return 2
    ok, failed, took = connect(args.host, args.port, args.count, args.interval_ms, args.timeout_ms)
    median = sorted(took)[len(took) // 2] if took else 0.0
    print(f'connect ok={ok} failed={failed} median_ms={median:.1f}', flush=True)
    if not args.exit:
        signal.pause()
    return 0


if __name__ == '__main__':
    sys.exit(main())
