#!/usr/bin/env python3
"""The cost curve of scripts/bench.sh (`scripts/bench.sh --scale`; see `scripts/bench.sh --help`).

Runs `siem-forwarder local-server` with one logstore per measured shape, fills each once with
generated audit logs (`siem-forwarder put --generate`; the data stays in the data directory for
later runs) and measures, with the product's consumer defaults:

  shards      logstores of 16 / 64 / 256 shards, each holding the same N logs, consumed by 1, 2
              and 4 `siem-forwarder run` processes in one consumer group (null sink): time until
              balanced (every shard held once, each process holding its fair share, read from
              each process's /status), time until all N logs were delivered (the processes'
              /metrics) and the throughput that gives, then the idle CPU of each process over a
              fixed window with no new data (CPU-seconds from /proc/PID/stat), its open sockets,
              and its peak RSS (VmHWM / wait4).
  logstores   1 / 8 / 32 logstores in one process, 64 shards in all (1 x 64, 8 x 8, 32 x 2), the
              same N logs spread over them: the same figures.
  backlog     a 16-shard logstore holding 0.1 / 1 / 4 GiB, one process with two sinks: RFC 5424
              over TCP to a receiver that keeps reading, and Splunk HEC (gzip) through a proxy that
              stops reading and forwarding for --stall-seconds once the backlog is being read, then
              recovers. Peak RSS per backlog size (it must not grow with the backlog), the healthy
              receiver's progress during the stall, and the time to deliver everything.

Python 3.9+ standard library; shares its process helpers with driver.py.
"""
import argparse
import asyncio
import datetime
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402
from driver import (AK_ID, AK_SECRET, HEC_TOKEN, PROJECT, ROOT, cpu_seconds, free_port, log,  # noqa: E402
                    proc_status_kib, read_stats, replace_section, spawn, stop, vm_hwm_kib, wait_port)

GIB = 2**30
PUT_CHUNK = 250_000  # logs per `put --generate` call (put builds its batches in memory)
SHARD_STORE = "shards%d"
BACKLOG_SHARDS = 16


# ------------------------------------------------------------------ log service

def logstore_plan(args):
    """name -> (shards, logs) of every logstore the run needs."""
    plan = {}
    if "shards" in args.parts:
        for shards in args.shards:
            plan[SHARD_STORE % shards] = (shards, args.logs)
    if "logstores" in args.parts:
        for count in args.logstores:
            if count == 1:
                plan[SHARD_STORE % args.logstore_shards] = (args.logstore_shards, args.logs)
                continue
            for name in multi_names(count):
                plan[name] = (max(1, args.logstore_shards // count), args.logs // count)
    if "backlog" in args.parts:
        for gib in args.backlog:
            plan[backlog_name(gib)] = (BACKLOG_SHARDS, backlog_logs(gib))
    return plan


def multi_names(count):
    return ["multi%d-%d" % (count, i) for i in range(count)]


def backlog_name(gib):
    return "backlog%smib" % int(round(gib * 1024))


def backlog_logs(gib):
    return int(gib * GIB / 1132)  # the generator's logs are ~1,132 B raw each


def start_server(args, plan):
    port = free_port()
    argv = [args.bin, "local-server", "--listen", "127.0.0.1:%d" % port, "--data-dir", args.data_dir,
            "--project", PROJECT, "--access-key-id", AK_ID, "--access-key-secret", AK_SECRET,
            "--max-connections", str(args.server_max_connections)]
    for name, (shards, _) in sorted(plan.items()):
        argv += ["--logstore", "%s:%d" % (name, shards)]
    server = spawn(argv, os.path.join(args.work, "local-server.log"))
    wait_port(port, server, 120)
    return server, port


def fill(args, port, plan):
    """Puts each logstore's logs unless the data directory's marker says it holds them; returns
    name -> raw bytes (LogGroup protobuf as stored)."""
    marker = os.path.join(args.data_dir, "scale-fill.json")
    filled = read_stats(marker) or {}
    for name, (shards, logs) in sorted(plan.items()):
        have = filled.get(name)
        if have and have["logs"] == logs and have["shards"] == shards:
            continue
        if have:
            raise SystemExit("logstore %s in %s holds %d logs, this run wants %d: give another --data-dir"
                             % (name, args.data_dir, have["logs"], logs))
        log("filling %s (%d shards) with %d logs ..." % (name, shards, logs))
        t0 = time.monotonic()
        left = logs
        while left > 0:
            n = min(left, PUT_CHUNK)
            put = subprocess.run([args.bin, "put", "--endpoint", "http://127.0.0.1:%d" % port, "--project", PROJECT,
                                  "--logstore", name, "--generate", str(n), "--access-key-id", AK_ID,
                                  "--access-key-secret", AK_SECRET], cwd=ROOT, capture_output=True, text=True,
                                 timeout=3600)
            if put.returncode != 0:
                raise SystemExit("put failed:\n%s%s" % (put.stdout, put.stderr))
            left -= n
        raw = logstore_raw_bytes(args.data_dir, name)
        filled[name] = {"logs": logs, "shards": shards, "raw_bytes": raw}
        with open(marker, "w") as f:
            json.dump(filled, f)
        log("  %s: %.1f MiB raw in %.1fs" % (name, raw / 2**20, time.monotonic() - t0))
    return {name: filled[name]["raw_bytes"] for name in plan}


def logstore_raw_bytes(data_dir, name):
    total = 0
    for top, _, files in os.walk(data_dir):
        if name in top.split(os.sep):
            total += sum(os.path.getsize(os.path.join(top, f)) for f in files if f.endswith(".data"))
    return total


# ------------------------------------------------------------------ forwarders

def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.read().decode()
    except OSError:
        return None


def delivered_events(port):
    text = http_get("http://127.0.0.1:%d/metrics" % port)
    if text is None:
        return None
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("siem_forwarder_sink_delivered_events_total{"))


def inflight_bytes(port):
    """The forwarder's `inflight_bytes` gauge: raw bytes of the batches the budget counts."""
    text = http_get("http://127.0.0.1:%d/metrics" % port) or ""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("siem_forwarder_inflight_bytes"))


