//! The deployment recipes in `deploy/` agree with each other and with the program: the
//! Kubernetes ConfigMap holds a valid configuration whose secrets come from the Secret the
//! Deployment references, every stop timeout exceeds the drain deadline, and the container
//! user, signal and command line match what the recipes expect.
//!
//! No YAML or unit-file parser is a dependency, so the files are read line by line; the
//! helpers fail loudly when a line they look for is missing.

use std::path::Path;
use std::time::Duration;

use siem_forwarder::config::ForwarderConfig;
use siem_forwarder::consumer::ConsumerConfig;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The values of every `KEY=value` / `key: value` line (comments skipped), trimmed.
fn values<'a>(text: &'a str, key: &str, separator: char) -> Vec<&'a str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(separator))
        .filter(|(name, _)| name.trim().trim_start_matches("- ") == key)
        .map(|(_, value)| value.trim())
        .collect()
}

/// The single value of `key`.
fn value<'a>(text: &'a str, key: &str, separator: char) -> &'a str {
    match values(text, key, separator)[..] {
        [one] => one,
        ref other => panic!("expected one `{key}`, found {other:?}"),
    }
}

/// `config.toml` of the ConfigMap: the block under `config.toml: |`, unindented.
fn configmap_config() -> String {
    let text = read("deploy/kubernetes/configmap.yaml");
    let mut lines = text
        .lines()
        .skip_while(|line| line.trim() != "config.toml: |");
    lines
        .next()
        .expect("configmap.yaml has a `config.toml: |` block");
    lines
        .take_while(|line| line.is_empty() || line.starts_with("    "))
        .map(|line| line.strip_prefix("    ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The Secret keys the Deployment passes as environment variables.
fn deployment_secret_variables() -> Vec<String> {
    let text = read("deploy/kubernetes/deployment.yaml");
    let names = values(&text, "name", ':');
    let keys = values(&text, "key", ':');
    let mut variables: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
    variables.sort();
    for variable in &variables {
        assert!(
            names.contains(&variable.as_str()),
            "env {variable} is not set"
        );
    }
    variables
}

/// The `${VAR}` references of `text`.
fn referenced_variables(text: &str) -> Vec<String> {
    let mut variables: Vec<String> = text
        .split("${")
        .skip(1)
        .map(|rest| rest.split('}').next().unwrap_or_default().to_owned())
        .collect();
    variables.sort();
    variables.dedup();
    variables
}

fn seconds(text: &str) -> u64 {
    text.trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("`{text}` is not a number of seconds"))
}

fn default_drain() -> Duration {
    ConsumerConfig::new("g").drain_timeout.0
}

#[test]
fn configmap_secrets_are_exactly_the_deployment_secret_variables() {
    let config = configmap_config();
    let referenced = referenced_variables(&config);
    assert!(
        referenced.iter().all(|variable| !variable.contains(":-")),
        "secrets in the ConfigMap must have no placeholder default: {referenced:?}"
    );
    let mut expected = deployment_secret_variables();
    expected.push("POD_NAME".into());
    expected.sort();
    assert_eq!(referenced, expected, "the Secret's keys and the pod name");
    let example = read("deploy/kubernetes/secret.example.yaml");
    for variable in referenced.iter().filter(|variable| *variable != "POD_NAME") {
        assert_eq!(values(&example, variable, ':').len(), 1, "{variable}");
    }
    let kustomization = read("deploy/kubernetes/kustomization.yaml");
    assert!(
        kustomization
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .all(|line| !line.contains("secret.example.yaml")),
        "applying the example Secret would overwrite the real one"
    );
}

/// Everything but `[telemetry]`, which `ForwarderConfig` does not know yet.
#[test]
fn configmap_config_validates_apart_from_telemetry() {
    let environment = |name: &str| Some(format!("value-of-{name}"));
    let mut table: toml::Table = configmap_config()
        .parse()
        .expect("configmap config is TOML");
    let telemetry = table.remove("telemetry").expect("a [telemetry] section");
    let listen = telemetry["listen"].as_str().expect("telemetry.listen");
    let deployment = read("deploy/kubernetes/deployment.yaml");
    assert!(deployment.contains("- name: telemetry\n              containerPort: 9300"));
    assert_eq!(
        listen, "0.0.0.0:9300",
        "the probes use the `telemetry` port 9300"
    );
    let without_telemetry = toml::to_string(&table).unwrap();
    let config = ForwarderConfig::parse(&without_telemetry, environment)
        .unwrap_or_else(|error| panic!("configmap config.toml: {error}"));
    siem_forwarder::app::build_sinks(&config.sinks).expect("configmap sinks build");
    let grace = seconds(value(&deployment, "terminationGracePeriodSeconds", ':'));
    assert!(
        Duration::from_secs(grace) > config.consumer.drain_timeout.0 + Duration::from_secs(20),
        "terminationGracePeriodSeconds {grace} must leave room after drain_timeout"
    );
}

#[test]
fn configmap_config_validates() {
    let config =
        ForwarderConfig::parse(&configmap_config(), |name| Some(format!("value-of-{name}")))
            .unwrap_or_else(|error| panic!("configmap config.toml: {error}"));
    siem_forwarder::app::build_sinks(&config.sinks).expect("configmap sinks build");
}

#[test]
fn deployment_is_locked_down_and_probed_on_the_telemetry_port() {
    let text = read("deploy/kubernetes/deployment.yaml");
    for (key, expected) in [
        ("replicas", "3"),
        ("runAsNonRoot", "true"),
        ("readOnlyRootFilesystem", "true"),
        ("allowPrivilegeEscalation", "false"),
        ("drop", "[\"ALL\"]"),
        ("memory", "256Mi"),
        ("automountServiceAccountToken", "false"),
    ] {
        assert!(
            values(&text, key, ':').contains(&expected),
            "{key}: {expected}"
        );
    }
    assert_eq!(values(&text, "path", ':'), ["/healthz", "/readyz"]);
    assert_eq!(values(&text, "port", ':'), ["telemetry", "telemetry"]);
    let dockerfile = read("deploy/docker/Dockerfile");
    let user = value(&dockerfile, "USER", ' ');
    assert_eq!(user, "10001:10001");
    assert_eq!(value(&text, "runAsUser", ':'), "10001");
}

#[test]
fn systemd_unit_validates_first_and_outwaits_the_drain() {
    let text = read("deploy/systemd/siem-forwarder.service");
    let stop = seconds(value(&text, "TimeoutStopSec", '='));
    assert!(
        Duration::from_secs(stop) > default_drain() + Duration::from_secs(20),
        "TimeoutStopSec={stop}s must leave room after the {:?} drain",
        default_drain()
    );
    let config = "--config /etc/siem-forwarder/config.toml";
    assert!(value(&text, "ExecStartPre", '=').ends_with(&format!("validate {config}")));
    assert!(value(&text, "ExecStart", '=').ends_with(&format!("run {config}")));
    assert_eq!(value(&text, "KillSignal", '='), "SIGTERM");
    let open_files: u64 = value(&text, "LimitNOFILE", '=').parse().unwrap();
    assert!(
        open_files >= 16_384,
        "LimitNOFILE={open_files}: a process holding hundreds of shards needs more than 1024"
    );
    assert_eq!(value(&text, "User", '='), "siem-forwarder");
    assert_eq!(value(&text, "ProtectSystem", '='), "strict");
    assert_eq!(value(&text, "CapabilityBoundingSet", '='), "");
    assert_eq!(
        values(&text, "ReadWritePaths", '='),
        [value(&text, "WorkingDirectory", '='), "-/run/lock"],
        "the working directory (relative paths, dead letters) and the consumer-name locks are the only writable paths"
    );
}

#[test]
fn every_recipe_gives_the_consumer_a_stable_name_unique_on_its_host() {
    // Kubernetes: the pod name, from the downward API.
    let config =
        ForwarderConfig::parse(&configmap_config(), |name| Some(format!("value-of-{name}")))
            .unwrap();
    assert_eq!(config.consumer.name.as_deref(), Some("value-of-POD_NAME"));
    let deployment = read("deploy/kubernetes/deployment.yaml");
    assert!(
        deployment.contains(
            "- name: POD_NAME\n              valueFrom:\n                fieldRef:\n                  fieldPath: metadata.name"
        ),
        "POD_NAME comes from the pod's own name"
    );
    // systemd: the default name's slot lock in the host's /run/lock, else the unit's runtime
    // directory.
    let unit = read("deploy/systemd/siem-forwarder.service");
    assert_eq!(value(&unit, "RuntimeDirectory", '='), "siem-forwarder");
    assert!(values(&unit, "ReadWritePaths", '=').contains(&"-/run/lock"));
    // Docker: a writable /run/lock for the default name's slot lock.
    let dockerfile = read("deploy/docker/Dockerfile");
    assert!(dockerfile.contains("install -d -m 1777 /run/lock"));
}

#[test]
fn docker_image_runs_the_documented_command_as_non_root() {
    let text = read("deploy/docker/Dockerfile");
    assert!(text.contains("cargo build --release --locked"));
    let build_stage = &text[..text.find("cargo build").unwrap()];
    assert!(
        build_stage.contains("apt-get install -y --no-install-recommends make"),
        "jemalloc's crate builds the allocator with make, which the slim Rust image lacks"
    );
    assert_eq!(value(&text, "STOPSIGNAL", ' '), "SIGTERM");
    assert_eq!(value(&text, "ENTRYPOINT", ' '), "[\"siem-forwarder\"]");
    assert_eq!(
        value(&text, "CMD", ' '),
        "[\"run\", \"--config\", \"/etc/siem-forwarder/config.toml\"]"
    );
    assert_ne!(value(&text, "USER", ' ').split(':').next(), Some("0"));
}
