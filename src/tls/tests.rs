//! Handshakes between contexts built from settings, over in-memory pipes, with certificates
//! generated per test.

use std::path::PathBuf;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A CA and certificates it signed, written as PEM files in a fresh directory.
struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "pgsluice-tls-unit-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("test CA {tag}"));
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca, ca_key }
    }

    /// Writes `<name>.crt`/`<name>.key` for a leaf with this CN and DNS/IP names.
    fn leaf(&self, name: &str, cn: &str, sans: &[&str]) -> (String, String) {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let crt = self.dir.join(format!("{name}.crt"));
        let keyf = self.dir.join(format!("{name}.key"));
        std::fs::write(&crt, cert.pem()).unwrap();
        std::fs::write(&keyf, key.serialize_pem()).unwrap();
        (crt.display().to_string(), keyf.display().to_string())
    }

    fn ca(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(lines: &str) -> Config {
    Config::from_ini_str(&format!("[pgbouncer]\n{lines}\n"), "test.ini").unwrap()
}

/// Runs a handshake; returns the server's summary or the first error.
async fn handshake(ctx: &TlsContext, name: &str) -> Result<(String, Vec<String>), String> {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let acceptor = ctx.client.acceptor().unwrap().clone();
    let connector = ctx.server.connector().unwrap().clone();
    let server = tokio::spawn(async move {
        let mut s = acceptor.accept(a).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        s.write_all(b"pong").await.map_err(|e| e.to_string())?;
        s.flush().await.map_err(|e| e.to_string())?;
        let (_, state) = s.get_ref();
        let names = state
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| peer::names(c))
            .unwrap_or_default();
        Ok::<_, String>((summary(state), names))
    });
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let client = async {
        let mut c = connector
            .connect(name, b)
            .await
            .map_err(|e| e.to_string())?;
        c.write_all(b"ping").await.map_err(|e| e.to_string())?;
        c.flush().await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    };
    let client_result = client.await;
    let server_result = server.await.unwrap();
    client_result?;
    server_result
}

#[tokio::test]
async fn verify_full_checks_chain_and_name() {
    let pki = Pki::new("full");
    let (crt, key) = pki.leaf("server", "pgsluice", &["localhost"]);
    let ctx = TlsContext::from_config(&config(&format!(
        "client_tls_sslmode = require\nclient_tls_cert_file = {crt}\nclient_tls_key_file = {key}\n\
         server_tls_sslmode = verify-full\nserver_tls_ca_file = {}\n",
        pki.ca()
    )))
    .unwrap();
    let (info, _) = handshake(&ctx, "localhost").await.unwrap();
    assert!(info.starts_with("TLSv1.3/TLS_"), "{info}");
    assert!(info.contains("/ECDH="), "{info}");
    let err = handshake(&ctx, "db.example").await.unwrap_err();
    assert!(
        err.contains("not valid for name") || err.contains("NotValidForName"),
        "{err}"
    );
}

#[tokio::test]
async fn verify_ca_and_require_with_ca_ignore_the_name() {
    let pki = Pki::new("ca");
    let other = Pki::new("other");
    let (crt, key) = pki.leaf("server", "pgsluice", &["localhost"]);
    for mode in ["verify-ca", "require"] {
        let ctx = TlsContext::from_config(&config(&format!(
            "client_tls_sslmode = require\nclient_tls_cert_file = {crt}\nclient_tls_key_file = {key}\n\
             server_tls_sslmode = {mode}\nserver_tls_ca_file = {}\n",
            pki.ca()
        )))
        .unwrap();
        handshake(&ctx, "db.example").await.unwrap();
        let wrong = TlsContext::from_config(&config(&format!(
            "client_tls_sslmode = require\nclient_tls_cert_file = {crt}\nclient_tls_key_file = {key}\n\
             server_tls_sslmode = {mode}\nserver_tls_ca_file = {}\n",
            other.ca()
        )))
        .unwrap();
        let err = handshake(&wrong, "localhost").await.unwrap_err();
        assert!(
            err.contains("UnknownIssuer") || err.contains("unknown"),
            "{err}"
        );
    }
    // Without a CA, `require` encrypts without checking.
    let ctx = TlsContext::from_config(&config(&format!(
        "client_tls_sslmode = require\nclient_tls_cert_file = {crt}\nclient_tls_key_file = {key}\n\
         server_tls_sslmode = require\n"
    )))
    .unwrap();
    handshake(&ctx, "anything.example").await.unwrap();
}

