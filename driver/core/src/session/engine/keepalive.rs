// SPDX-License-Identifier: BSD-2-Clause
//! The NOP keepalive (RFC 7143 §11.18, §11.19): after `nop_interval` of silence from the target
//! we ping it, and unless some PDU arrives within `nop_timeout` the connection is dropped. Any
//! PDU counts, not only the ping's answer: a target busy streaming Data-In is alive.

use core::time::Duration;

use isboot_executor::Instant;

/// What the keepalive needs done at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Due {
    Nothing,
    /// Send a NOP-Out ping.
    Ping,
    /// Nothing arrived in time: drop the connection.
    Timeout,
}

/// The keepalive of the current connection.
#[derive(Clone, Copy, Debug)]
pub(super) struct Keepalive {
    interval: Duration,
    timeout: Duration,
    /// When the target last sent anything.
    last_rx: Instant,
    /// Our ping's ITT and the time by which the target must have sent something.
    ping: Option<(u32, Instant)>,
}

impl Keepalive {
    pub(super) fn new(interval: Duration, timeout: Duration) -> Self {
        Keepalive {
            interval,
            timeout,
            last_rx: Instant::ZERO,
            ping: None,
        }
    }

    /// A connection starts at `now`, with no ping out.
    pub(super) fn start(&mut self, now: Instant) {
        self.last_rx = now;
        self.ping = None;
    }

    /// The connection is gone: forget the ping.
    pub(super) fn stop(&mut self) {
        self.ping = None;
    }

    /// A PDU arrived at `now`: the connection is alive. A ping out keeps waiting for its
    /// answer, with a fresh deadline.
    pub(super) fn on_rx(&mut self, now: Instant) {
        self.last_rx = now;
        if let Some((itt, _)) = self.ping {
            self.ping = Some((itt, now.saturating_add(self.timeout)));
        }
    }

    /// The target answered (or rejected) the PDU with `itt`: if it was our ping, it is done.
    pub(super) fn answered(&mut self, itt: u32) {
        if self.ping.is_some_and(|(p, _)| p == itt) {
            self.ping = None;
        }
    }

    /// When [`Keepalive::due`] next has something to do.
    pub(super) fn deadline(&self) -> Instant {
        match self.ping {
            Some((_, deadline)) => deadline,
            None => self.last_rx.saturating_add(self.interval),
        }
    }

    pub(super) fn due(&self, now: Instant) -> Due {
        match self.ping {
            Some((_, deadline)) if deadline <= now => Due::Timeout,
            Some(_) => Due::Nothing,
            None if now >= self.last_rx.saturating_add(self.interval) => Due::Ping,
            None => Due::Nothing,
        }
    }

    /// A ping with `itt` goes out at `now`.
    pub(super) fn pinged(&mut self, itt: u32, now: Instant) {
        self.ping = Some((itt, now.saturating_add(self.timeout)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Instant = Instant::from_nanos(1_000_000_000);

    #[test]
    fn silence_pings_then_times_out_unless_anything_arrives() {
        let s = Duration::from_secs;
        let mut k = Keepalive::new(s(5), s(15));
        k.start(T0);
        assert_eq!(k.deadline(), T0 + s(5));
        assert_eq!(k.due(T0 + s(4)), Due::Nothing);
        assert_eq!(k.due(T0 + s(5)), Due::Ping);
        k.pinged(7, T0 + s(5));
        assert_eq!(k.deadline(), T0 + s(20));
        // Data arriving pushes the ping's deadline out; the ping stays outstanding.
        k.on_rx(T0 + s(10));
        assert_eq!(k.due(T0 + s(20)), Due::Nothing);
        assert_eq!(k.due(T0 + s(25)), Due::Timeout);
        k.answered(8);
        assert_eq!(
            k.due(T0 + s(25)),
            Due::Timeout,
            "another ITT answers nothing"
        );
        k.answered(7);
        assert_eq!(k.deadline(), T0 + s(15));
        k.pinged(9, T0 + s(15));
        k.stop();
        assert_eq!(
            k.due(T0 + s(100)),
            Due::Ping,
            "a new connection pings again"
        );
    }
}
