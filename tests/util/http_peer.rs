//! A small HTTP/1.1 server for end-to-end tests of HTTP sinks: keep-alive,
//! `Content-Length` bodies, records every request, answers with a status
//! the test can change (an outage is a 503).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as the peer saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct HttpPeer {
    pub base: String,
    status: Arc<AtomicU16>,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl HttpPeer {
    pub fn start() -> HttpPeer {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", l.local_addr().expect("addr"));
        let status = Arc::new(AtomicU16::new(200));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (st, rq) = (status.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(c) = conn else { continue };
                let (st, rq) = (st.clone(), rq.clone());
                std::thread::spawn(move || serve(c, &st, &rq));
            }
        });
        HttpPeer {
            base,
            status,
            requests,
        }
    }

    /// The status of the next answers (200 by default).
    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }

    /// Requests answered with a 2xx so far.
    pub fn accepted(&self) -> Vec<Request> {
        self.requests
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.path != "!refused")
            .cloned()
            .collect()
    }

    /// Waits until `n` requests were accepted (at most `secs`).
    pub fn wait_accepted(&self, n: usize, secs: u64) -> Vec<Request> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.accepted();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve(c: std::net::TcpStream, status: &AtomicU16, requests: &Mutex<Vec<Request>>) {
    let mut w = match c.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::new(c);
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("/").to_string();
        let mut headers = Vec::new();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim().to_string();
                if k == "content-length" {
                    len = v.parse().unwrap_or(0);
                }
                headers.push((k, v));
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let code = status.load(Ordering::SeqCst);
        let ok = (200..300).contains(&code);
        requests.lock().expect("lock").push(Request {
            method,
            path: if ok { path } else { "!refused".into() },
            headers,
            body,
        });
        let resp = format!("HTTP/1.1 {code} X\r\nContent-Length: 2\r\n\r\nok");
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}
