#!/usr/bin/env python3
"""A consumer-group member built on the official SDK's ConsumerWorker.

Writes every consumed log as one JSON line (the SDK's flattened form plus __shard__ and
__consumer__) to --output, flushing after each batch, and appends "init SHARD" /
"shutdown SHARD" lines to --events as the SDK starts and stops shard workers. Stops and
commits its checkpoints on SIGTERM. Reaches the server through HTTP_PROXY (see sdk_client.py).
--auth-version v4 --region REGION signs with the SDK's signature v4 (default v1).
"""
import argparse
import json
import signal
import sys
import threading

from aliyun.log.consumer import ConsumerProcessorBase, ConsumerWorker, CursorPosition, LogHubConfig
from aliyun.log import PullLogResponse

parser = argparse.ArgumentParser()
for name in ("endpoint", "project", "logstore", "group", "consumer", "output", "events",
             "access-key-id", "access-key-secret"):
    parser.add_argument("--" + name, required=True)
parser.add_argument("--heartbeat", type=int, default=2)
parser.add_argument("--auth-version", choices=["v1", "v4"], default="v1")
parser.add_argument("--region", default="")
args = parser.parse_args()

lock = threading.Lock()
output = open(args.output, "a", encoding="utf-8")
events = open(args.events, "a", encoding="utf-8")


def event(text):
    with lock:
        events.write(text + "\n")
        events.flush()


class JsonLines(ConsumerProcessorBase):
    def initialize(self, shard):
        super().initialize(shard)
        event("init %d" % shard)

    def process(self, log_groups, tracker):
        logs = PullLogResponse.loggroups_to_flattern_list(log_groups)
        with lock:
            for log in logs:
                log.pop("__time_ns_part__", None)
                log["__shard__"] = self.shard_id
                log["__consumer__"] = args.consumer
                output.write(json.dumps(log, ensure_ascii=False) + "\n")
            output.flush()
        tracker.save_check_point(True)

    def shutdown(self, tracker):
        tracker.save_check_point(True)
        event("shutdown %d" % self.shard_id)


option = LogHubConfig(args.endpoint, args.access_key_id, args.access_key_secret, args.project,
                      args.logstore, args.group, args.consumer,
                      cursor_position=CursorPosition.BEGIN_CURSOR,
                      heartbeat_interval=args.heartbeat, data_fetch_interval=0.2,
                      auth_version=args.auth_version, region=args.region)
option.consumer_group_time_out = args.heartbeat * 3
worker = ConsumerWorker(JsonLines, consumer_option=option)
stop = threading.Event()
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: stop.set())
worker.start()
event("started")
while worker.is_alive() and not stop.is_set():
    stop.wait(0.2)
worker.shutdown()
worker.join(timeout=60)
event("stopped")
sys.exit(0)
