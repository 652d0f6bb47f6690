//! The connection race: which hints to dial and when, who wins, when to give up.
//!
//! Policy (the reference's `Common._connect`):
//! - every direct hint of the peer is dialled at once; inbound connections to our listener are
//!   candidates too;
//! - relays (ours and the peer's, merged, duplicates dialled once) are dialled after
//!   [`RELAY_DELAY`] if any direct hint was dialled, else at once; relays of a lower priority
//!   wait another [`RELAY_DELAY`] per tier (highest priority first);
//! - the sender says `go` on the first candidate whose handshake completes and `nevermind` on any
//!   later one; the receiver takes the first candidate that delivers `go`;
//! - each candidate gets [`NEGOTIATION_TIMEOUT`] for its handshake; the whole race gives up after
//!   [`CONNECT_TIMEOUT`], or as soon as every candidate failed and no more can come (nothing
//!   left to dial and no listener).
//!
//! States: racing, won, gave up ([`Outcome`]). Inputs: `handle_*` with the candidate id, and
//! `now`. Outputs: [`Race::poll_dial`], [`Race::poll_timeout`], [`Race::outcome`].
//!
//! Mirrors `Common._connect`, `Common.connection_ready` and `_ThereCanBeOnlyOne` of
//! `src/wormhole/transit.py`; PROTOCOL.md §3 "Connecting".

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::hints::{DirectHint, RelayHint, TransitHints};
use super::Role;

/// Delay before relays when direct hints were dialled, and between relay priority tiers.
pub const RELAY_DELAY: Duration = Duration::from_secs(2);
/// How long one candidate may take from TCP connect to the end of its handshake.
pub const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the whole race may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);
/// Failure reasons kept for the final error message.
pub const MAX_FAILURES_KEPT: usize = 8;

/// Identifies one candidate connection within a race.
pub type CandidateId = u64;

/// A connection to start: dial `hint`, then (if `relay`) send the relay line first.
#[derive(Clone, Debug, PartialEq)]
pub struct Dial {
    /// The candidate's id, to report back with.
    pub id: CandidateId,
    /// Where to connect.
    pub hint: DirectHint,
    /// Whether this is a transit relay (relay handshake first).
    pub relay: bool,
}

/// What the sender does with a candidate whose handshake completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// This one won: write `go\n`.
    Go,
    /// Another one already won: write `nevermind\n` and close.
    Nevermind,
    /// Receiver: keep waiting for the sender's `go\n`.
    WaitForGo,
}

/// Where the race is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still racing.
    Racing,
    /// This candidate won.
    Won(CandidateId),
    /// No connection: the reason.
    GaveUp(String),
}

/// The connection race of one Transit.
#[derive(Debug)]
pub struct Race {
    role: Role,
    deadline: Instant,
    planned: VecDeque<(Instant, DirectHint, bool)>,
    next_id: CandidateId,
    live: usize,
    listening: bool,
    winner: Option<CandidateId>,
    expired: bool,
    failures: Vec<String>,
    failure_count: usize,
}

/// The dial plan: (delay from the start, hint, is a relay), in order. Direct hints of the
/// peer first (delay 0), then relay tiers by descending priority.
#[must_use]
pub fn plan(peer: &TransitHints, our_relays: &[RelayHint]) -> Vec<(Duration, DirectHint, bool)> {
    let mut out: Vec<(Duration, DirectHint, bool)> = peer
        .direct
        .iter()
        .map(|h| (Duration::ZERO, h.clone(), false))
        .collect();
    let mut delay = if out.is_empty() {
        Duration::ZERO
    } else {
        RELAY_DELAY
    };
    let mut relays: Vec<&DirectHint> = Vec::new();
    for hint in our_relays
        .iter()
        .chain(&peer.relays)
        .flat_map(|r| r.hints.iter())
    {
        if !relays.contains(&hint) {
            relays.push(hint);
        }
    }
    let mut tiers: Vec<f64> = Vec::new();
    for hint in &relays {
        if !tiers.contains(&hint.priority) {
            tiers.push(hint.priority);
        }
    }
    tiers.sort_by(|a, b| b.total_cmp(a));
    for tier in tiers {
        for hint in relays.iter().filter(|h| h.priority == tier) {
            out.push((delay, (*hint).clone(), true));
        }
        delay += RELAY_DELAY;
    }
    out
}

impl Race {
    /// Starts a race at `now` against the peer's hints, with our relays, and whether our
    /// listener accepts inbound candidates.
    #[must_use]
    pub fn new(
        now: Instant,
        role: Role,
        peer: &TransitHints,
        our_relays: &[RelayHint],
        listening: bool,
    ) -> Self {
        let planned = plan(peer, our_relays)
            .into_iter()
            .map(|(delay, hint, relay)| (now + delay, hint, relay))
            .collect();
        Self {
            role,
            deadline: now + CONNECT_TIMEOUT,
            planned,
            next_id: 0,
            live: 0,
            listening,
            winner: None,
            expired: false,
            failures: Vec::new(),
            failure_count: 0,
        }
    }

