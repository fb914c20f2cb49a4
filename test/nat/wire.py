#!/usr/bin/env python3
"""A link with latency, in user space: the NAT tier's stand-in for `tc qdisc ... netem delay`.

The project's kernels have no sch_netem (and no sch_fq for BPF departure times, no nft `queue`),
so nothing in the kernel can hold a packet back for a while. This process opens two TAP devices
(IFF_TAP | IFF_NO_PI) and copies every Ethernet frame from one to the other DELAY_MS later, in
order, both ways. netns.ts moves one TAP into a home's router (as its "wan") and the other onto
the internet's bridge, so the home's uplink gets DELAY_MS each way. Loss and bandwidth stay in
the kernel (impair.ts: nftables numgen drops, tc tbf).

    python3 test/nat/wire.py TAP_A TAP_B DELAY_MS

Prints "ready" once both devices exist; runs until killed. A line on stdin with a number sets a
new delay in ms (netns.ts setDelay: bench:nat adds its delay per hop only while it measures).
"""
import errno
import fcntl
import heapq
import os
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def main() -> None:
    a_name, b_name, delay_ms = sys.argv[1], sys.argv[2], float(sys.argv[3])
    delay = delay_ms / 1000.0
    a, b = tap(a_name), tap(b_name)
    peer = {a: b, b: a}
    print("ready", flush=True)
    due: list = []  # (time to send, sequence, fd, frame): a heap, in arrival order per time
    seq = 0
    stdin = sys.stdin.fileno()
    inputs = [stdin]
    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
        readable, _, _ = select.select([a, b] + inputs, [], [], timeout)
        now = time.monotonic()
        for fd in readable:
            if fd == stdin:
                line = os.read(stdin, 64)
                if not line:
                    inputs.clear()  # stdin closed: the delay stays as it is
                else:
                    delay = float(line.split()[-1]) / 1000.0
                continue
            while True:
                try:
                    frame = os.read(fd, 65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as e:
                    if e.errno in (errno.EBADFD, errno.ENODEV, errno.EBADF):
                        return  # the device went away with its namespace
                    break
                heapq.heappush(due, (now + delay, seq, peer[fd], frame))
                seq += 1
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, fd, frame = heapq.heappop(due)
            try:
                os.write(fd, frame)
            except OSError:
                pass  # a full queue or a device still down: a dropped frame, as on a real link


if __name__ == "__main__":
    main()
