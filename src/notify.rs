//! Notifications of new alerts to webhooks and Slack-compatible incoming
//! webhooks. Each destination has its own bounded queue and thread: the
//! rules consumer only tries to queue (never waits), a full queue drops the
//! alert and counts it, a slow or failing destination delays only itself.
//! Sends are rate-limited per destination and retried with exponential
//! back-off on 5xx, 429 and network errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_config::{LEVELS, NotifyDestination, NotifyKind};
use vigil_rules::Alert;
use vigil_web::{DestinationCounters, NotificationCounters};

/// How long one HTTP attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

struct Queue {
    destination: NotifyDestination,
    sender: SyncSender<Value>,
}

/// Sends new alerts to the configured destinations.
pub struct Notifier {
    queues: Vec<Queue>,
    counters: Arc<NotificationCounters>,
    stopping: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Notifier {
    /// Starts one sender thread per destination.
    pub fn start(destinations: &[NotifyDestination], counters: Arc<NotificationCounters>) -> Notifier {
        let stopping = Arc::new(AtomicBool::new(false));
        let mut queues = Vec::new();
        let mut workers = Vec::new();
        for destination in destinations {
            let (sender, receiver) = sync_channel(destination.queue);
            let worker = {
                let (destination, counters, stopping) =
                    (destination.clone(), counters.clone(), stopping.clone());
                std::thread::Builder::new()
                    .name(format!("vigil-notify-{}", destination.name))
                    .spawn(move || deliver(&destination, &receiver, &counters, &stopping))
            };
            match worker {
                Ok(worker) => {
                    workers.push(worker);
                    queues.push(Queue { destination: destination.clone(), sender });
                }
                Err(error) => {
                    tracing::error!(destination = %destination.name, %error, "cannot start the notification thread")
                }
            }
        }
        Notifier { queues, counters, stopping, workers }
    }

    /// Queues a new alert for every destination whose level it reaches.
    /// Never waits: a full queue drops the alert for that destination.
    /// Whether any destination is configured: with none, there is nothing
    /// to read a new alert back for.
    pub fn has_destinations(&self) -> bool {
        !self.queues.is_empty()
    }

    pub fn notify(&self, alert: &Alert) {
        let rank = |level: &str| LEVELS.iter().position(|known| *known == level).unwrap_or(0);
        for queue in &self.queues {
            if rank(&alert.rule.level) < rank(&queue.destination.min_level) {
                continue;
            }
            let payload = payload(queue.destination.kind, alert);
            match queue.sender.try_send(payload) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    let counters = self.counters.get(&queue.destination.name);
                    let dropped =
                        counters.map_or(0, |counters| counters.dropped.fetch_add(1, Ordering::Relaxed) + 1);
                    // Logged at 1, 2, 4, 8, ... drops so a flood does not flood the log.
                    if dropped.is_power_of_two() {
                        tracing::warn!(destination = %queue.destination.name, dropped, "notification queue full; alert not sent");
                    }
                }
            }
        }
    }

    /// Stops the senders: what is still queued is dropped and counted.
    pub fn shutdown(self) {
        self.stopping.store(true, Ordering::Relaxed);
        drop(self.queues);
        for worker in self.workers {
            if worker.join().is_err() {
                tracing::error!("a notification thread panicked");
            }
        }
    }
}

fn payload(kind: NotifyKind, alert: &Alert) -> Value {
    match kind {
        NotifyKind::Webhook => json!({ "type": "vigil.alert.new", "alert": alert }),
        NotifyKind::Slack => {
            let why: Vec<String> =
                alert.why.fields.iter().map(|field| format!("{}={}", field.field, field.value)).collect();
            json!({
                "text": format!(
                    "[{}] {} (alert {}): {}{}",
                    alert.rule.level.to_uppercase(),
                    alert.rule.title,
                    alert.id,
                    if alert.group.is_empty() { "no group" } else { alert.group.as_str() },
                    if why.is_empty() { String::new() } else { format!("; matched {}", why.join(", ")) }
                )
            })
        }
    }
}

/// A token bucket: `per_minute` sends a minute, in bursts of up to that many.
struct RateLimit {
    per_minute: f64,
    tokens: f64,
    refilled: Instant,
}

impl RateLimit {
    fn new(per_minute: u32) -> RateLimit {
        RateLimit {
            per_minute: f64::from(per_minute),
            tokens: f64::from(per_minute),
            refilled: Instant::now(),
        }
    }

    /// How long to wait before the next send may go.
    fn wait(&mut self) -> Duration {
        let now = Instant::now();
        let refill = now.duration_since(self.refilled).as_secs_f64() * self.per_minute / 60.0;
        self.tokens = (self.tokens + refill).min(self.per_minute);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Duration::ZERO
        } else {
            let missing = 1.0 - self.tokens;
            self.tokens -= 1.0;
            Duration::from_secs_f64(missing * 60.0 / self.per_minute)
        }
    }
}

