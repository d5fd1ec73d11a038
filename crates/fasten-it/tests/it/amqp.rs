//! The custom-transport example (`examples/amqp_shim.rs`) against the real
//! RabbitMQ on 127.0.0.1:5672 (guest/guest): the id crosses a queue, and
//! hostile header ids are replaced. Under `CI` a missing broker fails.

use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};

use fasten::{Event, Method, RequestId};

#[path = "../../examples/amqp_shim.rs"]
#[allow(dead_code, unreachable_pub)]
mod amqp_shim;

use super::support::{broker, config, stored_ids};

#[test]
fn issue_8_custom_amqp_shim_carries_the_id_and_replaces_hostile_ones() {
    if !broker("RabbitMQ", 5672) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let fasten = config(&path, "node-1")
        .stdout(fasten::Stdout::NONE)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = rt.block_on(async {
        let conn = Connection::connect(
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            ConnectionProperties::default(),
        )
        .await
        .unwrap();
        let channel = conn.create_channel().await.unwrap();
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
            .await
            .unwrap();
        let publish = |props: BasicProperties| {
            let (channel, queue) = (channel.clone(), queue.name().clone());
            async move {
                channel
                    .basic_publish(
                        "".into(),
                        queue,
                        BasicPublishOptions::default(),
                        b"{}",
                        props,
                    )
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
        };
        // Through the shim, inside a request.
        let sent = RequestId::parse("amqp-req-1").unwrap();
        fasten::context::scope(sent.clone(), async {
            publish(amqp_shim::with_request_id(BasicProperties::default())).await;
        })
        .await;
        // Hostile headers from another client, and none at all.
        for bad in [
            Some(AMQPValue::LongString("x".repeat(1000).into())),
            Some(AMQPValue::LongString("a\u{0}b\r\nSet: 1".into())),
            Some(AMQPValue::LongInt(42)),
            None,
        ] {
            let mut headers = FieldTable::default();
            if let Some(v) = bad {
                headers.insert(amqp_shim::HEADER.into(), v);
            }
            publish(BasicProperties::default().with_headers(headers)).await;
        }
        let mut consumer = channel
            .basic_consume(
                queue.name().clone(),
                "it".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..5 {
            let delivery = consumer.next().await.unwrap().unwrap();
            let f = fasten.clone();
            let (id, via) = amqp_shim::handle(delivery, |d| async move {
                d.ack(BasicAckOptions::default()).await.unwrap();
                f.emit(Event::new("USER_UPDATED").target("order/7"))
                    .unwrap();
                (
                    fasten::context::current().unwrap(),
                    fasten::context::via().unwrap(),
                )
            })
            .await;
            assert_eq!(
                (via.method(), via.channel()),
                (Method::Amqp, queue.name().as_str())
            );
            seen.push(id);
        }
        assert_eq!(seen[0], sent, "the id crossed the queue");
        for id in &seen[1..] {
            assert_eq!(id.as_str().len(), 32, "replaced by a fresh id: {id}");
        }
        seen
    });
    fasten.flush(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(
        stored_ids(&path).len(),
        5,
        "every message handled, none dropped"
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    for id in &rows {
        let method: String = conn
            .query_row(
                "SELECT method FROM audit_log WHERE request_id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(method, "amqp");
    }
}
