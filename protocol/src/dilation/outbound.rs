//! L4 outbound: sequence numbers, the retransmit queue, replay on reconnection, flow control.
//!
//! State: the next seqnum (from 0, shared by all subchannels), the unACKed OPEN/DATA/CLOSE records
//! in seqnum order, their total size, and whether writers are paused. Inputs: records to queue
//! (`queue_open`, `queue_data`, `queue_close`), received ACKs (`handle_ack`: ACK N retires every
//! record ≤ N), a new connection (`replay`: every unACKed record, in order, to send before new
//! traffic). Outputs: the records to send, and pause/resume transitions for the writers.
//! PING/PONG/ACK/KCM never pass through here: they are sent only if connected, never queued.
//!
//! Bounded: DATA is accepted only up to `room()` (the byte budget minus what is queued); the
//! caller accepts the rest of a write later, after `handle_ack` reports that writers may resume
//! (when the queue has drained to half the budget). A slow reader thus makes its writer wait, and
//! the queue never grows without bound.
//!
//! Mirrors `src/wormhole/_dilation/outbound.py` (`build_record`, `queue_and_send_record`,
//! `handle_ack`, `use_connection`), with an explicit budget in place of Twisted's producers.

use std::collections::VecDeque;

use bytes::Bytes;

use super::l3::{Record, Seqnum, SubchannelId};

/// The send side of L4: one per Dilation, surviving reconnections.
#[derive(Debug)]
pub(crate) struct Outbound {
    next_seqnum: Seqnum,
    unacked: VecDeque<Record>,
    queued_bytes: usize,
    budget: usize,
    paused: bool,
}

impl Outbound {
    /// An empty queue with this byte budget.
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            next_seqnum: 0,
            unacked: VecDeque::new(),
            queued_bytes: 0,
            budget,
            paused: false,
        }
    }

    /// How many more DATA payload bytes may be queued now.
    pub(crate) fn room(&self) -> usize {
        if self.paused {
            0
        } else {
            self.budget.saturating_sub(self.queued_bytes)
        }
    }

    /// Whether the queue holds more than twice its budget: only possible when the peer keeps
    /// sending (and so makes us answer with CLOSEs) but never ACKs. The connection is unusable.
    pub(crate) fn is_overloaded(&self) -> bool {
        self.queued_bytes > self.budget.saturating_mul(2)
    }

    /// Whether writers are paused.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }

    /// Marks writers paused (a write did not fit); returns true on the transition.
    pub(crate) fn pause(&mut self) -> bool {
        !std::mem::replace(&mut self.paused, true)
    }

    /// Queues an OPEN; returns the record to send now if connected.
    pub(crate) fn queue_open(&mut self, scid: SubchannelId, subprotocol: &str) -> Record {
        let seqnum = self.next();
        self.push(Record::Open {
            scid,
            seqnum,
            subprotocol: subprotocol.to_owned(),
        })
    }

    /// Queues a DATA; the caller has checked `room()`.
    pub(crate) fn queue_data(&mut self, scid: SubchannelId, data: Bytes) -> Record {
        let seqnum = self.next();
        self.push(Record::Data { scid, seqnum, data })
    }

    /// Queues a CLOSE.
    pub(crate) fn queue_close(&mut self, scid: SubchannelId) -> Record {
        let seqnum = self.next();
        self.push(Record::Close { scid, seqnum })
    }

    /// Retires every queued record with a seqnum ≤ `seqnum`. Returns true when writers were
    /// paused and may now resume.
    pub(crate) fn handle_ack(&mut self, seqnum: Seqnum) -> bool {
        while let Some(front) = self.unacked.front() {
            match front.seqnum() {
                Some(s) if s <= seqnum => {
                    self.queued_bytes = self.queued_bytes.saturating_sub(front.encoded_len());
                    self.unacked.pop_front();
                }
                _ => break,
            }
        }
        if self.paused && self.queued_bytes <= self.budget / 2 {
            self.paused = false;
            true
        } else {
            false
        }
    }

    /// The unACKed records, in order: replayed on a new connection before anything else.
    pub(crate) fn replay(&self) -> impl Iterator<Item = &Record> {
        self.unacked.iter()
    }

    /// Number of unACKed records.
    pub(crate) fn unacked_len(&self) -> usize {
        self.unacked.len()
    }

    fn next(&mut self) -> Seqnum {
        let s = self.next_seqnum;
        self.next_seqnum = self.next_seqnum.wrapping_add(1);
        s
    }

    fn push(&mut self, record: Record) -> Record {
        self.queued_bytes += record.encoded_len();
        self.unacked.push_back(record.clone());
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seqnums count from 0 across subchannels; ACK N retires everything ≤ N; replay returns the
    /// rest in order.
    #[test]
    fn seqnums_acks_and_replay() {
        let mut out = Outbound::new(1 << 20);
        assert_eq!(out.queue_open(1, "chat").seqnum(), Some(0));
        assert_eq!(
            out.queue_data(1, Bytes::from_static(b"a")).seqnum(),
            Some(1)
        );
        assert_eq!(
            out.queue_data(3, Bytes::from_static(b"b")).seqnum(),
            Some(2)
        );
        assert_eq!(out.queue_close(1).seqnum(), Some(3));
        out.handle_ack(1);
        let replay: Vec<Option<u32>> = out.replay().map(Record::seqnum).collect();
        assert_eq!(replay, vec![Some(2), Some(3)]);
        out.handle_ack(1); // duplicate ACK: no change
        assert_eq!(out.unacked_len(), 2);
        out.handle_ack(3);
        assert_eq!(out.unacked_len(), 0);
    }

    /// The budget bounds queued DATA; writers resume once ACKs drain the queue to half of it.
    #[test]
    fn budget_pauses_and_resumes() {
        let mut out = Outbound::new(100);
        assert_eq!(out.room(), 100);
        out.queue_data(1, Bytes::from(vec![0; 20])); // 29 bytes with its header
        out.queue_data(1, Bytes::from(vec![0; 60])); // 69 bytes
        assert_eq!(out.room(), 2);
        assert!(out.pause());
        assert!(!out.pause());
        assert_eq!(out.room(), 0);
        assert!(
            !out.handle_ack(0),
            "69 of 100 bytes still queued: stay paused"
        );
        assert_eq!(out.room(), 0);
        assert!(out.handle_ack(1), "drained: resume");
        assert_eq!(out.room(), 100);
        assert!(!out.is_paused());
    }
}
