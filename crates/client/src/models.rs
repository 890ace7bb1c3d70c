//! The model registry: upload files content-addressed, register versions, list, download.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{SHA256, digest};
use mlgate_proto::{ModelFile, ModelVersion, Page, RegisterModel};
use reqwest::Method;

use crate::{Client, ClientError, Result, enc};

/// Where a model lives.
#[derive(Debug, Clone)]
pub struct WorkspaceAddress {
    pub subscription_id: String,
    pub resource_group: String,
    pub workspace: String,
}

impl WorkspaceAddress {
    fn path(&self) -> String {
        mlgate_proto::arm::workspace_id(
            &enc(&self.subscription_id),
            &enc(&self.resource_group),
            &enc(&self.workspace),
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    digest(&SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The files under `path` (a file, or a folder walked recursively), with `/`-separated
/// relative paths and the path each is read from. The whole list is validated before anything
/// is read or uploaded: a symbolic link is followed only to a regular file inside the folder
/// (links that leave it, links to directories and broken links are refused, naming the link),
/// and anything that is neither a file nor a folder (sockets, devices) is refused.
fn collect(path: &Path) -> Result<Vec<(String, PathBuf)>> {
    let err =
        |p: &Path, e: &dyn std::fmt::Display| ClientError::Config(format!("{}: {e}", p.display()));
    let root = std::fs::canonicalize(path).map_err(|e| err(path, &e))?;
    let meta = std::fs::metadata(&root).map_err(|e| err(path, &e))?;
    if meta.is_file() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ClientError::Config("bad file name".into()))?;
        return Ok(vec![(name.to_string(), root)]);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| err(&dir, &e))? {
            let entry = entry.map_err(|e| err(&dir, &e))?;
            let p = entry.path();
            let rel = p.strip_prefix(&root).map_err(|e| err(&p, &e))?;
            let rel_name: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
            let rel_name = rel_name.join("/");
            // file_type() does not follow links.
            let kind = entry.file_type().map_err(|e| err(&p, &e))?;
            if kind.is_dir() {
                stack.push(p);
            } else if kind.is_file() {
                out.push((rel_name, p));
            } else if kind.is_symlink() {
                let refuse = |why: String| {
                    ClientError::Config(format!(
                        "{} in {} is a symbolic link {why}; nothing was uploaded",
                        rel_name,
                        path.display()
                    ))
                };
                let target = std::fs::canonicalize(&p)
                    .map_err(|e| refuse(format!("that cannot be followed ({e})")))?;
                if !target.starts_with(&root) {
                    return Err(refuse(format!(
                        "to {}, outside the folder: links that leave the folder are refused",
                        target.display()
                    )));
                }
                if !target.is_file() {
                    return Err(refuse("to a folder: links to folders are refused".into()));
                }
                out.push((rel_name, target));
            } else {
                return Err(ClientError::Config(format!(
                    "{rel_name} in {} is not a regular file; nothing was uploaded",
                    path.display()
                )));
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(ClientError::Config(format!("{} holds no files", path.display())));
    }
    Ok(out)
}

impl Client {
    pub async fn upload_blob(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        bytes: Vec<u8>,
    ) -> Result<String> {
        let sha = hex(&bytes);
        let path = format!("{}/blobs/{sha}", ws.path());
        self.send_empty(self.api(Method::PUT, &path, token).body(bytes)).await?;
        Ok(sha)
    }

    pub async fn register_model(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
        req: &RegisterModel,
    ) -> Result<ModelVersion> {
        let path = format!("{}/models/{}/versions", ws.path(), enc(name));
        self.send(self.api(Method::POST, &path, token).json(req)).await
    }

    /// `ml model register -p PATH`: uploads each file (once per content) and registers them.
    pub async fn register_model_from_path(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
        path: &Path,
        description: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<ModelVersion> {
        // Every file is listed, checked and opened before the first byte is uploaded.
        let listed = collect(path)?;
        for (_, full) in &listed {
            std::fs::File::open(full)
                .map_err(|e| ClientError::Config(format!("{}: {e}", full.display())))?;
        }
        let mut files = Vec::new();
        for (rel, full) in listed {
            let bytes = std::fs::read(&full)
                .map_err(|e| ClientError::Config(format!("{}: {e}", full.display())))?;
            let size = bytes.len() as u64;
            let sha = self.upload_blob(token, ws, bytes).await?;
            files.push(ModelFile { path: rel, sha256: sha, size });
        }
        self.register_model(
            token,
            ws,
            name,
            &RegisterModel { description: description.into(), tags, files },
        )
        .await
    }

    pub async fn models(&self, token: &str, ws: &WorkspaceAddress) -> Result<Vec<ModelVersion>> {
        let page: Page<ModelVersion> =
            self.send(self.api(Method::GET, &format!("{}/models", ws.path()), token)).await?;
        Ok(page.value)
    }

    pub async fn model_versions(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
    ) -> Result<Vec<ModelVersion>> {
        let path = format!("{}/models/{}/versions", ws.path(), enc(name));
        let page: Page<ModelVersion> = self.send(self.api(Method::GET, &path, token)).await?;
        Ok(page.value)
    }

    /// A version, or the latest with `None`.
    pub async fn model(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
        version: Option<i64>,
    ) -> Result<ModelVersion> {
        let v = version.map_or("latest".to_string(), |v| v.to_string());
        let path = format!("{}/models/{}/versions/{v}", ws.path(), enc(name));
        self.send(self.api(Method::GET, &path, token)).await
    }

    pub async fn delete_model(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
        version: i64,
    ) -> Result<()> {
        let path = format!("{}/models/{}/versions/{version}", ws.path(), enc(name));
        self.send_empty(self.api(Method::DELETE, &path, token)).await
    }

    /// Downloads every file of a version under `target`, checking each against its digest.
    pub async fn download_model(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
        version: Option<i64>,
        target: &Path,
    ) -> Result<ModelVersion> {
        let m = self.model(token, ws, name, version).await?;
        for f in &m.files {
            if f.path.split('/').any(|s| s.is_empty() || s == "." || s == "..")
                || f.path.starts_with('/')
            {
                return Err(ClientError::Config(format!("refusing the unsafe path '{}'", f.path)));
            }
            let path =
                format!("{}/models/{}/versions/{}/download", ws.path(), enc(name), m.version);
            let resp = self
                .api(Method::GET, &path, token)
                .query(&[("path", f.path.as_str())])
                .send()
                .await
                .map_err(|e| ClientError::Transport(e.to_string()))?;
            let status = resp.status();
            if !status.is_success() {
                return Err(ClientError::Unexpected { status });
            }
            let bytes = resp.bytes().await.map_err(|e| ClientError::Transport(e.to_string()))?;
            if hex(&bytes) != f.sha256 {
                return Err(ClientError::Config(format!(
                    "'{}' arrived damaged (digest mismatch)",
                    f.path
                )));
            }
            let out = target.join(&f.path);
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent).map_err(|e| ClientError::Config(e.to_string()))?;
            }
            std::fs::write(&out, &bytes)
                .map_err(|e| ClientError::Config(format!("{}: {e}", out.display())))?;
        }
        Ok(m)
    }
}

/// Files a source directory may hold (the server takes at most this many `sourceFiles`), and
/// their total size: Azure ML's limits for a source-directory snapshot.
pub const MAX_SOURCE_FILES: usize = 2_000;
pub const MAX_SOURCE_BYTES: u64 = 300 * 1024 * 1024;

/// The ignore file of a source directory: `.amlignore`, else `.gitignore`, as Azure ML reads
/// them (`.gitignore`'s syntax: `#` comments, `!` to re-include, `*`, `?` and `**`, a
/// trailing `/` for folders, a `/` inside or in front to anchor at the folder's root).
#[derive(Debug, Default)]
pub struct IgnoreFile {
    rules: Vec<IgnoreRule>,
}

#[derive(Debug)]
struct IgnoreRule {
    pattern: String,
    negate: bool,
    dir_only: bool,
    anchored: bool,
}

impl IgnoreFile {
    pub fn parse(text: &str) -> Self {
        let rules = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (negate, l) = match l.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, l),
                };
                let dir_only = l.ends_with('/');
                let l = l.trim_end_matches('/');
                let anchored = l.contains('/');
                IgnoreRule {
                    pattern: l.trim_start_matches('/').to_string(),
                    negate,
                    dir_only,
                    anchored,
                }
            })
            .collect();
        Self { rules }
    }

    /// Reads `dir/.amlignore`, else `dir/.gitignore`, else ignores nothing.
    pub fn for_dir(dir: &Path) -> Self {
        [".amlignore", ".gitignore"]
            .iter()
            .find_map(|n| std::fs::read_to_string(dir.join(n)).ok())
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    /// Is the file at this `/`-separated relative path left out? A file is left out when it,
    /// or a folder above it, matches the last rule that names it.
    pub fn ignores(&self, rel: &str) -> bool {
        let parts: Vec<&str> = rel.split('/').collect();
        let mut ignored = false;
        for rule in &self.rules {
            // The path itself (unless the rule is for folders), then each folder above it.
            let hit = (0..parts.len()).any(|i| {
                let is_dir = i + 1 < parts.len();
                if rule.dir_only && !is_dir {
                    return false;
                }
                let candidate =
                    if rule.anchored { parts[..=i].join("/") } else { parts[i].to_string() };
                glob(&rule.pattern, &candidate)
            });
            if hit {
                ignored = !rule.negate;
            }
        }
        ignored
    }
}

