//! Fault-test harness: a PRIVATE Mosquitto on a free port that a test may kill
//! (SIGKILL) and restart on the same port, and QoS 1 clients that count
//! message ids for loss and duplicate accounting. Never touches the shared
//! broker on 1883.
//!
//! The broker keeps persistent sessions across restarts: `persistence true`
//! with its own `persistence_location`, saved every second
//! (`autosave_interval 1`) and at a graceful stop. What changed in the last
//! second before a SIGKILL is not saved: tests that need a session to survive
//! a kill wait for the save with [`Broker::wait_saved_since`].

use std::collections::HashMap;
use std::io::Write as _;
use std::net::TcpStream;
use std::ops::Range;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

/// A private Mosquitto. Killed on drop.
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// How many times it was started (1 after [`Broker::start`]).
    pub starts: u32,
}

/// Settings of a private broker that tests vary.
#[derive(Debug, Clone, Copy)]
pub struct BrokerConf {
    /// Messages queued per client beyond those in flight (0: no limit).
    pub max_queued: u32,
    /// QoS 1/2 messages in flight per client.
    pub max_inflight: u32,
    /// Save the store after every change (a SIGKILL then loses at most the
    /// last loop round), not only every second.
    pub autosave_on_changes: bool,
}

impl Default for BrokerConf {
    fn default() -> Self {
        BrokerConf {
            max_queued: 1_000_000,
            max_inflight: 1000,
            autosave_on_changes: false,
        }
    }
}

impl Broker {
    /// Starts a broker on a free port and waits until it accepts connections.
    pub fn start() -> Broker {
        Broker::start_with(BrokerConf::default())
    }

    /// [`Broker::start`] with other settings.
    pub fn start_with(c: BrokerConf) -> Broker {
        let dir = tempfile::tempdir().expect("tempdir for mosquitto");
        // Started as root, mosquitto drops to the `mosquitto` user, which must
        // be able to write its persistence file here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod the mosquitto dir");
        let port = super::free_port();
        let conf = format!(
            "listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             persistence true\n\
             persistence_location {}/\n\
             persistence_file mosquitto.db\n\
             autosave_interval 1\n\
             autosave_on_changes {}\n\
             max_queued_messages {}\n\
             max_inflight_messages {}\n\
             log_type error\nlog_type warning\nlog_type notice\n",
            dir.path().display(),
            c.autosave_on_changes,
            c.max_queued,
            c.max_inflight,
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).expect("write mosquitto.conf");
        let mut b = Broker {
            port,
            dir,
            child: None,
            starts: 0,
        };
        b.restart();
        b
    }

