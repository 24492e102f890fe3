//! `mqtt history`: the broker's recorded history of the topics matching a filter
//! (`$history/query`, MQTT 5 request/response; docs/history.md), one sample a line.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use native_client::{Client, HistoryQuery, ProtocolVersion, ReasonCode};

use crate::args::ConnArgs;
use crate::failure::Failure;

/// `mqtt history` arguments.
#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// Topic filter (`+` and `#` allowed).
    filter: String,
    /// Samples since this long ago: `90s`, `10m`, `2h`, `1d`.
    #[arg(long, conflicts_with = "from", value_parser = parse_age)]
    since: Option<Duration>,
    /// Samples from this time on, ms since the Unix epoch.
    #[arg(long)]
    from: Option<u64>,
    /// Samples up to this time, ms since the Unix epoch.
    #[arg(long)]
    to: Option<u64>,
    /// At most this many samples per topic (the newest).
    #[arg(long)]
    limit: Option<u32>,
    /// Print the broker's JSON reply as it came.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the answer.
    #[arg(short = 'W', long, default_value = "10")]
    timeout: u64,
}

/// `90s`, `10m`, `2h`, `1d` (or plain seconds) as a duration.
fn parse_age(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: a number and s, m, h or d"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit is s, m, h or d")),
    };
    Ok(Duration::from_secs(number.saturating_mul(secs)))
}

/// Runs `mqtt history`.
pub(crate) async fn run(args: HistoryArgs) -> Result<(), Failure> {
    let url = args.conn.broker_url()?;
    let options = args.conn.connect_options(&url, "history")?;
    if options.session.version != ProtocolVersion::V5 {
        return Err(Failure::Usage(
            "history needs MQTT 5 request/response (-V 5)".into(),
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let from = match args.since {
        Some(age) => Some(u64::try_from(now.saturating_sub(age).as_millis()).unwrap_or(0)),
        None => args.from,
    };
    let query = HistoryQuery {
        filter: args.filter.clone(),
        from,
        to: args.to,
        limit: args.limit,
    };
    let client = Client::connect(options).await?;
    let timeout = Duration::from_secs(args.timeout);
    let result = if args.json {
        client
            .request(native_client::HISTORY_QUERY_TOPIC, query.encode(), timeout)
            .await
            .map(|reply| {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&reply.payload);
                let _ = writeln!(out);
            })
    } else {
        client.history(&query, timeout).await.map(|reply| {
            let mut out = std::io::stdout().lock();
            for topic in &reply.topics {
                for sample in &topic.samples {
                    let payload = sample.payload_str().map_or_else(
                        || format!("({} bytes)", sample.payload.len()),
                        str::to_owned,
                    );
                    let _ = writeln!(out, "{} {} {payload}", sample.time_ms, topic.topic);
                }
            }
            if reply.truncated {
                eprintln!("mqtt: the reply was cut to fit; narrow the filter or the range");
            }
        })
    };
    let _ = client.disconnect(ReasonCode::Success).await;
    result.map_err(|err| Failure::operation("history", err))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_with_their_units() {
        use std::time::Duration;
        assert_eq!(super::parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(super::parse_age("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(super::parse_age("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(super::parse_age("45"), Ok(Duration::from_secs(45)));
        assert!(super::parse_age("3w").is_err());
    }
}
