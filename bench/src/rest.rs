//! (r) memory source -> `SELECT *` -> `rest` sink -> a local keep-alive HTTP
//! server. One request at a time (`sendSingle`, one writer) is measured
//! against two servers (an event-loop one and a thread-per-connection one),
//! each beside client loops in the same run: a blocking socket loop (the
//! loopback's round trip), an async socket loop and a bare `reqwest` loop.
//! Then `concurrency: 4`, batches of 100, `httppush` and the `redis` sink.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use oort_core::{Row, Value};

/// A minimal keep-alive HTTP/1.1 server on its own thread: counts requests
/// and the rows in their bodies (`"id":` occurrences).
fn server() -> anyhow::Result<(String, Arc<AtomicU64>, Arc<AtomicU64>)> {
    let reqs = Arc::new(AtomicU64::new(0));
    let rows = Arc::new(AtomicU64::new(0));
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", l.local_addr()?);
    let (r2, w2) = (reqs.clone(), rows.clone());
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(_) => return,
        };
        rt.block_on(async move {
            let _ = l.set_nonblocking(true);
            let Ok(l) = tokio::net::TcpListener::from_std(l) else {
                return;
            };
            while let Ok((c, _)) = l.accept().await {
                let (reqs, rows) = (r2.clone(), w2.clone());
                tokio::spawn(serve(c, reqs, rows));
            }
        });
    });
    Ok((base, reqs, rows))
}

/// The same server with a blocking thread per connection (no event loop on
/// the server side either).
fn blocking_server() -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let reqs = Arc::new(AtomicU64::new(0));
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", l.local_addr()?);
    let r2 = reqs.clone();
    std::thread::spawn(move || {
        while let Ok((c, _)) = l.accept() {
            let reqs = r2.clone();
            std::thread::spawn(move || serve_blocking(c, reqs));
        }
    });
    Ok((base, reqs))
}

/// The server's answer to every request.
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

/// Takes one whole request (headers + `Content-Length` body) off the front
/// of `buf`, if there is one, counting it and the rows in its body.
fn take_request(buf: &mut Vec<u8>, reqs: &AtomicU64, rows: Option<&AtomicU64>) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let total = end + 4 + len;
    if buf.len() < total {
        return false;
    }
    if let Some(rows) = rows {
        let body = &buf[end + 4..total];
        let n = body.windows(5).filter(|w| w == b"\"id\":").count() as u64;
        rows.fetch_add(n, Ordering::Relaxed);
    }
    reqs.fetch_add(1, Ordering::Relaxed);
    buf.drain(..total);
    true
}

