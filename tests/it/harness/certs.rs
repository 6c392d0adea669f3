//! Test certificates: a CA made with rcgen per test, and server/client certificates it signs,
//! written as PEM files into a temp dir (libpq and PostgreSQL read files, not memory).

use std::fmt::Write as _;
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

/// How an [`OpensslCa`]'s own certificate is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaShape {
    /// `openssl req -x509 -addext basicConstraints=critical,CA:TRUE,pathlen:1`: a v3 CA, as
    /// current OpenSSL writes it.
    V3BasicConstraints,
    /// `openssl x509 -req -signkey` without extensions: a v1 CA with no basicConstraints, as old
    /// OpenSSL versions and many hand-made CAs have.
    V1,
}

/// A CA made by the `openssl` command line the way many real deployments (and PgBouncer's own
/// test suite) make theirs: EC keys from `openssl ecparam -genkey` (a PEM file with an
/// `EC PARAMETERS` block before the key), certificates issued by `openssl ca` with no extension
/// section, so they are X.509 v1 with only a subject (common name) and no subjectAltName.
pub struct OpensslCa {
    /// Where `ca.crt`, `ca.key`, the CA database and every issued pair live.
    pub dir: TempDir,
    name: String,
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command line tool is needed for these tests");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn subject_config(fields: &[(&str, &str)]) -> String {
    let mut s = "[req]\nprompt=no\ndistinguished_name=dn\n[dn]\n".to_owned();
    for (k, v) in fields {
        let _ = writeln!(s, "{k}={v}");
    }
    s
}

fn private_key_mode(path: &std::path::Path) {
    std::fs::set_permissions(
        path,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .unwrap();
}

impl OpensslCa {
    /// A fresh CA named `name` (its common name), of `shape`.
    pub fn new(name: &str, shape: CaShape) -> OpensslCa {
        let dir = TempDir::new(&format!("osslca-{name}"));
        let d = dir.path();
        std::fs::create_dir_all(d.join("certs")).unwrap();
        dir.write("index.txt", "");
        dir.write("serial", "01\n");
        openssl(
            d,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-out",
                "ca.key",
            ],
        );
        dir.write(
            "ca-req.cnf",
            &subject_config(&[("C", "QQ"), ("O", "Org"), ("CN", name)]),
        );
        match shape {
            CaShape::V3BasicConstraints => openssl(
                d,
                &[
                    "req",
                    "-new",
                    "-x509",
                    "-days",
                    "3650",
                    "-key",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-config",
                    "ca-req.cnf",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE,pathlen:1",
                ],
            ),
            CaShape::V1 => {
                openssl(
                    d,
                    &[
                        "req",
                        "-new",
                        "-key",
                        "ca.key",
                        "-out",
                        "ca.csr",
                        "-config",
                        "ca-req.cnf",
                    ],
                );
                openssl(
                    d,
                    &[
                        "x509", "-req", "-days", "3650", "-in", "ca.csr", "-signkey", "ca.key",
                        "-out", "ca.crt",
                    ],
                );
            }
        }
        dir.write(
            "ca.cnf",
            "[ca]\ndefault_ca=test\n[test]\ndir=.\ndatabase=./index.txt\nnew_certs_dir=./certs\n\
             certificate=./ca.crt\nserial=./serial\nprivate_key=./ca.key\ndefault_md=sha256\n\
             policy=pol\n[pol]\nC=supplied\nO=supplied\nCN=supplied\n",
        );
        OpensslCa {
            dir,
            name: name.to_owned(),
        }
    }

    /// The CA certificate file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The CA's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Issues `<file>.crt`/`<file>.key` with common name `cn` and nothing else: `openssl ca`
    /// without extensions, so an X.509 v1 certificate.
    pub fn issue(&self, file: &str, cn: &str) -> Issued {
        let d = self.dir.path();
        let key = format!("{file}.key");
        openssl(
            d,
            &["ecparam", "-genkey", "-name", "prime256v1", "-out", &key],
        );
        private_key_mode(&self.dir.join(&key));
        let cnf = format!("{file}-req.cnf");
        self.dir.write(
            &cnf,
            &subject_config(&[("C", "QQ"), ("O", "Org"), ("CN", cn)]),
        );
        let csr = format!("{file}.csr");
        openssl(
            d,
            &["req", "-new", "-key", &key, "-out", &csr, "-config", &cnf],
        );
        let crt = format!("{file}.crt");
        openssl(
            d,
            &[
                "ca", "-batch", "-config", "ca.cnf", "-days", "365", "-in", &csr, "-out", &crt,
                "-notext",
            ],
        );
        let cert_pem = std::fs::read_to_string(self.dir.join(&crt)).unwrap();
        let key_pem = std::fs::read_to_string(self.dir.join(&key)).unwrap();
        Issued {
            cert: self.dir.join(&crt),
            key: self.dir.join(&key),
            cert_pem,
            key_pem,
        }
    }
}
