//! L3: the Dilation records carried inside the L2 Noise frames.
//!
//! Stateless codec (no states). Input: a decrypted record (bytes); output: a [`Record`], or a
//! [`RecordError`] for an unknown type byte or a truncated body. Encoding is infallible. DATA
//! payloads are [`Bytes`]: decoding slices the decrypted frame and cloning a record (for replay)
//! copies no payload.
//!
//! | type  | byte | layout after the type byte           |
//! |-------|------|--------------------------------------|
//! | KCM   | 0x00 | –                                    |
//! | PING  | 0x01 | ping_id(4)                           |
//! | PONG  | 0x02 | ping_id(4)                           |
//! | OPEN  | 0x03 | scid ‖ seqnum ‖ UTF-8 subprotocol    |
//! | DATA  | 0x04 | scid ‖ seqnum ‖ payload              |
//! | CLOSE | 0x05 | scid ‖ seqnum                        |
//! | ACK   | 0x06 | seqnum                               |
//!
//! Integers are big-endian u32. Mirrors `src/wormhole/_dilation/encode.py` and `parse_record` /
//! `encode_record` of `connection.py` (magic-wormhole 0.24; PROTOCOL.md §4 "L3 records").

use bytes::Bytes;

/// Subchannel id: odd ids are allocated by the Leader, even ids by the Follower; 0 is unused.
pub type SubchannelId = u32;

/// Sequence number of an OPEN/DATA/CLOSE record (one counter per direction, from 0).
pub type Seqnum = u32;

const T_KCM: u8 = 0x00;
const T_PING: u8 = 0x01;
const T_PONG: u8 = 0x02;
const T_OPEN: u8 = 0x03;
const T_DATA: u8 = 0x04;
const T_CLOSE: u8 = 0x05;
const T_ACK: u8 = 0x06;

/// One L3 record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Key confirmation message: the first record on a connection (Follower), or the Leader's
    /// selection of a connection.
    Kcm,
    /// Keepalive probe (sent by the Leader only).
    Ping([u8; 4]),
    /// Answer to a PING, echoing its id.
    Pong([u8; 4]),
    /// Opens subchannel `scid` for the named subprotocol.
    Open {
        /// The new subchannel.
        scid: SubchannelId,
        /// L4 sequence number.
        seqnum: Seqnum,
        /// The subprotocol name (UTF-8).
        subprotocol: String,
    },
    /// Bytes for subchannel `scid`.
    Data {
        /// The subchannel.
        scid: SubchannelId,
        /// L4 sequence number.
        seqnum: Seqnum,
        /// The payload.
        data: Bytes,
    },
    /// Closes our write half of subchannel `scid`.
    Close {
        /// The subchannel.
        scid: SubchannelId,
        /// L4 sequence number.
        seqnum: Seqnum,
    },
    /// Acknowledges the record with this sequence number (and, implicitly, all earlier ones).
    Ack {
        /// The acknowledged sequence number.
        seqnum: Seqnum,
    },
}

/// Why a decrypted record could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record is empty (no type byte).
    #[error("empty dilation record")]
    Empty,
    /// The type byte is not one of 0x00..=0x06.
    #[error("unknown dilation record type {0:#04x}")]
    UnknownType(u8),
    /// The record is shorter (or, for fixed-size records, longer) than its type requires.
    #[error("dilation record of type {kind:#04x} has a bad length {len}")]
    BadLength {
        /// The type byte.
        kind: u8,
        /// The whole record's length, type byte included.
        len: usize,
    },
    /// An OPEN's subprotocol name is not UTF-8.
    #[error("dilation OPEN record has a subprotocol name that is not UTF-8")]
    BadSubprotocol,
}

/// Length of the DATA header (type, scid, seqnum): a DATA record is this plus its payload.
pub const DATA_HEADER_LEN: usize = 9;