fn deliver(
    destination: &NotifyDestination,
    queue: &Receiver<Value>,
    counters: &NotificationCounters,
    stopping: &AtomicBool,
) {
    let fallback = DestinationCounters::default();
    let counters = counters.get(&destination.name).unwrap_or(&fallback);
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(ATTEMPT_TIMEOUT))
            .build(),
    );
    let mut rate = RateLimit::new(destination.max_per_minute);
    for payload in queue {
        if stopping.load(Ordering::Relaxed) {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let wait = rate.wait();
        if !wait.is_zero() {
            counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(wait);
        }
        send_with_retries(&agent, destination, &payload, counters, stopping);
    }
}

fn send_with_retries(
    agent: &ureq::Agent,
    destination: &NotifyDestination,
    payload: &Value,
    counters: &DestinationCounters,
    stopping: &AtomicBool,
) {
    let body = payload.to_string();
    let mut backoff = destination.backoff;
    for attempt in 0..=destination.retries {
        if attempt > 0 {
            if stopping.load(Ordering::Relaxed) {
                break;
            }
            counters.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(backoff);
            backoff = backoff.saturating_mul(2);
        }
        let outcome = agent
            .post(&destination.url)
            .header("content-type", "application/json")
            .header("user-agent", concat!("vigil/", env!("CARGO_PKG_VERSION")))
            .send(body.as_bytes());
        let reason = match outcome {
            Ok(response) if response.status().is_success() => {
                add(&counters.sent);
                return;
            }
            Ok(response) => {
                let status = response.status().as_u16();
                if status != 429 && (400..500).contains(&status) {
                    add(&counters.failed);
                    tracing::error!(destination = %destination.name, status, "notification refused; not retried");
                    return;
                }
                format!("HTTP {status}")
            }
            Err(error) => error.to_string(),
        };
        tracing::warn!(destination = %destination.name, attempt = attempt + 1, %reason, "notification failed");
    }
    add(&counters.failed);
    tracing::error!(destination = %destination.name, "notification given up after every retry");
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(level: &str) -> Alert {
        Alert {
            id: 1,
            rule: vigil_rules::AlertRule {
                id: "r".into(),
                title: "Rule".into(),
                level: level.into(),
                tags: Vec::new(),
            },
            status: vigil_rules::AlertStatus::Open,
            first_seen: "2026-01-01T00:00:00Z".into(),
            last_seen: "2026-01-01T00:00:00Z".into(),
            count: 1,
            group: "user.name=dana".into(),
            event_ids: Vec::new(),
            assignee: None,
            author: None,
            rules_commit: None,
            why: vigil_rules::Why::default(),
            suppressed: 0,
            comments: None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        // A port nobody listens on: every attempt fails at once, and the
        // back-off keeps the sender busy while alerts pile up.
        let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let destination = NotifyDestination {
            name: "down".into(),
            kind: NotifyKind::Webhook,
            url: format!("http://127.0.0.1:{closed_port}/"),
            min_level: "low".into(),
            max_per_minute: 600,
            queue: 1,
            retries: 1,
            backoff: Duration::from_millis(300),
        };
        let counters = Arc::new(NotificationCounters::for_destinations(&["down".into()]));
        let notifier = Notifier::start(std::slice::from_ref(&destination), counters.clone());
        assert!(notifier.has_destinations());
        let started = Instant::now();
        for _ in 0..6 {
            notifier.notify(&alert("high"));
        }
        notifier.notify(&alert("informational"));
        assert!(started.elapsed() < Duration::from_millis(100), "notify waited");
        let down = counters.get("down").unwrap();
        let dropped = down.dropped.load(Ordering::Relaxed);
        assert!((4..=5).contains(&dropped), "{dropped}");
        notifier.shutdown();
        let failed = down.failed.load(Ordering::Relaxed);
        let dropped_in_all = down.dropped.load(Ordering::Relaxed);
        // Every alert at or above the level is accounted for; the
        // informational one was never queued.
        assert_eq!(failed + dropped_in_all, 6, "failed {failed}, dropped {dropped_in_all}");
    }

    #[test]
    fn a_notifier_knows_whether_it_has_destinations() {
        let counters = Arc::new(NotificationCounters::for_destinations(&[]));
        let notifier = Notifier::start(&[], counters);
        assert!(!notifier.has_destinations());
        notifier.shutdown();
    }

    #[test]
    fn the_rate_limit_spreads_sends_over_the_minute() {
        let mut rate = RateLimit::new(2);
        assert_eq!(rate.wait(), Duration::ZERO);
        assert_eq!(rate.wait(), Duration::ZERO);
        let third = rate.wait();
        assert!(third > Duration::from_secs(29) && third <= Duration::from_secs(30), "{third:?}");
    }
}
