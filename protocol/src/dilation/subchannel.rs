//! Subchannels: ids, the OPEN/DATA/CLOSE state of each, listeners by subprotocol name.
//!
//! States of one subchannel: `Held` (opened by the peer for a subprotocol nobody listens to yet:
//! its DATA and CLOSE are kept, bounded, until `Subchannels::listen` releases them), `Open`,
//! `LocalClosed` (we sent CLOSE: still reading until the peer's CLOSE), then removed. A peer's
//! CLOSE on an `Open` subchannel is answered by our CLOSE and removes it. Writing after our CLOSE
//! is an error.
//!
//! Inputs: the application's `open`, `close`, `listen`, write checks; the peer's processed (new)
//! OPEN/DATA/CLOSE. Outputs: small verdicts (`RemoteOpen`, `RemoteData`, `RemoteClose`,
//! `Released`) that the composite turns into records and events.
//!
//! Ids: the Leader allocates 1, 3, 5…; the Follower 2, 4, 6…; 0 is unused. With expected
//! subprotocols configured, an OPEN for another name is refused with a CLOSE (its answer is then
//! swallowed). Bounds: at most [`MAX_SUBCHANNELS`] at once, and [`MAX_HELD_BYTES`] of held data;
//! beyond either, the peer's subchannel is refused with a CLOSE.
//!
//! Mirrors `src/wormhole/_dilation/subchannel.py` (`SubChannel`, `SubchannelDemultiplex`) and
//! `Inbound.handle_open/handle_data/handle_close` of `inbound.py`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::l3::SubchannelId;
use super::Role;

/// Most subchannels open at once (ours and the peer's).
pub const MAX_SUBCHANNELS: usize = 4096;
/// Most bytes held for subchannels nobody listens to yet.
pub const MAX_HELD_BYTES: usize = 1 << 20;
/// Longest subprotocol name accepted.
pub const MAX_SUBPROTOCOL_LEN: usize = 256;

/// Misuse of the subchannel API by the application.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubchannelError {
    /// No such subchannel (never opened, or already closed).
    #[error("no open subchannel {0}")]
    Unknown(SubchannelId),
    /// We already closed this subchannel: no more writes.
    #[error("subchannel {0} is closed for writing")]
    Closed(SubchannelId),
    /// The role is not known yet (the peer's `please` has not arrived), so no id can be chosen.
    #[error("dilation has not started yet")]
    NotStarted,
    /// Too many subchannels, or an over-long subprotocol name.
    #[error("subchannel limit reached")]
    Limit,
    /// Dilation has stopped.
    #[error("dilation has stopped")]
    Stopped,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Held { data: Vec<Bytes>, closed: bool },
    Open,
    LocalClosed { hidden: bool },
}

#[derive(Debug)]
struct Sub {
    subprotocol: String,
    state: State,
}

/// What to do with a peer's OPEN.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RemoteOpen {
    /// Tell the application about it.
    Deliver,
    /// Kept until someone listens.
    Held,
    /// Send a CLOSE for it (unexpected subprotocol, or a limit).
    Refuse,
    /// Ignore (bad id, duplicate).
    Ignore,
}

/// What to do with a peer's DATA.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RemoteData {
    /// Hand it to the application.
    Deliver,
    /// Kept with the held OPEN.
    Held,
    /// The held data overflowed: send a CLOSE for it.
    Refuse,
    /// Ignore (unknown or refused subchannel).
    Ignore,
}

/// What to do with a peer's CLOSE.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RemoteClose {
    /// Answer with our CLOSE and tell the application it closed.
    AnswerAndNotify,
    /// Our CLOSE was already sent: tell the application it closed.
    Notify,
    /// Nothing to do (held, refused, or unknown).
    Ignore,
}

/// A held subchannel released by `listen`, to announce with its held data and close.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Released {
    pub(crate) scid: SubchannelId,
    pub(crate) data: Vec<Bytes>,
    pub(crate) closed: bool,
}

/// The subchannel table of one Dilation.
#[derive(Debug)]
pub(crate) struct Subchannels {
    next_id: Option<SubchannelId>,
    table: BTreeMap<SubchannelId, Sub>,
    listeners: BTreeSet<String>,
    expected: Option<BTreeSet<String>>,
    held_bytes: usize,
}

impl Subchannels {
    /// An empty table; `expected` lists the only subprotocols the peer may open.
    pub(crate) fn new(expected: Option<Vec<String>>) -> Self {
        Self {
            next_id: None,
            table: BTreeMap::new(),
            listeners: BTreeSet::new(),
            expected: expected.map(|v| v.into_iter().collect()),
            held_bytes: 0,
        }
    }

    /// Sets our role, which fixes the parity of our ids.
    pub(crate) fn set_role(&mut self, role: Role) {
        self.next_id = Some(match role {
            Role::Leader => 1,
            Role::Follower => 2,
        });
    }

