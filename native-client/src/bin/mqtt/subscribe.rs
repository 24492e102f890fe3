//! `mqtt sub`: subscribe to one or more filters and print what arrives, like
//! `mosquitto_sub`, as payloads, `topic payload` lines or JSON lines.

use std::io::Write;
use std::time::Duration;

use clap::{Args, ValueEnum};
use futures::StreamExt;
use native_client::{Client, Message, QoS, ReasonCode, SubscribeOptions};
use serde_json::{Map, Value, json};

use crate::args::{ConnArgs, parse_qos};
use crate::failure::Failure;

/// How each message is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// The payload alone.
    Payload,
    /// `topic payload`, like `mosquitto_sub -v`.
    Topic,
    /// One JSON object per line: topic, payload, qos, retain and MQTT 5 properties.
    Json,
}

/// `mqtt sub` arguments.
#[derive(Debug, Args)]
pub(crate) struct SubArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// Topic filter to subscribe to (repeatable; or the path of -L).
    #[arg(short = 't', long = "topic")]
    topics: Vec<String>,
    /// Maximum QoS of the subscriptions.
    #[arg(short = 'q', long, default_value = "0", value_parser = parse_qos)]
    qos: QoS,
    /// Output format.
    #[arg(short = 'F', long, value_enum, default_value_t = Format::Payload)]
    format: Format,
    /// Same as --format topic.
    #[arg(short = 'v', long, conflicts_with = "format")]
    verbose: bool,
    /// Exit after this many messages.
    #[arg(short = 'C', long)]
    count: Option<u64>,
    /// Exit after this many seconds (exit code 2 if -C was not reached).
    #[arg(short = 'W', long)]
    timeout: Option<u64>,
    /// Do not print a newline after each payload.
    #[arg(short = 'N', long = "no-newline")]
    no_newline: bool,
    /// Skip retained messages (those sent because of the subscription).
    #[arg(short = 'R', long = "no-retained")]
    no_retained: bool,
}

/// Runs `mqtt sub`.
pub(crate) async fn run(args: SubArgs) -> Result<(), Failure> {
    let url = args.conn.broker_url()?;
    let mut filters = args.topics.clone();
    if filters.is_empty() && !url.path.is_empty() && !url.scheme.is_websocket() {
        filters.push(url.path.clone());
    }
    if filters.is_empty() {
        return Err(Failure::Usage(
            "no topic: give -t FILTER (repeatable)".into(),
        ));
    }
    for filter in &filters {
        filter
            .parse::<native_client::TopicFilter>()
            .map_err(|err| Failure::Usage(format!("topic filter `{filter}`: {err}")))?;
    }
    let format = if args.verbose {
        Format::Topic
    } else {
        args.format
    };
    let options = args.conn.connect_options(&url, "sub")?;
    let client = Client::connect(options).await?;
    let mut streams = Vec::new();
    for filter in &filters {
        let subscription = client
            .subscribe(filter.clone(), SubscribeOptions::new(args.qos))
            .await
            .map_err(|err| Failure::operation(&format!("subscribe to `{filter}`"), err))?;
        streams.push(subscription);
    }
    let mut messages = futures::stream::select_all(streams);
    let deadline = args
        .timeout
        .map(|secs| tokio::time::Instant::now() + Duration::from_secs(secs));
    let mut printed = 0u64;
    let mut stdout = std::io::stdout().lock();
    let result = loop {
        if args.count.is_some_and(|count| printed >= count) {
            break Ok(());
        }
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, messages.next()).await {
                Ok(next) => next,
                Err(_) => {
                    break match args.count {
                        Some(count) => Err(Failure::Timeout(format!(
                            "timed out after {}s with {printed} of {count} messages",
                            args.timeout.unwrap_or_default()
                        ))),
                        None => Err(Failure::Timeout(format!(
                            "timed out after {}s ({printed} messages)",
                            args.timeout.unwrap_or_default()
                        ))),
                    };
                }
            },
            None => messages.next().await,
        };
        let Some(message) = next else {
            break Err(Failure::Operation(
                "the connection to the broker ended".into(),
            ));
        };
        if args.no_retained && message.retain {
            continue;
        }
        let written = print(&mut stdout, &message, format, !args.no_newline);
        if written.is_err() {
            // stdout closed (e.g. piped into `head`): stop quietly.
            break Ok(());
        }
        printed += 1;
    };
    drop(stdout);
    drop(messages);
    let _ = client.disconnect(ReasonCode::Success).await;
    result
}

fn print(
    out: &mut impl Write,
    message: &Message,
    format: Format,
    newline: bool,
) -> std::io::Result<()> {
    match format {
        Format::Payload => out.write_all(&message.payload)?,
        Format::Topic => {
            write!(out, "{} ", message.topic())?;
            out.write_all(&message.payload)?;
        }
        Format::Json => {
            serde_json::to_writer(&mut *out, &to_json(message))?;
        }
    }
    if newline || format == Format::Json {
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Text as a JSON string; other bytes as `{key}_hex`.
fn put_bytes(object: &mut Map<String, Value>, key: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => object.insert(key.to_owned(), Value::from(text)),
        Err(_) => object.insert(format!("{key}_hex"), Value::from(hex(bytes))),
    };
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The JSON line of `--format json`.
pub(crate) fn to_json(message: &Message) -> Value {
    let mut object = Map::new();
    object.insert("topic".into(), Value::from(message.topic()));
    put_bytes(&mut object, "payload", &message.payload);
    object.insert("qos".into(), Value::from(message.qos as u8));
    object.insert("retain".into(), Value::from(message.retain));
    let p = &message.properties;
    let mut properties = Map::new();
    if let Some(content_type) = &p.content_type {
        properties.insert("content_type".into(), Value::from(&**content_type));
    }
    if let Some(topic) = &p.response_topic {
        properties.insert("response_topic".into(), Value::from(&**topic));
    }
    if let Some(data) = &p.correlation_data {
        put_bytes(&mut properties, "correlation_data", data);
    }
    if let Some(expiry) = p.message_expiry_interval {
        properties.insert("message_expiry_interval".into(), Value::from(expiry));
    }
    if let Some(utf8) = p.payload_format_indicator {
        properties.insert("payload_format_utf8".into(), Value::from(utf8));
    }
    if !p.user_properties.is_empty() {
        let pairs: Vec<Value> = p
            .user_properties
            .iter()
            .map(|(key, value)| json!([&**key, &**value]))
            .collect();
        properties.insert("user_properties".into(), Value::from(pairs));
    }
    if !properties.is_empty() {
        object.insert("properties".into(), Value::Object(properties));
    }
    Value::Object(object)
}
