//! The `redis` sink against the Redis server on this machine (6379), each
//! test under its own key prefix.

use oort_core::codec::json::decode_value;
use oort_core::{ConnectorEnv, ConnectorError, Props, Sink, SinkContext, SinkFactory, SinkItem};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use super::RedisSinkFactory;

fn prefix() -> String {
    format!("oort-test-{}", uuid::Uuid::new_v4().simple())
}

fn props(v: serde_json::Value) -> Props {
    v.as_object().cloned().unwrap()
}

fn item(json: &str) -> SinkItem {
    SinkItem {
        data: decode_value(json.as_bytes()).unwrap(),
        payload: bytes::Bytes::new(),
    }
}

fn ctx() -> SinkContext {
    SinkContext::new("r", CancellationToken::new())
}

async fn sink(p: serde_json::Value) -> Box<dyn Sink> {
    let mut s = RedisSinkFactory
        .create(&ConnectorEnv::default(), &props(p))
        .unwrap();
    s.connect(&ctx()).await.unwrap();
    s
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open("redis://127.0.0.1:6379/")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn rows_under_a_field_key_with_expiration_then_deleted_by_rowkind() {
    let p = prefix();
    let mut r = redis().await;
    let mut s =
        sink(serde_json::json!({"field": "id", "expiration": 60000, "rowkindField": "action"}))
            .await;
    let a = format!("{p}-a");
    let b = format!("{p}-b");
    s.collect(
        &ctx(),
        &[
            item(&format!(r#"{{"id":"{a}","t":1.5}}"#)),
            item(&format!(r#"[{{"id":"{b}","t":2}}]"#)),
        ],
    )
    .await
    .unwrap();
    let got: String = r.get(&a).await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&got).unwrap(),
        serde_json::json!({"id": a, "t": 1.5})
    );
    let ttl: i64 = r.pttl(&a).await.unwrap();
    assert!(ttl > 0 && ttl <= 60000, "{ttl}");
    assert!(r.exists::<_, bool>(&b).await.unwrap());
    s.collect(
        &ctx(),
        &[item(&format!(r#"{{"id":"{a}","action":"delete"}}"#))],
    )
    .await
    .unwrap();
    assert!(!r.exists::<_, bool>(&a).await.unwrap());
    let _: () = r.del(&b).await.unwrap();
}

#[tokio::test]
async fn lists_and_multiple_keys() {
    let p = prefix();
    let mut r = redis().await;
    let list = format!("{p}-list");
    let mut s = sink(serde_json::json!({"key": list, "dataType": "list"})).await;
    s.collect(&ctx(), &[item(r#"{"n":1}"#), item(r#"{"n":2}"#)])
        .await
        .unwrap();
    let got: Vec<String> = r.lrange(&list, 0, -1).await.unwrap();
    assert_eq!(got, [r#"{"n":2}"#, r#"{"n":1}"#]);

    let mut s = sink(serde_json::json!({"keyType": "multiple"})).await;
    let (t, h) = (format!("{p}-temp"), format!("{p}-hum"));
    s.collect(&ctx(), &[item(&format!(r#"{{"{t}":40.9,"{h}":"wet"}}"#))])
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(&t).await.unwrap(), "40.9");
    assert_eq!(r.get::<_, String>(&h).await.unwrap(), "wet");
    let _: () = r.del(&[list, t, h]).await.unwrap();
}

#[tokio::test]
async fn a_bad_row_fails_alone_and_a_dead_server_is_unavailable() {
    let p = prefix();
    let mut r = redis().await;
    let mut s = sink(serde_json::json!({"field": "id"})).await;
    let ok = format!("{p}-ok");
    let e = s
        .collect(
            &ctx(),
            &[item(r#"{"no_id":1}"#), item(&format!(r#"{{"id":"{ok}"}}"#))],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ConnectorError::InvalidData(m) if m.contains("field id")),
        "{e:?}"
    );
    assert!(
        r.exists::<_, bool>(&ok).await.unwrap(),
        "the good row was written"
    );
    let _: () = r.del(&ok).await.unwrap();

    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = l.local_addr().unwrap();
    drop(l);
    let mut s = RedisSinkFactory
        .create(
            &ConnectorEnv::default(),
            &props(serde_json::json!({"addr": dead.to_string(), "key": "k"})),
        )
        .unwrap();
    let e = s.connect(&ctx()).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Unavailable(_)), "{e:?}");
    let e = s.collect(&ctx(), &[item("{}")]).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Unavailable(_)), "{e:?}");
}

#[test]
fn bad_properties_are_refused_naming_them() {
    for (v, needle) in [
        (serde_json::json!({}), "key or field"),
        (serde_json::json!({"key": "k", "db": 16}), "db"),
        (
            serde_json::json!({"key": "k", "keyType": "many"}),
            "keyType",
        ),
        (
            serde_json::json!({"key": "k", "dataType": "hash"}),
            "dataType",
        ),
        (
            serde_json::json!({"key": "k", "expiration": "soon"}),
            "expiration",
        ),
        (
            serde_json::json!({"key": "k", "dataType": "list", "expiration": 10}),
            "expiration",
        ),
        (serde_json::json!({"key": "k", "addr": "h:port"}), "addr"),
    ] {
        match RedisSinkFactory.create(&ConnectorEnv::default(), &props(v.clone())) {
            Err(ConnectorError::Config(m)) => assert!(m.contains(needle), "{v}: {m}"),
            Err(e) => panic!("{v}: {e:?}"),
            Ok(_) => panic!("{v}: accepted"),
        }
    }
}

#[tokio::test]
async fn pub_to_sub_through_redis() {
    use oort_core::{SourceContext, SourceFactory, SourceMsg};
    let ch = prefix();
    let mut src = super::RedisSubSourceFactory
        .create(
            &ConnectorEnv::default(),
            &format!("{ch}/*"),
            &props(serde_json::json!({"address": "127.0.0.1:6379"})),
        )
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let cancel = CancellationToken::new();
    let sctx = SourceContext::new("s", cancel.clone(), tx);
    let conn = sctx.conn.clone();
    let task = tokio::spawn(async move { src.run(sctx).await });
    while conn.snapshot().status != oort_core::ConnStatus::Connected {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut pubs = super::RedisPubSinkFactory
        .create(
            &ConnectorEnv::default(),
            &props(serde_json::json!({"address": "127.0.0.1:6379", "channel": format!("{ch}/a")})),
        )
        .unwrap();
    pubs.connect(&ctx()).await.unwrap();
    let one = SinkItem {
        data: oort_core::Value::Null,
        payload: bytes::Bytes::from_static(br#"{"x":1}"#),
    };
    pubs.collect(&ctx(), &[one.clone(), one]).await.unwrap();
    for _ in 0..2 {
        match rx.recv().await {
            Some(SourceMsg::Bytes { payload, meta }) => {
                assert_eq!(&payload[..], br#"{"x":1}"#);
                let meta = meta.unwrap();
                assert_eq!(
                    meta.get("channel"),
                    Some(&oort_core::Value::from(format!("{ch}/a").as_str()))
                );
            }
            other => panic!("{other:?}"),
        }
    }
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert!(super::RedisPubSinkFactory
        .create(&ConnectorEnv::default(), &props(serde_json::json!({})))
        .is_err());
    assert!(super::RedisSubSourceFactory
        .create(&ConnectorEnv::default(), "", &props(serde_json::json!({})))
        .is_err());
}
