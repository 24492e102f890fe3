//! Keep alive without a timer per connection.
//!
//! An idle connection's task waits on its socket and its session's `Notify` only. Its
//! keep-alive deadline is a slot in one [`KeepAliveWheel`] per broker: a list of the
//! sessions due in each [`TICK`], which one task walks as the clock reaches it, waking
//! each session through the `Notify` its connection waits on anyway. The connection then
//! checks its deadline ([`protocol::session::ServerSession::handle_timeout`]) and, if the
//! client was heard from since, arms again for the new deadline. Reads never touch the
//! wheel: a client that keeps sending costs one wake and one re-arm per keep-alive
//! period, and an idle connection holds 8 bytes here instead of a tokio `Sleep` (a
//! timer entry of about 100 bytes) in its future.
//!
//! A deadline fires at the end of its tick: up to [`TICK`] late, never early. A stale
//! entry (the connection armed again earlier, or ended) costs one spurious wake, which
//! the woken connection ignores.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::session::Session;

/// The wheel's resolution: how late a keep-alive timeout may be noticed.
pub(crate) const TICK: Duration = Duration::from_millis(250);

/// The sessions to wake, by the tick their connection's keep alive runs out in.
#[derive(Debug, Default)]
pub(crate) struct KeepAliveWheel {
    state: Mutex<Wheel>,
    /// Wakes the wheel's task when a slot earlier than the one it sleeps for is filled.
    earlier: Notify,
}

#[derive(Debug, Default)]
struct Wheel {
    /// Tick 0; set by the first [`KeepAliveWheel::arm`].
    base: Option<Instant>,
    /// Sessions by tick number.
    slots: BTreeMap<u64, Vec<Weak<Session>>>,
    /// Whether the wheel's task runs; it ends when no slot is left.
    running: bool,
}

impl Wheel {
    /// The tick `at` falls in, rounded up (never early).
    fn tick_of(&self, base: Instant, at: Instant) -> u64 {
        let since = at.saturating_duration_since(base);
        let ticks = since.as_nanos().div_ceil(TICK.as_nanos());
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// The last tick that has ended by `now`, rounded down: the slots up to it are due.
    /// Rounding up here would wake the next slot's sessions up to a tick before their
    /// deadline; such a connection finds its client not yet timed out and, its slot
    /// spent, would never be woken for its keep alive again.
    fn ticks_ended(base: Instant, now: Instant) -> u64 {
        let since = now.saturating_duration_since(base);
        u64::try_from(since.as_nanos() / TICK.as_nanos()).unwrap_or(u64::MAX)
    }

    fn instant_of(base: Instant, tick: u64) -> Instant {
        let nanos = u128::from(tick) * TICK.as_nanos();
        base + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl KeepAliveWheel {
    /// Wakes `session` at `deadline` (rounded up to the wheel's tick), and returns when
    /// that is. Must be called from within the broker's runtime: it starts the wheel's
    /// task when none runs.
    pub(crate) fn arm(self: &Arc<Self>, session: &Arc<Session>, deadline: Instant) -> Instant {
        let mut wheel = self.state.lock();
        let base = *wheel.base.get_or_insert_with(Instant::now);
        let tick = wheel.tick_of(base, deadline);
        let earliest = wheel.slots.keys().next().copied();
        wheel
            .slots
            .entry(tick)
            .or_default()
            .push(Arc::downgrade(session));
        if !wheel.running {
            wheel.running = true;
            tokio::spawn(self.clone().run());
        } else if earliest.is_none_or(|first| tick < first) {
            self.earlier.notify_one();
        }
        Wheel::instant_of(base, tick)
    }

    /// The wheel's task: sleeps until the earliest slot is due, wakes its sessions, and
    /// ends when the wheel is empty (the next [`Self::arm`] starts it again).
    async fn run(self: Arc<Self>) {
        loop {
            let next = {
                let mut wheel = self.state.lock();
                let (Some(base), Some(&tick)) = (wheel.base, wheel.slots.keys().next()) else {
                    wheel.running = false;
                    return;
                };
                Wheel::instant_of(base, tick)
            };
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = self.earlier.notified() => continue,
            }
            let due = {
                let mut wheel = self.state.lock();
                let Some(base) = wheel.base else { continue };
                let ended = Wheel::ticks_ended(base, Instant::now());
                let later = wheel.slots.split_off(&ended.saturating_add(1));
                std::mem::replace(&mut wheel.slots, later)
            };
            for session in due.into_values().flatten() {
                if let Some(session) = session.upgrade() {
                    session.wake_for_keep_alive();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DropPolicy;
    use crate::session::QueueLimits;

    fn session() -> Arc<Session> {
        let limits = QueueLimits {
            max_messages: 1,
            max_bytes: 1,
            queue_qos0_offline: false,
            policy: DropPolicy::DropNewest,
        };
        Arc::new(Session::new("c".into(), limits))
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_is_woken_at_its_deadline_not_before() {
        let wheel = Arc::new(KeepAliveWheel::default());
        let session = session();
        let start = Instant::now();
        let fires = wheel.arm(&session, start + Duration::from_millis(1100));
        assert_eq!(
            fires,
            start + Duration::from_millis(1250),
            "rounded up to a tick"
        );
        let woken = tokio::time::timeout(Duration::from_secs(5), session.notified()).await;
        assert!(woken.is_ok(), "woken");
        assert_eq!(Instant::now(), fires, "at the tick, not before");
    }

    /// The wheel's task may run after its tick has ended (a busy runtime): the next
    /// slot's sessions still wait for theirs.
    #[tokio::test(start_paused = true)]
    async fn a_late_wheel_wakes_no_session_before_its_tick() {
        use futures::FutureExt as _;
        let wheel = Arc::new(KeepAliveWheel::default());
        let (due, next) = (session(), session());
        let start = Instant::now();
        let due_fires = wheel.arm(&due, start + Duration::from_millis(1100));
        let next_fires = wheel.arm(&next, start + Duration::from_millis(1300));
        assert_eq!(next_fires, start + Duration::from_millis(1500));
        // The clock jumps past the first tick in one step, as if the task ran late.
        tokio::time::advance(due_fires - start + Duration::from_millis(1)).await;
        tokio::time::timeout(Duration::from_secs(5), due.notified())
            .await
            .expect("the due session is woken");
        assert!(
            next.notified().now_or_never().is_none(),
            "the next slot's session was woken at {:?}, before its deadline",
            Instant::now() - start
        );
        tokio::time::timeout(Duration::from_secs(5), next.notified())
            .await
            .expect("the next session is woken at its tick");
        assert!(Instant::now() >= next_fires, "not before its tick");
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_wakes_the_wheel_sooner() {
        let wheel = Arc::new(KeepAliveWheel::default());
        let (late, early) = (session(), session());
        let start = Instant::now();
        wheel.arm(&late, start + Duration::from_secs(60));
        tokio::task::yield_now().await;
        let fires = wheel.arm(&early, start + Duration::from_secs(2));
        tokio::time::timeout(Duration::from_secs(5), early.notified())
            .await
            .expect("the earlier slot fired");
        assert_eq!(Instant::now(), fires);
        tokio::time::timeout(Duration::from_secs(120), late.notified())
            .await
            .expect("the later slot fired too");
        assert!(Instant::now() >= start + Duration::from_secs(60));
        tokio::task::yield_now().await;
        assert!(
            !wheel.state.lock().running,
            "the task ends once the wheel is empty"
        );
    }
}