def held_shards(port):
    """(logstore, shard) pairs this process holds and is not giving away, from its /status."""
    text = http_get("http://127.0.0.1:%d/status" % port)
    if text is None:
        return None
    try:
        shards = json.loads(text)["shards"]
    except (ValueError, KeyError):
        return None
    return {(s["logstore"], s["shard"]) for s in shards if s.get("phase") != "draining"}


def sockets(pid):
    n = 0
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                    n += 1
            except OSError:
                pass
    except OSError:
        return None
    return n


def write_config(args, path, group, name, logstores, telemetry_port, sinks):
    with open(path, "w") as f:
        f.write("""# generated by scripts/bench/scale.py
[source]
endpoint = "http://127.0.0.1:{server_port}"
project = "{project}"
logstores = [{logstores}]
access_key_id = "{ak_id}"
access_key_secret = "{ak_secret}"

[consumer]
group = "{group}"
name = "{name}"
start = "begin"

[telemetry]
listen = "127.0.0.1:{telemetry_port}"

{sinks}""".format(server_port=args.server_port, project=PROJECT, logstores=", ".join('"%s"' % l for l in logstores),
                  ak_id=AK_ID, ak_secret=AK_SECRET, group=group, name=name, telemetry_port=telemetry_port,
                  sinks=sinks))


def balanced(holdings, total):
    """Every shard held by exactly one process, each process holding floor or ceil of its share."""
    if any(h is None for h in holdings):
        return False
    union = set().union(*holdings)
    if len(union) != total or sum(len(h) for h in holdings) != total:
        return False
    fair = total // len(holdings)
    return all(fair <= len(h) <= fair + (1 if total % len(holdings) else 0) for h in holdings)


