//! A strict, minimal X.509 reader for what the legacy-certificate path ([`super::legacy`]) and
//! the host-name check need: the signed bytes, names, validity, public key, and the few
//! extensions that decide whether a certificate may issue others or serve TLS.
//!
//! Does not: verify anything (the caller does, with the provider's signature algorithms), or
//! decode names beyond the common name and subjectAltName DNS/IP entries.
//!
//! Invariants: pure and total: malformed input is an error, never a panic; DER is read strictly
//! (definite, minimal lengths; a value must fill its container exactly), since these bytes decide
//! trust.

use std::fmt;

/// `2.5.4.3` commonName.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
/// `2.5.29.*`: the id-ce arc the standard extensions live under.
const OID_CE: &[u8] = &[0x55, 0x1d];
/// `2.5.29.37.0` anyExtendedKeyUsage.
pub const EKU_ANY: &[u8] = &[0x55, 0x1d, 0x25, 0x00];
/// `1.3.6.1.5.5.7.3.1` id-kp-serverAuth.
pub const EKU_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
/// `1.3.6.1.5.5.7.3.2` id-kp-clientAuth.
pub const EKU_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
/// `1.3.6.1.5.5.7.1.1` authorityInfoAccess (informational).
const OID_AIA: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01];

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadCert(pub &'static str);

impl fmt::Display for BadCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

type R<T> = Result<T, BadCert>;

/// One TLV: tag, value, the whole TLV, what follows.
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// Reads one DER tag-length-value: the tag, the value, the whole TLV and what follows.
fn tlv(input: &[u8]) -> R<Tlv<'_>> {
    let bad = BadCert("malformed DER");
    let (&tag, rest) = input.split_first().ok_or(bad.clone())?;
    if tag & 0x1f == 0x1f {
        return Err(BadCert("unsupported DER tag"));
    }
    let (&first, rest) = rest.split_first().ok_or(bad.clone())?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 3 {
            // Indefinite lengths are not DER; certificates are far below 16 MiB.
            return Err(bad);
        }
        let bytes = rest.get(..count).ok_or(bad.clone())?;
        if bytes[0] == 0 {
            return Err(bad);
        }
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 0x80 {
            return Err(bad);
        }
        (len, rest.get(count..).ok_or(bad.clone())?)
    };
    let value = rest.get(..len).ok_or(bad.clone())?;
    let after = rest.get(len..).ok_or(bad)?;
    let whole = &input[..input.len() - after.len()];
    Ok((tag, value, whole, after))
}

/// A reader over the TLVs of a constructed value.
struct Seq<'a>(&'a [u8]);

impl<'a> Seq<'a> {
    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next TLV, which must have `tag`: (value, whole TLV).
    fn expect(&mut self, tag: u8, what: &'static str) -> R<(&'a [u8], &'a [u8])> {
        let (t, value, whole, rest) = tlv(self.0)?;
        if t != tag {
            return Err(BadCert(what));
        }
        self.0 = rest;
        Ok((value, whole))
    }

    /// The next TLV if it has `tag`.
    fn optional(&mut self, tag: u8) -> R<Option<&'a [u8]>> {
        if self.peek() == Some(tag) {
            return Ok(Some(self.expect(tag, "malformed DER")?.0));
        }
        Ok(None)
    }

    fn finish(&self, what: &'static str) -> R<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(BadCert(what))
        }
    }
}

/// One extension.
#[derive(Debug, Clone, Copy)]
pub struct Extension<'a> {
    /// The OID's content bytes.
    pub oid: &'a [u8],
    /// Whether a verifier that does not understand it must reject the certificate.
    pub critical: bool,
    /// The OCTET STRING's content.
    pub value: &'a [u8],
}

/// basicConstraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BasicConstraints {
    /// `cA`.
    pub ca: bool,
    /// `pathLenConstraint`.
    pub path_len: Option<u32>,
}

/// keyUsage bits this module looks at.
pub mod key_usage {
    /// digitalSignature.
    pub const DIGITAL_SIGNATURE: u16 = 1 << 0;
    /// keyEncipherment.
    pub const KEY_ENCIPHERMENT: u16 = 1 << 2;
    /// keyAgreement.
    pub const KEY_AGREEMENT: u16 = 1 << 4;
    /// keyCertSign.
    pub const KEY_CERT_SIGN: u16 = 1 << 5;
}

