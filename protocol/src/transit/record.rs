//! Transit records: the encrypted framing of an established connection.
//!
//! A record on the wire is `len(4, big-endian) ‖ nonce(24) ‖ tag(16) ‖ ciphertext`, where `len`
//! counts nonce, tag and ciphertext, and the SecretBox key is the sender's own: the Transit
//! sender encrypts with HKDF(tk, `transit_record_sender_key`), the receiver with
//! HKDF(tk, `transit_record_receiver_key`). Nonces are 24-byte big-endian counters from 0, one
//! counter per direction; any other nonce ends the connection.
//!
//! - [`RecordSealer`]: frames and encrypts our records (input: plaintext; output: wire bytes).
//! - [`RecordOpener`]: checks and decrypts the peer's records, for a host that reads the length
//!   prefix and then exactly that many bytes ([`RecordOpener::parse_length`] bounds it first).
//! - [`RecordDecoder`]: the same from arbitrary byte chunks (push style), growing its buffer only
//!   with bytes actually received.
//!
//! Mirrors `Connection.send_record`, `dataReceivedRECORDS` and `_decrypt_record` of
//! `src/wormhole/transit.py`; PROTOCOL.md §3 "Records" and §6.10.

use super::Role;
use crate::crypto::{
    transit_receiver_record_key, transit_sender_record_key, SecretBox, NONCE_LEN, TAG_LEN,
};

/// Length of the big-endian length prefix.
pub const LENGTH_LEN: usize = 4;
/// Bytes a record adds to its plaintext inside the length: nonce and tag.
pub const RECORD_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Largest record (nonce + tag + ciphertext) we send or accept: 64 MiB. The reference sends
/// 16 KiB records; we send far smaller ones than this cap too.
pub const MAX_RECORD_LEN: usize = 64 << 20;
/// Largest plaintext of one record.
pub const MAX_PLAINTEXT_LEN: usize = MAX_RECORD_LEN - RECORD_OVERHEAD;
/// Bytes in front of a record's ciphertext on the wire: length prefix, nonce and tag. A host
/// that reads its plaintext at this offset of a buffer seals the record there, in place
/// ([`RecordSealer::seal_frame`]).
pub const FRAME_HEADER_LEN: usize = LENGTH_LEN + RECORD_OVERHEAD;

/// Why a record was refused. Every one ends the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The length prefix is below nonce + tag.
    #[error("record of {len} bytes is shorter than nonce and tag")]
    TooShort {
        /// The announced length.
        len: usize,
    },
    /// The length prefix is above [`MAX_RECORD_LEN`] (or we were asked to send such a record).
    #[error("record of {len} bytes exceeds the maximum of {MAX_RECORD_LEN}")]
    TooLarge {
        /// The announced (or requested) length.
        len: usize,
    },
    /// The nonce is not the next counter value.
    #[error("received out-of-order record: got nonce {got}, expected {expected}")]
    BadNonce {
        /// The nonce found (as hex if it does not fit 64 bits).
        got: String,
        /// The nonce expected.
        expected: u64,
    },
    /// The record does not authenticate under the peer's key.
    #[error("record authentication failed")]
    BadMac,
    /// 2^64 records in one direction (cannot happen in practice).
    #[error("record counter exhausted")]
    CounterExhausted,
}

/// The nonce of record number `n`: 24-byte big-endian.
#[must_use]
pub fn counter_nonce(n: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[NONCE_LEN - 8..].copy_from_slice(&n.to_be_bytes());
    nonce
}

/// The record keys of one side: (key we send with, key the peer sends with).
#[must_use]
pub fn record_keys(role: Role, transit_key: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    let sender = transit_sender_record_key(transit_key);
    let receiver = transit_receiver_record_key(transit_key);
    match role {
        Role::Sender => (sender, receiver),
        Role::Receiver => (receiver, sender),
    }
}

/// Frames and encrypts our records.
#[derive(Debug)]
pub struct RecordSealer {
    cipher: SecretBox,
    next_nonce: u64,
}

