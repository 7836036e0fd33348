//! Opening a connection: TCP (and TLS), CONNECT, and the broker's CONNACK.

use super::*;

impl EventLoop {
    pub(super) async fn connect(&mut self) -> Result<Conn, String> {
        self.rbuf.clear();
        self.wbuf.clear();
        let s = &self.settings;
        let host = s.endpoint.host.as_str();
        let tcp = TcpStream::connect((host, s.endpoint.port))
            .await
            .map_err(|e| format!("connect to {host}:{}: {e}", s.endpoint.port))?;
        let _ = tcp.set_nodelay(true);
        let quiet = if self.tls.is_none() {
            quiet::of(&tcp)
        } else {
            None
        };
        let mut io: Box<dyn Stream> = if let Some(connector) = &self.tls {
            let name = crate::tls::server_name(host)?;
            Box::new(
                connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {host}: {e}"))?,
            )
        } else {
            Box::new(tcp)
        };
        self.write_connect()?;
        io.write_all(&self.wbuf)
            .await
            .map_err(|e| format!("send CONNECT: {e}"))?;
        self.wbuf.clear();
        let (session_present, receive_max) = loop {
            if let Some(n) = self.frame_within(MAX_CONNACK)? {
                let frame = self.rbuf.split_to(n);
                break self.read_connack(frame)?;
            }
            self.rbuf.reserve(1024);
            let n = io
                .read_buf(&mut self.rbuf)
                .await
                .map_err(|e| format!("read CONNACK: {e}"))?;
            if n == 0 {
                return Err("the broker closed the connection before CONNACK".into());
            }
        };
        let _ = session_present;
        let keep_alive = self.settings.keep_alive;
        Ok(Conn {
            io,
            ids: vec![FREE; 65536],
            inflight: 0,
            max_inflight: receive_max
                .min(super::super::client::INFLIGHT as usize)
                .max(1),
            next_id: 0,
            ping_due: Box::pin(tokio::time::sleep(keep_alive)),
            ping_out: false,
            last_write: Instant::now(),
            next_ctl_id: 0,
            quiet,
        })
    }

    pub(super) fn write_connect(&mut self) -> Result<(), String> {
        let s = &self.settings;
        let keep_alive = s.keep_alive.as_secs().min(u16::MAX as u64) as u16;
        let max = self.max_packet;
        let r = match self.version {
            Version::V4 => {
                use rumqttc::mqttbytes::v4::{Connect, Login, Packet};
                let mut c = Connect::new(s.client_id.clone());
                c.keep_alive = keep_alive;
                c.clean_session = !self.session.persistent;
                if !s.username.is_empty() {
                    c.login = Some(Login::new(s.username.clone(), s.password.clone()));
                }
                Packet::Connect(c)
                    .write(&mut self.wbuf, max)
                    .map_err(|e| e.to_string())
            }
            Version::V5 => {
                use rumqttc::v5::mqttbytes::v5::{Connect, ConnectProperties, Login, Packet};
                let mut props = ConnectProperties::new();
                props.max_packet_size = Some(max.min(u32::MAX as usize) as u32);
                if self.session.persistent {
                    props.session_expiry_interval = Some(self.session.expiry_secs);
                }
                let c = Connect {
                    keep_alive,
                    client_id: s.client_id.clone(),
                    clean_start: !self.session.persistent,
                    properties: Some(props),
                };
                let login = (!s.username.is_empty())
                    .then(|| Login::new(s.username.clone(), s.password.clone()));
                Packet::Connect(c, None, login)
                    .write(&mut self.wbuf, Some(max.min(u32::MAX as usize) as u32))
                    .map_err(|e| format!("{e:?}"))
            }
        };
        r.map(|_| ()).map_err(|e| format!("encode CONNECT: {e}"))
    }

    /// `(session present, receive maximum)` of a CONNACK, or why refused.
    pub(super) fn read_connack(&self, frame: BytesMut) -> Result<(bool, usize), String> {
        match self.version {
            Version::V4 => {
                use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet};
                let mut f = frame;
                match Packet::read(&mut f, self.max_packet) {
                    Ok(Packet::ConnAck(a)) if a.code == ConnectReturnCode::Success => {
                        Ok((a.session_present, usize::MAX))
                    }
                    Ok(Packet::ConnAck(a)) => Err(format!("connection refused: {:?}", a.code)),
                    Ok(other) => Err(format!("expected CONNACK, got {other:?}")),
                    Err(e) => Err(format!("bad CONNACK: {e}")),
                }
            }
            Version::V5 => {
                use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
                let mut f = frame;
                match Packet::read(&mut f, Some(self.max_packet.min(u32::MAX as usize) as u32)) {
                    Ok(Packet::ConnAck(a)) if a.code == ConnectReturnCode::Success => {
                        let rm = a
                            .properties
                            .and_then(|p| p.receive_max)
                            .map(usize::from)
                            .unwrap_or(65535);
                        Ok((a.session_present, rm))
                    }
                    Ok(Packet::ConnAck(a)) => Err(format!("connection refused: {:?}", a.code)),
                    Ok(other) => Err(format!("expected CONNACK, got {other:?}")),
                    Err(e) => Err(format!("bad CONNACK: {e:?}")),
                }
            }
        }
    }
}