    /// Allocates an id for a subchannel we open.
    pub(crate) fn open_local(
        &mut self,
        subprotocol: &str,
    ) -> Result<SubchannelId, SubchannelError> {
        let id = self.next_id.ok_or(SubchannelError::NotStarted)?;
        if self.table.len() >= MAX_SUBCHANNELS || subprotocol.len() > MAX_SUBPROTOCOL_LEN {
            return Err(SubchannelError::Limit);
        }
        self.next_id = Some(id.checked_add(2).ok_or(SubchannelError::Limit)?);
        self.table.insert(
            id,
            Sub {
                subprotocol: subprotocol.to_owned(),
                state: State::Open,
            },
        );
        Ok(id)
    }

    /// Checks that we may still write to `scid`.
    pub(crate) fn check_writable(&self, scid: SubchannelId) -> Result<(), SubchannelError> {
        match self.table.get(&scid).map(|s| &s.state) {
            Some(State::Open) => Ok(()),
            Some(State::LocalClosed { hidden: false }) => Err(SubchannelError::Closed(scid)),
            _ => Err(SubchannelError::Unknown(scid)),
        }
    }

    /// Our CLOSE: the caller sends the record.
    pub(crate) fn close_local(&mut self, scid: SubchannelId) -> Result<(), SubchannelError> {
        self.check_writable(scid)?;
        if let Some(sub) = self.table.get_mut(&scid) {
            sub.state = State::LocalClosed { hidden: false };
        }
        Ok(())
    }

    /// Registers a listener; returns the held subchannels it releases, in id order.
    pub(crate) fn listen(&mut self, subprotocol: &str) -> Vec<Released> {
        self.listeners.insert(subprotocol.to_owned());
        let mut released = Vec::new();
        let mut gone = Vec::new();
        for (scid, sub) in &mut self.table {
            if sub.subprotocol != subprotocol {
                continue;
            }
            if let State::Held { data, closed } = &mut sub.state {
                let data = std::mem::take(data);
                self.held_bytes -= data.iter().map(Bytes::len).sum::<usize>();
                let closed = *closed;
                released.push(Released {
                    scid: *scid,
                    data,
                    closed,
                });
                if closed {
                    gone.push(*scid);
                } else {
                    sub.state = State::Open;
                }
            }
        }
        for scid in gone {
            self.table.remove(&scid);
        }
        released
    }

    /// The peer's OPEN.
    pub(crate) fn remote_open(&mut self, scid: SubchannelId, subprotocol: &str) -> RemoteOpen {
        let ours = match self.next_id {
            Some(next) => next % 2 == scid % 2,
            None => true,
        };
        if scid == 0 || ours || self.table.contains_key(&scid) {
            return RemoteOpen::Ignore;
        }
        let unexpected = self
            .expected
            .as_ref()
            .is_some_and(|e| !e.contains(subprotocol));
        if unexpected
            || self.table.len() >= MAX_SUBCHANNELS
            || subprotocol.len() > MAX_SUBPROTOCOL_LEN
        {
            if self.table.len() < MAX_SUBCHANNELS {
                // Remember it so that the peer's answering CLOSE is swallowed.
                self.table.insert(
                    scid,
                    Sub {
                        subprotocol: String::new(),
                        state: State::LocalClosed { hidden: true },
                    },
                );
            }
            return RemoteOpen::Refuse;
        }
        let listening = self.listeners.contains(subprotocol);
        self.table.insert(
            scid,
            Sub {
                subprotocol: subprotocol.to_owned(),
                state: if listening {
                    State::Open
                } else {
                    State::Held {
                        data: Vec::new(),
                        closed: false,
                    }
                },
            },
        );
        if listening {
            RemoteOpen::Deliver
        } else {
            RemoteOpen::Held
        }
    }

    /// The peer's DATA.
    pub(crate) fn remote_data(&mut self, scid: SubchannelId, data: &Bytes) -> RemoteData {
        let Some(sub) = self.table.get_mut(&scid) else {
            return RemoteData::Ignore;
        };
        match &mut sub.state {
            State::Open | State::LocalClosed { hidden: false } => RemoteData::Deliver,
            State::LocalClosed { hidden: true } => RemoteData::Ignore,
            State::Held { data: held, closed } => {
                if *closed {
                    RemoteData::Ignore
                } else if self.held_bytes + data.len() > MAX_HELD_BYTES {
                    self.held_bytes -= held.iter().map(Bytes::len).sum::<usize>();
                    sub.state = State::LocalClosed { hidden: true };
                    RemoteData::Refuse
                } else {
                    self.held_bytes += data.len();
                    held.push(data.clone());
                    RemoteData::Held
                }
            }
        }
    }

