#!/usr/bin/env python3
"""Driver of scripts/bench.sh (run it through that script; see `scripts/bench.sh --help`).

Fills a local log server once, then for every case starts a fresh receiver and a forwarder
(`run --config`, fresh consumer group, start = begin), waits until the receiver has counted all N
logs, reads the forwarder's CPU time from /proc/PID/stat, stops it with SIGTERM and takes its peak
RSS from wait4(). Then runs the Python reference (official SDK ConsumerWorker) time-boxed on the
same data and prints one table. Python 3.11 standard library only.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "scripts", "bench")
TICK = os.sysconf("SC_CLK_TCK")
PROJECT = "bench"
LOGSTORE = "actiontrail"
SHARDS = 16
AK_ID = "bench-ak"
AK_SECRET = "bench-secret"
HEC_TOKEN = "00000000-0000-0000-0000-000000000000"

CHILDREN = []  # Popen objects still to stop on exit


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv, logfile, env=None):
    out = open(logfile, "ab")
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=ROOT)
    out.close()
    CHILDREN.append(proc)
    return proc


def cpu_seconds(pid):
    """user+sys of one process (all its threads), from /proc/PID/stat; None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError):
        return None


def proc_status_kib(pid, field):
    """A KiB figure of /proc/PID/status (`VmHWM`, peak RSS; `VmRSS`, current RSS); 0 once
    the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def vm_hwm_kib(pid):
    return proc_status_kib(pid, "VmHWM")


def stop(proc, timeout=30.0, sig=signal.SIGTERM):
    """Signals proc, waits up to timeout (then SIGKILL); returns (exit status, rusage, seconds)."""
    t0 = time.monotonic()
    if proc.returncode is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                log("pid %d did not stop within %.0fs: SIGKILL" % (proc.pid, timeout))
                proc.kill()
                pid, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
    else:
        rusage = None
    if proc in CHILDREN:
        CHILDREN.remove(proc)
    return proc.returncode, rusage, time.monotonic() - t0


def cleanup(*_):
    for proc in list(CHILDREN):
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 10
    for proc in list(CHILDREN):
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    CHILDREN.clear()


def wait_port(port, proc, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("process %d exited (%s) before listening on %d" % (proc.pid, proc.returncode, port))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("nothing listens on 127.0.0.1:%d after %ds" % (port, seconds))


def read_stats(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class MetricsStats:
    """Progress of a case without a receiver (the null sink), read from the forwarder's own
    /metrics: events and bytes its sinks counted as delivered, with the times they were first
    seen above zero and last seen growing."""

    def __init__(self, port):
        self.url = "http://127.0.0.1:%d/metrics" % port
        self.stats = {"events": 0, "bytes": 0, "first": 0.0, "last": 0.0}

    def __call__(self):
        try:
            with urllib.request.urlopen(self.url, timeout=2) as reply:
                text = reply.read().decode()
        except OSError:
            return dict(self.stats)
        sums = {"events": 0, "bytes": 0}
        for line in text.splitlines():
            for key, name in (("events", "siem_forwarder_sink_delivered_events_total{"),
                              ("bytes", "siem_forwarder_sink_delivered_bytes_total{")):
                if line.startswith(name):
                    sums[key] += int(float(line.rsplit(" ", 1)[1]))
        now = time.time()
        if sums["events"] > self.stats["events"]:
            self.stats["first"] = self.stats["first"] or now
            self.stats["last"] = now
        self.stats.update(sums)
        return dict(self.stats)


def wait_stats(path, proc, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if read_stats(path):
            return
        if proc.poll() is not None:
            raise SystemExit("receiver exited (%s); see its log" % proc.returncode)
        time.sleep(0.05)
    raise SystemExit("receiver not ready after %ds" % seconds)


# ------------------------------------------------------------------ data

def raw_bytes(data_dir):
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(data_dir, "**", "*.data"), recursive=True))


def start_server(args, work):
    port = free_port()
    server = spawn([args.bin, "local-server", "--listen", "127.0.0.1:%d" % port, "--data-dir", args.data_dir,
                    "--project", PROJECT, "--logstore", "%s:%d" % (LOGSTORE, SHARDS),
                    "--access-key-id", AK_ID, "--access-key-secret", AK_SECRET],
                   os.path.join(work, "local-server.log"))
    wait_port(port, server, 120)
    return server, port


def fill(args, work):
    """Starts the server; fills it with N generated logs unless the data directory already has them."""
    marker = os.path.join(args.data_dir, "bench-fill.json")
    info = read_stats(marker)
    if info and info.get("logs") == args.logs and not args.refill:
        server, port = start_server(args, work)
        log("reusing %d logs (%.1f MiB raw) in %s" % (args.logs, info["raw_bytes"] / 2**20, args.data_dir))
        return server, port, info
    shutil.rmtree(args.data_dir, ignore_errors=True)
    os.makedirs(args.data_dir)
    server, port = start_server(args, work)
    log("filling %s/%s (%d shards) with %d generated audit logs ..." % (PROJECT, LOGSTORE, SHARDS, args.logs))
    t0 = time.monotonic()
    put = subprocess.run([args.bin, "put", "--endpoint", "http://127.0.0.1:%d" % port, "--project", PROJECT,
                          "--logstore", LOGSTORE, "--generate", str(args.logs), "--access-key-id", AK_ID,
                          "--access-key-secret", AK_SECRET], cwd=ROOT, capture_output=True, text=True,
                         timeout=3600)
    if put.returncode != 0:
        raise SystemExit("put failed:\n%s%s" % (put.stdout, put.stderr))
    info = {"logs": args.logs, "raw_bytes": raw_bytes(args.data_dir), "filled": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(marker, "w") as f:
        json.dump(info, f)
    log("%s in %.1fs: %.1f MiB raw (LogGroup protobuf, uncompressed)" % (put.stdout.strip(), time.monotonic() - t0,
                                                                       info["raw_bytes"] / 2**20))
    return server, port, info


def make_certs(work):
    d = os.path.join(work, "tls")
    os.makedirs(d, exist_ok=True)
    run = lambda *a: subprocess.run(a, cwd=d, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=bench-ca",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
        "-out", "server.csr")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem")
    return {k: os.path.join(d, k) for k in ("ca.pem", "server.pem", "server.key")}


# ------------------------------------------------------------------ cases

# name -> (receiver argv tail, sink TOML, description)
def cases(certs, discard_format, hec_latency_ms=0):
    hec_delay = ["--latency-ms", str(hec_latency_ms)] if hec_latency_ms else []
    return {
        # No receiver: the null sink acknowledges at once, progress comes from its /metrics.
        "discard": (None,
                    'type = "null"\n' + ('format = "%s"\n' % discard_format if discard_format != "none" else ""),
                    "the null sink: pulled, decoded and acknowledged, nothing sent (the pipeline's ceiling)"
                    + ("" if discard_format == "none" else "; every log encoded as %s first" % discard_format)),
        "rfc5424-tcp": (["syslog", "--framing", "octet"],
                        'type = "syslog"\naddress = "127.0.0.1:{port}"\nprotocol = "tcp"\nformat = "rfc5424"\nbody = "kv"\n',
                        "RFC 5424 k=v||k=v, TCP octet-counting, receiver parses frames"),
        "cef-tls": (["syslog", "--framing", "octet", "--tls-cert", certs["server.pem"], "--tls-key", certs["server.key"]],
                    'type = "syslog"\naddress = "127.0.0.1:{port}"\nprotocol = "tls"\nformat = "cef"\n'
                    'tls = {{ ca_file = "%s" }}\n'
                    'cef = {{ event_class_id_field = "action", name_field = "action", '
                    'extensions = {{ suser = "user", src = "source_ip", outcome = "result", msg = "event" }} }}\n'
                    % certs["ca.pem"],
                    "CEF over TLS 1.3 (rustls), octet-counting, receiver decrypts and parses frames"),
        "hec-gzip": (["hec"] + hec_delay,
                     'type = "splunk_hec"\nurl = "http://127.0.0.1:{port}"\ntoken = "%s"\nindex = "alicloud"\n'
                     'sourcetype = "alicloud:actiontrail"\ncompression = "gzip"\n' % HEC_TOKEN,
                     "HEC /event, gzip, 1000 events/1 MiB per request, receiver gunzips and counts"),
        "hec-ack": (["hec", "--ack"] + hec_delay,
                    'type = "splunk_hec"\nurl = "http://127.0.0.1:{port}"\ntoken = "%s"\nindex = "alicloud"\n'
                    'sourcetype = "alicloud:actiontrail"\ncompression = "gzip"\nack = true\n'
                    'ack_poll_interval = "{ack_poll}"\n' % HEC_TOKEN,
                    "as hec-gzip, indexer ack on (ackId per request, acks polled)"),
    }


def with_syslog_latency(args, receiver_argv):
    """The receiver argv of a case, with --syslog-latency/--syslog-window applied to syslog receivers."""
    if not args.syslog_latency or not receiver_argv or receiver_argv[0] != "syslog":
        return receiver_argv
    extra = ["--latency-ms", str(args.syslog_latency)]
    return receiver_argv + extra + (["--window", str(args.syslog_window)] if args.syslog_window else [])


PY_CASES = {
    "py-syslog-tcp": (["syslog", "--framing", "lf"], "syslog", "rfc5424-tcp"),
    "py-hec": (["hec"], "hec", "hec-gzip"),
}


def forwarder_config(args, server_port, case, sink):
    group = "bench-%s-%d" % (case, int(time.time() * 1000))
    return group, """# generated by scripts/bench/driver.py for case {case}