    /// `tcp://127.0.0.1:<port>`, for a rule's `server` property.
    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.log")
    }

    /// The broker's output so far (all runs), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts it (again) on the same port with the same persistence file, and
    /// waits until the port accepts connections.
    pub fn restart(&mut self) {
        assert!(!self.is_running(), "broker already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("mosquitto log file");
        let mut log2 = log.try_clone().expect("log handle");
        let _ = writeln!(log2, "--- start {}", self.starts + 1);
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .expect("spawn mosquitto (is it installed?)");
        self.child = Some(child);
        self.starts += 1;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if !self.is_running() {
                panic!("mosquitto exited at start; log:\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!(
                    "mosquitto did not accept on {}; log:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no goodbye to clients, nothing saved since the last autosave.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM: mosquitto saves its sessions and exits.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until the broker has written its persistence file after `t`
    /// (so sessions and subscriptions made before `t` survive a SIGKILL).
    pub fn wait_saved_since(&self, t: SystemTime) {
        let db = self.dir.path().join("mosquitto.db");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let saved = std::fs::metadata(&db)
                .and_then(|m| m.modified())
                .is_ok_and(|m| m > t);
            if saved {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not save {} within 10 s",
                db.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The ids in a payload: `{"id": n, ...}` or an array of such objects.
pub fn payload_ids(payload: &[u8]) -> Vec<u64> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return Vec::new();
    };
    let one = |o: &serde_json::Value| o.get("id").and_then(|i| i.as_u64());
    match &v {
        serde_json::Value::Array(a) => a.iter().filter_map(one).collect(),
        o => one(o).into_iter().collect(),
    }
}

/// A QoS 1 subscriber with a persistent session (`clean_session` false, a
/// fixed client id) that counts the ids it receives. It reconnects on its own
/// after a broker restart and subscribes again when the broker lost the
/// session.
pub struct IdCounter {
    seen: Arc<Mutex<HashMap<u64, u32>>>,
    total: Arc<AtomicU64>,
    unparsed: Arc<AtomicU64>,
    subscribes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    client: Client,
}

impl IdCounter {
    /// Subscribes to `topic` on `127.0.0.1:port` and waits for the SUBACK.
    pub fn subscribe(port: u16, topic: &str) -> IdCounter {
        let mut opts = MqttOptions::new(super::unique("cnt"), "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_clean_session(false);
        opts.set_inflight(1000);
        let (client, mut conn) = Client::new(opts, 1000);
        let (ack_tx, ack_rx) = mpsc::channel();
        let c = IdCounter {
            seen: Arc::default(),
            total: Arc::default(),
            unparsed: Arc::default(),
            subscribes: Arc::default(),
            stop: Arc::default(),
            client: client.clone(),
        };
        let (seen, total, unparsed, subscribes, stop) = (
            c.seen.clone(),
            c.total.clone(),
            c.unparsed.clone(),
            c.subscribes.clone(),
            c.stop.clone(),
        );
        let topic = topic.to_string();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match ev {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) if !ack.session_present => {
                        subscribes.fetch_add(1, Ordering::Relaxed);
                        let _ = client.try_subscribe(&topic, QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ack_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        total.fetch_add(1, Ordering::Relaxed);
                        let ids = payload_ids(&p.payload);
                        if ids.is_empty() {
                            unparsed.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Ok(mut g) = seen.lock() {
                            for id in ids {
                                *g.entry(id).or_default() += 1;
                            }
                        }
                    }
                    Ok(_) => {}
                    // The broker is down: rumqttc reconnects on the next poll.
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        ack_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("SUBACK from the private broker");
        c
    }

    /// Distinct ids received.
    pub fn distinct(&self) -> usize {
        self.seen.lock().map(|g| g.len()).unwrap_or(0)
    }

    /// Ids received more than once, counted once per extra copy.
    pub fn duplicates(&self) -> u64 {
        self.seen
            .lock()
            .map(|g| g.values().map(|&n| u64::from(n.saturating_sub(1))).sum())
            .unwrap_or(0)
    }

    /// Messages received (a message may carry several ids).
    pub fn messages(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// How many times it had to subscribe: 1 while the broker kept its
    /// session across restarts.
    pub fn subscribes(&self) -> u64 {
        self.subscribes.load(Ordering::Relaxed)
    }

    /// Messages without a readable id.
    pub fn unparsed(&self) -> u64 {
        self.unparsed.load(Ordering::Relaxed)
    }

    /// The ids of `ids` never received.
    pub fn missing(&self, ids: Range<u64>) -> Vec<u64> {
        let g = match self.seen.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        ids.filter(|i| !g.contains_key(i)).collect()
    }

    /// Polls until `n` distinct ids arrived; false after `timeout`.
    pub fn wait_distinct(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.distinct() < n {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }
}

impl Drop for IdCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}

/// A running pipelined QoS 1 publisher (up to 1000 messages in flight).
pub struct Publisher {
    handle: JoinHandle<u64>,
    acked: Arc<AtomicU64>,
}

impl Publisher {
    /// Publishes `{"id": i, "temp": 25.5}` for each `i` of `ids` to `topic` on
    /// `127.0.0.1:port`, paced at `per_sec` messages per second (0: as fast
    /// as the broker takes them). Its session is persistent, so messages not
    /// yet acknowledged are sent again after a broker restart.
    pub fn start(port: u16, topic: &str, ids: Range<u64>, per_sec: u32) -> Publisher {
        let mut opts = MqttOptions::new(super::unique("pub"), "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_clean_session(false);
        opts.set_inflight(1000);
        let (client, mut conn) = Client::new(opts, 1000);
        let want = ids.end - ids.start;
        let acked = Arc::new(AtomicU64::new(0));
        let acked2 = acked.clone();
        let done = Arc::new(AtomicBool::new(false));
        let done2 = done.clone();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        if acked2.fetch_add(1, Ordering::Relaxed) + 1 >= want {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        if done2.load(Ordering::Relaxed) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        });
        let topic = topic.to_string();
        let acked3 = acked.clone();
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            for (k, i) in ids.enumerate() {
                if per_sec > 0 {
                    // Pacing, not synchronisation: message k is due at k/per_sec.
                    let due = start + Duration::from_secs_f64(k as f64 / f64::from(per_sec));
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                let payload = format!("{{\"id\":{i},\"temp\":25.5}}");
                if client
                    .publish(topic.as_str(), QoS::AtLeastOnce, false, payload)
                    .is_err()
                {
                    break;
                }
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            while acked3.load(Ordering::Relaxed) < want && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            done.store(true, Ordering::Relaxed);
            let _ = client.disconnect();
            acked3.load(Ordering::Relaxed)
        });
        Publisher { handle, acked }
    }

    /// Messages acknowledged by the broker so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Waits until every message is acknowledged (or 60 s after the last was
    /// handed over); returns how many were.
    pub fn finish(self) -> u64 {
        self.handle.join().unwrap_or(0)
    }
}