    /// The peer's CLOSE.
    pub(crate) fn remote_close(&mut self, scid: SubchannelId) -> RemoteClose {
        let Some(sub) = self.table.get_mut(&scid) else {
            return RemoteClose::Ignore;
        };
        match &mut sub.state {
            State::Held { closed, .. } => {
                *closed = true;
                RemoteClose::Ignore
            }
            State::Open => {
                self.table.remove(&scid);
                RemoteClose::AnswerAndNotify
            }
            State::LocalClosed { hidden } => {
                let hidden = *hidden;
                self.table.remove(&scid);
                if hidden {
                    RemoteClose::Ignore
                } else {
                    RemoteClose::Notify
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leader ids are odd, Follower ids even, and 0 is never used; no id before the role is known.
    #[test]
    fn ids_by_role() {
        let mut s = Subchannels::new(None);
        assert_eq!(s.open_local("x"), Err(SubchannelError::NotStarted));
        s.set_role(Role::Leader);
        assert_eq!(s.open_local("x"), Ok(1));
        assert_eq!(s.open_local("x"), Ok(3));
        let mut s = Subchannels::new(None);
        s.set_role(Role::Follower);
        assert_eq!(s.open_local("x"), Ok(2));
        assert_eq!(s.open_local("x"), Ok(4));
        // The peer may not use our parity, nor 0.
        assert_eq!(s.remote_open(6, "x"), RemoteOpen::Ignore);
        assert_eq!(s.remote_open(0, "x"), RemoteOpen::Ignore);
        assert_eq!(s.remote_open(1, "x"), RemoteOpen::Held);
        assert_eq!(s.remote_open(1, "x"), RemoteOpen::Ignore);
    }

    /// An OPEN for a name nobody listens to is held with its DATA and CLOSE until `listen`.
    #[test]
    fn held_until_listened() {
        let mut s = Subchannels::new(None);
        s.set_role(Role::Follower);
        assert_eq!(s.remote_open(1, "chat"), RemoteOpen::Held);
        assert_eq!(
            s.remote_data(1, &Bytes::from_static(b"hi")),
            RemoteData::Held
        );
        assert_eq!(s.remote_open(3, "chat"), RemoteOpen::Held);
        assert_eq!(
            s.remote_data(3, &Bytes::from_static(b"yo")),
            RemoteData::Held
        );
        assert_eq!(s.remote_close(3), RemoteClose::Ignore);
        assert_eq!(s.listen("other"), vec![]);
        let released = s.listen("chat");
        assert_eq!(
            released,
            vec![
                Released {
                    scid: 1,
                    data: vec![Bytes::from_static(b"hi")],
                    closed: false
                },
                Released {
                    scid: 3,
                    data: vec![Bytes::from_static(b"yo")],
                    closed: true
                },
            ]
        );
        assert_eq!(
            s.remote_data(1, &Bytes::from_static(b"more")),
            RemoteData::Deliver
        );
        assert_eq!(
            s.remote_data(3, &Bytes::from_static(b"late")),
            RemoteData::Ignore
        );
        assert_eq!(s.remote_open(5, "chat"), RemoteOpen::Deliver);
    }

    /// With expected subprotocols, an unknown name is refused and the peer's answering CLOSE is
    /// swallowed.
    #[test]
    fn unexpected_subprotocol_refused() {
        let mut s = Subchannels::new(Some(vec!["chat".into()]));
        s.set_role(Role::Leader);
        assert_eq!(s.remote_open(2, "evil"), RemoteOpen::Refuse);
        assert_eq!(
            s.remote_data(2, &Bytes::from_static(b"x")),
            RemoteData::Ignore
        );
        assert_eq!(s.remote_close(2), RemoteClose::Ignore);
        assert_eq!(s.remote_open(4, "chat"), RemoteOpen::Held);
    }

    /// Half-close: after our CLOSE we still read, and writing is an error; the peer's CLOSE
    /// finishes it. A peer's CLOSE first is answered.
    #[test]
    fn half_close() {
        let mut s = Subchannels::new(None);
        s.set_role(Role::Leader);
        let a = s.open_local("x").expect("a");
        s.close_local(a).expect("close");
        assert_eq!(s.check_writable(a), Err(SubchannelError::Closed(a)));
        assert_eq!(s.close_local(a), Err(SubchannelError::Closed(a)));
        assert_eq!(
            s.remote_data(a, &Bytes::from_static(b"still")),
            RemoteData::Deliver
        );
        assert_eq!(s.remote_close(a), RemoteClose::Notify);
        assert_eq!(s.check_writable(a), Err(SubchannelError::Unknown(a)));
        let b = s.open_local("x").expect("b");
        assert_eq!(s.remote_close(b), RemoteClose::AnswerAndNotify);
        assert_eq!(s.check_writable(b), Err(SubchannelError::Unknown(b)));
    }

    /// Held data is bounded: overflowing it refuses that subchannel.
    #[test]
    fn held_data_bounded() {
        let mut s = Subchannels::new(None);
        s.set_role(Role::Leader);
        assert_eq!(s.remote_open(2, "x"), RemoteOpen::Held);
        assert_eq!(
            s.remote_data(2, &Bytes::from(vec![0; MAX_HELD_BYTES])),
            RemoteData::Held
        );
        assert_eq!(
            s.remote_data(2, &Bytes::from_static(b"1")),
            RemoteData::Refuse
        );
        assert_eq!(
            s.remote_data(2, &Bytes::from_static(b"1")),
            RemoteData::Ignore
        );
        assert_eq!(s.listen("x"), vec![]);
        assert_eq!(s.remote_open(4, "x"), RemoteOpen::Deliver);
    }
}
