//! Starting the real `vigil serve`, talking to it, and stopping it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn vigil_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vigil"))
}

/// A `vigil serve` child process; killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    /// The forward protocol's address, when the server was started with `--forward`.
    pub forward: Option<String>,
    agent: ureq::Agent,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Starts `vigil serve` on a data directory, with extra flags, and waits
    /// until it says where it listens and answers /healthz. The forward
    /// listener is off unless `extra` has `--forward`.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let forward_off: &[&str] = if extra.contains(&"--forward") { &[] } else { &["--forward", "off"] };
        let mut child = Command::new(vigil_binary())
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--http", "127.0.0.1:0"])
            .args(forward_off)
            .args(extra)
            .env("RUST_LOG", "vigil=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vigil serve");
        let stdout = child.stdout.take().expect("stdout");
        let stderr_pipe = child.stderr.take().expect("stderr");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr_sink = stderr.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr_pipe);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                stderr_sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            // The forward line, when there is one, comes before the HTTP line.
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                let http = line.starts_with("vigil listening on ");
                let _ = sender.send(line);
                if http {
                    break;
                }
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let mut forward = None;
        let base = loop {
            let line = match receiver.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!("vigil serve did not start; stderr:\n{}", stderr.lock().unwrap());
                }
            };
            if let Some(address) = line.strip_prefix("vigil forward listening on ") {
                forward = Some(address.trim().to_owned());
                continue;
            }
            break line.strip_prefix("vigil listening on ").expect("listening line").trim().to_owned();
        };
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build(),
        );
        let server = Server { child, base, forward, agent, stderr };
        let (status, _) = server.get("/healthz");
        assert_eq!(status, 200);
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let mut response = self.agent.get(&self.url(path)).call().expect("GET");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().expect("body"))
    }

    pub fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.get(path);
        (status, serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON from {path}: {body}")))
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value, Option<String>) {
        let mut request = self.agent.post(&self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.send(body).expect("POST");
        let status = response.status().as_u16();
        let retry_after =
            response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_owned());
        let text = response.body_mut().read_to_string().expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), retry_after)
    }

    pub fn patch_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let mut response = self
            .agent
            .patch(&self.url(path))
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes())
            .expect("PATCH");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Searches until `count` events match (the index commits on a timer)
    /// or the deadline passes; returns the last answer.
    pub fn search_until(&self, query: &str, count: u64, deadline: Duration) -> Value {
        let started = Instant::now();
        loop {
            let (status, answer) = self.get_json(&format!("/api/v1/search?limit=1000&q={}", encode(query)));
            assert_eq!(status, 200, "{answer}");
            if answer["total"] == count || started.elapsed() > deadline {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Kills the process with SIGKILL, as a crash or the OOM killer would.
    pub fn kill_hard(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`HUP`, `TERM`, ...) to the server process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> String {
        let status =
            Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().expect("kill");
        assert!(status.success());
        let exit = self.child.wait().expect("wait");
        // Let the stderr thread read the last lines.
        std::thread::sleep(Duration::from_millis(50));
        let log = self.stderr.lock().unwrap().clone();
        assert!(exit.success(), "vigil exited with {exit}; stderr:\n{log}");
        log
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query-string value (the web crate's encoder).
pub use vigil_web::percent_encode as encode;

/// An audit Event as an API server writes it, with a few fields chosen.
pub fn audit_event(
    audit_id: &str,
    verb: &str,
    resource: &str,
    subresource: Option<&str>,
    user: &str,
) -> Value {
    let mut object_ref = serde_json::json!({"resource": resource, "namespace": "shop", "name": "web-7d9f", "apiVersion": "v1"});
    if let Some(subresource) = subresource {
        object_ref["subresource"] = Value::String(subresource.to_owned());
    }
    serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": audit_id,
        "stage": if subresource.is_some() { "ResponseStarted" } else { "ResponseComplete" },
        "requestURI": format!("/api/v1/namespaces/shop/{resource}/web-7d9f{}", subresource.map(|s| format!("/{s}")).unwrap_or_default()),
        "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.20.0.4"],
        "userAgent": "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
        "objectRef": object_ref,
        "responseStatus": {"metadata": {}, "code": if subresource.is_some() { 101 } else { 200 }},
        "requestReceivedTimestamp": "2026-11-20T10:00:00.000001Z",
        "stageTimestamp": "2026-11-20T10:00:00.004000Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding \"ops\""}
    })
}

pub fn event_list(items: &[Value]) -> Value {
    serde_json::json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items})
}
