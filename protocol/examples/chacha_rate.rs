//! One-core ChaCha20-Poly1305 rate, the cipher of Dilation's Noise records (snow's resolver uses
//! the `chacha20poly1305` crate). Seals then opens `--mib` MiB (default 1024) in 64 KiB records,
//! in place, detached tags, counter nonces, on one thread; prints one line per direction:
//!
//!   `chacha20poly1305 seal <MB/s> open <MB/s> record 65536 bytes <N>`
//!   `ring seal <MB/s> open <MB/s> record 65536 bytes <N>`
//!
//! The first is the crate the goal names (and snow's default); the second is `ring`, which
//! wormholed's Dilation transport uses.
//!
//! Run: `cargo run --release --example chacha_rate -p wormhole-protocol [-- MIB]`.
//! bench/dilation.py runs it once per round, so the cipher rate comes from the same run.

// A stand-alone measurement program, not protocol code: it reads the clock itself.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};

const RECORD: usize = 64 * 1024;

fn nonce(n: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&n.to_le_bytes());
    Nonce::from(bytes)
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("MiB count"))
        .unwrap_or(1024);
    let records = (mib << 20) / RECORD;
    let cipher = ChaCha20Poly1305::new(&Key::from([7u8; 32]));
    let mut buf = vec![0x5au8; RECORD];
    let mut tags: Vec<Tag> = Vec::with_capacity(records.min(1 << 16));

    // Warm up (page in the buffer, fill caches).
    for n in 0..64u64 {
        cipher
            .encrypt_in_place_detached(&nonce(n), b"", &mut buf)
            .expect("seal");
    }

    let start = Instant::now();
    for n in 0..records as u64 {
        let tag = cipher
            .encrypt_in_place_detached(&nonce(n), b"", &mut buf)
            .expect("seal");
        if tags.len() < tags.capacity() {
            tags.push(tag);
        }
    }
    let seal = start.elapsed().as_secs_f64();
    let sealed_once = {
        let mut b = vec![0x5au8; RECORD];
        let t = cipher
            .encrypt_in_place_detached(&nonce(0), b"", &mut b)
            .expect("seal");
        (b, t)
    };

    // Open: the same record (one valid ciphertext) opened `records` times, restored each time
    // by a copy that is timed out separately.
    let open = time_open(records, &sealed_once.0, |work| {
        cipher
            .decrypt_in_place_detached(&nonce(0), b"", work, &sealed_once.1)
            .expect("open");
    });
    report("chacha20poly1305", records, seal, open);
    std::hint::black_box(&tags);
    ring_rate(records);
}

/// The same measurement with `ring` 0.17, the implementation wormholed's Dilation transport
/// (`l2::Sealer` / `l2::Opener`) uses.
fn ring_rate(records: usize) {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[7u8; 32]).expect("key"));
    let nonce = |n: u64| {
        let mut bytes = [0u8; 12];
        bytes[4..].copy_from_slice(&n.to_le_bytes());
        Nonce::assume_unique_for_key(bytes)
    };
    let mut buf = vec![0x5au8; RECORD];
    for n in 0..64u64 {
        let tag = key
            .seal_in_place_separate_tag(nonce(n), Aad::empty(), &mut buf)
            .expect("seal");
        std::hint::black_box(&tag);
    }
    let start = Instant::now();
    for n in 0..records as u64 {
        let tag = key
            .seal_in_place_separate_tag(nonce(n), Aad::empty(), &mut buf)
            .expect("seal");
        std::hint::black_box(&tag);
    }
    let seal = start.elapsed().as_secs_f64();
    let mut sealed = vec![0x5au8; RECORD];
    let tag = key
        .seal_in_place_separate_tag(nonce(0), Aad::empty(), &mut sealed)
        .expect("seal");
    sealed.extend_from_slice(tag.as_ref());
    let open = time_open(records, &sealed, |work| {
        key.open_in_place(nonce(0), Aad::empty(), work)
            .expect("open");
    });
    report("ring", records, seal, open);
}

/// Seconds to open `records` times a copy of `sealed` (the copies are not counted).
fn time_open(records: usize, sealed: &[u8], mut open: impl FnMut(&mut [u8])) -> f64 {
    let mut work = sealed.to_vec();
    let mut copy_s = 0.0;
    let start = Instant::now();
    for _ in 0..records {
        open(&mut work);
        let c = Instant::now();
        work.copy_from_slice(sealed);
        copy_s += c.elapsed().as_secs_f64();
    }
    start.elapsed().as_secs_f64() - copy_s
}

/// One result line: `<name> seal <MB/s> open <MB/s> MB/s record <bytes> bytes <total>`.
fn report(name: &str, records: usize, seal: f64, open: f64) {
    let bytes = (records * RECORD) as f64;
    println!(
        "{name} seal {:.0} open {:.0} MB/s record {} bytes {}",
        bytes / seal / 1e6,
        bytes / open / 1e6,
        RECORD,
        records * RECORD
    );
}
