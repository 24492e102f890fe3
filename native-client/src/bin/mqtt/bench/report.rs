//! What a run measured: latency histograms, CPU and memory read from `/proc`, and the
//! [`Report`] printed as aligned text or as one JSON object (`--json`).

use std::fmt::Write as _;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency recorded, in µs (60 s); longer ones count as this.
const MAX_LATENCY_US: u64 = 60_000_000;

/// A latency histogram in µs: HDR, 3 significant digits (error ≤ 0.1 %), fixed memory
/// whatever the count, and mergeable across clients.
#[derive(Debug, Clone)]
pub(super) struct Latency(Histogram<u64>);

impl Latency {
    pub(super) fn new() -> Self {
        Self(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds"))
    }

    /// Records one sample; 0 µs counts as 1, beyond a minute as a minute.
    pub(super) fn record(&mut self, micros: u64) {
        self.0.saturating_record(micros.clamp(1, MAX_LATENCY_US));
    }

    pub(super) fn merge(&mut self, other: &Self) {
        // Same bounds on both sides: cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// The percentiles, `None` when nothing was recorded.
    pub(super) fn summary(&self) -> Option<LatencySummary> {
        let h = &self.0;
        (!h.is_empty()).then(|| LatencySummary {
            count: h.len(),
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        })
    }
}

/// Latency percentiles in µs.
#[derive(Debug, Clone, Serialize)]
pub(super) struct LatencySummary {
    pub(super) count: u64,
    pub(super) min: u64,
    pub(super) mean: f64,
    pub(super) p50: u64,
    pub(super) p90: u64,
    pub(super) p99: u64,
    pub(super) p999: u64,
    pub(super) max: u64,
}

/// Linux's USER_HZ, the unit of `/proc/PID/stat` times: 100 on every architecture Linux
/// supports today (`getconf CLK_TCK`), and reading it needs `libc::sysconf`.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// User + system CPU ticks of a process (`self` or a pid), from `/proc/PID/stat`.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its `)`.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

/// Resident memory of a process in KiB (`VmRSS` of `/proc/PID/status`).
pub(super) fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|line| line.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU use of this process and of the broker (`--broker-pid`) over a window.
#[derive(Debug)]
pub(super) struct CpuWindow {
    started: Instant,
    own: Option<u64>,
    broker_pid: Option<u32>,
    broker: Option<u64>,
}

impl CpuWindow {
    pub(super) fn start(broker_pid: Option<u32>) -> Self {
        Self {
            started: Instant::now(),
            own: cpu_ticks("self"),
            broker_pid,
            broker: broker_pid.and_then(|pid| cpu_ticks(&pid.to_string())),
        }
    }

    /// (this process, broker) CPU in % of one core since [`CpuWindow::start`].
    pub(super) fn stop(&self) -> (Option<f64>, Option<f64>) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let pct = |before: Option<u64>, after: Option<u64>| {
            let ticks = after?.checked_sub(before?)?;
            Some(round1(ticks as f64 / CLOCK_TICKS_PER_SEC / secs * 100.0))
        };
        let broker_now = self.broker_pid.and_then(|pid| cpu_ticks(&pid.to_string()));
        (
            pct(self.own, cpu_ticks("self")),
            pct(self.broker, broker_now),
        )
    }
}

pub(super) fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// Publish/deliver figures of `pub`, `sub`, `fanin`, `fanout` and `latency`.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Traffic {
    /// PUBLISH packets written by the publishers.
    pub(super) sent: u64,
    /// Of those, acknowledged by the broker (PUBACK / PUBCOMP; at QoS 0, all once the
    /// final PINGRESP came back, since the broker handles packets in order).
    pub(super) acked: u64,
    /// Deliveries expected by the subscribers: sent × subscribers (0 for `sub`, which
    /// does not know what was sent).
    pub(super) expected: u64,
    /// Deliveries counted by the subscribers, duplicates included.
    pub(super) received: u64,
    /// Expected − unique deliveries (messages the broker dropped or did not deliver in time).
    pub(super) lost: u64,
    /// The same (publisher, sequence) delivered twice to one subscriber.
    pub(super) duplicates: u64,
    /// Seconds from the first PUBLISH to the last acknowledgement.
    pub(super) publish_secs: f64,
    /// `acked / publish_secs`: what the broker accepted per second.
    pub(super) pub_rate: f64,
    /// Seconds from the first PUBLISH (or the end of the warmup) to the last delivery.
    pub(super) deliver_secs: f64,
    /// Deliveries per second over `deliver_secs` (fan-out: all subscribers together).
    pub(super) recv_rate: f64,
    /// PUBLISH written → delivered to a subscriber (timestamp in the payload), after the
    /// warmup. Under overload this is queueing delay.
    pub(super) latency_us: Option<LatencySummary>,
    /// PUBLISH written → PUBACK / PUBCOMP, after the warmup (QoS 1 and 2).
    pub(super) ack_latency_us: Option<LatencySummary>,
}

