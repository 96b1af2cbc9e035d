//! The line formats of container log files, and what a kubelet file name
//! says about the container.

use serde_json::{Map, Value, json};

/// How a file's lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CRI (containerd, CRI-O): `<time> <stream> <P|F> <message>`.
    Cri,
    /// docker `json-file`, or any other JSON lines (an audit log).
    Json,
    /// A syslog file as rsyslog writes it: `Mmm dd hh:mm:ss host app[pid]: message`.
    SyslogFile,
    /// Anything else: each line is a message.
    Plain,
}

/// Detects the format from a file's first line.
pub fn detect(line: &str) -> Format {
    if line.trim_start().starts_with('{') {
        Format::Json
    } else if parse_cri(line).is_some() {
        Format::Cri
    } else if parse_syslog_file_line(line).is_some() {
        Format::SyslogFile
    } else {
        Format::Plain
    }
}

/// One CRI line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriLine<'a> {
    pub time: &'a str,
    pub stream: &'a str,
    /// `false` for a partial line (`P`), to be joined with the next ones of the same stream.
    pub full: bool,
    pub message: &'a str,
}

pub fn parse_cri(line: &str) -> Option<CriLine<'_>> {
    let mut parts = line.splitn(4, ' ');
    let time = parts.next()?;
    let stream = parts.next()?;
    let tag = parts.next()?;
    let message = parts.next().unwrap_or("");
    if !(stream == "stdout" || stream == "stderr") || chrono::DateTime::parse_from_rfc3339(time).is_err() {
        return None;
    }
    // The tag may carry more flags after the first, separated by ':'.
    let full = match tag.split(':').next()? {
        "F" => true,
        "P" => false,
        _ => return None,
    };
    Some(CriLine { time, stream, full, message })
}

/// A line of a syslog file (no `<PRI>`): parsed as RFC 3164 when it has a
/// timestamp and a tag.
pub fn parse_syslog_file_line(line: &str) -> Option<crate::syslog::Message> {
    let message = crate::syslog::parse::parse(&format!("<13>{line}"), chrono::Utc::now()).ok()?;
    (message.timestamp.is_some() && message.app_name.is_some()).then_some(message)
}

/// What a kubelet log file's name says: `/var/log/containers/<pod>_<namespace>_<container>-<id>.log`
/// or `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log`.
pub fn kubernetes_from_path(path: &str) -> Option<Value> {
    let mut segments: Vec<&str> = path.split('/').collect();
    let file = segments.pop()?;
    if let Some(stem) = file.strip_suffix(".log")
        && segments.last() == Some(&"containers")
    {
        let (pod, rest) = stem.split_once('_')?;
        let (namespace, rest) = rest.split_once('_')?;
        // The id is the last 64 hex characters after a '-'; long names are
        // truncated by the symlink's 255-byte limit, so fall back to no id.
        let (container, id) = match rest.rsplit_once('-') {
            Some((container, id)) if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
                (container, Some(id))
            }
            _ => (rest, None),
        };
        let mut kubernetes = Map::new();
        kubernetes.insert("pod_name".into(), json!(pod));
        kubernetes.insert("namespace_name".into(), json!(namespace));
        kubernetes.insert("container_name".into(), json!(container));
        if let Some(id) = id {
            kubernetes.insert("docker_id".into(), json!(id));
        }
        return Some(Value::Object(kubernetes));
    }
    let container = segments.pop()?;
    let pod_dir = segments.pop()?;
    if segments.last() != Some(&"pods") || !file.ends_with(".log") {
        return None;
    }
    let mut parts = pod_dir.splitn(3, '_');
    let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    Some(json!({"pod_name": pod, "namespace_name": namespace, "pod_id": uid, "container_name": container}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines_and_their_tags() {
        let line = parse_cri("2025-02-03T08:15:01.000000001Z stdout F GET /healthz 200").unwrap();
        assert_eq!((line.stream, line.full, line.message), ("stdout", true, "GET /healthz 200"));
        assert!(!parse_cri("2025-02-03T08:15:01Z stderr P part").unwrap().full);
        assert!(parse_cri("2025-02-03T08:15:01Z stdin F x").is_none());
        assert!(parse_cri("not a cri line at all").is_none());
        assert_eq!(parse_cri("2025-02-03T08:15:01Z stdout F").unwrap().message, "");
        assert_eq!(detect("{\"log\":\"x\"}"), Format::Json);
        assert_eq!(detect("2025-02-03T08:15:01Z stdout F x"), Format::Cri);
        assert_eq!(detect("hello"), Format::Plain);
    }

    #[test]
    fn kubelet_file_names_give_the_container() {
        let id = "3f1e5c0d9b8a7f6e5d4c3b2a19081726354a5b6c7d8e9f0a1b2c3d4e5f607182";
        let meta =
            kubernetes_from_path(&format!("/var/log/containers/web-0_shop_web-sidecar-{id}.log")).unwrap();
        assert_eq!(meta["pod_name"], "web-0");
        assert_eq!(meta["namespace_name"], "shop");
        assert_eq!(meta["container_name"], "web-sidecar");
        assert_eq!(meta["docker_id"], id);
        let truncated = kubernetes_from_path("/var/log/containers/a_b_c-123.log").unwrap();
        assert_eq!(truncated["container_name"], "c-123");
        let pods = kubernetes_from_path("/var/log/pods/shop_web-0_0b7c2f1e/web/0.log").unwrap();
        assert_eq!((pods["pod_name"].as_str(), pods["pod_id"].as_str()), (Some("web-0"), Some("0b7c2f1e")));
        assert!(kubernetes_from_path("/var/log/kube-apiserver/audit.log").is_none());
    }
}