def run_group(args, server, label, logstores, shards, logs, raw, processes):
    """P processes, one group, null sink: balance, delivery of `logs`, then an idle window."""
    log("%s: %d process(es), %d logstore(s), %d shards, %d logs" % (label, processes, len(logstores), shards, logs))
    group = "scale-%s-p%d-%d" % (label, processes, int(time.time() * 1000))
    procs, ports = [], []
    for i in range(processes):
        port = free_port()
        config = os.path.join(args.work, "%s-p%d-%d.toml" % (label, processes, i))
        write_config(args, config, group, "fwd-%d" % i, logstores, port, '[[sinks]]\ntype = "null"\n')
        ports.append(port)
    server_cpu0 = cpu_seconds(server.pid)
    t0 = time.monotonic()
    for i in range(processes):
        config = os.path.join(args.work, "%s-p%d-%d.toml" % (label, processes, i))
        procs.append(spawn([args.bin, "run", "--config", config],
                           os.path.join(args.work, "%s-p%d-%d.log" % (label, processes, i))))
    balanced_at = done_at = None
    hwm = [0] * processes
    peak_socks = [0] * processes
    delivered = 0
    deadline = t0 + args.timeout
    last_report = t0
    while time.monotonic() < deadline:
        for i, p in enumerate(procs):
            if p.poll() is not None:
                raise SystemExit("%s: forwarder %d exited (%s); see its log in %s" % (label, i, p.returncode, args.work))
            hwm[i] = max(hwm[i], vm_hwm_kib(p.pid))
            peak_socks[i] = max(peak_socks[i], sockets(p.pid) or 0)
        now = time.monotonic()
        if done_at is None:
            counts = [delivered_events(port) for port in ports]
            delivered = sum(c or 0 for c in counts)
            if delivered >= logs:
                done_at = now
                busy_cpu = [cpu_seconds(p.pid) for p in procs]
        holdings = [held_shards(port) for port in ports]
        if balanced(holdings, shards):
            balanced_at = balanced_at or now
        else:
            balanced_at = None  # must hold until the end of the window
        if balanced_at is not None and done_at is not None:
            break
        if now - last_report > 15:
            last_report = now
            log("  %.0fs: delivered %d / %d, held %s" % (now - t0, delivered, logs,
                                                         [None if h is None else len(h) for h in holdings]))
        time.sleep(0.2)
    else:
        for p in procs:
            stop(p)
        raise SystemExit("%s: not balanced and delivered after %ds (delivered %d / %d); see %s"
                         % (label, args.timeout, delivered, logs, args.work))
    settle = time.monotonic()
    while time.monotonic() - settle < 3:  # let the last checkpoints go out before the idle window
        time.sleep(0.2)
    idle0 = [cpu_seconds(p.pid) for p in procs]
    server_idle0 = cpu_seconds(server.pid)
    w0 = time.monotonic()
    while time.monotonic() - w0 < args.idle_seconds:
        for i, p in enumerate(procs):
            hwm[i] = max(hwm[i], vm_hwm_kib(p.pid))
        time.sleep(0.5)
    window = time.monotonic() - w0
    idle1 = [cpu_seconds(p.pid) for p in procs]
    server_idle1 = cpu_seconds(server.pid)
    still_balanced = balanced([held_shards(port) for port in ports], shards)
    socks = [sockets(p.pid) for p in procs]
    final = sum(delivered_events(port) or 0 for port in ports)
    rss = []
    for i, p in enumerate(procs):
        _, rusage, _ = stop(p, timeout=40)
        rss.append(max(hwm[i], rusage.ru_maxrss if rusage else 0) / 1024)
    idle = [(b - a) / window for a, b in zip(idle0, idle1)]
    result = {
        "label": label, "processes": processes, "logstores": len(logstores), "shards": shards, "logs": logs,
        "raw": raw, "balanced_s": balanced_at - t0, "done_s": done_at - t0,
        "mibs": raw / 2**20 / (done_at - t0), "busy_cpu": sum(busy_cpu),
        "idle_pct": [100 * x for x in idle], "server_idle_pct": 100 * (server_idle1 - server_idle0) / window,
        "window": window, "rss": rss, "sockets": socks, "peak_sockets": peak_socks, "duplicates": max(0, final - logs),
        "stable": still_balanced, "server_cpu": server_idle0 - server_cpu0,
        # The log service's request rate at rest, from the product's pacing: one PullLogs per held
        # shard per fetch_interval (1 s), one heartbeat per logstore per heartbeat_interval (20 s).
        "requests_per_s": [shards / processes + len(logstores) / 20.0] * processes,
    }
    log("  " + group_row(result))
    return result