impl Record {
    /// The record's bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the record's bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Self::Kcm => out.push(T_KCM),
            Self::Ping(id) => {
                out.push(T_PING);
                out.extend_from_slice(id);
            }
            Self::Pong(id) => {
                out.push(T_PONG);
                out.extend_from_slice(id);
            }
            Self::Open {
                scid,
                seqnum,
                subprotocol,
            } => header(out, T_OPEN, *scid, *seqnum, subprotocol.as_bytes()),
            Self::Data { scid, seqnum, data } => header(out, T_DATA, *scid, *seqnum, data),
            Self::Close { scid, seqnum } => header(out, T_CLOSE, *scid, *seqnum, &[]),
            Self::Ack { seqnum } => {
                out.push(T_ACK);
                out.extend_from_slice(&seqnum.to_be_bytes());
            }
        }
    }

    /// Parses one decrypted record; a DATA payload is a slice of `bytes` (no copy).
    pub fn decode(bytes: Bytes) -> Result<Self, RecordError> {
        let (&kind, body) = bytes.split_first().ok_or(RecordError::Empty)?;
        let bad = || RecordError::BadLength {
            kind,
            len: bytes.len(),
        };
        let four = |at: usize| -> Result<[u8; 4], RecordError> {
            body.get(at..at + 4)
                .and_then(|s| <[u8; 4]>::try_from(s).ok())
                .ok_or_else(bad)
        };
        let exact = |n: usize| if body.len() == n { Ok(()) } else { Err(bad()) };
        let rest = || body.get(8..).ok_or_else(bad);
        match kind {
            T_KCM => exact(0).map(|()| Self::Kcm),
            T_PING => exact(4).and_then(|()| four(0)).map(Self::Ping),
            T_PONG => exact(4).and_then(|()| four(0)).map(Self::Pong),
            T_OPEN => {
                let subprotocol =
                    String::from_utf8(rest()?.to_vec()).map_err(|_| RecordError::BadSubprotocol)?;
                Ok(Self::Open {
                    scid: u32::from_be_bytes(four(0)?),
                    seqnum: u32::from_be_bytes(four(4)?),
                    subprotocol,
                })
            }
            T_DATA => {
                rest()?;
                Ok(Self::Data {
                    scid: u32::from_be_bytes(four(0)?),
                    seqnum: u32::from_be_bytes(four(4)?),
                    data: bytes.slice(DATA_HEADER_LEN..),
                })
            }
            T_CLOSE => {
                exact(8)?;
                Ok(Self::Close {
                    scid: u32::from_be_bytes(four(0)?),
                    seqnum: u32::from_be_bytes(four(4)?),
                })
            }
            T_ACK => {
                exact(4)?;
                Ok(Self::Ack {
                    seqnum: u32::from_be_bytes(four(0)?),
                })
            }
            other => Err(RecordError::UnknownType(other)),
        }
    }

    /// The L4 sequence number of an OPEN, DATA or CLOSE record.
    #[must_use]
    pub fn seqnum(&self) -> Option<Seqnum> {
        match self {
            Self::Open { seqnum, .. } | Self::Data { seqnum, .. } | Self::Close { seqnum, .. } => {
                Some(*seqnum)
            }
            _ => None,
        }
    }

    /// The encoded length, without encoding.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::Kcm => 1,
            Self::Ping(_) | Self::Pong(_) | Self::Ack { .. } => 5,
            Self::Open { subprotocol, .. } => DATA_HEADER_LEN + subprotocol.len(),
            Self::Data { data, .. } => DATA_HEADER_LEN + data.len(),
            Self::Close { .. } => DATA_HEADER_LEN,
        }
    }
}

fn header(out: &mut Vec<u8>, kind: u8, scid: u32, seqnum: u32, tail: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&scid.to_be_bytes());
    out.extend_from_slice(&seqnum.to_be_bytes());
    out.extend_from_slice(tail);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record type survives encode → decode, and the bytes match the reference layout.
    #[test]
    fn round_trips_with_reference_layout() {
        let cases: Vec<(Record, Vec<u8>)> = vec![
            (Record::Kcm, vec![0]),
            (Record::Ping([1, 2, 3, 4]), vec![1, 1, 2, 3, 4]),
            (Record::Pong([9, 8, 7, 6]), vec![2, 9, 8, 7, 6]),
            (
                Record::Open {
                    scid: 1,
                    seqnum: 2,
                    subprotocol: "söme".into(),
                },
                [&[3, 0, 0, 0, 1, 0, 0, 0, 2][..], "söme".as_bytes()].concat(),
            ),
            (
                Record::Data {
                    scid: 0x0102_0304,
                    seqnum: 0xffff_fffe,
                    data: Bytes::from_static(b"hi"),
                },
                vec![4, 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xfe, b'h', b'i'],
            ),
            (
                Record::Data {
                    scid: 2,
                    seqnum: 0,
                    data: Bytes::new(),
                },
                vec![4, 0, 0, 0, 2, 0, 0, 0, 0],
            ),
            (
                Record::Close { scid: 3, seqnum: 4 },
                vec![5, 0, 0, 0, 3, 0, 0, 0, 4],
            ),
            (Record::Ack { seqnum: 258 }, vec![6, 0, 0, 1, 2]),
        ];
        for (record, bytes) in cases {
            assert_eq!(record.encode(), bytes, "{record:?}");
            assert_eq!(record.encoded_len(), bytes.len(), "{record:?}");
            assert_eq!(Record::decode(bytes.into()), Ok(record));
        }
    }

    /// An unknown type byte, an empty record and truncated bodies are typed errors, not panics.
    #[test]
    fn unknown_and_truncated_records_are_errors() {
        let decode = |bytes: &[u8]| Record::decode(Bytes::copy_from_slice(bytes));
        assert_eq!(decode(&[7]), Err(RecordError::UnknownType(7)));
        assert_eq!(decode(&[0xff, 1, 2]), Err(RecordError::UnknownType(0xff)));
        assert_eq!(decode(&[]), Err(RecordError::Empty));
        for bad in [
            &[0, 0][..],
            &[1, 1, 2, 3],
            &[2, 1, 2, 3, 4, 5],
            &[3, 0, 0, 0, 1, 0, 0],
            &[4, 0, 0, 0, 1],
            &[5, 0, 0, 0, 1, 0, 0, 0, 2, 9],
            &[6, 0, 0, 1],
        ] {
            assert!(
                matches!(decode(bad), Err(RecordError::BadLength { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            decode(&[3, 0, 0, 0, 1, 0, 0, 0, 2, 0xff]),
            Err(RecordError::BadSubprotocol)
        );
    }
}
