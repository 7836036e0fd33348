//! Quiet lingering (plain TCP on Unix): while a read lingers, the socket's
//! receive low-water mark (`SO_RCVLOWAT`) is raised, so what the broker
//! writes meanwhile does not wake a runtime thread segment by segment
//! (epoll reports a TCP socket readable only once the mark is reached). The
//! linger then takes what came with a non-blocking `recv` of its own, which
//! the mark does not hold back, and lowers the mark again.
//!
//! Why its own `recv`: tokio remembers a socket as not readable after a
//! read that did not fill the buffer, and with the mark raised no epoll
//! event corrects that, so a read through tokio would find nothing.
//!
//! Measured (MQTT benchmark at QoS 1, strace): without it a lingering
//! source or sink woke its thread for every segment the broker wrote,
//! about two wake-ups per read.

use bytes::BytesMut;
use tokio::net::TcpStream;

/// The socket of a plain TCP connection, and whether its mark is raised.
pub(super) struct Quiet {
    /// Owned by the connection's stream; open for as long as the `Conn`
    /// that holds both (this value never closes it).
    fd: sys::Fd,
    raised: bool,
}

/// Quiet lingering for this connection's socket (where the platform has it).
pub(super) fn of(tcp: &TcpStream) -> Option<Quiet> {
    sys::fd(tcp).map(|fd| Quiet { fd, raised: false })
}

/// What one [`Quiet::recv`] got.
pub(super) enum Got {
    Bytes,
    /// Nothing waiting.
    Nothing,
    /// The peer closed its side.
    End,
}

impl Quiet {
    /// Raises the mark to `bytes`; false when the socket refused (then the
    /// linger reads through tokio as without this).
    pub fn raise(&mut self, bytes: usize) -> bool {
        self.raised = sys::set_lowat(&self.fd, bytes);
        self.raised
    }

    /// Lowers the mark back to one byte (the kernel then signals a socket
    /// with data waiting as readable at once).
    pub fn lower(&mut self) -> Result<(), String> {
        if !self.raised {
            return Ok(());
        }
        if !sys::set_lowat(&self.fd, 1) {
            return Err(format!("SO_RCVLOWAT: {}", std::io::Error::last_os_error()));
        }
        self.raised = false;
        Ok(())
    }

    pub fn is_raised(&self) -> bool {
        self.raised
    }

    /// One non-blocking read into `buf`'s spare room (reserve first).
    pub fn recv(&self, buf: &mut BytesMut) -> Result<Got, String> {
        loop {
            if buf.spare_capacity_mut().is_empty() {
                return Ok(Got::Nothing);
            }
            match sys::recv(&self.fd, buf) {
                Ok(0) => return Ok(Got::End),
                Ok(_) => return Ok(Got::Bytes),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Got::Nothing),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

#[cfg(unix)]
mod sys {
    use std::os::fd::{AsRawFd, RawFd};

    use bytes::BytesMut;
    use tokio::net::TcpStream;

    pub type Fd = RawFd;

    pub fn fd(tcp: &TcpStream) -> Option<Fd> {
        Some(tcp.as_raw_fd())
    }

    pub fn set_lowat(fd: &Fd, bytes: usize) -> bool {
        let v = bytes.min(i32::MAX as usize) as libc::c_int;
        // SAFETY: a plain integer socket option on an open socket.
        #[allow(unsafe_code)]
        let r = unsafe {
            libc::setsockopt(
                *fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        r == 0
    }

    /// One `recv` without waiting into `buf`'s spare room.
    pub fn recv(fd: &Fd, buf: &mut BytesMut) -> std::io::Result<usize> {
        let spare = buf.spare_capacity_mut();
        // SAFETY: `fd` is the open socket of the connection; `recv` writes
        // at most `spare.len()` bytes into the buffer's spare room.
        #[allow(unsafe_code)]
        let n = unsafe {
            libc::recv(
                *fd,
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = n as usize;
        // SAFETY: the kernel initialised the first `n` bytes of the spare room.
        #[allow(unsafe_code)]
        unsafe {
            buf.set_len(buf.len() + n)
        };
        Ok(n)
    }
}

#[cfg(not(unix))]
mod sys {
    use bytes::BytesMut;
    use tokio::net::TcpStream;

    pub enum Fd {}

    pub fn fd(_: &TcpStream) -> Option<Fd> {
        None
    }

    pub fn set_lowat(fd: &Fd, _: usize) -> bool {
        match *fd {}
    }

    pub fn recv(fd: &Fd, _: &mut BytesMut) -> std::io::Result<usize> {
        match *fd {}
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;

    use super::*;

    /// Whether `poll(2)` reports the socket readable right now (epoll and
    /// poll apply the same low-water mark to a TCP socket).
    fn readable_now(fd: std::os::fd::RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no waiting.
        #[allow(unsafe_code)]
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n == 1 && p.revents & libc::POLLIN != 0
    }

    /// Bytes waiting in the socket's receive queue (a peek, mark or not).
    fn waiting(fd: std::os::fd::RawFd) -> usize {
        let mut buf = [0u8; 256];
        // SAFETY: peeks into a local buffer of the given length.
        #[allow(unsafe_code)]
        let n = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n.max(0) as usize
    }

    #[tokio::test]
    async fn a_raised_mark_keeps_a_socket_quiet_and_our_recv_still_reads() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std_a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut peer, _) = l.accept().unwrap();
        std_a.set_nonblocking(true).unwrap();
        let a = TcpStream::from_std(std_a).unwrap();
        let fd = a.as_raw_fd();
        let mut q = of(&a).expect("plain TCP has quiet lingering");

        assert!(q.raise(32 * 1024));
        assert!(q.is_raised());
        peer.write_all(b"0123456789").unwrap();
        // Wait for the bytes to be in our receive queue (loopback delivers
        // them within the write, but nothing promises it).
        let mut spins = 0;
        while waiting(fd) < 10 {
            spins += 1;
            assert!(spins < 1_000_000, "the bytes never arrived");
            tokio::task::yield_now().await;
        }
        assert!(!readable_now(fd), "10 bytes under the mark woke a reader");

        let mut buf = BytesMut::with_capacity(64);
        assert!(matches!(q.recv(&mut buf).unwrap(), Got::Bytes));
        assert_eq!(&buf[..], b"0123456789");
        assert!(matches!(q.recv(&mut buf).unwrap(), Got::Nothing));

        // Lowered: a byte waiting makes the socket readable again.
        peer.write_all(b"x").unwrap();
        while waiting(fd) < 1 {
            tokio::task::yield_now().await;
        }
        assert!(!readable_now(fd));
        q.lower().unwrap();
        assert!(!q.is_raised());
        assert!(readable_now(fd), "the lowered mark left the socket quiet");

        drop(peer);
        let mut buf = BytesMut::with_capacity(64);
        assert!(matches!(q.recv(&mut buf).unwrap(), Got::Bytes));
        assert_eq!(&buf[..], b"x");
        assert!(matches!(q.recv(&mut buf).unwrap(), Got::End));
    }
}
