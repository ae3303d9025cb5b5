//! A throw-away certificate authority made with the `openssl` command: a CA, server
//! certificates for `localhost` and 127.0.0.1 signed by it, and its OpenSSL subject hash.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs `openssl` with `args` in `dir`; panics with its output unless it succeeds.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("openssl cannot run ({e}): is the openssl package installed?"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A certificate and its key, in PEM (for ARC and curl) and DER (for rustls).
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

/// A throw-away certificate authority in a directory of the test.
#[derive(Debug)]
pub struct TestCa {
    dir: PathBuf,
    /// The CA certificate (curl's `--cacert`).
    pub cert: PathBuf,
}

impl TestCa {
    /// A new CA (RSA 2048, valid two days) in `dir`.
    pub fn new(dir: &Path) -> TestCa {
        std::fs::create_dir_all(dir).expect("creating the CA directory");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-sha256",
                "-days",
                "2",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/DC=org/DC=tokenledger/CN=tokenledger e2e CA",
                "-addext",
                "basicConstraints=critical,CA:true",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        TestCa {
            dir: dir.to_path_buf(),
            cert: dir.join("ca.pem"),
        }
    }

    /// A server certificate `name` for `localhost` and `127.0.0.1`, signed by this CA.
    pub fn issue(&self, name: &str) -> Leaf {
        let ext = self.dir.join(format!("{name}.ext"));
        std::fs::write(
            &ext,
            "basicConstraints=CA:false\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth,clientAuth\n\
             subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("writing the extensions");
        let (key, csr, cert) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                "/DC=org/DC=tokenledger/CN=localhost",
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-sha256",
                "-days",
                "2",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &cert,
            ],
        );
        let cert_der = openssl(&self.dir, &["x509", "-in", &cert, "-outform", "DER"]);
        let key_der = openssl(
            &self.dir,
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", &key, "-outform", "DER",
            ],
        );
        Leaf {
            cert_pem: self.dir.join(cert),
            key_pem: self.dir.join(key),
            cert_der,
            key_der,
        }
    }

    /// OpenSSL's subject hash of the CA: its file name in a hashed CA directory is
    /// `<hash>.0`.
    pub fn subject_hash(&self) -> String {
        let hash = openssl(&self.dir, &["x509", "-hash", "-noout", "-in", "ca.pem"]);
        String::from_utf8(hash).expect("a hash").trim().to_string()
    }
}

/// Sets a file's permission bits.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}
