//! Password hashing with argon2id (RFC 9106 parameters of the `argon2` crate's defaults), and
//! the one gate every verification passes. Security-critical.
//!
//! Verification is slow and memory-hard on purpose (19 MiB each), so it is also what an
//! unauthenticated caller can most easily make the server spend. [`PasswordChecks`] bounds it:
//! at most one verification per core but one runs (at least one), each in a working memory the
//! gate owns and reuses while callers are waiting (so under load resident memory stays at
//! `cores x 19 MiB` whatever the allocator does) and frees when nobody waits (so a quiet server
//! gives it back), a few callers per core may wait briefly for a turn, and everyone else is told
//! to come back later.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::secrets::random_bytes;

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| e.to_string())?;
    let hashed = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string());
    memory_released();
    hashed
}

static RELEASE_HOOK: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets what runs on a hashing thread after it freed an argon2 working memory: the binary asks
/// its allocator to give the 19 MiB back to the system at once, which allocators otherwise
/// keep for a while (a quiet server would hold it; the figures are in BENCHMARKS.md).
pub fn set_memory_release_hook(hook: fn()) {
    let _ = RELEASE_HOOK.set(hook);
}

fn memory_released() {
    if let Some(hook) = RELEASE_HOOK.get() {
        hook();
    }
}

/// Checks `password` against a PHC string, computing in `memory` (grown if the hash asks for
/// more). Same result as argon2's own verifier, without allocating the working memory.
pub fn verify_password_in(password: &str, phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else { return false };
    let (Ok(algorithm), Some(expected), Some(salt)) =
        (Algorithm::try_from(hash.algorithm), hash.hash, hash.salt)
    else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else { return false };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, memory.as_mut_slice())
        .is_err()
    {
        return false;
    }
    bool::from(out.ct_eq(expected.as_bytes()))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    verify_password_in(password, phc, &mut Vec::new())
}

/// A hash of a password nobody has, verified against when the user does not exist, so that an
/// unknown user name costs the same time as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("mlgate-no-such-user").unwrap_or_default())
}

/// Too many verifications are running or waiting: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub retry_after_secs: u32,
}

/// The bounded pool that runs password verifications.
pub struct PasswordChecks {
    permits: Arc<Semaphore>,
    /// One working memory per permit, reused.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    max_wait: Duration,
}

impl PasswordChecks {
    /// `concurrent` verifications at most; up to `max_waiting` callers wait at most `max_wait`
    /// for a turn.
    pub fn new(concurrent: usize, max_waiting: usize, max_wait: Duration) -> Self {
        let concurrent = concurrent.max(1);
        Self {
            permits: Arc::new(Semaphore::new(concurrent)),
            memory: Arc::new(Mutex::new(Vec::with_capacity(concurrent))),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
            max_wait,
        }
    }

    /// One verification per core but one (at least one): a core stays free for everything
    /// else, so `/healthz`, token grants and scoring keep their latency under a flood of
    /// password grants (BENCHMARKS.md). 32 waiters per core for up to two seconds (a core
    /// verifies about 25 a second, so a waiter that gets in usually gets its turn).
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self::new(cores.saturating_sub(1).max(1), 32 * cores, Duration::from_secs(2))
    }

    /// Verifies `password` against `phc`, or against [`dummy_hash`] when `phc` is `None` (an
    /// unknown user costs the same as a wrong password).
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, Busy> {
        let busy = Busy { retry_after_secs: 1 };
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(busy);
        }
        let permit =
            tokio::time::timeout(self.max_wait, self.permits.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let permit = match permit {
            Ok(Ok(p)) => p,
            _ => return Err(busy),
        };
        let password = password.to_string();
        // `None` stays `None` until the blocking thread: the dummy hash is made (an argon2 run)
        // on first use, which must not happen on a runtime worker.
        let phc = phc.map(str::to_string);
        let (memory, waiting) = (self.memory.clone(), self.waiting.clone());
        // The permit moves into the blocking task: a caller that goes away does not free the
        // slot before the work it started has finished.
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut mem =
                memory.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default();
            let phc = phc.unwrap_or_else(|| dummy_hash().to_string());
            let ok = verify_password_in(&password, &phc, &mut mem);
            // Kept for the next caller only when one is waiting; otherwise given back.
            if waiting.load(Ordering::Acquire) > 0 {
                memory.lock().unwrap_or_else(|p| p.into_inner()).push(mem);
            } else {
                drop(mem);
                memory_released();
            }
            ok
        })
        .await
        .unwrap_or(false);
        Ok(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsf", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn verification_in_reused_memory_matches_argon2s_own() {
        use argon2::PasswordVerifier;
        let h = hash_password("pw").unwrap();
        let parsed = PasswordHash::new(&h).unwrap();
        let mut mem = Vec::new();
        for (pw, want) in [("pw", true), ("pW", false), ("pw", true)] {
            assert_eq!(verify_password_in(pw, &h, &mut mem), want);
            assert_eq!(Argon2::default().verify_password(pw.as_bytes(), &parsed).is_ok(), want);
        }
        assert_eq!(mem.len(), Params::default().block_count());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn excess_verifications_are_turned_away_not_queued_forever() {
        let h = hash_password("pw").unwrap();
        let checks = Arc::new(PasswordChecks::new(1, 2, Duration::from_millis(50)));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (c, h) = (checks.clone(), h.clone());
            tasks.push(tokio::spawn(async move { c.verify("pw", Some(&h)).await }));
        }
        let mut ok = 0;
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(true) => ok += 1,
                Err(b) => {
                    assert_eq!(b.retry_after_secs, 1);
                    busy += 1
                }
                Ok(false) => panic!("the right password was refused"),
            }
        }
        assert!(ok >= 1, "at least the first one ran");
        assert!(busy >= 10, "most were turned away ({busy})");
        // With nobody waiting any more, no working memory is kept.
        assert!(checks.memory.lock().unwrap().is_empty());
        assert!(checks.verify("pw", Some(&h)).await.unwrap());
        assert!(checks.memory.lock().unwrap().is_empty());
    }
}
