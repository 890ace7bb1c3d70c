//! TLS material. With no certificate of the operator's, the first start creates a local CA and
//! a server certificate signed by it (SANs `localhost`, `127.0.0.1`, `::1` and the public
//! host), so clients trust one stable CA file across restarts and certificate renewals.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[allow(clippy::disallowed_methods, reason = "certificates are valid from the wall-clock time")]
fn ca_params() -> Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "mlgate local CA");
    dn.push(DnType::OrganizationName, "mlgate");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(3650);
    Ok(p)
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Returns the CA, certificate and key paths under `dir`, creating what is missing.
#[allow(clippy::disallowed_methods, reason = "certificates are valid from the wall-clock time")]
pub fn ensure_local_ca(dir: &Path, extra_host: Option<&str>) -> Result<TlsFiles> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
    };
    if files.cert.exists() && files.key.exists() && files.ca.exists() {
        return Ok(files);
    }
    let ca_key_path = dir.join("ca-key.pem");
    let params = ca_params()?;
    let ca_key = if files.ca.exists() && ca_key_path.exists() {
        // Re-issue the server certificate under the existing CA, which clients already trust.
        KeyPair::from_pem(&fs::read_to_string(&ca_key_path)?)?
    } else {
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        write_file(&ca_key_path, &key.serialize_pem(), 0o600)?;
        write_file(&files.ca, &cert.pem(), 0o644)?;
        key
    };
    let issuer = Issuer::new(params, ca_key);
    let (cert, key) = issue_server_certificate(&issuer, extra_host)?;
    write_file(&files.key, &key, 0o600)?;
    write_file(&files.cert, &cert, 0o644)?;
    Ok(files)
}

/// A new server certificate and key (PEM) signed by the local CA: 825 days, the loopback
/// names and `extra_host`.
#[allow(clippy::disallowed_methods, reason = "certificates are valid from the wall-clock time")]
fn issue_server_certificate(
    issuer: &Issuer<'_, KeyPair>,
    extra_host: Option<&str>,
) -> Result<(String, String)> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Some(h) = extra_host.filter(|h| !names.iter().any(|n| n == h)) {
        names.push(h.to_string());
    }
    let mut p = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "mlgate server");
    p.distinguished_name = dn;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(825);
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// `mlgate tls renew`: a new server certificate under the existing local CA (which clients
/// already trust), for `host` besides the loopback names. The new files are renamed over the
/// old ones, so a server reloading them (SIGHUP) never reads half a file.
pub fn renew_local_certificate(dir: &Path, host: Option<&str>) -> Result<TlsFiles> {
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
    };
    let ca_key_path = dir.join("ca-key.pem");
    if !files.ca.is_file() || !ca_key_path.is_file() {
        anyhow::bail!(
            "{} holds no local CA (ca.pem and ca-key.pem): the server makes one at its first \
             start without --tls-cert",
            dir.display()
        );
    }
    let ca_key = KeyPair::from_pem(&fs::read_to_string(&ca_key_path)?)?;
    let issuer = Issuer::new(ca_params()?, ca_key);
    let (cert, key) = issue_server_certificate(&issuer, host)?;
    let (tmp_cert, tmp_key) = (dir.join(".server.pem.new"), dir.join(".server-key.pem.new"));
    write_file(&tmp_key, &key, 0o600)?;
    write_file(&tmp_cert, &cert, 0o644)?;
    fs::rename(&tmp_key, &files.key)?;
    fs::rename(&tmp_cert, &files.cert)?;
    Ok(files)
}

/// The certificate the server presents, swappable while it runs: `SIGHUP` makes `serve` call
/// [`CertReloader::reload`], which reads the files again and, when they make a valid
/// certificate and key pair, serves them to every new handshake (connections already open
/// keep theirs). A file that does not load leaves the current certificate in place.
#[derive(Debug)]
pub struct CertReloader {
    cert: PathBuf,
    key: PathBuf,
    current: arc_swap::ArcSwap<rustls::sign::CertifiedKey>,
}

impl CertReloader {
    /// Reads the files again; on success new handshakes use them.
    pub fn reload(&self) -> Result<()> {
        let loaded = load_certified_key(&self.cert, &self.key)?;
        self.current.store(std::sync::Arc::new(loaded));
        Ok(())
    }

    /// The certificate files.
    pub fn files(&self) -> (&Path, &Path) {
        (&self.cert, &self.key)
    }
}

impl rustls::server::ResolvesServerCert for CertReloader {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<std::sync::Arc<rustls::sign::CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn load_certified_key(cert: &Path, key: &Path) -> Result<rustls::sign::CertifiedKey> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the certificate chain {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no certificate", cert.display());
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key {}", key.display()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified =
        rustls::sign::CertifiedKey::from_der(chain, key_der, &provider).with_context(|| {
            format!(
                "{} and {} do not make a certificate and key pair",
                cert.display(),
                key.display()
            )
        })?;
    Ok(certified)
}

/// A rustls server configuration from PEM files (certificate chain, private key), offering
/// HTTP/2 and HTTP/1.1 by ALPN, with the handle that reloads the files.
pub fn server_config(
    cert: &Path,
    key: &Path,
) -> Result<(std::sync::Arc<rustls::ServerConfig>, std::sync::Arc<CertReloader>)> {
    let first = load_certified_key(cert, key)?;
    let reloader = std::sync::Arc::new(CertReloader {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        current: arc_swap::ArcSwap::from_pointee(first),
    });
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(reloader.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((std::sync::Arc::new(config), reloader))
}
