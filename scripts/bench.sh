#!/usr/bin/env bash
# End-to-end benchmark of siem-forwarder against the official Python SDK's consumer worker.
# Run `scripts/bench.sh --help` for usage.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/bench.sh [--quick] [--logs N] [options]
       scripts/bench.sh --scale|--scale-quick [--bin PATH] [--write-results] [-- SCALE_OPTIONS]

End-to-end throughput of `siem-forwarder run` on one box, next to a Python reference built on the
official aliyun-log-python-sdk ConsumerWorker (what the seed's forwarders do).

  1. Starts `siem-forwarder local-server` (127.0.0.1, 16 shards) and fills it once with N generated
     ActionTrail-like audit logs (~1 KB each, nested JSON in `event`) via `siem-forwarder put`.
     The data stays in the data directory and is reused by later runs with the same N.
  2. For each case starts a fresh receiver (scripts/bench/receivers.py) and
     `target/release/siem-forwarder run --config GENERATED.toml` with a fresh consumer group
     (start = begin), waits until the receiver counted all N logs, reads the forwarder's CPU
     time, sends SIGTERM and waits for it to exit. Cases:
       discard      the null sink: pulled, decoded, acknowledged, nothing sent (progress from the
                    forwarder's own /metrics; no receiver)
       rfc5424-tcp  RFC 5424, k=v||k=v body, TCP octet-counting, receiver parses every frame
       cef-tls      CEF over TLS (certificates generated for the run with openssl)
       hec-gzip     Splunk HEC /event with gzip, receiver gunzips and counts events
       hec-ack      the same with indexer acknowledgement
     and, only when named in --cases, the archive sink into moto (.venv/s3, scripts/setup-s3.sh;
     progress from the forwarder's /metrics, counted as objects are stored):
       archive-json-gzip       JSON lines, gzip
       archive-parquet-snappy  Parquet, 10 typed columns, snappy pages
  3. Runs the Python reference (scripts/bench/py_reference.py) on the same data and receivers,
     time-boxed: py-syslog-tcp (SDK RFC 5424 client, k=v||k=v over TCP) and py-hec (one JSON
     event per POST with requests).
  4. Prints a table: raw MiB/s, events/s, forwarder CPU-seconds per GiB, MiB/s per core, peak
     RSS, receiver and server CPU; and the Rust/Python ratios.

Options:
  --quick               100,000 logs (~110 MiB raw), Python time box 30 s: about a minute
  --logs N              number of logs (default 1,000,000: ~1.1 GiB raw)
  --cases LIST          comma-separated forwarder cases (default: all five; "" for none)
  --python-cases LIST   py-syslog-tcp,py-hec (default both; "" to skip the Python reference)
  --python-seconds S    time box of each Python case (default 60, --quick 30)
  --max-inflight SIZE   consumer.max_inflight_bytes of the generated configs (default: not set, the
                        product's default is measured)
  --discard-format F    encode every log in F before the null sink drops it (default none;
                        rfc5424, rfc3164, json, cef, leef)
  --max-fetch-groups N  consumer.max_fetch_groups of the generated configs (default: not set)
  --hec-latency MS      the HEC receivers answer each data request after MS milliseconds, as a
                        distant collector (e.g. 150 for Splunk Cloud from on-premises)
  --syslog-latency MS   the syslog receivers (rfc5424-tcp, cef-tls) are MS ms away: each read is handled
                        MS ms later and at most one TCP window waits (the smaller of the kernel's
                        tcp_wmem/tcp_rmem maxima), so one connection moves at most a window per MS
  --syslog-window BYTES that window instead
  --ack-poll DURATION   ack_poll_interval of the hec-ack case (default 100ms)
  --perf                perf record each forwarder (dwarf call graphs): WORK/CASE.perf.data and a
                        hot-spot summary WORK/CASE.perf.txt (the figures then include perf's overhead)
  --refill              fill the data directory again even if it holds N logs
  --bin PATH            forwarder binary (default target/release/siem-forwarder, built only when
                        missing: run `cargo build --release` yourself after changing src/)
  --data-dir DIR        where the local server keeps the data (default target/bench/data-N)
  --work DIR            configs, logs and receiver stats (default target/bench/run)
  --write-results       also write the table to scripts/bench/RESULTS.md
  --scale               the cost curve instead (scripts/bench/scale.py, on the product's consumer
                        defaults): shards 16/64/256 with 1, 2 and 4 processes in one group, 1/8/32
                        logstores in one process, and a 0.1/1/4 GiB backlog with one SIEM stalled
                        for a minute; time until balanced, idle CPU, sockets, peak RSS, throughput.
                        About 30 minutes on 2 cores, plus filling ~7.5 GiB of data once
                        (target/bench/scale-data). Options after `--` go to scale.py: --parts,
                        --shards, --processes, --logstores, --logs, --idle-seconds, --backlog (GiB),
                        --stall-seconds (`python3 scripts/bench/scale.py --help`)
  --scale-quick         a small cost curve in about 3 minutes (16/256 shards, 1 and 4 processes,
                        1/32 logstores, 20 MiB and 100 MiB backlogs stalled 15 s, 20,000 logs;
                        data in target/bench/scale-quick-data)
  -h, --help            this text

Needs: cargo (builds target/release/siem-forwarder when missing), python3 >= 3.9, openssl, and
network access to PyPI once for the SDK virtualenv (.venv/sls-sdk, scripts/setup-python-sdk.sh).
Everything listens on 127.0.0.1 only and every child process is stopped on exit.
A full run with data already filled takes about 3 minutes on 2 cores (filling 1 GiB: ~30 s more).
Latest figures, profile findings and suggested fixes: scripts/bench/RESULTS.md.
EOF
}

cd "$(dirname "$0")/.."
command_line="scripts/bench.sh${*:+ $*}"
logs=1000000
python_seconds=""
driver_args=()
write_results=0
data_dir=""
work="target/bench/run"
bin=""
data_dir_given=""
scale=""
scale_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --quick) logs=100000; python_seconds=${python_seconds:-30}; shift ;;
        --logs) logs="$2"; shift 2 ;;
        --cases|--python-cases|--max-inflight|--max-fetch-groups|--ack-poll|--discard-format|--hec-latency|--syslog-latency|--syslog-window) driver_args+=("$1" "$2"); shift 2 ;;
        --python-seconds) python_seconds="$2"; shift 2 ;;
        --refill|--perf) driver_args+=("$1"); shift ;;
        --data-dir) data_dir="$2"; data_dir_given="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --work) work="$2"; shift 2 ;;
        --write-results) write_results=1; shift ;;
        --scale) scale=full; shift ;;
        --scale-quick) scale=quick; shift ;;
        --) shift; scale_args+=("$@"); break ;;
        *) echo "bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$logs" =~ ^[0-9]+$ && "$logs" -gt 0 ]] || { echo "bench.sh: --logs needs a positive number" >&2; exit 2; }
