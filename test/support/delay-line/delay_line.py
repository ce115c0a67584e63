#!/usr/bin/env python3
"""A real network link with a fixed one-way delay, for kernels without sch_netem.

Creates TUN device `tun0` in network namespace A and `tun0` in namespace B (both must already exist) and copies every
IP packet from one to the other after DELAY_MS, in both directions. The kernels in A and B see a point-to-point link
whose round trip is 2 x DELAY_MS: a TCP connect across it takes one round trip (SYN, SYN-ACK). Addresses and routes
are configured by the caller with `ip -n A addr add ... peer ...` once this prints "ready".

Usage: delay_line.py NS_A NS_B DELAY_MS     (runs until SIGTERM/SIGINT or stdin closes)
"""
import ctypes
import fcntl
import heapq
import os
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL("libc.so.6", use_errno=True)


def setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({path})")
    finally:
        os.close(fd)


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main() -> None:
    ns_a, ns_b, delay_ms = sys.argv[1], sys.argv[2], float(sys.argv[3])
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    setns(f"/var/run/netns/{ns_a}")
    fd_a = open_tun("tun0")  # a TUN fd stays bound to its device whatever namespace the process is in later
    setns(f"/var/run/netns/{ns_b}")
    fd_b = open_tun("tun0")
    libc.setns(home, CLONE_NEWNET)
    peer = {fd_a: fd_b, fd_b: fd_a}
    delay = delay_ms / 1000.0
    queue: list = []  # (due, seq, out_fd, packet)
    seq = 0
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready", flush=True)
    while running:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 0.5
        readable, _, _ = select.select([fd_a, fd_b, sys.stdin], [], [], timeout)
        now = time.monotonic()
        for fd in readable:
            if fd is sys.stdin:
                if not sys.stdin.readline():
                    running = False  # the test that started us is gone
                continue
            while True:
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                seq += 1
                heapq.heappush(queue, (now + delay, seq, peer[fd], packet))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, packet = heapq.heappop(queue)
            try:
                os.write(out, packet)
            except OSError:
                pass  # device going down during teardown


if __name__ == "__main__":
    main()