/// A subjectAltName entry this module understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AltName<'a> {
    /// dNSName (IA5String bytes).
    Dns(&'a [u8]),
    /// iPAddress (4 or 16 bytes).
    Ip(&'a [u8]),
    /// Any other kind.
    Other,
}

/// A parsed certificate; every slice borrows from the DER.
#[derive(Debug, Clone)]
pub struct Cert<'a> {
    /// The TBSCertificate TLV: the bytes the issuer signed.
    pub tbs: &'a [u8],
    /// 1, 2 or 3.
    pub version: u8,
    /// The signature AlgorithmIdentifier inside the TBS (content bytes).
    pub inner_sig_alg: &'a [u8],
    /// The issuer Name (content of the SEQUENCE).
    pub issuer: &'a [u8],
    /// notBefore, seconds since the Unix epoch.
    pub not_before: i64,
    /// notAfter, seconds since the Unix epoch.
    pub not_after: i64,
    /// The subject Name (content of the SEQUENCE).
    pub subject: &'a [u8],
    /// The whole SubjectPublicKeyInfo TLV.
    pub spki: &'a [u8],
    /// The SPKI's AlgorithmIdentifier (content bytes).
    pub spki_alg: &'a [u8],
    /// The subjectPublicKey BIT STRING's bits.
    pub public_key: &'a [u8],
    /// The extensions (v3 only).
    pub extensions: Vec<Extension<'a>>,
    /// The outer signatureAlgorithm (content bytes).
    pub sig_alg: &'a [u8],
    /// The signature BIT STRING's bits.
    pub signature: &'a [u8],
}