    fn new_candidate(&mut self) -> CandidateId {
        let id = self.next_id;
        self.next_id += 1;
        self.live += 1;
        id
    }

    fn is_over(&self) -> bool {
        self.outcome() != Outcome::Racing
    }

    /// The next connection due at `now`, if any.
    pub fn poll_dial(&mut self, now: Instant) -> Option<Dial> {
        if self.is_over() {
            return None;
        }
        let (due, _, _) = self.planned.front()?;
        if *due > now {
            return None;
        }
        let (_, hint, relay) = self.planned.pop_front()?;
        Some(Dial {
            id: self.new_candidate(),
            hint,
            relay,
        })
    }

    /// An inbound connection arrived on our listener: a new candidate (or `None` once the race
    /// is over; close it).
    pub fn handle_inbound(&mut self) -> Option<CandidateId> {
        (!self.is_over()).then(|| self.new_candidate())
    }

    /// A candidate's handshake completed (sender: the peer's line arrived; receiver: same).
    pub fn handle_ready(&mut self, id: CandidateId) -> Verdict {
        match self.role {
            Role::Receiver => Verdict::WaitForGo,
            Role::Sender if self.winner.is_none() && !self.expired => {
                self.winner = Some(id);
                Verdict::Go
            }
            Role::Sender => {
                self.live = self.live.saturating_sub(1);
                Verdict::Nevermind
            }
        }
    }

    /// Receiver: a candidate received `go\n`. Returns whether it is the winner (the first).
    /// Sender: whether `id` is the winner.
    pub fn handle_established(&mut self, id: CandidateId) -> bool {
        if self.role == Role::Receiver && self.winner.is_none() && !self.expired {
            self.winner = Some(id);
        }
        self.winner == Some(id)
    }

    /// A candidate failed (could not connect, bad handshake, closed, timed out).
    pub fn handle_failed(&mut self, id: CandidateId, reason: String) {
        if self.winner == Some(id) {
            return;
        }
        self.live = self.live.saturating_sub(1);
        self.failure_count += 1;
        if self.failures.len() < MAX_FAILURES_KEPT {
            self.failures.push(reason);
        }
    }