def group_row(r):
    return ("| {logstores} x {per} | {processes} | {balanced_s:.1f} | {done_s:.1f} | {mibs:.0f} | {per_core} "
            "| {idle} | {idle_max:.2f} | {srv:.2f} | {req:.0f} | {rss:.0f} | {rss_max:.0f} | {socks} | {peak_socks} | {dup:,} |").format(
        logstores=r["logstores"], per=r["shards"] // r["logstores"], processes=r["processes"], balanced_s=r["balanced_s"], done_s=r["done_s"],
        mibs=r["mibs"], per_core="%.0f" % (r["raw"] / 2**20 / r["busy_cpu"]) if r["busy_cpu"] else "-",
        idle="%.2f" % (sum(r["idle_pct"]) / len(r["idle_pct"])), idle_max=max(r["idle_pct"]),
        srv=r["server_idle_pct"], req=r["requests_per_s"][0], rss=sum(r["rss"]) / len(r["rss"]), rss_max=max(r["rss"]),
        socks="/".join(str(s) for s in r["sockets"]),
        peak_socks="/".join(str(s) for s in r.get("peak_sockets", [])) or "-", dup=r["duplicates"]) + ("" if r["stable"] else " (unbalanced at the end)")


GROUP_HEADER = ("| logstores x shards | processes | balanced after s | all delivered after s | raw MiB/s "
                "| MiB/s per core | idle CPU % per process (mean) | idle CPU % (max) | log service idle CPU % "
                "| pulls+heartbeats/s per process | peak RSS MiB (mean) | peak RSS MiB (max) | sockets per process at rest "
                "| peak sockets per process | duplicates |")


# ------------------------------------------------------------------ the stalled SIEM

async def proxy_main(listen_port, upstream_port):
    """A TCP proxy that stops reading and forwarding on SIGUSR1 and resumes on SIGUSR2: a SIEM
    that hangs (its socket buffers fill, the sender's requests time out) and then recovers."""
    running = asyncio.Event()
    running.set()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, running.clear)
    loop.add_signal_handler(signal.SIGUSR2, running.set)
    stopped = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)

    async def pump(reader, writer):
        try:
            while True:
                await running.wait()
                data = await reader.read(1 << 16)
                if not data:
                    break
                await running.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(client_r, client_w):
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pump(client_r, up_w), pump(up_r, client_w))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    await stopped.wait()
    server.close()


