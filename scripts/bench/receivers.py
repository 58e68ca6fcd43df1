#!/usr/bin/env python3
"""Benchmark receivers for scripts/bench.sh: a syslog TCP/TLS receiver and a Splunk HEC receiver.

Both bind 127.0.0.1 only, keep nothing, and write their counters as one JSON object to --stats
(atomically, every 100 ms while something changes, and on exit):

    {"events": N, "bytes": B, "requests": R, "first": T0, "last": T1, "ready": true}

`first`/`last` are the wall-clock times (time.time()) of the first and last received data.
They stop on SIGTERM/SIGINT or after --max-seconds (default 3600), whichever comes first.

  receivers.py syslog --port P --stats F [--framing octet|lf] [--tls-cert C --tls-key K]
      octet: RFC 6587 octet counting; every frame is parsed and counted when complete.
      lf:    one message per line; counts newlines with bytes.count (almost free: this is the
             "discard" receiver).
      --count-marker M: discard mode, counts occurrences of M (e.g. " <14>1 ") instead of parsing.
      --latency-ms MS [--window BYTES]: a receiver MS ms away: reads are handled MS ms later and
             reading pauses while BYTES wait (default: the smaller of the kernel's tcp_wmem and
             tcp_rmem maxima, the window one TCP connection reaches), so at most BYTES move per MS.
  receivers.py hec --port P --stats F [--ack]
      POST /services/collector/event[/1.0]: decodes gzip (Content-Encoding), counts events as
      occurrences of '{"time":' (every envelope starts with it; inside JSON strings the quotes
      are escaped), answers {"text":"Success","code":0} (plus "ackId" with --ack when the
      request names a channel).  POST /services/collector/ack answers every id as indexed.
      GET /services/collector/health answers {"text":"HEC is healthy","code":17}.
"""
import argparse
import asyncio
import json
import os
import signal
import ssl
import sys
import time
import zlib


class Stats:
    def __init__(self, path):
        self.path = path
        self.events = 0
        self.bytes = 0
        self.requests = 0
        self.first = 0.0
        self.last = 0.0
        self._written = None

    def data(self, n):
        now = time.time()
        if not self.first:
            self.first = now
        self.last = now
        self.bytes += n

    def write(self, force=False):
        state = (self.events, self.bytes, self.requests)
        if not force and state == self._written:
            return
        self._written = state
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"events": self.events, "bytes": self.bytes, "requests": self.requests,
                       "first": self.first, "last": self.last, "ready": True}, f)
        os.replace(tmp, self.path)


# ---------------------------------------------------------------- syslog

class OctetCounted(asyncio.Protocol):
    """RFC 6587 octet counting: `LEN SP MSG`, LEN in decimal."""

    def __init__(self, stats):
        self.stats = stats
        self.buf = b""
        self.skip = 0  # bytes still missing from the current frame

    def data_received(self, data):
        stats = self.stats
        stats.data(len(data))
        n = len(data)
        pos = 0
        if self.skip:
            if self.skip > n:
                self.skip -= n
                return
            pos = self.skip
            self.skip = 0
            stats.events += 1
        buf = self.buf + data[pos:] if self.buf else (data[pos:] if pos else data)
        self.buf = b""
        n = len(buf)
        pos = 0
        count = 0
        find = buf.find
        while pos < n:
            space = find(b" ", pos, pos + 12)
            if space < 0:
                if n - pos >= 12:
                    raise ValueError("bad octet-counting frame at %r" % buf[pos:pos + 20])
                self.buf = buf[pos:]
                break
            end = space + 1 + int(buf[pos:space])
            if end > n:
                self.skip = end - n
                break
            count += 1
            pos = end
        stats.events += count


class MarkerCounted(asyncio.Protocol):
    """Discarding receiver: counts occurrences of a marker every message carries once (e.g. the
    RFC 5424 `<14>1 ` after the octet count) without parsing frames; a marker split between two
    reads is found in the carried-over tail."""

    def __init__(self, stats, marker):
        self.stats = stats
        self.marker = marker
        self.tail = b""

    def data_received(self, data):
        self.stats.data(len(data))
        keep = len(self.marker) - 1
        self.stats.events += (self.tail + data[:keep]).count(self.marker) + data.count(self.marker)
        self.tail = data[-keep:] if len(data) >= keep else (self.tail + data)[-keep:]


class LineCounted(asyncio.Protocol):
    """One message per line: counts newlines."""

    def __init__(self, stats):
        self.stats = stats

    def data_received(self, data):
        self.stats.data(len(data))
        self.stats.events += data.count(b"\n")


class Delayed(asyncio.Protocol):
    """A syslog receiver `latency` seconds away over one TCP connection: every read is handed
    to the inner protocol `latency` later, and reading pauses while `window` bytes wait. A
    sender can have no more than one window of data unacknowledged, acknowledgements come a
    round trip later, so at most `window` bytes move per `latency`, as over a real link."""

    def __init__(self, inner, latency, window):
        self.inner = inner
        self.latency = latency
        self.window = window
        self.waiting = 0
        self.transport = None
        self.paused = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.waiting += len(data)
        asyncio.get_running_loop().call_later(self.latency, self.deliver, data)
        if self.waiting >= self.window and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def deliver(self, data):
        self.waiting -= len(data)
        self.inner.data_received(data)
        if self.paused and self.waiting < self.window and not self.transport.is_closing():
            self.paused = False
            self.transport.resume_reading()


def default_window():
    """The largest window one Linux TCP connection reaches with default settings: unacknowledged
    data must fit the sender's send buffer (tcp_wmem max) and the receiver's buffer (tcp_rmem
    max)."""
    limits = []
    for name in ("tcp_wmem", "tcp_rmem"):
        try:
            with open("/proc/sys/net/ipv4/" + name) as f:
                limits.append(int(f.read().split()[2]))
        except (OSError, ValueError, IndexError):
            pass
    return min(limits) if limits else 4 << 20