impl RecordSealer {
    /// Sealer for our direction of a Transit where we play `role`.
    #[must_use]
    pub fn new(role: Role, transit_key: &[u8; 32]) -> Self {
        Self::with_cipher(SecretBox::new(&record_keys(role, transit_key).0))
    }

    /// Sealer with an explicit cipher (to pick a backend).
    #[must_use]
    pub fn with_cipher(cipher: SecretBox) -> Self {
        Self {
            cipher,
            next_nonce: 0,
        }
    }

    /// The number of records sealed so far (the next nonce).
    #[must_use]
    pub fn count(&self) -> u64 {
        self.next_nonce
    }

    /// Appends the wire form of one record (`len ‖ nonce ‖ tag ‖ ct`) to `out`.
    pub fn seal_into(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(RecordError::TooLarge {
                len: plaintext.len() + RECORD_OVERHEAD,
            });
        }
        let start = out.len();
        out.reserve(FRAME_HEADER_LEN + plaintext.len());
        out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        out.extend_from_slice(plaintext);
        let sealed = self.seal_frame(&mut out[start..]);
        if sealed.is_err() {
            out.truncate(start);
        }
        sealed
    }

    /// Seals one record in place. `frame` is [`FRAME_HEADER_LEN`] bytes of room (any content)
    /// followed by the plaintext; on success it is the record's wire form (`len ‖ nonce ‖ tag ‖
    /// ct`), to be written out whole. A frame shorter than the header is refused as
    /// [`RecordError::TooShort`] and left untouched, as is an oversized one.
    pub fn seal_frame(&mut self, frame: &mut [u8]) -> Result<(), RecordError> {
        let Some(len) = frame.len().checked_sub(LENGTH_LEN) else {
            return Err(RecordError::TooShort { len: 0 });
        };
        if len < RECORD_OVERHEAD {
            return Err(RecordError::TooShort { len });
        }
        if len > MAX_RECORD_LEN {
            return Err(RecordError::TooLarge { len });
        }
        // `len` ≤ 64 MiB fits in u32.
        let prefix = u32::try_from(len).map_err(|_| RecordError::TooLarge { len })?;
        let next = self
            .next_nonce
            .checked_add(1)
            .ok_or(RecordError::CounterExhausted)?;
        let nonce = counter_nonce(self.next_nonce);
        self.next_nonce = next;
        let (header, body) = frame.split_at_mut(FRAME_HEADER_LEN);
        let tag = self.cipher.seal_in_place(&nonce, body);
        header[..LENGTH_LEN].copy_from_slice(&prefix.to_be_bytes());
        header[LENGTH_LEN..LENGTH_LEN + NONCE_LEN].copy_from_slice(&nonce);
        header[LENGTH_LEN + NONCE_LEN..].copy_from_slice(&tag);
        Ok(())
    }

    /// The wire form of one record.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::new();
        self.seal_into(plaintext, &mut out)?;
        Ok(out)
    }
}

/// Checks and decrypts the peer's records, read by the host as prefix, then body.
#[derive(Debug)]
pub struct RecordOpener {
    cipher: SecretBox,
    next_nonce: u64,
}

impl RecordOpener {
    /// Opener for the peer's direction of a Transit where we play `role`.
    #[must_use]
    pub fn new(role: Role, transit_key: &[u8; 32]) -> Self {
        Self::with_cipher(SecretBox::new(&record_keys(role, transit_key).1))
    }

    /// Opener with an explicit cipher (to pick a backend).
    #[must_use]
    pub fn with_cipher(cipher: SecretBox) -> Self {
        Self {
            cipher,
            next_nonce: 0,
        }
    }

