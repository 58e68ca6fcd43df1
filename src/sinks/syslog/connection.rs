//! Connections to a syslog receiver: resolving the address again at every attempt, TCP with
//! keepalive, the TLS handshake, connected UDP sockets, and the check that a stream's peer has
//! not closed before we write into it.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use serde::Deserialize;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How long to let TLS records that arrived unasked (session tickets, alerts) be processed
/// when checking a TLS connection.
const TLS_PENDING_READ: Duration = Duration::from_millis(50);
/// How long to wait after a TLS 1.3 handshake for the receiver's verdict on our certificate.
/// Under TLS 1.3 the client finishes its handshake before the server has checked the client
/// certificate (or noticed it is missing); a rejection arrives as an alert just after it, and
/// data written before that would be lost while looking delivered. TLS 1.2 settles this
/// inside the handshake.
const TLS_VERDICT_WAIT: Duration = Duration::from_millis(250);
/// TCP keepalive: idle time before the first probe, and time between probes.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// The transport to the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// One message per datagram (RFC 5426); no delivery confirmation, no back-pressure.
    Udp,
    /// A TCP stream (RFC 6587); the default.
    #[default]
    Tcp,
    /// TLS over TCP (RFC 5425), always octet-counted.
    Tls,
}

/// TLS material prepared at build time.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    /// The rustls client configuration (trust roots, client certificate).
    pub client: Arc<ClientConfig>,
    /// The name sent as SNI and verified in the certificate.
    pub server_name: ServerName<'static>,
}

/// Opens connections to one receiver.
#[derive(Debug, Clone)]
pub struct Connector {
    /// `host:port`.
    pub address: String,
    /// Transport.
    pub protocol: Protocol,
    /// TLS material when `protocol` is TLS.
    pub tls: Option<TlsSetup>,
    /// Limit for resolving, connecting and handshaking.
    pub connect_timeout: Duration,
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The name did not resolve.
    #[error("cannot resolve {address}: {source}")]
    Resolve {
        address: String,
        #[source]
        source: io::Error,
    },
    /// Every resolved address refused or failed.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed (untrusted certificate, wrong name, protocol error).
    #[error("tls handshake with {address} failed: {source}")]
    Handshake {
        address: String,
        #[source]
        source: io::Error,
    },
    /// Resolving, connecting or handshaking took longer than `connect_timeout`.
    #[error("connecting to {address} timed out after {timeout:?}")]
    Timeout { address: String, timeout: Duration },
}

/// An open connection.
#[derive(Debug)]
pub enum Connection {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
    /// A connected UDP socket.
    Udp(UdpSocket),
}

impl Connector {
    /// Resolves the address and connects (with the TLS handshake for TLS).
    ///
    /// # Errors
    ///
    /// [`ConnectError`] with the address and cause.
    pub async fn connect(&self) -> Result<Connection, ConnectError> {
        tokio::time::timeout(self.connect_timeout, self.connect_without_timeout())
            .await
            .unwrap_or_else(|_| {
                Err(ConnectError::Timeout {
                    address: self.address.clone(),
                    timeout: self.connect_timeout,
                })
            })
    }

    async fn connect_without_timeout(&self) -> Result<Connection, ConnectError> {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host(&self.address)
            .await
            .map_err(|source| ConnectError::Resolve {
                address: self.address.clone(),
                source,
            })?
            .collect();
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address resolved");
        for address in addresses {
            let attempt = match self.protocol {
                Protocol::Udp => connect_udp(address).await.map(Connection::Udp),
                Protocol::Tcp | Protocol::Tls => connect_tcp(address).await.map(Connection::Tcp),
            };
            match attempt {
                Ok(Connection::Tcp(stream)) if self.protocol == Protocol::Tls => {
                    return self.handshake(stream).await
                }
                Ok(connection) => return Ok(connection),
                Err(error) => last_error = error,
            }
        }
        Err(ConnectError::Connect {
            address: self.address.clone(),
            source: last_error,
        })
    }

