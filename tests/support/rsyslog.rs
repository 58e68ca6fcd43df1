//! A private rsyslogd (the Debian package) for the syslog sink tests: started on free
//! loopback ports with its own config, pid file and work directory in a temp dir, writing
//! every received message as one JSON line, and killed when the guard is dropped.
//!
//! Install rsyslogd with `scripts/setup-rsyslog.sh` (run by `scripts/test.sh`).

use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const TEMPLATE: &str = include_str!("rsyslog.conf.template");
const RSYSLOGD_CANDIDATES: [&str; 2] = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"];
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Server-side TLS files of the receiver.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// CA that signed the server certificate (and, for mutual TLS, accepted client certs).
    pub ca_file: PathBuf,
    /// Server certificate chain.
    pub cert_file: PathBuf,
    /// Server key.
    pub key_file: PathBuf,
    /// Require a client certificate signed by `ca_file`.
    pub require_client_cert: bool,
}

/// Which inputs to open.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// An imudp input.
    pub udp: bool,
    /// An imtcp input (LF and octet-counted framing on one port).
    pub tcp: bool,
    /// An imtcp input with TLS.
    pub tls: Option<ServerTls>,
}

/// A running private rsyslogd.
pub struct Rsyslog {
    child: Option<Child>,
    dir: tempfile::TempDir,
    config: PathBuf,
    output: PathBuf,
    /// UDP port, when opened.
    pub udp_port: Option<u16>,
    /// Plain TCP port, when opened.
    pub tcp_port: Option<u16>,
    /// TLS port, when opened.
    pub tls_port: Option<u16>,
}

fn rsyslogd() -> &'static str {
    RSYSLOGD_CANDIDATES
        .into_iter()
        .find(|path| Path::new(path).exists())
        .unwrap_or_else(|| {
            panic!(
                "rsyslogd is not installed; run scripts/test.sh (it runs scripts/setup-rsyslog.sh) \
                 or scripts/setup-rsyslog.sh before cargo test"
            )
        })
}

fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free tcp port");
    listener.local_addr().expect("local address").port()
}

fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a free udp port");
    socket.local_addr().expect("local address").port()
}

/// True when `/proc/net/{tcp,udp}` shows a socket bound to `port` in `state`
/// (`0A` = listening TCP, `07` = bound UDP).
fn port_bound(table: &str, port: u16, state: &str) -> bool {
    let wanted = format!(":{port:04X}");
    fs::read_to_string(table)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            columns.len() > 3 && columns[1].ends_with(&wanted) && columns[3] == state
        })
}

impl Rsyslog {
    /// Starts rsyslogd with `inputs` on free loopback ports and waits until every port is
    /// bound.
    pub fn start(inputs: Inputs) -> Rsyslog {
        let dir = tempfile::Builder::new()
            .prefix("rsyslog-test-")
            .tempdir()
            .expect("temp dir");
        let output = dir.path().join("messages.jsonl");
        let config = dir.path().join("rsyslog.conf");
        let mut rsyslog = Rsyslog {
            child: None,
            config,
            output,
            udp_port: inputs.udp.then(free_udp_port),
            tcp_port: inputs.tcp.then(free_tcp_port),
            tls_port: inputs.tls.as_ref().map(|_| free_tcp_port()),
            dir,
        };
        rsyslog.write_config(&inputs);
        fs::write(&rsyslog.output, b"").expect("create the output file");
        rsyslog.spawn();
        rsyslog
    }

    fn write_config(&self, inputs: &Inputs) {
        let mut input_lines = String::new();
        let mut tls_global = String::new();
        if self.tcp_port.is_some() || self.tls_port.is_some() {
            input_lines.push_str("module(load=\"imtcp\" maxSessions=\"200\")\n");
        }
        if let Some(port) = self.tcp_port {
            input_lines.push_str(&format!(
                "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"recv\" name=\"tcp\")\n"
            ));
        }
        if let (Some(port), Some(tls)) = (self.tls_port, &inputs.tls) {
            tls_global = format!(
                "defaultNetstreamDriverCAFile=\"{}\" defaultNetstreamDriverCertFile=\"{}\" defaultNetstreamDriverKeyFile=\"{}\"",
                tls.ca_file.display(),
                tls.cert_file.display(),
                tls.key_file.display()
            );
            let auth_mode = if tls.require_client_cert {
                "x509/certvalid"
            } else {
                "anon"
            };
            input_lines.push_str(&format!(
                "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"recv\" name=\"tls\" \
                 streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"{auth_mode}\")\n"
            ));
        }
        if let Some(port) = self.udp_port {
            input_lines.push_str(&format!(
                "module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"recv\" name=\"udp\")\n"
            ));
        }
        let text = TEMPLATE
            .replace("@WORKDIR@", &self.dir.path().display().to_string())
            .replace("@OUTPUT@", &self.output.display().to_string())
            .replace("@TLS_GLOBAL@", &tls_global)
            .replace("@INPUTS@", &input_lines);
        fs::write(&self.config, text).expect("write the rsyslog config");
    }

    fn spawn(&mut self) {
        let stderr =
            fs::File::create(self.dir.path().join("rsyslogd.stderr")).expect("stderr file");
        let child = Command::new(rsyslogd())
            .arg("-n")
            .arg("-f")
            .arg(&self.config)
            .arg("-i")
            .arg(self.dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start rsyslogd");
        self.child = Some(child);
        self.wait_until_listening();
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let tcp_ready = [self.tcp_port, self.tls_port]
                .into_iter()
                .flatten()
                .all(|port| port_bound("/proc/net/tcp", port, "0A"));
            let udp_ready = self
                .udp_port
                .is_none_or(|port| port_bound("/proc/net/udp", port, "07"));
            if tcp_ready && udp_ready {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "rsyslogd did not come up (exit: {exited:?}); stderr:\n{}\nconfig:\n{}",
                    fs::read_to_string(self.dir.path().join("rsyslogd.stderr")).unwrap_or_default(),
                    fs::read_to_string(&self.config).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills rsyslogd (SIGKILL, like a crash) and waits until it is gone, so its sockets are
    /// closed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts rsyslogd again with the same config and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The JSON lines written so far (a line still being written is skipped).
    pub fn messages(&self) -> Vec<Value> {
        fs::read_to_string(&self.output)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Waits until `done` holds for the messages written so far, or panics after `timeout`
    /// with what was received.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if done(&messages) {
                return messages;
            }
            if Instant::now() > deadline {
                panic!(
                    "rsyslog output did not reach the expected state within {timeout:?}; got {} lines:\n{}\ninternal log:\n{}",
                    messages.len(),
                    messages.iter().take(5).map(Value::to_string).collect::<Vec<_>>().join("\n"),
                    fs::read_to_string(self.dir.path().join("rsyslogd-internal.log")).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.kill();
    }
}