data_dir=${data_dir:-target/bench/data-$logs}

for tool in python3 openssl cargo; do
    command -v "$tool" >/dev/null || { echo "bench.sh: $tool not found" >&2; exit 1; }
done
if [[ -z "$bin" ]]; then
    bin=target/release/siem-forwarder
    [[ -x "$bin" ]] || { echo "bench.sh: building $bin (cargo build --release)" >&2; cargo build --release --bin siem-forwarder; }
fi
if [[ ! -x "$bin" ]]; then
    echo "bench.sh: $bin is not an executable" >&2
    exit 1
fi
if [[ -z "$scale" && ${#scale_args[@]} -gt 0 ]]; then
    echo "bench.sh: options after -- are for --scale or --scale-quick" >&2
    exit 2
fi
if [[ -n "$scale" ]]; then
    scale_data=target/bench/scale-data
    [[ "$scale" == quick ]] && scale_data=target/bench/scale-quick-data
    [[ "$scale" == quick ]] && scale_args=(--shards 16,256 --processes 1,4 --logstores 1,32 --logs 20000
        --idle-seconds 10 --backlog 0.02,0.1 --stall-seconds 15 "${scale_args[@]}")
    [[ $write_results -eq 1 ]] && scale_args+=(--results scripts/bench/RESULTS.md)
    mkdir -p "$work"
    exec python3 scripts/bench/scale.py --bin "$bin" --work "$work/scale" \
        --data-dir "${data_dir_given:-$scale_data}" --command-line "$command_line" "${scale_args[@]}"
fi
scripts/setup-python-sdk.sh

[[ $write_results -eq 1 ]] && driver_args+=(--results scripts/bench/RESULTS.md)
mkdir -p "$work"
echo "bench.sh: $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), $logs logs, work dir $work" >&2

driver_pid=""
cleanup() {
    if [[ -n "$driver_pid" ]] && kill -0 "$driver_pid" 2>/dev/null; then
        kill -TERM "$driver_pid" 2>/dev/null || true
        wait "$driver_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

python3 scripts/bench/driver.py --bin "$bin" --python .venv/sls-sdk/bin/python --logs "$logs" \
    --data-dir "$data_dir" --work "$work" --python-seconds "${python_seconds:-60}" \
    --command-line "$command_line" "${driver_args[@]}" &
driver_pid=$!
status=0
wait "$driver_pid" || status=$?
driver_pid=""
exit "$status"