[source]
endpoint = "http://127.0.0.1:{server_port}"
project = "{project}"
logstores = ["{logstore}"]
access_key_id = "{ak_id}"
access_key_secret = "{ak_secret}"

[consumer]
group = "{group}"
start = "begin"
heartbeat_interval = "3s"
fetch_interval = "200ms"
checkpoint_interval = "2s"
{limits}
[[sinks]]
{sink}""".format(case=case, server_port=server_port, project=PROJECT, logstore=LOGSTORE, ak_id=AK_ID,
                 ak_secret=AK_SECRET, group=group, limits=consumer_limits(args), sink=sink)


def consumer_limits(args):
    """The consumer keys the run overrides; none by default, so the product's defaults are measured."""
    text = ""
    if args.max_inflight:
        text += 'max_inflight_bytes = "%s"\n' % args.max_inflight
    if args.max_fetch_groups:
        text += "max_fetch_groups = %d\n" % args.max_fetch_groups
    return text


def start_receiver(work, name, argv_tail):
    port = free_port()
    stats = os.path.join(work, "%s.receiver.json" % name)
    if os.path.exists(stats):
        os.remove(stats)
    proc = spawn([sys.executable, os.path.join(HERE, "receivers.py")] + argv_tail[:1] +
                 ["--port", str(port), "--stats", stats, "--max-seconds", "7200"] + argv_tail[1:],
                 os.path.join(work, "%s.receiver.log" % name))
    wait_stats(stats, proc)
    wait_port(port, proc, 15)
    return proc, port, stats


