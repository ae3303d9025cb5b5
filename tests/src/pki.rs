//! A throw-away certificate authority of the real-daemon tests, made with the `openssl`
//! command: its certificate (PEM, and in an OpenSSL hashed directory), server certificates it
//! signs for `localhost` and `127.0.0.1`, and its installation as the trust anchor where ARC
//! and libcurl look, for one private mount namespace only.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::daemon::set_mode;
use crate::netns::assert_private_mount_namespace;

/// Where grid middleware (ARC) looks for trust anchors, host certificate and key by default.
const GRID_SECURITY: &str = "/etc/grid-security";

/// The CA bundle Debian's libcurl (OpenSSL flavour) reads by default.
pub const CURL_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Runs `cmd`; panics with its error output unless it succeeds; its standard output.
fn output_of(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `openssl` (the openssl package) with `args` in `dir`; its standard output.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    output_of(Command::new("openssl").args(args).current_dir(dir))
}

/// Runs `mount` (util-linux) with `args`.
fn mount(args: &[&str]) {
    output_of(Command::new("mount").args(args));
}

/// A certificate and its key (mode 0600), in PEM (for daemons and curl) and DER (for rustls).
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub cert_der: Vec<u8>,
    pub(crate) key_der: Vec<u8>,
}

/// A throw-away certificate authority (RSA 2048, valid two days) in a directory of the test.
#[derive(Debug)]
pub struct TestCa {
    dir: PathBuf,
    /// The CA certificate (PEM): curl's `--cacert`, a CA bundle.
    pub cert: PathBuf,
    /// A directory holding only the CA certificate under its OpenSSL hash name
    /// (`<hash>.0`): a `X509_CERT_DIR`, `/etc/grid-security/certificates`.
    pub certificates: PathBuf,
}

impl TestCa {
    /// A new CA in `dir`.
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
        let cert = dir.join("ca.pem");
        let hash = String::from_utf8(openssl(dir, &["x509", "-hash", "-noout", "-in", "ca.pem"]))
            .expect("a hash");
        let certificates = dir.join("certificates");
        std::fs::create_dir(&certificates).expect("creating certificates/");
        std::fs::copy(&cert, certificates.join(format!("{}.0", hash.trim())))
            .expect("copying the CA into certificates/");
        TestCa {
            dir: dir.to_path_buf(),
            cert,
            certificates,
        }
    }

    /// A server (and client) certificate `name` for `localhost` and `127.0.0.1`, signed by
    /// this CA.
    pub fn issue(&self, name: &str) -> Leaf {
        let ext = format!("{name}.ext");
        std::fs::write(
            self.dir.join(&ext),
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
                &ext,
                "-out",
                &cert,
            ],
        );
        set_mode(&self.dir.join(&key), 0o600);
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

    /// Puts this CA and `host` where ARC looks by default, for this mount namespace only: a
    /// tmpfs over `/etc/grid-security` holding `certificates/<hash>.0` (the trust anchor for
    /// A-REX's TLS and for its fetch of issuer keys), `hostcert.pem` and `hostkey.pem`. The
    /// host's own `/etc/grid-security` (which `nordugrid-arc-arex`'s postinst creates) is
    /// hidden, never changed.
    pub fn install_grid_security(&self, host: &Leaf) {
        assert_private_mount_namespace(GRID_SECURITY);
        let root = Path::new(GRID_SECURITY);
        assert!(
            root.is_dir(),
            "{GRID_SECURITY} does not exist: nordugrid-arc-arex's postinst creates it (arcctl \
             test-ca init); the test mounts over it and never creates it on the host"
        );
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            "mode=0755",
            "tokenledger-e2e",
            GRID_SECURITY,
        ]);
        let certificates = root.join("certificates");
        std::fs::create_dir(&certificates).expect("creating certificates/");
        for entry in std::fs::read_dir(&self.certificates).expect("the CA's certificates/") {
            let entry = entry.expect("an entry of certificates/");
            std::fs::copy(entry.path(), certificates.join(entry.file_name()))
                .expect("installing the CA");
        }
        std::fs::copy(&host.cert_pem, root.join("hostcert.pem")).expect("installing hostcert");
        std::fs::copy(&host.key_pem, root.join("hostkey.pem")).expect("installing hostkey");
        set_mode(&root.join("hostkey.pem"), 0o600);
    }

    /// Makes libcurl trust exactly this CA, for this mount namespace only: a bind mount of
    /// its certificate over [`CURL_CA_BUNDLE`] (scitokens-cpp, in xrootd, sets no CA of its
    /// own, so this decides whether an issuer's https is trusted).
    pub fn trust_for_libcurl(&self) {
        assert_private_mount_namespace(CURL_CA_BUNDLE);
        assert!(
            Path::new(CURL_CA_BUNDLE).is_file(),
            "{CURL_CA_BUNDLE} is missing: the ca-certificates package provides it"
        );
        let cert = self.cert.display().to_string();
        mount(&["--bind", &cert, CURL_CA_BUNDLE]);
    }
}