/// Figures of `conn`.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Connections {
    /// Connections asked for.
    pub(super) requested: u64,
    /// CONNACK with success.
    pub(super) connected: u64,
    /// CONNACK with an error reason code.
    pub(super) refused: u64,
    /// Transport errors, timeouts, or a connection lost while held.
    pub(super) errors: u64,
    /// From the first attempt to the last successful CONNACK.
    pub(super) time_to_all_ms: f64,
    /// `connected / time_to_all`.
    pub(super) connect_rate: f64,
    /// TCP connect (and TLS, WebSocket) + CONNECT → CONNACK.
    pub(super) connack_latency_us: Option<LatencySummary>,
    /// Connections still open at the end of the hold.
    pub(super) held: u64,
    /// First error message, to tell what went wrong without `-d`.
    pub(super) first_error: Option<String>,
}

/// One run's result: one JSON object with `--json`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Report {
    pub(super) tool: &'static str,
    pub(super) scenario: &'static str,
    pub(super) label: Option<String>,
    pub(super) url: String,
    /// `tcp`, `tls`, `ws` or `wss`.
    pub(super) transport: &'static str,
    /// `3.1.1` or `5`.
    pub(super) protocol: &'static str,
    pub(super) qos: u8,
    pub(super) payload_bytes: usize,
    pub(super) publishers: u64,
    pub(super) subscribers: u64,
    pub(super) traffic: Option<Traffic>,
    pub(super) connections: Option<Connections>,
    /// `storm`'s own figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) storm: Option<super::storm::Storm>,
    /// This tool's CPU over the measured window, % of one core: near 100 with one
    /// thread means the tool, not the broker, may be the limit.
    pub(super) client_cpu_pct: Option<f64>,
    /// The broker's CPU (`--broker-pid`) over the same window, % of one core.
    pub(super) broker_cpu_pct: Option<f64>,
    /// The broker's resident memory at the end of the window (`--broker-pid`), KiB.
    pub(super) broker_rss_kib: Option<u64>,
}

impl Report {
    pub(super) fn json(&self) -> String {
        serde_json::to_string(self).expect("a report serializes")
    }

    /// Aligned `key  value` lines for people.
    pub(super) fn text(&self) -> String {
        let mut out = String::new();
        let mut line = |key: &str, value: String| {
            let _ = writeln!(out, "{key:<22} {value}");
        };
        line(
            "scenario",
            match &self.label {
                Some(label) => format!("{} ({label})", self.scenario),
                None => self.scenario.to_owned(),
            },
        );
        line(
            "broker",
            format!(
                "{} ({}, MQTT {}, QoS {}, {} B payload)",
                self.url, self.transport, self.protocol, self.qos, self.payload_bytes
            ),
        );
        if let Some(t) = &self.traffic {
            line(
                "clients",
                format!(
                    "{} publishers, {} subscribers",
                    self.publishers, self.subscribers
                ),
            );
            if self.publishers > 0 {
                line("sent / acked", format!("{} / {}", t.sent, t.acked));
            }
            if self.subscribers > 0 && self.publishers > 0 {
                line(
                    "received",
                    format!(
                        "{} of {} expected ({} lost, {} duplicates)",
                        t.received, t.expected, t.lost, t.duplicates
                    ),
                );
            } else if self.subscribers > 0 {
                line(
                    "received",
                    format!("{} ({} duplicates)", t.received, t.duplicates),
                );
            }
            if self.publishers > 0 {
                line(
                    "publish rate",
                    format!("{:.0} msgs/s over {:.3} s", t.pub_rate, t.publish_secs),
                );
            }
            if self.subscribers > 0 {
                line(
                    "delivery rate",
                    format!("{:.0} msgs/s over {:.3} s", t.recv_rate, t.deliver_secs),
                );
            }
            if let Some(l) = &t.latency_us {
                line("latency", percentiles(l));
            }
            if let Some(l) = &t.ack_latency_us {
                line("ack latency", percentiles(l));
            }
        }
        if let Some(c) = &self.connections {
            line(
                "connections",
                format!(
                    "{} of {} connected, {} refused, {} errors, {} held to the end",
                    c.connected, c.requested, c.refused, c.errors, c.held
                ),
            );
            line(
                "time to all",
                format!(
                    "{:.1} ms ({:.0} connects/s)",
                    c.time_to_all_ms, c.connect_rate
                ),
            );
            if let Some(l) = &c.connack_latency_us {
                line("connect→CONNACK", percentiles(l));
            }
            if let Some(err) = &c.first_error {
                line("first error", err.clone());
            }
        }
        for (key, value) in self.storm.iter().flat_map(super::storm::Storm::lines) {
            line(key, value);
        }
        let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} %"));
        line(
            "cpu",
            format!(
                "tool {}, broker {}",
                pct(self.client_cpu_pct),
                pct(self.broker_cpu_pct)
            ),
        );
        if let Some(rss) = self.broker_rss_kib {
            line("broker rss", format!("{:.1} MiB", rss as f64 / 1024.0));
        }
        out
    }
}

fn percentiles(l: &LatencySummary) -> String {
    format!(
        "p50 {} µs, p90 {} µs, p99 {} µs, max {} µs ({} samples)",
        l.p50, l.p90, l.p99, l.max, l.count
    )
}
