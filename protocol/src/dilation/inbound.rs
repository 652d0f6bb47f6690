//! L4 inbound: which received OPEN/DATA/CLOSE records are new, and the ACK for each.
//!
//! State: the highest sequence number processed so far (none at first). Input: the seqnum of each
//! received OPEN/DATA/CLOSE record. Output: an ACK record for every one of them (duplicates
//! included, so that the peer retires its replayed copies), and whether to process it (only when
//! its seqnum is above the highest seen). The routing of processed records to subchannels is in
//! `subchannel.rs`; flow control towards the peer is the host's TCP backpressure (it stops reading
//! the connection while the application is not reading).
//!
//! Mirrors `Inbound.is_record_old` / `update_ack_watermark` of
//! `src/wormhole/_dilation/inbound.py` and the ACK in `Manager.got_record` (`manager.py`).

use super::l3::{Record, Seqnum};

/// The receive side of L4: one per Dilation, surviving reconnections.
#[derive(Debug, Default)]
pub(crate) struct Inbound {
    highest: Option<Seqnum>,
}

impl Inbound {
    /// Takes a received record's seqnum: the ACK to send back, and whether the record is new.
    pub(crate) fn receive(&mut self, seqnum: Seqnum) -> (Record, bool) {
        let new = self.highest.is_none_or(|h| seqnum > h);
        if new {
            self.highest = Some(seqnum);
        }
        (Record::Ack { seqnum }, new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record is ACKed; only seqnums above the highest seen are processed, so replays and
    /// duplicates are dropped.
    #[test]
    fn duplicates_are_acked_but_dropped() {
        let mut inbound = Inbound::default();
        let seen: Vec<(Record, bool)> = [0, 1, 1, 0, 2, 5, 3, 6]
            .into_iter()
            .map(|s| inbound.receive(s))
            .collect();
        let acks: Vec<u32> = seen
            .iter()
            .map(|(r, _)| match r {
                Record::Ack { seqnum } => *seqnum,
                other => panic!("not an ack: {other:?}"),
            })
            .collect();
        assert_eq!(acks, vec![0, 1, 1, 0, 2, 5, 3, 6]);
        let processed: Vec<bool> = seen.iter().map(|(_, p)| *p).collect();
        assert_eq!(
            processed,
            vec![true, true, false, false, true, true, false, true]
        );
    }
}