    /// The number of records opened so far.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.next_nonce
    }

    /// The record length (nonce + tag + ciphertext) announced by a prefix, checked to be within
    /// `RECORD_OVERHEAD..=MAX_RECORD_LEN` before anyone allocates for it.
    pub fn parse_length(prefix: [u8; LENGTH_LEN]) -> Result<usize, RecordError> {
        let len = u32::from_be_bytes(prefix) as usize;
        if len < RECORD_OVERHEAD {
            Err(RecordError::TooShort { len })
        } else if len > MAX_RECORD_LEN {
            Err(RecordError::TooLarge { len })
        } else {
            Ok(len)
        }
    }

    /// Opens one record given its `nonce ‖ tag` head and its ciphertext, which is decrypted in
    /// place. The nonce is checked before the MAC.
    pub fn open_in_place(
        &mut self,
        head: &[u8; RECORD_OVERHEAD],
        ciphertext: &mut [u8],
    ) -> Result<(), RecordError> {
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&head[..NONCE_LEN]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&head[NONCE_LEN..]);
        if nonce != counter_nonce(self.next_nonce) {
            let low = u64::from_be_bytes(
                <[u8; 8]>::try_from(&nonce[NONCE_LEN - 8..]).unwrap_or_default(),
            );
            let got = if nonce[..NONCE_LEN - 8].iter().all(|b| *b == 0) {
                low.to_string()
            } else {
                format!("0x{}", hex::encode(nonce))
            };
            return Err(RecordError::BadNonce {
                got,
                expected: self.next_nonce,
            });
        }
        self.cipher
            .open_in_place(&nonce, &tag, ciphertext)
            .map_err(|_| RecordError::BadMac)?;
        self.next_nonce = self
            .next_nonce
            .checked_add(1)
            .ok_or(RecordError::CounterExhausted)?;
        Ok(())
    }

    /// Opens one record body (`nonce ‖ tag ‖ ct`, without the length prefix).
    pub fn open(&mut self, body: &[u8]) -> Result<Vec<u8>, RecordError> {
        if body.len() < RECORD_OVERHEAD {
            return Err(RecordError::TooShort { len: body.len() });
        }
        if body.len() > MAX_RECORD_LEN {
            return Err(RecordError::TooLarge { len: body.len() });
        }
        let (head, ct) = body.split_at(RECORD_OVERHEAD);
        let mut head_arr = [0u8; RECORD_OVERHEAD];
        head_arr.copy_from_slice(head);
        let mut plain = ct.to_vec();
        self.open_in_place(&head_arr, &mut plain)?;
        Ok(plain)
    }
}

/// Push-style record decoder: feed any chunks, get whole plaintext records.
#[derive(Debug)]
pub struct RecordDecoder {
    opener: RecordOpener,
    prefix: [u8; LENGTH_LEN],
    prefix_len: usize,
    /// Announced length of the record being read, once the prefix is complete.
    body_len: Option<usize>,
    /// The body received so far; grows with received bytes only.
    body: Vec<u8>,
}

impl RecordDecoder {
    /// Decoder around an opener.
    #[must_use]
    pub fn new(opener: RecordOpener) -> Self {
        Self {
            opener,
            prefix: [0; LENGTH_LEN],
            prefix_len: 0,
            body_len: None,
            body: Vec::new(),
        }
    }

    /// Whether the stream is at a record boundary (a clean place for end of stream).
    #[must_use]
    pub fn at_boundary(&self) -> bool {
        self.prefix_len == 0 && self.body_len.is_none()
    }

