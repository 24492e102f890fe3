//! `mqtt pub`: publish one message (`-m`, `-f`, `-s`, `-n`) or one per line of stdin
//! (`-l`), like `mosquitto_pub`.

use std::path::PathBuf;

use bytes::Bytes;
use clap::{ArgGroup, Args};
use native_client::{Client, PublishOptions, PublishProperties, QoS, ReasonCode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::args::{ConnArgs, parse_qos};
use crate::failure::Failure;

/// `mqtt pub` arguments.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("payload").required(true).args(["message", "file", "stdin_file", "stdin_line", "null_message"])))]
pub(crate) struct PubArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// Topic to publish to (or the path of -L).
    #[arg(short = 't', long)]
    topic: Option<String>,
    /// The payload.
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Send the contents of a file as the payload.
    #[arg(short = 'f', long)]
    file: Option<PathBuf>,
    /// Send all of stdin as one message.
    #[arg(short = 's', long = "stdin-file")]
    stdin_file: bool,
    /// Send each line of stdin as a message (blank lines are skipped).
    #[arg(short = 'l', long = "stdin-line")]
    stdin_line: bool,
    /// Send an empty message (with -r: clears the retained message).
    #[arg(short = 'n', long = "null-message")]
    null_message: bool,
    /// Quality of service: 0, 1 or 2.
    #[arg(short = 'q', long, default_value = "0", value_parser = parse_qos)]
    qos: QoS,
    /// Retain the message.
    #[arg(short = 'r', long)]
    retain: bool,

    /// MQTT 5 user property (repeatable).
    #[arg(long = "user-property", num_args = 2, value_names = ["KEY", "VALUE"], action = clap::ArgAction::Append, help_heading = "MQTT 5 properties")]
    user_property: Vec<String>,
    /// MQTT 5 content type, e.g. application/json.
    #[arg(long = "content-type", help_heading = "MQTT 5 properties")]
    content_type: Option<String>,
    /// MQTT 5 response topic.
    #[arg(long = "response-topic", help_heading = "MQTT 5 properties")]
    response_topic: Option<String>,
    /// MQTT 5 correlation data (as text).
    #[arg(long = "correlation-data", help_heading = "MQTT 5 properties")]
    correlation_data: Option<String>,
    /// MQTT 5 message expiry interval in seconds.
    #[arg(long = "message-expiry", help_heading = "MQTT 5 properties")]
    message_expiry: Option<u32>,
    /// MQTT 5 payload format indicator: the payload is UTF-8 text.
    #[arg(long = "payload-format-utf8", help_heading = "MQTT 5 properties")]
    payload_utf8: bool,
}

impl PubArgs {
    fn properties(&self) -> PublishProperties {
        let mut properties = PublishProperties {
            content_type: self.content_type.clone().map(Into::into),
            response_topic: self.response_topic.clone().map(Into::into),
            correlation_data: self.correlation_data.clone().map(Bytes::from),
            message_expiry_interval: self.message_expiry,
            payload_format_indicator: self.payload_utf8.then_some(true),
            ..PublishProperties::default()
        };
        properties.user_properties = self
            .user_property
            .chunks(2)
            .map(|pair| (pair[0].clone().into(), pair[1].clone().into()))
            .collect();
        properties
    }
}

/// Runs `mqtt pub`.
pub(crate) async fn run(args: PubArgs) -> Result<(), Failure> {
    let url = args.conn.broker_url()?;
    let topic = match (
        &args.topic,
        url.path.is_empty() || url.scheme.is_websocket(),
    ) {
        (Some(topic), _) => topic.clone(),
        (None, false) => url.path.clone(),
        (None, true) => return Err(Failure::Usage("no topic: give -t TOPIC".into())),
    };
    topic
        .parse::<native_client::TopicName>()
        .map_err(|err| Failure::Usage(format!("topic `{topic}`: {err}")))?;
    let properties = args.properties();
    if !properties.is_empty() && !args.conn.version.is_v5() {
        return Err(Failure::Usage("MQTT 5 properties need -V 5".into()));
    }
    let options = PublishOptions::new(args.qos)
        .retain(args.retain)
        .properties(properties);
    // A single message is all or nothing: no reconnecting behind the user's back.
    let mut connect = args.conn.connect_options(&url, "pub")?;
    if !args.stdin_line {
        connect.reconnect.enabled = false;
    }
    let payload = if args.stdin_line {
        None
    } else {
        Some(read_payload(&args).await?)
    };
    let client = Client::connect(connect).await?;
    let result = match payload {
        Some(payload) => publish(&client, &topic, payload, &options).await,
        None => publish_lines(&client, &topic, &options).await,
    };
    let _ = client.disconnect(ReasonCode::Success).await;
    result
}

async fn read_payload(args: &PubArgs) -> Result<Bytes, Failure> {
    if let Some(message) = &args.message {
        return Ok(Bytes::from(message.clone()));
    }
    if let Some(path) = &args.file {
        return std::fs::read(path)
            .map(Bytes::from)
            .map_err(|err| Failure::Usage(format!("cannot read {}: {err}", path.display())));
    }
    if args.stdin_file {
        let mut data = Vec::new();
        tokio::io::stdin()
            .read_to_end(&mut data)
            .await
            .map_err(|err| Failure::Usage(format!("cannot read stdin: {err}")))?;
        return Ok(Bytes::from(data));
    }
    Ok(Bytes::new())
}

async fn publish(
    client: &Client,
    topic: &str,
    payload: Bytes,
    options: &PublishOptions,
) -> Result<(), Failure> {
    let outcome = client
        .publish(topic.to_owned(), payload, options.clone())
        .await
        .map_err(|err| Failure::operation("publish", err))?;
    tracing::debug!(?outcome, "published");
    Ok(())
}

async fn publish_lines(
    client: &Client,
    topic: &str,
    options: &PublishOptions,
) -> Result<(), Failure> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = lines
            .next_line()
            .await
            .map_err(|err| Failure::Usage(format!("cannot read stdin: {err}")))?;
        let Some(line) = line else { return Ok(()) };
        if line.is_empty() {
            continue;
        }
        publish(client, topic, Bytes::from(line), options).await?;
    }
}
