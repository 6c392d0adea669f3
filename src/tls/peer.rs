//! The names in a client certificate, for `auth_type = cert` and HBA `cert`: the subject's
//! common names and the DNS names of subjectAltName, read with a minimal DER walker.
//!
//! Does not: verify anything: the certificate was verified against `client_tls_ca_file` by
//! rustls during the handshake; this only reads names out of it.
//!
//! Invariants: pure and total: any malformed input yields no names, never a panic.

/// `2.5.4.3` (commonName), DER-encoded.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
/// `2.5.29.17` (subjectAltName), DER-encoded.
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// Reads one tag-length-value; returns the tag, the content and what follows.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let bytes = rest.get(..count)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest.get(count..)?)
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

/// The TLVs of a constructed value's content, in order.
fn children(mut content: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while let Some((tag, value, rest)) = tlv(content) {
        out.push((tag, value));
        content = rest;
    }
    out
}

fn text(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String, TeletexString (as Latin-1-ish ASCII).
        0x0c | 0x13 | 0x16 | 0x14 => std::str::from_utf8(value).ok().map(str::to_owned),
        // BMPString: UTF-16BE.
        0x1e => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// Common names of the subject, then DNS names of subjectAltName.
pub fn names(cert_der: &[u8]) -> Vec<String> {
    let Some((0x30, cert, _)) = tlv(cert_der) else {
        return Vec::new();
    };
    let Some((0x30, tbs, _)) = tlv(cert) else {
        return Vec::new();
    };
    let mut fields = children(tbs);
    if fields.first().is_some_and(|(tag, _)| *tag == 0xa0) {
        fields.remove(0);
    }
    // serial, signature, issuer, validity, subject, spki, then optional parts.
    let mut out = Vec::new();
    if let Some((0x30, subject)) = fields.get(4) {
        for (_, set) in children(subject) {
            for (_, attr) in children(set) {
                let parts = children(attr);
                if let [(0x06, oid), (tag, value), ..] = parts.as_slice() {
                    if *oid == OID_CN {
                        out.extend(text(*tag, value));
                    }
                }
            }
        }
    }
    for (tag, ext_wrapper) in fields.iter().skip(6) {
        if *tag != 0xa3 {
            continue;
        }
        for (_, exts) in children(ext_wrapper) {
            for (_, ext) in children(exts) {
                let parts = children(ext);
                let Some((0x06, oid)) = parts.first() else {
                    continue;
                };
                if *oid != OID_SAN {
                    continue;
                }
                if let Some((0x04, octets)) = parts.last() {
                    if let Some((0x30, general_names, _)) = tlv(octets) {
                        for (name_tag, name) in children(general_names) {
                            // [2] IMPLICIT IA5String: dNSName.
                            if name_tag == 0x82 {
                                out.extend(text(0x16, name));
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// Whether the certificate names `user` (case-insensitive, as PgBouncer compares).
pub fn cert_names_user(cert_der: &[u8], user: &str) -> bool {
    names(cert_der).iter().any(|n| n.eq_ignore_ascii_case(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str, sans: Vec<String>) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "pgsluice tests");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_common_name_and_dns_names() {
        let der = cert("alice", vec!["db.example".into()]);
        assert_eq!(
            names(&der),
            vec!["alice".to_owned(), "db.example".to_owned()]
        );
        assert!(cert_names_user(&der, "Alice"));
        assert!(cert_names_user(&der, "db.example"));
        assert!(!cert_names_user(&der, "bob"));
    }

    #[test]
    fn garbage_has_no_names() {
        assert!(names(&[]).is_empty());
        assert!(names(&[0x30, 0x82, 0xff]).is_empty());
        let der = cert("alice", vec![]);
        for cut in 0..der.len() {
            let _ = names(&der[..cut]);
        }
    }
}
