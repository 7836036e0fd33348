//! The `neuron` connectors through the real binary: the test plays Neuron
//! (an NNG `pair` socket on a free TCP port), sends an event to a `neuron`
//! stream and reads what a rule's `neuron` action writes back.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use oort_tests::{free_port, Server};
use serde_json::json;

const PAIR: u16 = 16;

fn greet(s: &mut std::net::TcpStream) {
    let p = PAIR.to_be_bytes();
    s.write_all(&[0, b'S', b'P', 0, p[0], p[1], 0, 0]).unwrap();
    let mut g = [0u8; 8];
    s.read_exact(&mut g).unwrap();
    assert_eq!(
        g,
        [0, b'S', b'P', 0, p[0], p[1], 0, 0],
        "Oort greets as pair"
    );
}

fn send(s: &mut std::net::TcpStream, msg: &[u8]) {
    s.write_all(&(msg.len() as u64).to_be_bytes()).unwrap();
    s.write_all(msg).unwrap();
}

fn recv(s: &mut std::net::TcpStream) -> serde_json::Value {
    let mut n = [0u8; 8];
    s.read_exact(&mut n).unwrap();
    let mut buf = vec![0u8; u64::from_be_bytes(n) as usize];
    s.read_exact(&mut buf).unwrap();
    serde_json::from_slice(&buf).unwrap()
}

#[test]
fn neuron_events_in_and_tags_out_over_one_connection() {
    let port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let s = Server::start();
    let url = format!("tcp://127.0.0.1:{port}");
    s.expect(
        "PUT",
        "/metadata/sources/neuron/confKeys/local",
        Some(&json!({ "url": url }).to_string()),
        200,
    );
    s.create_stream("CREATE STREAM nstream () WITH (TYPE=\"neuron\", CONF_KEY=\"local\")");
    s.create_rule(&json!({
        "id": "back",
        "sql": "SELECT values->t * 2 AS t2, node_name AS node FROM nstream WHERE values->t > 20",
        "actions": [{"neuron": {"url": url, "nodeName": "{{.node}}-out", "groupName": "calc", "tags": ["t2"]}}]
    }));
    listener.set_nonblocking(false).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    greet(&mut peer);
    // The stream and the action share the one connection.
    listener.set_nonblocking(true).unwrap();
    s.wait_status("back", "connected", |st| {
        st["source_nstream_0_connection_status"] == 1
    });
    for (t, node) in [(10.0, "a"), (21.5, "b")] {
        let ev = json!({"timestamp": 1, "node_name": node, "group_name": "g", "values": {"t": t}});
        send(&mut peer, ev.to_string().as_bytes());
    }
    assert_eq!(
        recv(&mut peer),
        json!({"node_name": "b-out", "group_name": "calc", "tags": [{"tag_name": "t2", "value": 43.0}]})
    );
    assert!(
        listener.accept().is_err(),
        "a second connection was dialled"
    );
    // The peer reads the frame before the sink counts its write as done: wait for the count.
    s.wait_status("back", "1 record out", |st| {
        st["sink_neuron_0_0_records_out_total"] == 1
    });
}