    /// Consumes bytes from `data` up to the end of at most one record. Returns how many bytes
    /// were consumed and the record, if one was completed. Call again with the rest.
    pub fn push(&mut self, data: &[u8]) -> Result<(usize, Option<Vec<u8>>), RecordError> {
        let mut used = 0;
        let len = match self.body_len {
            Some(len) => len,
            None => {
                let n = (LENGTH_LEN - self.prefix_len).min(data.len());
                self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&data[..n]);
                self.prefix_len += n;
                used += n;
                if self.prefix_len < LENGTH_LEN {
                    return Ok((used, None));
                }
                let len = RecordOpener::parse_length(self.prefix)?;
                self.body_len = Some(len);
                len
            }
        };
        let n = (len - self.body.len()).min(data.len() - used);
        self.body.extend_from_slice(&data[used..used + n]);
        used += n;
        if self.body.len() < len {
            return Ok((used, None));
        }
        let body = std::mem::take(&mut self.body);
        self.prefix_len = 0;
        self.body_len = None;
        let record = self.opener.open(&body)?;
        Ok((used, Some(record)))
    }

    /// Feeds all of `data`; returns every record completed.
    pub fn push_all(&mut self, mut data: &[u8]) -> Result<Vec<Vec<u8>>, RecordError> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let (used, record) = self.push(data)?;
            data = &data[used..];
            out.extend(record);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{secretbox_seal, transit_key, SecretBoxBackend};

    fn tk() -> [u8; 32] {
        transit_key(&(0u8..32).collect::<Vec<_>>())
    }

    fn pair() -> (RecordSealer, RecordDecoder) {
        (
            RecordSealer::new(Role::Sender, &tk()),
            RecordDecoder::new(RecordOpener::new(Role::Receiver, &tk())),
        )
    }

    #[test]
    fn wire_layout_matches_python() {
        // Python: len(4 BE) ‖ SecretBox(sender_record_key).encrypt(pt, nonce=counter).
        let mut sealer = RecordSealer::new(Role::Sender, &tk());
        let first = sealer.seal(b"hello").expect("small record");
        let second = sealer.seal(&[7; 16384]).expect("python-sized record");
        let key = transit_sender_record_key(&tk());
        let mut expected = vec![0, 0, 0, 45];
        expected.extend_from_slice(&secretbox_seal(&key, &counter_nonce(0), b"hello"));
        assert_eq!(first, expected);
        assert_eq!(&second[..4], &[0x00, 0x00, 0x40, 0x28]);
        assert_eq!(&second[4..28], &counter_nonce(1));
        assert_eq!(
            &second[4..],
            &secretbox_seal(&key, &counter_nonce(1), &[7; 16384])[..]
        );
        assert_eq!(sealer.count(), 2);
    }

    #[test]
    fn nonce_is_big_endian_counter() {
        assert_eq!(counter_nonce(0), [0; 24]);
        let n = counter_nonce(0x0102);
        assert_eq!(&n[..22], &[0; 22]);
        assert_eq!(&n[22..], &[1, 2]);
    }

    #[test]
    fn records_round_trip_in_any_chunking() {
        let (mut sealer, mut decoder) = pair();
        let records: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8; i * 1000]).collect();
        let mut wire = Vec::new();
        for r in &records {
            sealer.seal_into(r, &mut wire).expect("seal");
        }
        for chunk in [1, 7, 4096, wire.len()] {
            let (_, mut decoder) = pair();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                got.extend(decoder.push_all(piece).expect("decode"));
            }
            assert_eq!(got, records, "chunk {chunk}");
            assert!(decoder.at_boundary());
        }
        // Partial input leaves the decoder mid-record.
        assert_eq!(
            decoder.push_all(&wire[..10]).expect("partial"),
            Vec::<Vec<u8>>::new()
        );
        assert!(!decoder.at_boundary());
    }

    #[test]
    fn both_directions_use_their_own_keys() {
        let mut r_sealer = RecordSealer::new(Role::Receiver, &tk());
        let ack = r_sealer.seal(b"{\"ack\": \"ok\"}").expect("seal");
        let mut s_decoder = RecordDecoder::new(RecordOpener::new(Role::Sender, &tk()));
        assert_eq!(
            s_decoder.push_all(&ack).expect("decode"),
            vec![b"{\"ack\": \"ok\"}".to_vec()]
        );
        // The receiver cannot open its own records (wrong key).
        let mut r_decoder = RecordDecoder::new(RecordOpener::new(Role::Receiver, &tk()));
        assert_eq!(r_decoder.push_all(&ack), Err(RecordError::BadMac));
    }

    #[test]
    fn rejects_unexpected_nonces() {
        let (mut sealer, mut decoder) = pair();
        let first = sealer.seal(b"a").expect("seal");
        let second = sealer.seal(b"b").expect("seal");
        // Skipping a record.
        assert_eq!(
            decoder.push_all(&second),
            Err(RecordError::BadNonce {
                got: "1".into(),
                expected: 0
            })
        );
        // Replaying a record.
        let (_, mut decoder) = pair();
        decoder.push_all(&first).expect("first");
        assert_eq!(
            decoder.push_all(&first),
            Err(RecordError::BadNonce {
                got: "0".into(),
                expected: 1
            })
        );
        // A nonce with high bytes set.
        let (_, mut decoder) = pair();
        let mut high = first.clone();
        high[4] = 0xff;
        assert!(matches!(
            decoder.push_all(&high),
            Err(RecordError::BadNonce { expected: 0, .. })
        ));
    }

    #[test]
    fn rejects_bad_macs() {
        let (mut sealer, _) = pair();
        let record = sealer.seal(b"some plaintext").expect("seal");
        for at in [4 + 24, 4 + 24 + 15, 4 + 40, record.len() - 1] {
            let (_, mut decoder) = pair();
            let mut bad = record.clone();
            bad[at] ^= 0x01;
            assert_eq!(
                decoder.push_all(&bad),
                Err(RecordError::BadMac),
                "byte {at}"
            );
        }
    }

    #[test]
    fn rejects_bad_lengths_before_allocating() {
        let (_, mut decoder) = pair();
        assert_eq!(
            decoder.push_all(&[0xff, 0xff, 0xff, 0xff]),
            Err(RecordError::TooLarge { len: 0xffff_ffff })
        );
        let (_, mut decoder) = pair();
        let just_over = (MAX_RECORD_LEN as u32 + 1).to_be_bytes();
        assert!(matches!(
            decoder.push_all(&just_over),
            Err(RecordError::TooLarge { .. })
        ));
        let (_, mut decoder) = pair();
        assert_eq!(
            decoder.push_all(&[0, 0, 0, 39]),
            Err(RecordError::TooShort { len: 39 })
        );
        assert_eq!(
            RecordOpener::parse_length((MAX_RECORD_LEN as u32).to_be_bytes()),
            Ok(MAX_RECORD_LEN)
        );
        assert_eq!(RecordOpener::parse_length([0, 0, 0, 40]), Ok(40));
        // A huge announced length with few bytes behind it holds only those bytes.
        let (_, mut decoder) = pair();
        decoder
            .push_all(&(MAX_RECORD_LEN as u32).to_be_bytes())
            .expect("valid length");
        decoder.push_all(&[0; 100]).expect("partial body");
        assert!(decoder.body.capacity() < 4096);
    }

    #[test]
    fn refuses_to_seal_oversized_records() {
        let (mut sealer, _) = pair();
        let big = vec![0u8; MAX_PLAINTEXT_LEN + 1];
        assert!(matches!(
            sealer.seal(&big),
            Err(RecordError::TooLarge { .. })
        ));
        assert_eq!(sealer.count(), 0);
    }

    #[test]
    fn garbage_and_mutations_never_panic() {
        let mut seed = 11u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            seed >> 33
        };
        let (mut sealer, _) = pair();
        let mut valid = Vec::new();
        for i in 0..5 {
            sealer
                .seal_into(&vec![i; 100 * i as usize], &mut valid)
                .expect("seal");
        }
        for round in 0..2000 {
            let input: Vec<u8> = if round % 2 == 0 {
                let len = (next() % 300) as usize;
                (0..len).map(|_| next() as u8).collect()
            } else {
                let mut v = valid.clone();
                let at = (next() as usize) % v.len();
                v[at] ^= 1 + (next() % 255) as u8;
                v
            };
            let (_, mut decoder) = pair();
            let mut rest = &input[..];
            let mut records = Vec::new();
            let mut failed = false;
            while !rest.is_empty() {
                let n = 1 + (next() as usize) % rest.len();
                match decoder.push_all(&rest[..n]) {
                    Ok(got) => records.extend(got),
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
                rest = &rest[n..];
            }
            // A flipped byte of a valid stream is always caught: an error (length, nonce or
            // MAC), or a record still incomplete (a length made larger).
            if round % 2 == 1 {
                assert!(failed || records.len() < 5, "round {round}");
            }
        }
    }

    #[test]
    fn frames_sealed_in_place_match_seal() {
        let (mut a, _) = pair();
        let (mut b, mut decoder) = pair();
        for len in [0usize, 1, 100, 300_000] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let mut frame = vec![0xee; FRAME_HEADER_LEN];
            frame.extend_from_slice(&plain);
            b.seal_frame(&mut frame).expect("seal in place");
            assert_eq!(frame, a.seal(&plain).expect("seal"), "len {len}");
            assert_eq!(decoder.push_all(&frame), Ok(vec![plain]));
        }
        for short in 0..FRAME_HEADER_LEN {
            let mut frame = vec![1; short];
            assert!(matches!(
                b.seal_frame(&mut frame),
                Err(RecordError::TooShort { .. })
            ));
            assert_eq!(frame, vec![1; short], "untouched");
        }
        assert_eq!(b.count(), 4);
    }

    #[test]
    fn empty_records_work() {
        let (mut sealer, mut decoder) = pair();
        let wire = sealer.seal(b"").expect("seal");
        assert_eq!(wire.len(), 44);
        assert_eq!(decoder.push_all(&wire), Ok(vec![Vec::new()]));
    }

    #[test]
    fn backends_interoperate() {
        let (send_key, _) = record_keys(Role::Sender, &tk());
        for (a, b) in [
            (SecretBoxBackend::Libsodium, SecretBoxBackend::RustCrypto),
            (SecretBoxBackend::RustCrypto, SecretBoxBackend::Libsodium),
        ] {
            let mut sealer =
                RecordSealer::with_cipher(SecretBox::with_backend(&send_key, a).expect("backend"));
            let mut decoder = RecordDecoder::new(RecordOpener::with_cipher(
                SecretBox::with_backend(&send_key, b).expect("backend"),
            ));
            let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
            let wire = sealer.seal(&data).expect("seal");
            assert_eq!(decoder.push_all(&wire), Ok(vec![data]));
        }
    }
}