fn bit_string(value: &[u8]) -> R<&[u8]> {
    match value.split_first() {
        Some((0, bits)) => Ok(bits),
        _ => Err(BadCert("unsupported BIT STRING")),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn time(tag: u8, value: &[u8]) -> R<i64> {
    let bad = BadCert("malformed validity time");
    let digits = |s: &[u8]| -> R<i64> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return Err(bad.clone());
        }
        Ok(s.iter()
            .fold(0i64, |acc, &c| acc * 10 + i64::from(c - b'0')))
    };
    let (year, rest) = match (tag, value.len()) {
        // UTCTime YYMMDDHHMMSSZ: 50..99 are 19xx (RFC 5280).
        (0x17, 13) => {
            let yy = digits(&value[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &value[2..])
        }
        // GeneralizedTime YYYYMMDDHHMMSSZ.
        (0x18, 15) => (digits(&value[..4])?, &value[4..]),
        _ => return Err(bad),
    };
    if rest[10] != b'Z' {
        return Err(bad);
    }
    let (mo, d, h, mi, s) = (
        digits(&rest[0..2])?,
        digits(&rest[2..4])?,
        digits(&rest[4..6])?,
        digits(&rest[6..8])?,
        digits(&rest[8..10])?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad);
    }
    Ok(days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

impl<'a> Cert<'a> {
    /// Parses a DER certificate.
    pub fn parse(der: &'a [u8]) -> R<Cert<'a>> {
        let (tag, cert, _, rest) = tlv(der)?;
        if tag != 0x30 || !rest.is_empty() {
            return Err(BadCert("not a certificate"));
        }
        let mut outer = Seq(cert);
        let (tbs_value, tbs) = outer.expect(0x30, "not a certificate")?;
        let (sig_alg, _) = outer.expect(0x30, "malformed signature algorithm")?;
        let (signature, _) = outer.expect(0x03, "malformed signature")?;
        outer.finish("trailing data after the certificate")?;
        let signature = bit_string(signature)?;

        let mut t = Seq(tbs_value);
        let version = match t.optional(0xa0)? {
            None => 1,
            Some(explicit) => {
                let mut v = Seq(explicit);
                let (n, _) = v.expect(0x02, "malformed version")?;
                v.finish("malformed version")?;
                match n {
                    // v1 written explicitly is not DER, but OpenSSL reads it; so do we.
                    [0] => 1,
                    [1] => 2,
                    [2] => 3,
                    _ => return Err(BadCert("unknown certificate version")),
                }
            }
        };
        t.expect(0x02, "malformed serial number")?;
        let (inner_sig_alg, _) = t.expect(0x30, "malformed signature algorithm")?;
        let (issuer, _) = t.expect(0x30, "malformed issuer")?;
        let (validity, _) = t.expect(0x30, "malformed validity")?;
        let (subject, _) = t.expect(0x30, "malformed subject")?;
        let (spki_value, spki) = t.expect(0x30, "malformed public key")?;
        // issuerUniqueID, subjectUniqueID (v2 and v3).
        t.optional(0x81)?;
        t.optional(0x82)?;
        let mut extensions = Vec::new();
        if let Some(wrapper) = t.optional(0xa3)? {
            if version != 3 {
                return Err(BadCert("extensions in a certificate older than v3"));
            }
            let mut w = Seq(wrapper);
            let (list, _) = w.expect(0x30, "malformed extensions")?;
            w.finish("malformed extensions")?;
            let mut list = Seq(list);
            while list.peek().is_some() {
                let (ext, _) = list.expect(0x30, "malformed extension")?;
                let mut e = Seq(ext);
                let (oid, _) = e.expect(0x06, "malformed extension")?;
                let critical = match e.optional(0x01)? {
                    None | Some([0x00]) => false,
                    Some([0xff]) => true,
                    Some(_) => return Err(BadCert("malformed extension")),
                };
                let (value, _) = e.expect(0x04, "malformed extension")?;
                e.finish("malformed extension")?;
                if extensions.iter().any(|x: &Extension<'_>| x.oid == oid) {
                    return Err(BadCert("duplicate extension"));
                }
                extensions.push(Extension {
                    oid,
                    critical,
                    value,
                });
            }
        }
        t.finish("trailing data in the certificate body")?;

        let mut v = Seq(validity);
        let (tag, value, _, rest) = tlv(v.0)?;
        let not_before = time(tag, value)?;
        v.0 = rest;
        let (tag, value, _, rest) = tlv(v.0)?;
        let not_after = time(tag, value)?;
        v.0 = rest;
        v.finish("malformed validity")?;

        let mut k = Seq(spki_value);
        let (spki_alg, _) = k.expect(0x30, "malformed public key")?;
        let (key_bits, _) = k.expect(0x03, "malformed public key")?;
        k.finish("malformed public key")?;
        let public_key = bit_string(key_bits)?;

        Ok(Cert {
            tbs,
            version,
            inner_sig_alg,
            issuer,
            not_before,
            not_after,
            subject,
            spki,
            spki_alg,
            public_key,
            extensions,
            sig_alg,
            signature,
        })
    }

    fn extension(&self, id: u8) -> Option<&Extension<'a>> {
        self.extensions
            .iter()
            .find(|e| e.oid.len() == 3 && e.oid.starts_with(OID_CE) && e.oid[2] == id)
    }

    /// Whether issuer and subject are the same name (byte for byte).
    pub fn self_issued(&self) -> bool {
        self.issuer == self.subject
    }

    /// basicConstraints, if present.
    pub fn basic_constraints(&self) -> R<Option<BasicConstraints>> {
        let Some(ext) = self.extension(0x13) else {
            return Ok(None);
        };
        let mut outer = Seq(ext.value);
        let (content, _) = outer.expect(0x30, "malformed basicConstraints")?;
        outer.finish("malformed basicConstraints")?;
        let mut s = Seq(content);
        let ca = match s.optional(0x01)? {
            None | Some([0x00]) => false,
            Some([0xff]) => true,
            Some(_) => return Err(BadCert("malformed basicConstraints")),
        };
        let path_len = match s.optional(0x02)? {
            None => None,
            Some(n) if !n.is_empty() && n.len() <= 4 && n[0] & 0x80 == 0 => {
                Some(n.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
            }
            Some(_) => return Err(BadCert("malformed basicConstraints")),
        };
        s.finish("malformed basicConstraints")?;
        Ok(Some(BasicConstraints { ca, path_len }))
    }

    /// keyUsage bits ([`key_usage`]), if present.
    pub fn key_usage(&self) -> R<Option<u16>> {
        let Some(ext) = self.extension(0x0f) else {
            return Ok(None);
        };
        let mut outer = Seq(ext.value);
        let (bits, _) = outer.expect(0x03, "malformed keyUsage")?;
        outer.finish("malformed keyUsage")?;
        let Some((_unused, bytes)) = bits.split_first() else {
            return Err(BadCert("malformed keyUsage"));
        };
        let mut out = 0u16;
        for (i, byte) in bytes.iter().take(2).enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    out |= 1 << (i * 8 + bit);
                }
            }
        }
        Ok(Some(out))
    }

    /// The extendedKeyUsage OIDs, if present.
    pub fn extended_key_usage(&self) -> R<Option<Vec<&'a [u8]>>> {
        let Some(ext) = self.extension(0x25) else {
            return Ok(None);
        };
        let mut outer = Seq(ext.value);
        let (list, _) = outer.expect(0x30, "malformed extendedKeyUsage")?;
        outer.finish("malformed extendedKeyUsage")?;
        let mut list = Seq(list);
        let mut out = Vec::new();
        while list.peek().is_some() {
            out.push(list.expect(0x06, "malformed extendedKeyUsage")?.0);
        }
        Ok(Some(out))
    }

    /// subjectAltName entries, if the extension is present.
    pub fn alt_names(&self) -> R<Option<Vec<AltName<'a>>>> {
        let Some(ext) = self.extension(0x11) else {
            return Ok(None);
        };
        let mut outer = Seq(ext.value);
        let (list, _) = outer.expect(0x30, "malformed subjectAltName")?;
        outer.finish("malformed subjectAltName")?;
        let mut out = Vec::new();
        let mut rest = list;
        while !rest.is_empty() {
            let (tag, value, _, after) = tlv(rest)?;
            out.push(match tag {
                0x82 => AltName::Dns(value),
                0x87 => AltName::Ip(value),
                _ => AltName::Other,
            });
            rest = after;
        }
        Ok(Some(out))
    }

    /// The first common name of the subject, as text (None if absent or not decodable).
    pub fn common_name(&self) -> Option<String> {
        let mut rdns = self.subject;
        while !rdns.is_empty() {
            let (_, set, _, after) = tlv(rdns).ok()?;
            rdns = after;
            let mut attrs = set;
            while !attrs.is_empty() {
                let (_, attr, _, next) = tlv(attrs).ok()?;
                attrs = next;
                let mut a = Seq(attr);
                let (oid, _) = a.expect(0x06, "").ok()?;
                if oid != OID_CN {
                    continue;
                }
                let (tag, value, _, _) = tlv(a.0).ok()?;
                return decode_string(tag, value);
            }
        }
        None
    }

    /// Critical extensions this reader does not know, by dotted OID; a verifier must refuse a
    /// certificate that has any.
    pub fn unknown_critical(&self) -> Option<String> {
        self.extensions
            .iter()
            .filter(|e| e.critical)
            .find(|e| !known_extension(e.oid))
            .map(|e| dotted(e.oid))
    }

    /// Whether the certificate carries nameConstraints (which the legacy path cannot enforce).
    pub fn has_name_constraints(&self) -> bool {
        self.extension(0x1e).is_some()
    }
}