fn serve_blocking(mut c: std::net::TcpStream, reqs: Arc<AtomicU64>) {
    use std::io::{Read, Write};
    let _ = c.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while take_request(&mut buf, &reqs, None) {
            if c.write_all(OK).is_err() {
                return;
            }
        }
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn serve(mut c: tokio::net::TcpStream, reqs: Arc<AtomicU64>, rows: Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = c.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while take_request(&mut buf, &reqs, Some(&rows)) {
            if c.write_all(OK).await.is_err() {
                return;
            }
        }
        match c.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn wait_for(counter: &AtomicU64, target: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while counter.load(Ordering::Relaxed) < target {
        if Instant::now() > deadline {
            return Err(anyhow!(
                "only {} of {target} arrived",
                counter.load(Ordering::Relaxed)
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// The socket loops' address, request bytes, and the length of the server's
/// answer.
fn request<'a>(base: &'a str, body: &str) -> (&'a str, String, usize) {
    let addr = base.trim_start_matches("http://");
    let req = format!(
        "POST /in HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = OK.len();
    (addr, req, answer)
}

/// Requests per second of a keep-alive socket writing one HTTP request and
/// reading its answer at a time: the round trip no client can beat.
async fn raw_socket_loop(base: &str, body: &str, n: usize) -> anyhow::Result<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, req, answer) = request(base, body);
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let mut buf = [0u8; 256];
    let start = Instant::now();
    for _ in 0..n {
        s.write_all(req.as_bytes()).await?;
        let mut got = 0;
        while got < answer {
            match s.read(&mut buf).await? {
                0 => return Err(anyhow!("the server closed the connection")),
                k => got += k,
            }
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The same loop on a blocking socket (no event loop on the client side).
fn blocking_socket_loop(base: &str, body: &str, n: usize) -> anyhow::Result<f64> {
    use std::io::{Read, Write};
    let (addr, req, answer) = request(base, body);
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut buf = [0u8; 256];
    let start = Instant::now();
    for _ in 0..n {
        s.write_all(req.as_bytes())?;
        let mut got = 0;
        while got < answer {
            match s.read(&mut buf)? {
                0 => return Err(anyhow!("the server closed the connection")),
                k => got += k,
            }
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Runs `f` on a fresh current-thread runtime on its own thread (no
/// cross-thread wake-ups: the loop and its connection share the thread).
fn on_own_thread<F, Fut>(f: F) -> anyhow::Result<f64>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<f64>>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(f())
    })
    .join()
    .map_err(|_| anyhow!("the loop's thread panicked"))?
}

async fn reqwest_loop(base: &str, body: &'static str, n: usize) -> anyhow::Result<f64> {
    let client = reqwest::Client::new();
    let url = format!("{base}/in");
    let start = Instant::now();
    for _ in 0..n {
        client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?
            .bytes()
            .await?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Rows per second through a rule whose `rest` action has `props`.
async fn through_oort(
    base: &str,
    counter: &AtomicU64,
    props: serde_json::Value,
    n: usize,
) -> anyhow::Result<f64> {
    let mut action = props;
    action["url"] = serde_json::Value::String(format!("{base}/in"));
    action["method"] = "post".into();
    let r = MemoryRule::start(serde_json::json!({"rest": action})).await?;
    let rows = rows(n);
    let before = counter.load(Ordering::Relaxed);
    let start = Instant::now();
    r.publish(&rows).await;
    if let Err(e) = wait_for(counter, before + n as u64).await {
        let status = r.mgr.rule_status("r").await.map_err(|e| anyhow!("{e}"))?;
        return Err(anyhow!(
            "{e}; the rule's status: {}",
            serde_json::Value::Object(status)
        ));
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    r.mgr.shutdown().await;
    Ok(rate)
}

/// One-request-at-a-time figures against one server: a blocking socket
/// loop (the round trip no client beats), an async socket loop and a bare
/// `reqwest` loop (each on a current-thread runtime of its own), and Oort's
/// `rest` sink with `sendSingle` and one writer.
struct OneAtATime {
    blocking: f64,
    async_loop: f64,
    reqwest: f64,
    oort: f64,
}

async fn one_at_a_time(
    base: &str,
    reqs: &AtomicU64,
    body: &'static str,
    n: usize,
) -> anyhow::Result<OneAtATime> {
    let b = base.to_string();
    let blocking = tokio::task::spawn_blocking(move || blocking_socket_loop(&b, body, n)).await??;
    let b = base.to_string();
    let async_loop = on_own_thread(move || async move { raw_socket_loop(&b, body, n).await })?;
    let b = base.to_string();
    let reqwest = on_own_thread(move || async move { reqwest_loop(&b, body, n).await })?;
    let oort = through_oort(base, reqs, serde_json::json!({"sendSingle": true}), n).await?;
    Ok(OneAtATime {
        blocking,
        async_loop,
        reqwest,
        oort,
    })
}

pub fn rest_sink() -> anyhow::Result<()> {
    const N: usize = 20_000;
    let (base, reqs, rows) = server()?;
    let (bbase, breqs) = blocking_server()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let body = r#"{"humidity":1,"id":1,"temp":20.5}"#;
        // The same figures against two local keep-alive servers: one on an
        // event loop (tokio), one with a blocking thread per connection.
        for (name, base, reqs) in [
            ("event-loop server", &base, &reqs),
            ("thread-per-connection server", &bbase, &breqs),
        ] {
            let f = one_at_a_time(base, reqs, body, N).await?;
            println!(
                "r rest, one request at a time, {name}: blocking socket loop {:.0} req/s; async socket loop {:.0}; bare reqwest loop {:.0}; Oort rest sink sendSingle {:.0} req/s = {:.2} of the blocking loop, {:.2} of bare reqwest",
                f.blocking, f.async_loop, f.reqwest, f.oort, f.oort / f.blocking, f.oort / f.reqwest
            );
        }
        let concurrent = through_oort(
            &base,
            &reqs,
            serde_json::json!({"sendSingle": true, "concurrency": 4}),
            N,
        )
        .await?;
        let batched = through_oort(
            &base,
            &rows,
            serde_json::json!({"batchSize": 100, "lingerInterval": 10}),
            N * 10,
        )
        .await?;
        println!(
            "r rest sink, event-loop server: sendSingle with concurrency 4 {concurrent:.0} req/s; batches of 100: {batched:.0} rows/s"
        );
        let push = push_rate().await?;
        println!("r httppush source -> SELECT * -> nop, 8 client connections: {push:.0} req/s");
        let redis = redis_rate().await?;
        println!("r redis sink (list, batches of 1000 rows, one pipeline each): {redis:.0} writes/s");
        Ok(())
    })
}

/// Rows per second into Redis: memory -> rule -> `redis` sink (`LPUSH` to
/// one list), counted by the list's length.
async fn redis_rate() -> anyhow::Result<f64> {
    const N: usize = 200_000;
    let key = format!("oort-bench-{}", uuid::Uuid::new_v4().simple());
    let r = MemoryRule::start(serde_json::json!({"redis": {"key": key, "dataType": "list",
        "batchSize": 1000, "lingerInterval": 10}}))
    .await?;
    let rows = rows(N);
    let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let start = Instant::now();
    r.publish(&rows).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let len: usize = redis::cmd("LLEN").arg(&key).query_async(&mut conn).await?;
        if len >= N {
            break;
        }
        if Instant::now() > deadline {
            return Err(anyhow!("only {len} of {N} rows reached Redis"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = N as f64 / start.elapsed().as_secs_f64();
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
    r.mgr.shutdown().await;
    Ok(rate)
}

/// Requests per second into a rule through the `httppush` data server, from
/// 8 keep-alive client connections.
async fn push_rate() -> anyhow::Result<f64> {
    const N: usize = 40_000;
    const CLIENTS: usize = 8;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let dir = tempfile::tempdir()?;
    let env = oort_core::ConnectorEnv::builder()
        .data_dir(dir.path())
        .setting("source.httpServerIp", "127.0.0.1")
        .setting("source.httpServerPort", &port.to_string())
        .build();
    let registry = oort_core::Registry::default();
    oort_connectors::builtin(&registry);
    let mgr = oort::manager::Manager::open_in(env, registry)?;
    mgr.exec_stream_sql("CREATE STREAM p () WITH (DATASOURCE=\"/in\", TYPE=\"httppush\")")
        .await
        .map_err(|e| anyhow!("{e}"))?;
    mgr.create_rule(r#"{"id":"push","sql":"SELECT * FROM p","actions":[{"nop":{}}]}"#)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let url = format!("http://127.0.0.1:{port}/in");
    let client = reqwest::Client::new();
    // Wait until the data server answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client
        .post(&url)
        .body("{}")
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
        != Some(200)
    {
        if Instant::now() > deadline {
            return Err(anyhow!("the data server did not come up"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..N / CLIENTS {
                let body = format!(r#"{{"id":{i},"temp":20.5,"humidity":40}}"#);
                client.post(&url).body(body).send().await?.bytes().await?;
            }
            Ok::<(), reqwest::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let rate = N as f64 / start.elapsed().as_secs_f64();
    mgr.shutdown().await;
    Ok(rate)
}

/// A manager (in a temporary data dir) with a memory stream `s` and the
/// rule `SELECT * FROM s` writing to `action`.
struct MemoryRule {
    _dir: tempfile::TempDir,
    mgr: oort::manager::Manager,
    topic: String,
}

impl MemoryRule {
    async fn start(action: serde_json::Value) -> anyhow::Result<MemoryRule> {
        let dir = tempfile::tempdir()?;
        let registry = oort_core::Registry::default();
        oort_connectors::builtin(&registry);
        let mgr = oort::manager::Manager::open(dir.path(), registry)?;
        let topic = format!("bench/r/{}", uuid::Uuid::new_v4().simple());
        mgr.exec_stream_sql(&format!(
            "CREATE STREAM s () WITH (DATASOURCE=\"{topic}\", TYPE=\"memory\")"
        ))
        .await
        .map_err(|e| anyhow!("{e}"))?;
        let rule = serde_json::json!({"id": "r", "sql": "SELECT * FROM s", "actions": [action]});
        mgr.create_rule(&rule.to_string())
            .await
            .map_err(|e| anyhow!("{e}"))?;
        Ok(MemoryRule {
            _dir: dir,
            mgr,
            topic,
        })
    }

    /// Publishes `rows` on the stream's topic, 1000 at a time.
    async fn publish(&self, rows: &[Row]) {
        let bus = oort_connectors::memory::bus::bus(self.mgr.env());
        // The rule starts in the background: publish once its source listens.
        let deadline = Instant::now() + Duration::from_secs(10);
        while bus.subscription_count() == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for chunk in rows.chunks(1000) {
            bus.publish(&self.topic, chunk.to_vec()).await;
        }
    }
}

/// `n` rows `{id, temp, humidity}`.
fn rows(n: usize) -> Vec<Row> {
    let schema = Arc::new(oort_core::Schema::from_strs(&["id", "temp", "humidity"]));
    (0..n as i64)
        .map(|i| {
            Row::new(
                schema.clone(),
                vec![Value::Int(i), Value::Float(20.5), Value::Int(i % 100)],
            )
        })
        .collect()
}