/// Throughput of the record codec per cipher backend and record size. A benchmark, not a test:
/// `cargo test --release -p wormhole-protocol bench_record_codec -- --ignored --nocapture`.
#[cfg(test)]
mod bench {
    use std::time::Instant;

    use super::*;
    use crate::crypto::SecretBoxBackend;

    #[allow(clippy::disallowed_methods)] // A benchmark reads the clock.
    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    #[ignore = "benchmark: run with --release --ignored --nocapture"]
    fn bench_record_codec() {
        const TOTAL: usize = 512 << 20;
        let key = [3u8; 32];
        println!("| backend | record | seal MB/s | open MB/s |");
        println!("|---|---|---|---|");
        for backend in [SecretBoxBackend::RustCrypto, SecretBoxBackend::Libsodium] {
            for record in [16usize << 10, 64 << 10, 256 << 10, 1 << 20] {
                let cipher = SecretBox::with_backend(&key, backend).expect("backend");
                let mut sealer = RecordSealer::with_cipher(cipher.clone());
                let mut opener = RecordOpener::with_cipher(cipher);
                let plain = vec![0x61u8; record];
                let count = TOTAL / record;
                let mut wire = Vec::with_capacity(record + 64);
                let mut seal_time = 0.0;
                let mut open_time = 0.0;
                for _ in 0..count {
                    wire.clear();
                    let t = now();
                    sealer.seal_into(&plain, &mut wire).expect("seal");
                    seal_time += t.elapsed().as_secs_f64();
                    let t = now();
                    let mut head = [0u8; RECORD_OVERHEAD];
                    head.copy_from_slice(&wire[LENGTH_LEN..LENGTH_LEN + RECORD_OVERHEAD]);
                    opener
                        .open_in_place(&head, &mut wire[LENGTH_LEN + RECORD_OVERHEAD..])
                        .expect("open");
                    open_time += t.elapsed().as_secs_f64();
                }
                let mb = (count * record) as f64 / 1e6;
                println!(
                    "| {backend:?} | {} KiB | {:.0} | {:.0} |",
                    record >> 10,
                    mb / seal_time,
                    mb / open_time
                );
            }
        }
    }
}