#[tokio::test]
async fn client_certificates_and_protocols() {
    let pki = Pki::new("mtls");
    let (crt, key) = pki.leaf("server", "pgsluice", &["localhost"]);
    let (ccrt, ckey) = pki.leaf("client", "alice", &[]);
    let base = format!(
        "client_tls_cert_file = {crt}\nclient_tls_key_file = {key}\nclient_tls_ca_file = {}\n\
         server_tls_sslmode = verify-full\nserver_tls_ca_file = {}\n",
        pki.ca(),
        pki.ca()
    );
    // verify-ca demands a certificate.
    let ctx = TlsContext::from_config(&config(&format!("{base}client_tls_sslmode = verify-ca\n")))
        .unwrap();
    assert!(handshake(&ctx, "localhost").await.is_err());
    let ctx = TlsContext::from_config(&config(&format!(
        "{base}client_tls_sslmode = verify-ca\nserver_tls_cert_file = {ccrt}\nserver_tls_key_file = {ckey}\n"
    )))
    .unwrap();
    let (_, names) = handshake(&ctx, "localhost").await.unwrap();
    assert_eq!(names, vec!["alice".to_owned()]);
    // TLS 1.2 only, one named suite.
    let ctx = TlsContext::from_config(&config(&format!(
        "{base}client_tls_sslmode = require\nclient_tls_protocols = tlsv1.2\n\
         client_tls_ciphers = ECDHE-ECDSA-AES128-GCM-SHA256\n"
    )))
    .unwrap();
    let (info, _) = handshake(&ctx, "localhost").await.unwrap();
    assert!(
        info.starts_with("TLSv1.2/ECDHE-ECDSA-AES128-GCM-SHA256"),
        "{info}"
    );
}

#[test]
fn settings_errors_are_clear() {
    let err = |lines: &str| {
        TlsContext::from_config(&config(lines))
            .unwrap_err()
            .to_string()
    };
    assert!(err("client_tls_sslmode = require").contains("client_tls_key_file"));
    assert!(err("auth_type = cert\nclient_tls_sslmode = require").contains("verify-full"));
    assert!(err("server_tls_sslmode = verify-full").contains("requires server_tls_ca_file"));
    assert!(err("server_tls_protocols = tlsv1.0").contains("TLS 1.2"));
    assert!(
        err("server_tls_ca_file = /nonexistent/ca.pem\nserver_tls_sslmode = verify-ca")
            .contains("server_tls_ca_file")
    );
    // libtls's words for cipher lists nothing in them can satisfy, which log alerts match.
    let tls13 = err("server_tls13_ciphers = unknown");
    assert!(
        tls13.contains("failed to set the TLSv1.3 cipher suites")
            && tls13.contains("server_tls13_ciphers"),
        "{tls13}"
    );
    assert!(err("server_tls_ciphers = RC4-MD5").contains("failed to set ciphers"));
    // Defaults: client TLS off, servers `prefer` without checks.
    let ctx = TlsContext::from_config(&Config::default()).unwrap();
    assert_eq!(ctx.client.mode(), SslMode::Disable);
    assert!(ctx.client.acceptor().is_none());
    assert_eq!(ctx.server.mode(), SslMode::Prefer);
    assert!(ctx.server.connector().is_some());
}

#[test]
fn fingerprint_follows_file_contents() {
    let pki = Pki::new("fp");
    let lines = format!(
        "server_tls_sslmode = verify-ca\nserver_tls_ca_file = {}\n",
        pki.ca()
    );
    let a = TlsContext::from_config(&config(&lines)).unwrap();
    let b = TlsContext::from_config(&config(&lines)).unwrap();
    assert_eq!(format!("{:?}", a.server), format!("{:?}", b.server));
    let other = Pki::new("fp2");
    std::fs::copy(other.dir.join("ca.pem"), pki.dir.join("ca.pem")).unwrap();
    let c = TlsContext::from_config(&config(&lines)).unwrap();
    assert_ne!(format!("{:?}", a.server), format!("{:?}", c.server));
}