def delayed_syslog(factory, args):
    """Wraps the syslog protocol factory in `Delayed` when --latency-ms is set."""
    if not args.latency_ms:
        return factory
    window = args.window or default_window()
    log_line = "syslog receiver: %g ms away, window %d bytes (at most %.1f MiB/s)" % (
        args.latency_ms, window, window / 2**20 / (args.latency_ms / 1000.0))
    print(log_line, file=sys.stderr, flush=True)
    return lambda: Delayed(factory(), args.latency_ms / 1000.0, window)  # noqa: E731


# ---------------------------------------------------------------- HEC

SUCCESS = b'{"text":"Success","code":0}'
EVENT_MARK = b'{"time":'


class Hec(asyncio.Protocol):
    """Minimal HTTP/1.1 keep-alive server speaking the HEC endpoints (Content-Length bodies)."""

    def __init__(self, stats, ack, state, latency=0.0):
        self.stats = stats
        self.ack = ack
        self.latency = latency  # seconds before each data request is answered (a distant collector)
        self.state = state  # shared: next ack id per channel
        self.buf = bytearray()
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self.buf[:head_end]).decode("latin-1")
            lines = head.split("\r\n")
            method, target = lines[0].split(" ")[:2]
            headers = {}
            for line in lines[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self.reply(411, b'{"text":"Length Required","code":6}', close=True)
                return
            length = int(headers.get("content-length", "0"))
            if len(self.buf) < head_end + 4 + length:
                return
            body = bytes(self.buf[head_end + 4:head_end + 4 + length])
            del self.buf[:head_end + 4 + length]
            self.handle(method, target.split("?", 1)[0], headers, body)

    def handle(self, method, path, headers, body):
        stats = self.stats
        if path.startswith("/services/collector/event") or path.startswith("/services/collector/raw"):
            stats.data(len(body))
            if headers.get("content-encoding", "").lower() == "gzip":
                body = zlib.decompress(body, 47)
            if path.startswith("/services/collector/raw"):
                stats.events += body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
            else:
                stats.events += body.count(EVENT_MARK)
            stats.requests += 1
            channel = headers.get("x-splunk-request-channel")
            if self.ack and channel:
                ack_id = self.state.get(channel, 0)
                self.state[channel] = ack_id + 1
                self.reply_later(200, b'{"text":"Success","code":0,"ackId":%d}' % ack_id)
            else:
                self.reply_later(200, SUCCESS)
        elif path == "/services/collector/ack":
            ids = json.loads(body or b"{}").get("acks", [])
            self.reply(200, json.dumps({"acks": {str(i): True for i in ids}}).encode())
        elif path.startswith("/services/collector/health"):
            self.reply(200, b'{"text":"HEC is healthy","code":17}')
        else:
            self.reply(404, b'{"text":"The requested URL was not found on this server.","code":404}')

    def reply_later(self, status, body):
        """Answers a data request after the configured latency (one request at a time per
        connection, so answers keep their order)."""
        if self.latency > 0:
            asyncio.get_running_loop().call_later(self.latency, self.reply_if_open, status, body)
        else:
            self.reply(status, body)

    def reply_if_open(self, status, body):
        if not self.transport.is_closing():
            self.reply(status, body)

    def reply(self, status, body, close=False):
        reason = {200: "OK", 404: "Not Found", 411: "Length Required"}.get(status, "Error")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=UTF-8\r\n"
            b"Content-Length: %d\r\n%s\r\n" % (status, reason.encode(), len(body),
                                              b"Connection: close\r\n" if close else b"") + body)
        if close:
            self.transport.close()


# ---------------------------------------------------------------- main

async def serve(args):
    stats = Stats(args.stats)
    loop = asyncio.get_running_loop()
    ssl_ctx = None
    if args.command == "syslog":
        if args.tls_cert:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.count_marker:
            marker = args.count_marker.encode()
            factory = lambda: MarkerCounted(stats, marker)  # noqa: E731
        elif args.framing == "octet":
            factory = lambda: OctetCounted(stats)  # noqa: E731
        else:
            factory = lambda: LineCounted(stats)  # noqa: E731
        factory = delayed_syslog(factory, args)
    else:
        state = {}
        factory = lambda: Hec(stats, args.ack, state, args.latency_ms / 1000.0)  # noqa: E731
    server = await loop.create_server(factory, "127.0.0.1", args.port, ssl=ssl_ctx, backlog=128)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stats.write(force=True)
    deadline = time.monotonic() + args.max_seconds
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass
        stats.write()
    server.close()
    stats.write(force=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("syslog", "hec"):
        p = sub.add_parser(name)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--stats", required=True)
        p.add_argument("--max-seconds", type=float, default=3600)
        if name == "syslog":
            p.add_argument("--framing", choices=["octet", "lf"], default="octet")
            p.add_argument("--tls-cert")
            p.add_argument("--tls-key")
            p.add_argument("--count-marker", help="discard mode: count this marker instead of parsing frames")
            p.add_argument("--latency-ms", type=float, default=0.0,
                           help="handle each read this many milliseconds later (a distant receiver)")
            p.add_argument("--window", type=int, default=0,
                           help="with --latency-ms, bytes that may wait (default: the kernel's largest TCP window)")
        else:
            p.add_argument("--ack", action="store_true")
            p.add_argument("--latency-ms", type=float, default=0.0,
                           help="answer each data request after this many milliseconds (a distant collector)")
    args = parser.parse_args()
    asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