def run_backlog(args, server, gib, logs, raw):
    label = backlog_name(gib)
    log("%s: %.2f GiB backlog (%d logs), HEC stalled %ds" % (label, gib, logs, args.stall_seconds))
    syslog_rcv, syslog_port, syslog_stats = driver.start_receiver(args.work, label + "-syslog",
                                                                  ["syslog", "--framing", "octet"])
    hec_rcv, hec_port, hec_stats = driver.start_receiver(args.work, label + "-hec", ["hec"])
    proxy_port = free_port()
    proxy = spawn([sys.executable, os.path.abspath(__file__), "proxy", str(proxy_port), str(hec_port)],
                  os.path.join(args.work, "%s-proxy.log" % label))
    wait_port(proxy_port, proxy, 15)
    telemetry = free_port()
    config = os.path.join(args.work, "%s.toml" % label)
    sinks = ('[[sinks]]\ntype = "syslog"\naddress = "127.0.0.1:%d"\nprotocol = "tcp"\nformat = "rfc5424"\nbody = "kv"\n\n'
             '[[sinks]]\ntype = "splunk_hec"\nurl = "http://127.0.0.1:%d"\ntoken = "%s"\nindex = "alicloud"\n'
             'sourcetype = "alicloud:actiontrail"\ncompression = "gzip"\n' % (syslog_port, proxy_port, HEC_TOKEN))
    write_config(args, config, "scale-%s-%d" % (label, int(time.time() * 1000)), "fwd-0", [label], telemetry, sinks)
    t0 = time.monotonic()
    fwd = spawn([args.bin, "run", "--config", config], os.path.join(args.work, "%s.log" % label))
    stall_from = min(logs // 10, 50_000)
    stall_at = resumed_at = None
    hwm = 0
    peak_inflight = 0.0
    rss_series = []
    syslog_at_stall = syslog_at_resume = hec_at_stall = 0
    deadline = t0 + args.timeout + args.stall_seconds
    last_report = t0
    while True:
        now = time.monotonic()
        if fwd.poll() is not None:
            raise SystemExit("%s: forwarder exited (%s)" % (label, fwd.returncode))
        hwm = max(hwm, vm_hwm_kib(fwd.pid))
        s = read_stats(syslog_stats) or {}
        h = read_stats(hec_stats) or {}
        if stall_at is None and h.get("events", 0) >= stall_from:
            proxy.send_signal(signal.SIGUSR1)
            stall_at, hec_at_stall, syslog_at_stall = now, h.get("events", 0), s.get("events", 0)
            log("  HEC stalled at %d events (syslog %d), %.0f MiB peak RSS so far" % (hec_at_stall, syslog_at_stall, hwm / 1024))
        if stall_at is not None and resumed_at is None and now - stall_at >= args.stall_seconds:
            proxy.send_signal(signal.SIGUSR2)
            resumed_at, syslog_at_resume = now, s.get("events", 0)
            log("  HEC resumed; syslog moved %d events during the stall, %.0f MiB peak RSS so far"
                % (syslog_at_resume - syslog_at_stall, hwm / 1024))
        if int(now - t0) > len(rss_series):
            rss_series.append((now - t0, current_rss_kib(fwd.pid)))
            peak_inflight = max(peak_inflight, inflight_bytes(telemetry))
        if resumed_at is not None and s.get("events", 0) >= logs and h.get("events", 0) >= logs:
            break
        if now > deadline:
            stop(fwd)
            raise SystemExit("%s: not delivered after %ds (syslog %s, hec %s)" % (label, args.timeout, s.get("events"), h.get("events")))
        if now - last_report > 15:
            last_report = now
            log("  %.0fs: syslog %d, hec %d / %d, RSS %.0f MiB" % (now - t0, s.get("events", 0), h.get("events", 0), logs,
                                                                  current_rss_kib(fwd.pid) / 1024))
        time.sleep(0.2)
    done = time.monotonic() - t0
    cpu = cpu_seconds(fwd.pid)
    _, rusage, _ = stop(fwd, timeout=40)
    hwm = max(hwm, rusage.ru_maxrss if rusage else 0)
    for p in (proxy, syslog_rcv, hec_rcv):
        stop(p, timeout=10)
    stall_rss = max((r for t, r in rss_series if stall_at - t0 <= t <= resumed_at - t0), default=0)
    result = {"label": label, "gib": gib, "logs": logs, "raw": raw, "rss": hwm / 1024, "stall_rss": stall_rss / 1024,
              "syslog_during_stall": syslog_at_resume - syslog_at_stall, "done_s": done, "cpu": cpu,
              "stall_after_s": stall_at - t0, "inflight_mib": peak_inflight / 2**20}
    log("  " + backlog_row(result))
    return result


def current_rss_kib(pid):
    return proc_status_kib(pid, "VmRSS")


BACKLOG_HEADER = ("| backlog | logs | HEC stalled after s | logs to the healthy syslog receiver during the stall "
                  "| peak RSS during the stall MiB | peak RSS MiB | peak in-flight MiB (budget) | all delivered to both after s "
                  "| forwarder CPU s |")


def backlog_row(r):
    return ("| {gib:g} GiB ({raw_mib:.0f} MiB raw) | {logs:,} | {stall_after_s:.1f} | {syslog_during_stall:,} "
            "| {stall_rss:.0f} | {rss:.0f} | {inflight_mib:.0f} | {done_s:.0f} | {cpu:.1f} |").format(raw_mib=r["raw"] / 2**20, **r)


# ------------------------------------------------------------------ main

def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def number_list(text, kind=int):
    return [kind(x) for x in text.split(",") if x]


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "proxy":
        asyncio.run(proxy_main(int(sys.argv[2]), int(sys.argv[3])))
        return 0
    p = argparse.ArgumentParser(description="see scripts/bench.sh --help")
    p.add_argument("--bin", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--parts", default="shards,logstores,backlog")
    p.add_argument("--shards", default="16,64,256")
    p.add_argument("--processes", default="1,2,4")
    p.add_argument("--logstores", default="1,8,32")
    p.add_argument("--logstore-shards", type=int, default=64, help="shards in all for the logstores rows")
    p.add_argument("--logs", type=int, default=200_000, help="logs per shards/logstores row")
    p.add_argument("--idle-seconds", type=float, default=60)
    p.add_argument("--backlog", default="0.1,1,4", help="GiB per backlog row")
    p.add_argument("--stall-seconds", type=float, default=60)
    p.add_argument("--timeout", type=int, default=900, help="per row")
    p.add_argument("--server-max-connections", type=int, default=1024,
                   help="local-server --max-connections (its default, 256, is below what 256 shards open at start)")
    p.add_argument("--results", help="write the Markdown section here")
    p.add_argument("--command-line", default="scripts/bench.sh --scale")
    args = p.parse_args()
    args.parts = [x for x in args.parts.split(",") if x]
    args.shards = number_list(args.shards)
    args.processes = number_list(args.processes)
    args.logstores = number_list(args.logstores)
    args.backlog = number_list(args.backlog, float)

    signal.signal(signal.SIGTERM, lambda *_: (driver.cleanup(), sys.exit(143)))
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.data_dir, exist_ok=True)
    load_start = loadavg()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    groups, backlogs = [], []
    try:
        plan = logstore_plan(args)
        server, args.server_port = start_server(args, plan)
        raw = fill(args, args.server_port, plan)
        if "shards" in args.parts:
            for shards in args.shards:
                name = SHARD_STORE % shards
                for processes in args.processes:
                    groups.append(run_group(args, server, "shards%d" % shards, [name], shards, args.logs,
                                            raw[name], processes))
        if "logstores" in args.parts:
            for count in args.logstores:
                names = [SHARD_STORE % args.logstore_shards] if count == 1 else multi_names(count)
                shards = sum(plan[n][0] for n in names)
                logs = sum(plan[n][1] for n in names)
                groups.append(run_group(args, server, "logstores%d" % count, names, shards, logs,
                                        sum(raw[n] for n in names), 1))
        if "backlog" in args.parts:
            for gib in args.backlog:
                name = backlog_name(gib)
                backlogs.append(run_backlog(args, server, gib, plan[name][1], raw[name]))
        stop(server, timeout=20)
    finally:
        driver.cleanup()
    text = report(args, started, load_start, loadavg(), groups, backlogs)
    print()
    print(text)
    if args.results:
        write_results(args.results, text)
        log("results written to %s" % args.results)
    return 0


def report(args, started, load_start, load_end, groups, backlogs):
    lines = ["## Cost curve (`--scale`), %s" % started, ""]
    lines.append("- command: `%s`" % args.command_line)
    lines.append("- machine: `nproc` = %d, %s %s, load average (1/5/15 min) %s at the start, %s at the end; "
                 "forwarder commit %s" % (os.cpu_count(), platform.system(), platform.release(), load_start, load_end,
                                          driver.git_rev()))
    lines.append("- the product's consumer defaults (heartbeat 20 s, fetch_interval 1 s, checkpoint 5 s, 16 MiB "
                 "in flight), `start = \"begin\"`, a fresh consumer group per row; the embedded log service on the "
                 "same cores")
    if groups:
        lines.append("- group rows: null sink, %s logs (%.0f MiB raw) per row, all processes started at once; "
                     "\"balanced\" = every shard held by one process and each holding its fair share (their "
                     "`/status`), held until the end of the idle window; idle CPU over %.0f s with no new data "
                     "after everything was delivered; MiB/s per core = raw MiB / CPU-seconds of all processes "
                     "until delivered; pulls+heartbeats/s from the pacing (one pull per held shard per second at "
                     "rest, one heartbeat per logstore per 20 s); duplicates = logs delivered twice while shards "
                     "moved" % ("{:,}".format(args.logs), groups[0]["raw"] / 2**20, args.idle_seconds))
        lines.append("")
        lines.append(GROUP_HEADER)
        lines.append("|" + "---|" * (GROUP_HEADER.count("|") - 1))
        lines.extend(group_row(r) for r in groups)
    if backlogs:
        lines.append("")
        lines.append("Backlog rows: one process, %d shards, two sinks (RFC 5424 over TCP to a receiver that keeps "
                     "reading; Splunk HEC with gzip through a proxy that stops reading and forwarding for %.0f s "
                     "once the HEC receiver counted 10%% of the backlog, at most 50,000 logs, then recovers). "
                     "Peak RSS = VmHWM of the forwarder." % (BACKLOG_SHARDS, args.stall_seconds))
        lines.append("")
        lines.append(BACKLOG_HEADER)
        lines.append("|" + "---|" * (BACKLOG_HEADER.count("|") - 1))
        lines.extend(backlog_row(r) for r in backlogs)
    return "\n".join(lines) + "\n"


def write_results(path, text):
    """Replaces the latest cost-curve section of the Markdown file (or appends one)."""
    replace_section(path, "bench:scale", text)


if __name__ == "__main__":
    sys.exit(main())
