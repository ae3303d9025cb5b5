//! A TLS client for the tests: the certificate a server presents, and HTTP/1.1 requests on one
//! kept-alive connection (to see which certificate an open connection keeps).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// Bound on one exchange.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One TLS connection to `127.0.0.1`, its handshake done.
pub struct TlsConnection {
    reader: BufReader<StreamOwned<ClientConnection, TcpStream>>,
}

impl TlsConnection {
    /// Connects to `addr` (`127.0.0.1:PORT`) trusting only the PEM CA `ca`; panics if the
    /// handshake fails.
    pub fn open(addr: &str, ca: &Path) -> TlsConnection {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(ca).expect("a PEM CA certificate"))
            .expect("a usable CA certificate");
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        let name = ServerName::try_from("127.0.0.1").expect("an IP address name");
        let mut conn = ClientConnection::new(Arc::new(config), name).expect("a TLS client");
        let mut tcp = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting {addr}: {e}"));
        tcp.set_read_timeout(Some(IO_TIMEOUT))
            .expect("read timeout");
        tcp.set_write_timeout(Some(IO_TIMEOUT))
            .expect("write timeout");
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"));
        }
        TlsConnection {
            reader: BufReader::new(StreamOwned::new(conn, tcp)),
        }
    }

    /// The DER of the certificate the server presented on this connection.
    pub fn server_certificate(&self) -> Vec<u8> {
        let certificates = self
            .reader
            .get_ref()
            .conn
            .peer_certificates()
            .expect("the server presented certificates");
        certificates[0].to_vec()
    }

    /// `GET path` on this connection, kept alive: the status and the body.
    pub fn get(&mut self, path: &str) -> (u16, String) {
        let stream = self.reader.get_mut();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .and_then(|()| stream.flush())
            .unwrap_or_else(|e| panic!("sending GET {path}: {e}"));
        let mut status_line = String::new();
        self.reader
            .read_line(&mut status_line)
            .unwrap_or_else(|e| panic!("reading the answer to GET {path}: {e}"));
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status line: {status_line:?}"));
        let mut length = None;
        loop {
            let mut header = String::new();
            self.reader.read_line(&mut header).expect("a header line");
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let length = length.unwrap_or_else(|| panic!("GET {path}: no Content-Length"));
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("the body");
        (status, String::from_utf8(body).expect("a UTF-8 body"))
    }
}
