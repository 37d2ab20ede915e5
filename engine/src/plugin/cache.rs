//! The on-disk cache of precompiled components, so that a warm start deserializes in a
//! fraction of a millisecond instead of compiling.
//!
//! An entry's file name is the component's SHA-256, the wasmtime version and a hash of the
//! engine's configuration; its content is a magic line, the SHA-256 of the artefact and the
//! artefact. Deserializing native code is `unsafe` (wasmtime trusts it), so an entry is
//! used only when the checksum matches what this host wrote; anything else (truncated,
//! corrupt, another version or configuration, unreadable) is compiled again and rewritten.
//! Writes go to a temporary file renamed into place, so readers never see half an entry.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The wasmtime release the artefacts come from; the unit test below keeps it in step
/// with Cargo.lock.
pub const WASMTIME_VERSION: &str = "48.0.8";
const MAGIC: &[u8] = b"metrics-hub precompiled component v1\n";

/// Where a component came from, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Deserialized from a valid cache entry.
    Cache,
    /// Compiled (no entry, or a stale or corrupt one), then stored when possible.
    Compiled,
}

/// Precompiled artefacts in one directory; `None` compiles every time.
#[derive(Debug, Clone)]
pub struct ArtefactCache {
    dir: Option<PathBuf>,
}

impl ArtefactCache {
    pub fn new(dir: Option<PathBuf>) -> ArtefactCache {
        ArtefactCache { dir }
    }

    /// The directory, when caching is on.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn entry(&self, engine: &Engine, digest: &[u8; 32]) -> Option<PathBuf> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let config = hasher.finish();
        self.dir.as_ref().map(|dir| {
            dir.join(format!(
                "{}-wasmtime{WASMTIME_VERSION}-{config:016x}.cwasm",
                hex(digest)
            ))
        })
    }

    /// The component for `bytes` (whose SHA-256 is `digest`): from the cache when a valid
    /// entry exists, else compiled and stored.
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &[u8; 32],
    ) -> wasmtime::Result<(Component, Origin)> {
        let entry = self.entry(engine, digest);
        if let Some(path) = &entry {
            match read_entry(engine, path) {
                Ok(Some(component)) => return Ok((component, Origin::Cache)),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(entry = %path.display(), "ignoring a precompiled plugin that does not check out, compiling again: {err:#}")
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Some(path) = &entry {
            if let Err(err) = write_entry(path, &component.serialize()?) {
                tracing::warn!(entry = %path.display(), "cannot store the precompiled plugin (it will be compiled again next start): {err}");
            }
        }
        Ok((component, Origin::Compiled))
    }
}

/// `Ok(None)` when there is no entry; an error when there is one that cannot be trusted.
fn read_entry(engine: &Engine, path: &Path) -> wasmtime::Result<Option<Component>> {
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let rest = data
        .strip_prefix(MAGIC)
        .ok_or_else(|| wasmtime::format_err!("not an entry of this cache"))?;
    if rest.len() < 32 {
        wasmtime::bail!("truncated");
    }
    let (checksum, artefact) = rest.split_at(32);
    if Sha256::digest(artefact).as_slice() != checksum {
        wasmtime::bail!("checksum mismatch");
    }
    // SAFETY: the artefact is byte for byte what `Component::serialize` produced in this
    // host (the checksum above), and wasmtime itself rejects one from another version or
    // engine configuration.
    let component = unsafe { Component::deserialize(engine, artefact)? };
    Ok(Some(component))
}

fn write_entry(path: &Path, artefact: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut content = Vec::with_capacity(MAGIC.len() + 32 + artefact.len());
    content.extend_from_slice(MAGIC);
    content.extend_from_slice(&Sha256::digest(artefact));
    content.extend_from_slice(artefact);
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    std::fs::write(&temp, &content)?;
    std::fs::rename(&temp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_in_cache_keys_is_the_locked_wasmtime() {
        let lock = include_str!("../../../Cargo.lock");
        let entry = format!("name = \"wasmtime\"\nversion = \"{WASMTIME_VERSION}\"");
        assert!(
            lock.contains(&entry),
            "update WASMTIME_VERSION to the wasmtime in Cargo.lock"
        );
    }

    #[test]
    fn entries_are_checked_before_use_and_rebuilt_when_corrupt() {
        let engine = super::super::engine().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtefactCache::new(Some(dir.path().to_owned()));
        // The smallest component there is.
        let bytes = b"\0asm\x0d\0\x01\0";
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let (_, origin) = cache.load(&engine, bytes, &digest).unwrap();
        assert_eq!(origin, Origin::Compiled);
        let (_, origin) = cache.load(&engine, bytes, &digest).unwrap();
        assert_eq!(origin, Origin::Cache);

        let path = cache.entry(&engine, &digest).unwrap();
        let mut data = std::fs::read(&path).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        std::fs::write(&path, &data).unwrap();
        let (_, origin) = cache.load(&engine, bytes, &digest).unwrap();
        assert_eq!(origin, Origin::Compiled, "a corrupt entry is never trusted");
        let (_, origin) = cache.load(&engine, bytes, &digest).unwrap();
        assert_eq!(origin, Origin::Cache, "and it was rewritten");

        std::fs::write(&path, &data[..100]).unwrap();
        let (_, origin) = cache.load(&engine, bytes, &digest).unwrap();
        assert_eq!(origin, Origin::Compiled, "a truncated entry is rebuilt");
    }
}
