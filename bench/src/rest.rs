//! (r) memory source -> `SELECT *` -> `rest` sink -> a local keep-alive HTTP
//! server, beside the same server driven by a bare `reqwest` loop (one
//! request at a time, the sink's pattern) in the same run: requests per
//! second with `sendSingle`, and rows per second with batches of 100.

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

async fn serve(mut c: tokio::net::TcpStream, reqs: Arc<AtomicU64>, rows: Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = c.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // One whole request (headers + Content-Length body) at the front of buf?
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let total = end + 4 + len;
            if buf.len() < total {
                break;
            }
            let body = &buf[end + 4..total];
            let n = body.windows(5).filter(|w| w == b"\"id\":").count() as u64;
            rows.fetch_add(n, Ordering::Relaxed);
            reqs.fetch_add(1, Ordering::Relaxed);
            buf.drain(..total);
            if c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await
                .is_err()
            {
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
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".len();
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
    wait_for(counter, before + n as u64).await?;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    r.mgr.shutdown().await;
    Ok(rate)
}

pub fn rest_sink() -> anyhow::Result<()> {
    const N: usize = 20_000;
    let (base, reqs, rows) = server()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Baseline: a bare client posting the same bodies one at a time.
        let client = reqwest::Client::new();
        let body = r#"{"humidity":1,"id":1,"temp":20.5}"#;
        let before = reqs.load(Ordering::Relaxed);
        let start = Instant::now();
        for _ in 0..N {
            client
                .post(format!("{base}/in"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?
                .bytes()
                .await?;
        }
        wait_for(&reqs, before + N as u64).await?;
        let raw = N as f64 / start.elapsed().as_secs_f64();
        // The physical limit of one request at a time: the same request
        // written on a bare socket, waiting for each answer.
        let wire = raw_socket_loop(&base, body, N).await?;
        let b2 = base.clone();
        let blocking =
            tokio::task::spawn_blocking(move || blocking_socket_loop(&b2, body, N)).await??;
        println!("r rest: blocking-socket client loop {blocking:.0} req/s");
        let single = through_oort(
            &base,
            &reqs,
            serde_json::json!({"sendSingle": true}),
            N,
        )
        .await?;
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
        let push = push_rate().await?;
        println!("r httppush source -> SELECT * -> nop, 8 client connections: {push:.0} req/s");
        let redis = redis_rate().await?;
        println!("r redis sink (list, batches of 1000 rows, one pipeline each): {redis:.0} writes/s");
        println!(
            "r rest sink: raw socket loop (one request in flight, no HTTP client) {wire:.0} req/s; bare reqwest loop {raw:.0} req/s; through Oort sendSingle {single:.0} req/s ({:.2} of the socket loop, {:.2} of the blocking loop, {:.2} of bare reqwest), with concurrency 4 {concurrent:.0} req/s ({:.2} of the socket loop); batches of 100: {batched:.0} rows/s",
            single / wire,
            single / blocking,
            single / raw,
            concurrent / wire
        );
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
