//! Waiting between tries: exponential backoff with jitter, cut short when
//! the lane must stop taking work (the host stops, or the partition was
//! revoked). Every retry loop of the consume path goes through here, so none
//! of them can outlive its partition.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Longest wait between two tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// `base · 2^(try-1)`, capped at [`MAX_BACKOFF`], with ±25 % jitter.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(MAX_BACKOFF);
    capped.mul_f64(0.75 + fastrand::f64() * 0.5)
}

/// Waits `delay` unless `halt` fires first; says whether to go on.
pub async fn wait(halt: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        () = halt.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}

/// Tries `op` until it succeeds, with backoff from `base` between tries,
/// logging each failure as `what`; `None` if `halt` fired first.
pub async fn until_ok<T, E, F, Fut>(
    halt: &CancellationToken,
    base: Duration,
    handler: &str,
    what: &str,
    mut op: F,
) -> Option<T>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut round = 1;
    loop {
        // Tried once even when halted: finishing what is in flight is what a
        // halted lane still does; it only stops retrying.
        match op().await {
            Ok(value) => return Some(value),
            Err(e) => {
                tracing::warn!(handler, error = %e, "{what} failed; retrying");
                if !wait(halt, backoff(base, round)).await {
                    return None;
                }
                round += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        for attempt in 1..=5 {
            let nominal = base * (1 << (attempt - 1));
            let d = backoff(base, attempt);
            assert!(
                d >= nominal.mul_f64(0.75) && d <= nominal.mul_f64(1.25),
                "{attempt}: {d:?}"
            );
        }
        assert!(backoff(base, 40) <= MAX_BACKOFF.mul_f64(1.25));
    }

    #[tokio::test]
    async fn retrying_stops_when_halted() {
        let halt = CancellationToken::new();
        let mut tries = 0;
        let halt2 = halt.clone();
        let result: Option<()> = until_ok(&halt, Duration::from_millis(1), "h", "x", || {
            tries += 1;
            if tries == 3 {
                halt2.cancel();
            }
            async { Err::<(), _>("no") }
        })
        .await;
        assert_eq!(result, None);
        assert_eq!(tries, 3, "no try after the halt");
        let halted = CancellationToken::new();
        halted.cancel();
        let once = until_ok(&halted, Duration::ZERO, "h", "x", || async {
            Ok::<_, String>(1)
        })
        .await;
        assert_eq!(
            once,
            Some(1),
            "a halted lane still finishes what needs no retry"
        );
        let ok = until_ok(
            &CancellationToken::new(),
            Duration::ZERO,
            "h",
            "x",
            || async { Ok::<_, String>(7) },
        )
        .await;
        assert_eq!(ok, Some(7));
    }
}
