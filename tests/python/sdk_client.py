#!/usr/bin/env python3
"""Drives the official aliyun-log-python-sdk against a log service, unmodified.

The SDK cannot address a server on a non-standard port by IP (it would resolve
PROJECT.127.0.0.1), so the tests point it at a made-up host name and route it through
HTTP_PROXY to the local server, which then receives absolute-form request targets.

--auth-version v4 --region REGION signs with the SDK's signature v4 (default v1).
--security-token TOKEN signs with temporary (STS) credentials.

Commands print one JSON document on stdout:
  basic        put_logs, list_shards, get_cursor (begin, end, time), pull_logs of every shard
  checkpoints  get_check_point of every shard of --group
"""
import argparse
import json
import sys
import time

from aliyun.log import LogClient, LogItem, PutLogsRequest

parser = argparse.ArgumentParser()
parser.add_argument("command", choices=["basic", "checkpoints"])
parser.add_argument("--endpoint", required=True)
parser.add_argument("--project", required=True)
parser.add_argument("--logstore", required=True)
parser.add_argument("--access-key-id", required=True)
parser.add_argument("--access-key-secret", required=True)
parser.add_argument("--security-token")
parser.add_argument("--group")
parser.add_argument("--auth-version", choices=["v1", "v4"], default="v1")
parser.add_argument("--region", default="")
args = parser.parse_args()

client = LogClient(args.endpoint, args.access_key_id, args.access_key_secret,
                   securityToken=args.security_token, auth_version=args.auth_version,
                   region=args.region)


def pull_all(shard, start):
    logs, cursor = [], start
    while True:
        response = client.pull_logs(args.project, args.logstore, shard, cursor, count=1000)
        logs.extend(response.get_flatten_logs_json())
        next_cursor = response.get_next_cursor()
        if response.get_log_count() == 0 or next_cursor == cursor:
            return logs, next_cursor
        cursor = next_cursor


def basic():
    before = int(time.time()) - 1
    for batch in range(2):
        items = []
        for index in range(5):
            item = LogItem()
            item.set_time(1700000000 + index)
            item.set_contents([("batch", str(batch)), ("index", str(index)), ("text", "héllo \"sdk\"")])
            items.append(item)
        request = PutLogsRequest(args.project, args.logstore, topic="sdk-topic", source="10.1.2.3",
                                 logitems=items, logtags=[("origin", "python")])
        client.put_logs(request)
    shards = [s["shardID"] for s in client.list_shards(args.project, args.logstore).get_shards_info()]
    result = {"shards": shards, "cursors": {}, "logs": []}
    for shard in shards:
        begin = client.get_cursor(args.project, args.logstore, shard, "begin").get_cursor()
        end = client.get_cursor(args.project, args.logstore, shard, "end").get_cursor()
        at_before = client.get_cursor(args.project, args.logstore, shard, before).get_cursor()
        at_future = client.get_cursor(args.project, args.logstore, shard, before + 3600).get_cursor()
        logs, final = pull_all(shard, begin)
        result["cursors"][str(shard)] = {"begin": begin, "end": end, "time_before": at_before,
                                         "time_future": at_future, "after_pull": final}
        for log in logs:
            log.pop("__time_ns_part__", None)  # a 1-tuple in this SDK version
            log["__shard__"] = shard
        result["logs"].extend(logs)
    return result


def checkpoints():
    response = client.get_check_point(args.project, args.logstore, args.group)
    return {"checkpoints": response.get_consumer_group_check_points()}


print(json.dumps(basic() if args.command == "basic" else checkpoints(), ensure_ascii=False))
sys.stdout.flush()