    /// Time passed: gives up at the race deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.deadline && self.winner.is_none() {
            self.expired = true;
        }
    }

    /// When to call [`Self::poll_dial`] / [`Self::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_over() {
            return None;
        }
        let next_dial = self.planned.front().map(|(due, _, _)| *due);
        Some(next_dial.map_or(self.deadline, |d| d.min(self.deadline)))
    }

    /// Where the race is.
    #[must_use]
    pub fn outcome(&self) -> Outcome {
        if let Some(id) = self.winner {
            return Outcome::Won(id);
        }
        if self.expired {
            return Outcome::GaveUp(self.reason("timed out"));
        }
        if !self.listening && self.planned.is_empty() && self.live == 0 {
            if self.next_id == 0 {
                return Outcome::GaveUp("no contenders for connection".into());
            }
            return Outcome::GaveUp(self.reason("every connection failed"));
        }
        Outcome::Racing
    }

    fn reason(&self, what: &str) -> String {
        if self.failures.is_empty() {
            return what.to_owned();
        }
        let mut out = format!("{what}: {}", self.failures.join("; "));
        if self.failure_count > self.failures.len() {
            out.push_str(&format!(
                "; and {} more",
                self.failure_count - self.failures.len()
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one place these tests read the clock: a base for virtual time.
    #[allow(clippy::disallowed_methods)]
    fn epoch() -> Instant {
        Instant::now()
    }

    fn direct(host: &str, port: u16) -> DirectHint {
        DirectHint::new(host, port)
    }

    fn relay(host: &str, port: u16, priority: f64) -> RelayHint {
        RelayHint {
            hints: vec![DirectHint {
                hostname: host.into(),
                port,
                priority,
            }],
        }
    }

    fn drain(race: &mut Race, now: Instant) -> Vec<Dial> {
        std::iter::from_fn(|| race.poll_dial(now)).collect()
    }

    #[test]
    fn direct_hints_at_once_relays_after_two_seconds() {
        let t0 = epoch();
        let peer = TransitHints {
            direct: vec![direct("10.0.0.1", 1), direct("10.0.0.2", 2)],
            relays: vec![relay("r", 4001, 0.0)],
        };
        let mut race = Race::new(t0, Role::Sender, &peer, &[relay("r", 4001, 0.0)], true);
        let first = drain(&mut race, t0);
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|d| !d.relay));
        assert_eq!(race.poll_timeout(), Some(t0 + RELAY_DELAY));
        assert!(drain(&mut race, t0 + Duration::from_millis(1999)).is_empty());
        let relays = drain(&mut race, t0 + RELAY_DELAY);
        // Our relay and the peer's are the same: dialled once.
        assert_eq!(relays.len(), 1);
        assert!(relays[0].relay);
        assert_eq!(relays[0].hint, direct("r", 4001));
        assert_eq!(race.poll_timeout(), Some(t0 + CONNECT_TIMEOUT));
    }

    #[test]
    fn relays_at_once_without_direct_hints_and_tiers_by_priority() {
        let t0 = epoch();
        let peer = TransitHints {
            direct: vec![],
            relays: vec![relay("low", 1, -1.0), relay("high", 3, 5.0)],
        };
        let mut race = Race::new(t0, Role::Receiver, &peer, &[relay("mid", 2, 0.0)], false);
        let now = drain(&mut race, t0);
        assert_eq!(now.len(), 1);
        assert_eq!(now[0].hint.hostname, "high");
        assert_eq!(drain(&mut race, t0 + RELAY_DELAY)[0].hint.hostname, "mid");
        assert_eq!(
            drain(&mut race, t0 + 2 * RELAY_DELAY)[0].hint.hostname,
            "low"
        );
        assert_eq!(race.poll_timeout(), Some(t0 + CONNECT_TIMEOUT));
    }

    #[test]
    fn sender_first_ready_wins_rest_nevermind() {
        let t0 = epoch();
        let peer = TransitHints {
            direct: vec![direct("a", 1), direct("b", 2)],
            relays: vec![],
        };
        let mut race = Race::new(t0, Role::Sender, &peer, &[], true);
        let dials = drain(&mut race, t0);
        let inbound = race.handle_inbound().expect("racing");
        assert_eq!(race.handle_ready(inbound), Verdict::Go);
        assert_eq!(race.outcome(), Outcome::Won(inbound));
        assert_eq!(race.handle_ready(dials[0].id), Verdict::Nevermind);
        assert!(race.handle_established(inbound));
        assert!(!race.handle_established(dials[1].id));
        assert_eq!(race.handle_inbound(), None);
        assert_eq!(race.poll_timeout(), None);
    }

    #[test]
    fn receiver_waits_for_go_and_first_go_wins() {
        let t0 = epoch();
        let peer = TransitHints {
            direct: vec![direct("a", 1), direct("b", 2)],
            relays: vec![],
        };
        let mut race = Race::new(t0, Role::Receiver, &peer, &[], false);
        let dials = drain(&mut race, t0);
        assert_eq!(race.handle_ready(dials[0].id), Verdict::WaitForGo);
        assert_eq!(race.handle_ready(dials[1].id), Verdict::WaitForGo);
        assert!(race.handle_established(dials[1].id));
        assert!(!race.handle_established(dials[0].id));
        assert_eq!(race.outcome(), Outcome::Won(dials[1].id));
    }

    #[test]
    fn gives_up_when_all_fail_without_listener() {
        let t0 = epoch();
        let peer = TransitHints {
            direct: vec![direct("a", 1)],
            relays: vec![relay("r", 2, 0.0)],
        };
        let mut race = Race::new(t0, Role::Receiver, &peer, &[], false);
        let d = drain(&mut race, t0);
        race.handle_failed(d[0].id, "a refused".into());
        // The relay is still to come.
        assert_eq!(race.outcome(), Outcome::Racing);
        let r = drain(&mut race, t0 + RELAY_DELAY);
        race.handle_failed(r[0].id, "relay refused".into());
        assert_eq!(
            race.outcome(),
            Outcome::GaveUp("every connection failed: a refused; relay refused".into())
        );
    }

    #[test]
    fn listener_keeps_racing_until_the_deadline() {
        let t0 = epoch();
        let mut race = Race::new(t0, Role::Sender, &TransitHints::default(), &[], true);
        assert!(drain(&mut race, t0).is_empty());
        assert_eq!(race.outcome(), Outcome::Racing);
        assert_eq!(race.poll_timeout(), Some(t0 + CONNECT_TIMEOUT));
        race.handle_timeout(t0 + CONNECT_TIMEOUT - Duration::from_millis(1));
        assert_eq!(race.outcome(), Outcome::Racing);
        race.handle_timeout(t0 + CONNECT_TIMEOUT);
        assert_eq!(race.outcome(), Outcome::GaveUp("timed out".into()));
        assert_eq!(race.handle_inbound(), None);
    }

    #[test]
    fn no_contenders() {
        let t0 = epoch();
        let race = Race::new(t0, Role::Sender, &TransitHints::default(), &[], false);
        assert_eq!(
            race.outcome(),
            Outcome::GaveUp("no contenders for connection".into())
        );
    }

    #[test]
    fn failure_list_is_bounded() {
        let t0 = epoch();
        let peer = TransitHints {
            direct: (1..=20).map(|p| direct("h", p)).collect(),
            relays: vec![],
        };
        let mut race = Race::new(t0, Role::Sender, &peer, &[], false);
        for d in drain(&mut race, t0) {
            race.handle_failed(d.id, format!("port {}", d.hint.port));
        }
        let Outcome::GaveUp(reason) = race.outcome() else {
            panic!("should give up");
        };
        assert!(reason.ends_with("; and 12 more"), "{reason}");
    }
}
