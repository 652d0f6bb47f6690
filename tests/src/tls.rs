//! TLS for the reference mailbox server: a self-signed certificate made by the `openssl` command
//! line, and [`MailboxServer::start_tls`], the same server on `wss://`.
//!
//! The certificate is for IP `127.0.0.1` and DNS `localhost` (subjectAltName) and is not a CA
//! (rustls refuses a CA certificate as a server's), so a client that trusts the file itself
//! (`SSL_CERT_FILE`, which both rustls-native-certs and OpenSSL honour) accepts the server.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::process::{assert_success, run};
use crate::python::MailboxServer;
use crate::TIMEOUT;

/// The certificate's subject (and so its issuer): not `CN=localhost`, which a platform store may
/// hold already (Debian's `ssl-cert-snakeoil.pem`), and which would make a client that does not
/// trust ours check our signature against that certificate's key rather than report an
/// unknown issuer. Clients match the server's name against the subjectAltName only.
const SUBJECT: &str = "/O=wormholed tests/CN=wormholed test mailbox server";

/// A fresh self-signed certificate and its private key, as PEM files in a temporary folder
/// (removed on drop).
#[derive(Debug)]
pub struct SelfSignedCert {
    dir: TempDir,
}

impl SelfSignedCert {
    /// Makes a P-256 key and a certificate for `127.0.0.1` and `localhost`, valid for two days.
    /// Panics (with openssl's output) if `openssl` is missing or fails.
    pub fn generate() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("wss-cert-")
            .tempdir()
            .expect("a temporary folder can be created");
        let cert = Self { dir };
        let mut command = Command::new("openssl");
        command
            .args(["req", "-x509", "-nodes", "-days", "2", "-subj", SUBJECT])
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-addext", "extendedKeyUsage=serverAuth"])
            .arg("-keyout")
            .arg(cert.key())
            .arg("-out")
            .arg(cert.cert())
            .stdin(Stdio::null());
        assert_success(&run(&mut command, TIMEOUT));
        cert
    }

    /// The certificate (PEM): what a client trusts, e.g. as `SSL_CERT_FILE`.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The private key (PEM, unencrypted).
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// The folder holding both files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl MailboxServer {
    /// As [`MailboxServer::start_with_args`], serving TLS only with `cert` (and `args`): reach
    /// it at [`MailboxServer::wss_url`], not [`MailboxServer::url`].
    pub fn start_tls(cert: &SelfSignedCert, args: &[&str]) -> Self {
        let cert_path = cert.cert();
        let key_path = cert.key();
        let mut all = vec![
            "--tls-cert",
            cert_path.to_str().expect("temporary paths are UTF-8"),
            "--tls-key",
            key_path.to_str().expect("temporary paths are UTF-8"),
        ];
        all.extend_from_slice(args);
        Self::start_with_args(&all)
    }

    /// The WebSocket URL over TLS with `host` (`127.0.0.1` or `localhost`, the names of a
    /// [`SelfSignedCert`]): `wss://<host>:<port>/v1`.
    pub fn wss_url(&self, host: &str) -> String {
        format!("wss://{host}:{}/v1", self.port())
    }
}