/// Extensions whose meaning the legacy path applies, or which carry no constraint without
/// explicit policy settings (as in OpenSSL's default verification).
fn known_extension(oid: &[u8]) -> bool {
    if oid == OID_AIA {
        return true;
    }
    oid.len() == 3
        && oid.starts_with(OID_CE)
        && matches!(
            oid[2],
            // SKI, keyUsage, SAN, basicConstraints, nameConstraints (refused separately),
            // CRL distribution points, certificatePolicies, AKI, policyConstraints, EKU,
            // inhibitAnyPolicy.
            0x0e | 0x0f | 0x11 | 0x13 | 0x1e | 0x1f | 0x20 | 0x23 | 0x24 | 0x25 | 0x36
        )
}

fn decode_string(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String, TeletexString.
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

/// An OID's content bytes in dotted form.
pub fn dotted(oid: &[u8]) -> String {
    let mut parts: Vec<u64> = Vec::new();
    let mut acc = 0u64;
    for &b in oid {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if parts.is_empty() {
                let first = (acc / 40).min(2);
                parts.push(first);
                parts.push(acc - first * 40);
            } else {
                parts.push(acc);
            }
            acc = 0;
        }
    }
    parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// A readable form of a Name for log lines: its common name, else a placeholder.
pub fn describe(cert: &Cert<'_>) -> String {
    cert.common_name()
        .map_or_else(|| "(no common name)".to_owned(), |cn| format!("CN={cn}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(vec!["db.example".to_owned(), "10.0.0.5".to_owned()])
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "db");
        params.not_before = rcgen::date_time_ymd(2021, 3, 4);
        params.not_after = rcgen::date_time_ymd(2031, 3, 4);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_the_fields_that_decide_trust() {
        let der = sample();
        let cert = Cert::parse(&der).unwrap();
        assert_eq!(cert.version, 3);
        assert!(cert.self_issued());
        assert_eq!(cert.common_name().as_deref(), Some("db"));
        // 2021-03-04T00:00:00Z and 2031-03-04T00:00:00Z.
        assert_eq!(cert.not_before, 1_614_816_000);
        assert_eq!(cert.not_after, 1_930_348_800);
        let names = cert.alt_names().unwrap().unwrap();
        assert_eq!(
            names,
            vec![AltName::Dns(b"db.example"), AltName::Ip(&[10, 0, 0, 5])]
        );
        assert_eq!(cert.inner_sig_alg, cert.sig_alg);
        assert!(cert.unknown_critical().is_none());
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        let der = sample();
        for cut in 0..der.len() {
            assert!(Cert::parse(&der[..cut]).is_err(), "prefix {cut} parsed");
        }
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(Cert::parse(&trailing).is_err());
        for i in 0..der.len() {
            let mut flipped = der.clone();
            flipped[i] ^= 0xff;
            let _ = Cert::parse(&flipped);
        }
    }

    #[test]
    fn oids_print_dotted() {
        assert_eq!(dotted(EKU_SERVER_AUTH), "1.3.6.1.5.5.7.3.1");
        assert_eq!(dotted(EKU_ANY), "2.5.29.37.0");
    }
}
