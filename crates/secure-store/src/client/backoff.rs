//! Retry timing for reaching the Store Server: exponential backoff with
//! "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter",
//! 2015): before retry `n` (0-based) wait a uniformly random time in
//! `[0, min(cap, base · 2^n)]`, plus an optional overall deadline.
//!
//! Full jitter spreads a fleet that booted together (power returns to a
//! building) across the whole window instead of having every device retry
//! in lock-step, and a device never waits longer than `cap` after the
//! server comes back, so "server up" → "app started" is bounded by one
//! step. The defaults (1 s base, 30 s cap) follow the issue; the original
//! client slept a fixed 30 s.

use std::time::{Duration, Instant};

/// Backoff parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The first window (retry 0 waits up to this long).
    pub base: Duration,
    /// The largest window.
    pub cap: Duration,
    /// Give up once this much time has passed since the first attempt.
    pub deadline: Option<Duration>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            deadline: None,
        }
    }
}

/// The state of one retry sequence.
#[derive(Debug)]
pub struct Backoff {
    policy: Policy,
    retries: u32,
    started: Instant,
}

impl Backoff {
    pub fn new(policy: Policy) -> Self {
        Backoff {
            policy,
            retries: 0,
            started: Instant::now(),
        }
    }

    /// Attempts made so far that failed (the number of `next_delay` calls).
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// The upper bound of the next window, before jitter.
    pub fn window(&self) -> Duration {
        let factor = 1u32.checked_shl(self.retries.min(31)).unwrap_or(u32::MAX);
        self.policy
            .base
            .checked_mul(factor)
            .unwrap_or(self.policy.cap)
            .min(self.policy.cap)
    }

    /// How long to wait before the next attempt, or `None` when the
    /// deadline would pass first (the wait is then not worth starting).
    /// `unit` is a uniform random number in `[0, 1)`.
    pub fn next_delay_with(&mut self, unit: f64) -> Option<Duration> {
        let window = self.window();
        self.retries = self.retries.saturating_add(1);
        let delay = window.mul_f64(unit.clamp(0.0, 1.0));
        match self.policy.deadline {
            Some(deadline) if self.started.elapsed() + delay >= deadline => None,
            _ => Some(delay),
        }
    }

    /// [`next_delay_with`](Self::next_delay_with) with the OS's randomness.
    pub fn next_delay(&mut self) -> Option<Duration> {
        let r = u64::from_le_bytes(crate::rng::bytes::<8>()) >> 11;
        self.next_delay_with(r as f64 / (1u64 << 53) as f64)
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        self.policy
            .deadline
            .is_some_and(|d| self.started.elapsed() >= d)
    }
}

/// Parses a duration as given on the command line: `250ms`, `1s`, `1.5s`,
/// `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (examples: 500ms, 1s, 2m)"))?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?} (use ms, s, m or h)"
            ))
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_double_up_to_the_cap() {
        let mut b = Backoff::new(Policy::default());
        let mut windows = Vec::new();
        for _ in 0..8 {
            windows.push(b.window().as_secs());
            b.next_delay_with(0.5);
        }
        assert_eq!(windows, [1, 2, 4, 8, 16, 30, 30, 30]);
        for _ in 0..100 {
            b.next_delay_with(0.5);
        }
        assert_eq!(b.window(), Duration::from_secs(30));
    }

    #[test]
    fn full_jitter_stays_in_the_window() {
        let mut b = Backoff::new(Policy::default());
        assert_eq!(b.next_delay_with(0.0), Some(Duration::ZERO));
        assert_eq!(b.next_delay_with(0.5), Some(Duration::from_secs(1)));
        for _ in 0..200 {
            let window = b.window();
            let d = b.next_delay().unwrap();
            assert!(d <= window);
        }
    }

    #[test]
    fn deadline_stops_retries() {
        let mut b = Backoff::new(Policy {
            deadline: Some(Duration::ZERO),
            ..Policy::default()
        });
        assert!(b.expired());
        assert_eq!(b.next_delay_with(0.0), None);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
