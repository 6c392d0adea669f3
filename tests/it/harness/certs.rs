//! Test certificates: a CA made with rcgen per test, and server/client certificates it signs,
//! written as PEM files into a temp dir (libpq and PostgreSQL read files, not memory).

use std::path::PathBuf;

use super::files::TempDir;

/// A certificate authority and the directory its files go to.
pub struct TestCa {
    /// Where `ca.crt` and every issued pair live.
    pub dir: TempDir,
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

/// A certificate and key issued by a [`TestCa`].
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate file.
    pub cert: PathBuf,
    /// The key file (mode 0600, as libpq insists for client keys).
    pub key: PathBuf,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The key, PEM.
    pub key_pem: String,
}

impl TestCa {
    /// A fresh CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("pgsluice test CA {name}"),
        );
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = TempDir::new(&format!("ca-{name}"));
        dir.write("ca.crt", &cert.pem());
        TestCa { dir, cert, key }
    }

    /// The CA certificate file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Issues `<file>.crt`/`<file>.key` with common name `cn` and subjectAltNames `sans`
    /// (DNS names or IP addresses).
    pub fn issue(&self, file: &str, cn: &str, sans: &[&str]) -> Issued {
        let names: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        let cert_path = self.dir.write(&format!("{file}.crt"), &cert_pem);
        let key_path = self.dir.write(&format!("{file}.key"), &key_pem);
        std::fs::set_permissions(
            &key_path,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
        )
        .unwrap();
        Issued {
            cert: cert_path,
            key: key_path,
            cert_pem,
            key_pem,
        }
    }
}