def measure(proc, read, target, timeout, server_pid, label):
    """Polls `read()` (the receiver's stats, or MetricsStats) until it counted `target` events,
    the timeout passes or proc exits. Returns a dict of what was seen at that moment (CPU of
    proc read before it is stopped)."""
    t0 = time.time()
    deadline = time.monotonic() + timeout
    hwm = 0
    last_report = time.monotonic()
    stats = read() or {}
    while True:
        hwm = max(hwm, vm_hwm_kib(proc.pid))
        stats = read() or stats
        events = stats.get("events", 0)
        if events >= target:
            outcome = "complete"
            break
        if proc.poll() is not None:
            outcome = "exited %s" % proc.returncode
            break
        if time.monotonic() > deadline:
            outcome = "timeout"
            break
        if time.monotonic() - last_report > 10:
            last_report = time.monotonic()
            log("  %s: %d / %d events, cpu %.1fs" % (label, events, target, cpu_seconds(proc.pid) or 0))
        time.sleep(0.05)
    cpu = cpu_seconds(proc.pid)
    stats = read() or stats
    return {"outcome": outcome, "cpu": cpu, "hwm_kib": max(hwm, vm_hwm_kib(proc.pid)), "events": stats.get("events", 0),
            "start": t0, "first": stats.get("first", 0), "last": stats.get("last", 0),
            "sent_bytes": stats.get("bytes", 0), "server_cpu": cpu_seconds(server_pid)}


