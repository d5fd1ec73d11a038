//! Your own transport in about ten lines: a request-id shim for AMQP
//! (RabbitMQ, on `lapin`). The same three steps fit gRPC (a tonic
//! interceptor), Kafka or anything with per-message headers:
//!
//! 1. outbound: put the ambient id ([`fasten::context::current`], else a
//!    fresh one) in a header;
//! 2. inbound: read the header through [`RequestId::parse`], which refuses
//!    oversized, control-character and other unsafe ids, else mint one;
//! 3. run the handler in [`fasten::context::scope_via`] with the transport
//!    and its channel, so rows inside get `method=amqp` and the id.
//!
//! Run it against a local RabbitMQ (guest/guest):
//!
//! ```text
//! cargo run -p fasten --example amqp_shim
//! AMQP_ADDR=amqp://user:pw@host:5672/%2f cargo run -p fasten --example amqp_shim
//! ```
//!
//! It publishes an order inside a request, consumes it in a handler that
//! emits an audit row, and prints the row: same `request_id`, `method=amqp`.

use std::future::Future;

use fasten::context::{self, Scoped, Via};
use fasten::{Method, RequestId};
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable};

/// The header the id travels in.
pub const HEADER: &str = "fasten-request-id";

// === the shim ===

/// Outbound: `props` with the ambient request id (or a fresh one).
pub fn with_request_id(props: BasicProperties) -> BasicProperties {
    let id = context::current().unwrap_or_else(RequestId::mint);
    let mut headers = props.headers().clone().unwrap_or_default();
    headers.insert(HEADER.into(), AMQPValue::LongString(id.as_str().into()));
    props.with_headers(headers)
}

/// Inbound: a safe id from the header, else a fresh one; never trusted as
/// it arrives.
pub fn request_id_of(delivery: &Delivery) -> RequestId {
    let header = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(HEADER));
    let text = match header {
        Some(AMQPValue::LongString(s)) => std::str::from_utf8(s.as_bytes()).ok(),
        _ => None,
    };
    text.and_then(|s| RequestId::parse(s).ok())
        .unwrap_or_else(RequestId::mint)
}

/// Runs `handler` under the delivery's id, with method `amqp` and the
/// routing key as the channel.
pub fn handle<F, Fut>(delivery: Delivery, handler: F) -> Scoped<Fut>
where
    F: FnOnce(Delivery) -> Fut,
    Fut: Future,
{
    let id = request_id_of(&delivery);
    let via = Via::new(Method::Amqp, delivery.routing_key.as_str());
    let future = context::with_via(id.clone(), via.clone(), || handler(delivery));
    context::scope_via(id, via, future)
}

// === the demo ===

#[allow(dead_code)] // the integration tests include this file for the shim alone
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use futures_util::StreamExt as _;
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions,
    };
    use lapin::{Connection, ConnectionProperties};

    let codes = fasten::code::Registry::new();
    codes.register(
        "shop",
        [("ORDER_SHIPPED", fasten::code::Meta::new("order", "ship"))],
    )?;
    let dir = std::env::temp_dir().join(format!("fasten-amqp-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let fasten = fasten::Config::new()
        .service_id("shipping")
        .node_id("node-1")
        .audit_dsn(fasten::Dsn::parse(
            "FASTEN_AUDIT_DSN",
            &format!("sqlite:///{}", dir.join("audit.db").display()),
        )?)
        .registry(codes)
        .stdout(fasten::Stdout::NONE)
        .build()?;

    let addr = std::env::var("AMQP_ADDR")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let conn = Connection::connect(&addr, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "demo".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;

    // Publishing inside a request: the order carries its id.
    let request = RequestId::parse("order-req-1")?;
    context::scope(request, async {
        channel
            .basic_publish(
                "".into(),
                queue.name().clone(),
                BasicPublishOptions::default(),
                br#"{"order":7}"#,
                with_request_id(BasicProperties::default()),
            )
            .await?
            .await?;
        Ok::<_, lapin::Error>(())
    })
    .await?;

    // Consuming: the handler runs under the sender's id.
    let delivery = consumer
        .next()
        .await
        .ok_or("the consumer was cancelled")??;
    let row = handle(delivery, |delivery| async move {
        delivery.ack(BasicAckOptions::default()).await?;
        let row = fasten.emit_durable(fasten::Event::new("ORDER_SHIPPED").target("order/7"))?;
        Ok::<_, Box<dyn std::error::Error>>(row)
    })
    .await?;
    eprintln!(
        "request_id={} method={} code={}",
        row.request_id, row.method, row.code
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