/// `*` and `?` within one path segment, `**` across segments.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) if rest.first() == Some(&b'*') => {
                let rest = rest[1..].strip_prefix(b"/").unwrap_or(&rest[1..]);
                (0..=t.len()).any(|i| go(rest, &t[i..]))
            }
            Some((b'*', rest)) => {
                (0..=t.len()).take_while(|&i| i == 0 || t[i - 1] != b'/').any(|i| go(rest, &t[i..]))
            }
            Some((b'?', rest)) => t.first().is_some_and(|&c| c != b'/') && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

impl Client {
    /// Uploads a deployment's source directory (Azure ML's `source_directory`) and answers its
    /// `sourceFiles`: every file but those the ignore file leaves out, each uploaded once per
    /// content. The whole list is checked against the limits, and every file opened, before
    /// the first upload.
    pub async fn upload_source_directory(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        dir: &Path,
    ) -> Result<Vec<ModelFile>> {
        if !dir.is_dir() {
            return Err(ClientError::Config(format!(
                "the source directory {} is not a folder",
                dir.display()
            )));
        }
        let ignore = IgnoreFile::for_dir(dir);
        let listed: Vec<(String, PathBuf)> =
            collect(dir)?.into_iter().filter(|(rel, _)| !ignore.ignores(rel)).collect();
        if listed.len() > MAX_SOURCE_FILES {
            return Err(ClientError::Config(format!(
                "the source directory {} holds {} files, more than {MAX_SOURCE_FILES}: leave \
                 some out with an .amlignore file",
                dir.display(),
                listed.len()
            )));
        }
        let mut total = 0u64;
        for (_, full) in &listed {
            let meta = std::fs::File::open(full)
                .and_then(|f| f.metadata())
                .map_err(|e| ClientError::Config(format!("{}: {e}", full.display())))?;
            total += meta.len();
        }
        if total > MAX_SOURCE_BYTES {
            return Err(ClientError::Config(format!(
                "the source directory {} holds {} MiB, more than {} MiB: leave some out with an \
                 .amlignore file",
                dir.display(),
                total / (1024 * 1024),
                MAX_SOURCE_BYTES / (1024 * 1024)
            )));
        }
        let mut files = Vec::new();
        for (rel, full) in listed {
            let bytes = std::fs::read(&full)
                .map_err(|e| ClientError::Config(format!("{}: {e}", full.display())))?;
            let size = bytes.len() as u64;
            let sha = self.upload_blob(token, ws, bytes).await?;
            files.push(ModelFile { path: rel, sha256: sha, size });
        }
        Ok(files)
    }
}

#[cfg(test)]
mod ignore_tests {
    use super::*;

    #[test]
    fn amlignore_follows_gitignore_rules() {
        let i = IgnoreFile::parse(
            "# comment\n*.pyc\n__pycache__/\n/data\nlogs/**/*.txt\n!keep.pyc\nbuild/\n",
        );
        assert!(i.ignores("a.pyc"));
        assert!(i.ignores("pkg/b.pyc"));
        assert!(!i.ignores("keep.pyc"));
        assert!(i.ignores("__pycache__/x.py"));
        assert!(i.ignores("pkg/__pycache__/x.py"));
        assert!(i.ignores("data/big.bin"));
        assert!(!i.ignores("pkg/data/small.txt"), "/data is anchored at the root");
        assert!(i.ignores("logs/a/b/c.txt"));
        assert!(i.ignores("logs/c.txt"));
        assert!(!i.ignores("logs/c.log"));
        assert!(!i.ignores("build"), "build/ names folders only");
        assert!(i.ignores("build/out.py"));
        assert!(!i.ignores("score.py"));
        assert!(!i.ignores("helper.py"));
    }
}