def run_case(args, work, server, server_port, info, name, receiver_argv, sink):
    log("case %s" % name)
    if receiver_argv is None:
        receiver, telemetry_port = None, free_port()
        read = MetricsStats(telemetry_port)
        sink += '\n[telemetry]\nlisten = "127.0.0.1:%d"\n' % telemetry_port
    else:
        receiver, rport, stats_path = start_receiver(work, name, receiver_argv)
        read = lambda: read_stats(stats_path)  # noqa: E731
        sink = sink.format(port=rport, ack_poll=args.ack_poll)
    group, text = forwarder_config(args, server_port, name, sink)
    config = os.path.join(work, "%s.toml" % name)
    with open(config, "w") as f:
        f.write(text)
    server_cpu0 = cpu_seconds(server.pid)
    fwd = spawn([args.bin, "run", "--config", config], os.path.join(work, "%s.forwarder.log" % name))
    perf = None
    if args.perf:
        perf_data = os.path.join(work, "%s.perf.data" % name)
        # System-wide, filtered to the forwarder afterwards: `-p PID` would miss the threads the
        # forwarder starts later (tokio's blocking pool, where pulled batches are decoded).
        perf = spawn(["perf", "record", "-a", "-F", "499", "--call-graph", "dwarf,16384", "-o", perf_data],
                     os.path.join(work, "%s.perf.log" % name))
    m = measure(fwd, read, info["logs"], args.case_timeout, server.pid, name)
    if perf:
        stop(perf, timeout=60, sig=signal.SIGINT)
        summary = os.path.join(work, "%s.perf.txt" % name)
        with open(summary, "w") as out:
            script = subprocess.Popen(["perf", "script", "-i", perf_data, "--pid", str(fwd.pid),
                                       "-F", "comm,tid,ip,sym", "--no-inline"],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            subprocess.run([sys.executable, os.path.join(HERE, "perf_top.py")], stdin=script.stdout, stdout=out,
                           timeout=600)
            script.stdout.close()
            script.wait(timeout=60)
        log("  perf profile: %s (summary), perf report -i %s --pid %d --no-children" % (summary, perf_data, fwd.pid))
    code, rusage, stop_secs = stop(fwd, timeout=40)
    m["exit"] = code
    m["stop_secs"] = stop_secs
    if rusage:
        m["hwm_kib"] = max(m["hwm_kib"], rusage.ru_maxrss)
        m["cpu_total"] = rusage.ru_utime + rusage.ru_stime
    if receiver:
        m["receiver_cpu"] = cpu_seconds(receiver.pid)
        stop(receiver, timeout=10)
    else:
        m["receiver_cpu"] = None
    m["server_cpu"] = (m["server_cpu"] or 0) - (server_cpu0 or 0)
    m["logs"] = m["events"] if m["outcome"] != "complete" else info["logs"]
    m["raw"] = info["raw_bytes"] * min(m["events"], info["logs"]) / info["logs"]
    m["wall"] = max(m["last"] - m["start"], 1e-3)
    if m["outcome"] != "complete":
        log("  %s: %s after %d of %d events; see %s.forwarder.log" % (name, m["outcome"], m["events"], info["logs"], name))
    return m


# ------------------------------------------------------------------ archive cases

S3_PYTHON = os.path.join(ROOT, ".venv", "s3", "bin", "python")
S3_TOOL = os.path.join(ROOT, "tests", "python", "s3_tool.py")
ARCHIVE_BUCKET = "archive"

ARCHIVE_CASES = {
    "archive-json-gzip": (
        'format = "json"\ncompression = "gzip"\n',
        "the object_storage sink into moto (scripts/setup-s3.sh): JSON lines, gzip, files sealed at "
        "2,000 logs or 3 s; progress is what the sink counted as stored (its /metrics)"),
    "archive-parquet-snappy": (
        'format = "parquet"\ncompression = "snappy"\n'
        'columns = [{ key = "__time__", name = "time", type = "int64" }, '
        '{ key = "__tag__:__receive_time__", name = "receive_time", type = "int64" }, "__topic__", '
        '"user", "source_ip", "action", "result", "region", "event_id", "event"]\n',
        "as archive-json-gzip, Parquet with 10 columns (2 int64), snappy pages"),
}


def start_moto(work, name):
    """Starts moto on a free loopback port (the test suite's s3_tool.py, which runs until its stdin
    closes) and creates the bucket; returns (process, endpoint)."""
    if not os.path.exists(S3_PYTHON):
        subprocess.run([os.path.join(ROOT, "scripts", "setup-s3.sh")], check=True)
    out = open(os.path.join(work, "%s.moto.log" % name), "ab")
    proc = subprocess.Popen([S3_PYTHON, S3_TOOL, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=out, cwd=ROOT)
    out.close()
    CHILDREN.append(proc)
    for line in iter(proc.stdout.readline, b""):
        if line.startswith(b"PORT "):
            break
    else:
        raise SystemExit("moto exited before it listened; see %s.moto.log" % name)
    endpoint = "http://127.0.0.1:%d" % int(line.split()[1])
    subprocess.run([S3_PYTHON, S3_TOOL, "create", endpoint, ARCHIVE_BUCKET], check=True, cwd=ROOT)
    return proc, endpoint


def run_archive_case(args, work, server, server_port, info, name):
    """An archive case: moto as the receiver, progress from the forwarder's /metrics (events the
    sink counted once their objects were stored)."""
    moto, endpoint = start_moto(work, name)
    body, _ = ARCHIVE_CASES[name]
    sink = ('type = "object_storage"\nendpoint = "%s"\nregion = "us-east-1"\nbucket = "%s"\n'
            'access_key_id = "bench"\nsecret_access_key = "bench"\nmax_age = "3s"\nmax_events = 2000\n%s'
            % (endpoint, ARCHIVE_BUCKET, body))
    m = run_case(args, work, server, server_port, info, name, None, sink)
    m["receiver_cpu"] = cpu_seconds(moto.pid)
    moto.stdin.close()
    stop(moto, timeout=10)
    return m


def describe(all_cases, name):
    return ARCHIVE_CASES[name][1] if name in ARCHIVE_CASES else all_cases[name][2]


def run_python(args, work, server, server_port, info, name, receiver_argv, sink):
    log("case %s (Python SDK reference, at most %ds)" % (name, args.python_seconds))
    receiver, rport, stats_path = start_receiver(work, name, receiver_argv)
    group = "bench-%s-%d" % (name, int(time.time() * 1000))
    env = dict(os.environ, HTTP_PROXY="http://127.0.0.1:%d" % server_port, http_proxy="http://127.0.0.1:%d" % server_port,
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    argv = [args.python, os.path.join(HERE, "py_reference.py"), "--endpoint", "sls.test:%d" % server_port,
            "--project", PROJECT, "--logstore", LOGSTORE, "--group", group, "--access-key-id", AK_ID,
            "--access-key-secret", AK_SECRET, "--stats", os.path.join(work, "%s.py.json" % name),
            "--sink", sink, "--seconds", str(args.python_seconds + 30)]
    argv += ["--syslog-port", str(rport)] if sink == "syslog" else ["--hec-url", "http://127.0.0.1:%d" % rport]
    server_cpu0 = cpu_seconds(server.pid)
    proc = spawn(argv, os.path.join(work, "%s.log" % name), env=env)
    m = measure(proc, lambda: read_stats(stats_path), info["logs"], args.python_seconds, server.pid, name)
    code, rusage, _ = stop(proc, timeout=5, sig=signal.SIGKILL)  # measured already; no need to drain
    m["exit"] = code
    if rusage:
        m["hwm_kib"] = max(m["hwm_kib"], rusage.ru_maxrss)
    m["receiver_cpu"] = cpu_seconds(receiver.pid)
    stop(receiver, timeout=10)
    m["server_cpu"] = (m["server_cpu"] or 0) - (server_cpu0 or 0)
    if m["outcome"] == "timeout":
        m["outcome"] = "time-boxed %ds" % args.python_seconds
    m["logs"] = m["events"]
    m["raw"] = info["raw_bytes"] * min(m["events"], info["logs"]) / info["logs"]
    m["wall"] = max(m["last"] - m["start"], 1e-3)
    return m


# ------------------------------------------------------------------ report

def row(name, m):
    mib = m["raw"] / 2**20
    cpu = m["cpu"] or 0
    return {
        "case": name,
        "logs": m["events"],
        "raw_mib": mib,
        "wall": m["wall"],
        "mibs": mib / m["wall"],
        "evs": m["events"] / m["wall"],
        "cpu": cpu,
        "cpu_per_gib": cpu / (m["raw"] / 2**30) if m["raw"] else float("nan"),
        "per_core": mib / cpu if cpu else float("nan"),
        "rss_mib": m["hwm_kib"] / 1024,
        "rcv_cpu": m["receiver_cpu"],
        "srv_cpu": m["server_cpu"] or 0,
        "outcome": m["outcome"],
    }


HEADER = ("| case | logs | raw MiB | wall s | raw MiB/s | events/s | CPU s | CPU s/GiB | MiB/s per core "
          "| peak RSS MiB | receiver CPU s | server CPU s | end |")


def fmt(r):
    return ("| {case} | {logs:,} | {raw_mib:.1f} | {wall:.2f} | {mibs:.1f} | {evs:,.0f} | {cpu:.2f} | {cpu_per_gib:.2f} "
            "| {per_core:.1f} | {rss_mib:.1f} | {rcv} | {srv_cpu:.2f} | {outcome} |").format(
                rcv="none" if r["rcv_cpu"] is None else "%.2f" % r["rcv_cpu"], **r)


def main():
    p = argparse.ArgumentParser(description="see scripts/bench.sh --help")
    p.add_argument("--bin", required=True)
    p.add_argument("--python", required=True, help="Python with aliyun-log-python-sdk")
    p.add_argument("--logs", type=int, required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--cases", default="discard,rfc5424-tcp,cef-tls,hec-gzip,hec-ack")
    p.add_argument("--python-cases", default="py-syslog-tcp,py-hec")
    p.add_argument("--python-seconds", type=int, default=60)
    p.add_argument("--case-timeout", type=int, default=900)
    p.add_argument("--max-inflight", default="", help="consumer.max_inflight_bytes (default: the product's)")
    p.add_argument("--ack-poll", default="100ms")
    p.add_argument("--max-fetch-groups", type=int, default=0, help="consumer.max_fetch_groups (default: the product's)")
    p.add_argument("--hec-latency", type=float, default=0, help="HEC receivers answer data requests after this many ms")
    p.add_argument("--syslog-latency", type=float, default=0,
                   help="syslog receivers handle each read after this many ms, one TCP window at a time")
    p.add_argument("--syslog-window", type=int, default=0, help="bytes in flight with --syslog-latency (default: kernel's)")
    p.add_argument("--discard-format", default="none", choices=["none", "rfc5424", "rfc3164", "json", "cef", "leef"])
    p.add_argument("--refill", action="store_true")
    p.add_argument("--perf", action="store_true", help="perf record -g the forwarder of every case")
    p.add_argument("--results", help="write the results as Markdown here")
    p.add_argument("--command-line", default="scripts/bench.sh")
    args = p.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: (cleanup(), sys.exit(143)))
    os.makedirs(args.work, exist_ok=True)
    try:
        certs = make_certs(args.work)
        all_cases = cases(certs, args.discard_format, args.hec_latency)
        wanted = [c for c in args.cases.split(",") if c]
        for c in wanted:
            if c not in all_cases and c not in ARCHIVE_CASES:
                raise SystemExit("unknown case %s (known: %s)" % (c, ", ".join(list(all_cases) + list(ARCHIVE_CASES))))
        py_wanted = [c for c in args.python_cases.split(",") if c]
        server, port, info = fill(args, args.work)
        results = {}
        for name in wanted:
            if name in ARCHIVE_CASES:
                results[name] = row(name, run_archive_case(args, args.work, server, port, info, name))
                log("  " + fmt(results[name]))
                continue
            receiver_argv, sink, _ = all_cases[name]
            receiver_argv = with_syslog_latency(args, receiver_argv)
            results[name] = row(name, run_case(args, args.work, server, port, info, name, receiver_argv, sink))
            log("  " + fmt(results[name]))
        for name in py_wanted:
            receiver_argv, sink, _ = PY_CASES[name]
            results[name] = row(name, run_python(args, args.work, server, port, info, name, receiver_argv, sink))
            log("  " + fmt(results[name]))
        stop(server, timeout=20)
    finally:
        cleanup()

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    lines = []
    lines.append("## Benchmark results, %s" % now)
    lines.append("")
    lines.append("- command: `%s`" % args.command_line)
    lines.append("- machine: `nproc` = %d, %s, %s %s; forwarder commit %s" % (
        os.cpu_count(), cpu_model or "unknown CPU", platform.system(), platform.release(), git_rev()))
    lines.append("- data: %s logs (generated ActionTrail-like audit logs, nested JSON `event`), %d shards, "
                 "%.1f MiB raw (uncompressed LogGroup protobuf as stored by the local server, %.0f B/log)"
                 % ("{:,}".format(info["logs"]), SHARDS, info["raw_bytes"] / 2**20, info["raw_bytes"] / info["logs"]))
    lines.append("- forwarder cases: from the start of the forwarder to the receiver (for `discard`, the forwarder's "
                 "own /metrics) counting all logs; the forwarder's "
                 "own CPU (user+sys from /proc/PID/stat; for py-* rows the Python process's), peak RSS = VmHWM of that process. Receivers are Python asyncio on the same 2 "
                 "cores, the local server (which serves the pulls) too.")
    lines.append("- consumer limits: %s; HEC receivers answer after %s." % (
        consumer_limits(args).strip().replace("\n", ", ") or "the product's defaults",
        "%g ms" % args.hec_latency if args.hec_latency else "no added delay"))
    if args.syslog_latency:
        lines.append("- syslog receivers: %g ms away, one TCP window (%s) in flight." % (
            args.syslog_latency, "%d bytes" % args.syslog_window if args.syslog_window else "the kernel's largest"))
    lines.append("- Python reference (official SDK `ConsumerWorker`, `py_reference.py`): time-boxed to %ds (or all logs, "
                 "whichever first); rates from what it delivered in that time, CPU of the Python process only."
                 % args.python_seconds)
    lines.append("")
    lines.append(HEADER)
    lines.append("|" + "---|" * (HEADER.count("|") - 1))
    for name in wanted + py_wanted:
        lines.append(fmt(results[name]))
    heavy = [n for n in wanted + py_wanted
             if results[n]["rcv_cpu"] is not None and results[n]["rcv_cpu"] >= results[n]["cpu"]]
    lines.append("")
    lines.append("Receiver CPU below the measured process's CPU in every case: %s." % (
        "yes" if not heavy else "NO, in " + ", ".join(heavy) + " (the receiver may have limited the rate)"))
    lines.append("")
    lines.append("Rust vs. Python reference on the same case:")
    lines.append("")
    lines.append("| forwarder case | Python case | MiB/s per core ratio (per CPU-second) | raw MiB/s ratio (wall) |")
    lines.append("|---|---|---|---|")
    for py in py_wanted:
        rust = PY_CASES[py][2]
        if rust in results:
            a, b = results[rust], results[py]
            lines.append("| %s | %s | %.1fx | %.1fx |" % (rust, py, a["per_core"] / b["per_core"] if b["per_core"] else float("nan"),
                                                     a["mibs"] / b["mibs"] if b["mibs"] else float("nan")))
    lines.append("")
    lines.append("Cases: " + "; ".join("`%s` %s" % (n, describe(all_cases, n)) for n in wanted) + ".")
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if args.results:
        write_results(args.results, info["logs"], text)
        log("results written to %s" % args.results)
    incomplete = [r["case"] for r in results.values() if r["outcome"] != "complete" and not r["case"].startswith("py-")]
    if incomplete:
        log("INCOMPLETE cases: %s" % ", ".join(incomplete))
        return 1
    return 0


def write_results(path, logs, text):
    """Keeps one section per data size (e.g. the --quick and the full run) in the Markdown file,
    replacing the section of this size."""
    head = ("# siem-forwarder end-to-end benchmark: latest results\n\n"
            "Written by `scripts/bench.sh --write-results` (see `scripts/bench.sh --help`); each run replaces the "
            "section of its data size.\n")
    replace_section(path, "bench:%d" % logs, text, head)


def replace_section(path, marker, text, head=""):
    """Replaces the text between `<!-- MARKER:begin -->` and `<!-- MARKER:end -->` in the
    Markdown file, or appends such a section (to `head` when the file does not exist)."""
    begin, end = "<!-- %s:begin -->" % marker, "<!-- %s:end -->" % marker
    try:
        with open(path) as f:
            current = f.read()
    except OSError:
        current = head
    section = "%s\n%s%s" % (begin, text, end)
    if begin in current and end in current:
        current = current[:current.index(begin)] + section + current[current.index(end) + len(end):]
    else:
        current = current.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(current)


def git_rev():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
