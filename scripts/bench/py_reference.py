#!/usr/bin/env python3
"""The Python reference for scripts/bench.sh: what the seed's forwarders do, on the official
aliyun-log-python-sdk's ConsumerWorker.

Each pulled batch is flattened with PullLogResponse.loggroups_to_flattern_list, then
  --sink syslog: every log becomes `k=v` pairs joined by `||` (the `__time__` taken out as the
                 header timestamp) and is sent with the SDK's own RFC 5424 syslog client
                 (aliyun.log.ext.syslogclient, TCP, one sendall per message, LF framing), one
                 connection per batch, as in the SDK's sync_data_to_syslog example;
  --sink hec:    every log becomes one HEC event {"time", "host", "source", "sourcetype",
                 "index", "event": {flattened log}} and is POSTed on its own with a
                 requests.Session (no compression), as in the SDK's sync_data_to_splunk example.
Checkpoints are saved after each batch.

Reaching the local server: the SDK would resolve PROJECT.127.0.0.1 for an IP endpoint with a port,
so the driver passes a made-up endpoint `sls.test:PORT` and HTTP_PROXY=http://127.0.0.1:PORT.

Runs until SIGTERM/SIGINT or --seconds; writes {"logs": N, "start": T0, "end": T1} to --stats.
"""
import argparse
import json
import signal
import threading
import time
from datetime import datetime

import requests
from aliyun.log import PullLogResponse
from aliyun.log.consumer import ConsumerProcessorBase, ConsumerWorker, CursorPosition, LogHubConfig
from aliyun.log.ext.syslogclient import SyslogClientRFC5424

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
for name in ("endpoint", "project", "logstore", "group", "access-key-id", "access-key-secret", "stats"):
    parser.add_argument("--" + name, required=True)
parser.add_argument("--sink", choices=["syslog", "hec"], required=True)
parser.add_argument("--syslog-port", type=int)
parser.add_argument("--hec-url")
parser.add_argument("--hec-token", default="bench-token")
parser.add_argument("--seconds", type=float, default=60)
parser.add_argument("--heartbeat", type=int, default=20)
parser.add_argument("--fetch-interval", type=float, default=0.1)
args = parser.parse_args()

lock = threading.Lock()
done = [0]


def counted(n):
    with lock:
        done[0] += n


class SyslogForwarder(ConsumerProcessorBase):
    def process(self, log_groups, tracker):
        logs = PullLogResponse.loggroups_to_flattern_list(log_groups, time_as_str=True, decode_bytes=True)
        with SyslogClientRFC5424("127.0.0.1", args.syslog_port, proto="tcp", timeout=120) as client:
            for log in logs:
                timestamp = datetime.fromtimestamp(int(log.pop("__time__")))
                data = "||".join("%s=%s" % (k, v) for k, v in log.items())
                client.log(data, timestamp=timestamp, program="py-reference")
        counted(len(logs))
        self.save_checkpoint(tracker)


class HecForwarder(ConsumerProcessorBase):
    def __init__(self):
        super().__init__()
        self.session = requests.Session()
        self.session.headers["Authorization"] = "Splunk " + args.hec_token
        self.url = args.hec_url.rstrip("/") + "/services/collector/event"

    def process(self, log_groups, tracker):
        logs = PullLogResponse.loggroups_to_flattern_list(log_groups, time_as_str=True, decode_bytes=True)
        for log in logs:
            event = {"time": int(log.pop("__time__")), "host": log.get("__source__", ""),
                     "source": "alicloud-sls", "sourcetype": "alicloud:actiontrail", "index": "alicloud",
                     "event": log}
            reply = self.session.post(self.url, data=json.dumps(event), timeout=120)
            reply.raise_for_status()
        counted(len(logs))
        self.save_checkpoint(tracker)


option = LogHubConfig(args.endpoint, args.access_key_id, args.access_key_secret, args.project, args.logstore,
                      args.group, "py-reference", cursor_position=CursorPosition.BEGIN_CURSOR,
                      heartbeat_interval=args.heartbeat, data_fetch_interval=args.fetch_interval)
worker = ConsumerWorker(SyslogForwarder if args.sink == "syslog" else HecForwarder, consumer_option=option)
stop = threading.Event()
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: stop.set())
start = time.time()
worker.start()
deadline = time.monotonic() + args.seconds
while worker.is_alive() and not stop.is_set() and time.monotonic() < deadline:
    stop.wait(0.2)
with open(args.stats, "w") as f:
    json.dump({"logs": done[0], "start": start, "end": time.time()}, f)
worker.shutdown()