    async fn handshake(&self, stream: TcpStream) -> Result<Connection, ConnectError> {
        let handshake_error = |source| ConnectError::Handshake {
            address: self.address.clone(),
            source,
        };
        let tls = self.tls.as_ref().ok_or_else(|| {
            handshake_error(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no tls configuration",
            ))
        })?;
        let mut stream = TlsConnector::from(tls.client.clone())
            .connect(tls.server_name.clone(), stream)
            .await
            .map_err(handshake_error)?;
        if stream.get_ref().1.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
            return Ok(Connection::Tls(Box::new(stream)));
        }
        let mut probe = [0u8; 64];
        match tokio::time::timeout(TLS_VERDICT_WAIT, stream.read(&mut probe)).await {
            // Silence (or a session ticket) means the receiver accepted us.
            Err(_) | Ok(Ok(1..)) => Ok(Connection::Tls(Box::new(stream))),
            Ok(Ok(0)) => Err(handshake_error(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "receiver closed the session right after the handshake (client certificate rejected?)",
            ))),
            Ok(Err(error)) => Err(handshake_error(error)),
        }
    }
}

async fn connect_tcp(address: SocketAddr) -> io::Result<TcpStream> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_keepalive(true)?;
    let stream = socket.connect(address).await?;
    stream.set_nodelay(true)?;
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
    Ok(stream)
}

async fn connect_udp(address: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = if address.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(address).await?;
    Ok(socket)
}

/// What a non-blocking look at a stream's receive side found.
enum Peek {
    /// Nothing to read: the peer is (as far as we can tell) alive.
    Idle,
    /// The peer sent bytes.
    Data,
    /// The peer closed its side.
    Closed,
}

fn peek(stream: &TcpStream) -> io::Result<Peek> {
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    // A real (non-blocking) recv with MSG_PEEK, so the answer does not depend on whether the
    // runtime has polled the socket's readiness yet.
    match SockRef::from(stream).peek(&mut byte) {
        Ok(0) => Ok(Peek::Closed),
        Ok(_) => Ok(Peek::Data),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(Peek::Idle),
        Err(error) => Err(error),
    }
}

impl Connection {
    /// Returns why the peer can no longer take data (it closed or reset the connection), or
    /// `None` when it looks alive. Receivers never send syslog data back, so anything read is
    /// discarded; for TLS it is handed to rustls, which consumes session tickets and reports a
    /// `close_notify` as end of stream.
    pub async fn peer_gone(&mut self) -> Option<String> {
        let mut scratch = [0u8; 512];
        match self {
            Connection::Udp(_) => None,
            Connection::Tcp(stream) => match peek(stream) {
                Ok(Peek::Idle) => None,
                Ok(Peek::Closed) => Some("receiver closed the connection".to_owned()),
                Ok(Peek::Data) => match stream.try_read(&mut scratch) {
                    Ok(0) => Some("receiver closed the connection".to_owned()),
                    Err(error) if error.kind() != io::ErrorKind::WouldBlock => {
                        Some(format!("connection failed: {error}"))
                    }
                    _ => None,
                },
                Err(error) => Some(format!("connection failed: {error}")),
            },
            Connection::Tls(stream) => match peek(stream.get_ref().0) {
                Ok(Peek::Idle) => None,
                Ok(Peek::Closed) => Some("receiver closed the connection".to_owned()),
                Ok(Peek::Data) => {
                    match tokio::time::timeout(TLS_PENDING_READ, stream.read(&mut scratch)).await {
                        Ok(Ok(0)) => Some("receiver closed the tls session".to_owned()),
                        Ok(Err(error)) => Some(format!("tls session failed: {error}")),
                        Ok(Ok(_)) | Err(_) => None,
                    }
                }
                Err(error) => Some(format!("connection failed: {error}")),
            },
        }
    }

    /// Writes `bytes` completely and flushes them to the socket; on UDP, sends them as one
    /// datagram.
    ///
    /// # Errors
    ///
    /// The I/O error of the write, flush or send (on UDP, e.g. an earlier datagram was
    /// refused).
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Connection::Tcp(stream) => {
                stream.write_all(bytes).await?;
                stream.flush().await
            }
            Connection::Tls(stream) => {
                stream.write_all(bytes).await?;
                stream.flush().await
            }
            Connection::Udp(socket) => socket.send(bytes).await.map(drop),
        }
    }

    /// Closes the connection politely (TLS `close_notify`, TCP FIN).
    pub async fn close(self) {
        match self {
            Connection::Tcp(mut stream) => {
                let _ = stream.shutdown().await;
            }
            Connection::Tls(mut stream) => {
                let _ = stream.shutdown().await;
            }
            Connection::Udp(_) => {}
        }
    }
}
