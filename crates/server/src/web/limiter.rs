//! Failed-attempt limits for the sign-in pages: per client address and in total, in fixed
//! windows, so guessing user codes or passwords stays slow even from many addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Limiter {
    per_address: u32,
    total: u32,
    window: Duration,
    state: Mutex<State>,
}

struct State {
    started: Instant,
    by_address: HashMap<IpAddr, u32>,
    total: u32,
}

impl Limiter {
    pub fn new(per_address: u32, total: u32, window: Duration) -> Self {
        Self {
            per_address,
            total,
            window,
            state: Mutex::new(State {
                started: Instant::now(),
                by_address: HashMap::new(),
                total: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.started.elapsed() >= self.window {
            s.started = Instant::now();
            s.by_address.clear();
            s.total = 0;
        }
        s
    }

    /// Is this address (or everyone) over the limit? Checked before doing the work.
    pub fn blocked(&self, addr: IpAddr) -> bool {
        let s = self.state();
        s.total >= self.total || s.by_address.get(&addr).copied().unwrap_or(0) >= self.per_address
    }

    pub fn failed(&self, addr: IpAddr) {
        let mut s = self.state();
        s.total = s.total.saturating_add(1);
        *s.by_address.entry(addr).or_insert(0) += 1;
    }

    /// Minutes until the window resets (for the page's message).
    pub fn minutes_left(&self) -> u64 {
        let s = self.state();
        self.window.saturating_sub(s.started.elapsed()).as_secs().div_ceil(60).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_per_address_and_in_total() {
        let l = Limiter::new(3, 5, Duration::from_secs(600));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(!l.blocked(a));
            l.failed(a);
        }
        assert!(l.blocked(a));
        assert!(!l.blocked(b));
        l.failed(b);
        l.failed(b);
        assert!(l.blocked(b), "the total limit applies to everyone");
    }
}
