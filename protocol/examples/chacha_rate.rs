//! One-core ChaCha20-Poly1305 rate, the cipher of Dilation's Noise records (snow's resolver uses
//! the `chacha20poly1305` crate). Seals then opens `--mib` MiB (default 1024) in 64 KiB records,
//! in place, detached tags, counter nonces, on one thread; prints one line per direction:
//!
//!   `chacha20poly1305 seal <MB/s> open <MB/s> record 65536 bytes <N>`
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
    let mut work = sealed_once.0.clone();
    let mut copy_s = 0.0;
    let start = Instant::now();
    for _ in 0..records {
        cipher
            .decrypt_in_place_detached(&nonce(0), b"", &mut work, &sealed_once.1)
            .expect("open");
        let c = Instant::now();
        work.copy_from_slice(&sealed_once.0);
        copy_s += c.elapsed().as_secs_f64();
    }
    let open = start.elapsed().as_secs_f64() - copy_s;
    let bytes = (records * RECORD) as f64;
    println!(
        "chacha20poly1305 seal {:.0} open {:.0} MB/s record {} bytes {}",
        bytes / seal / 1e6,
        bytes / open / 1e6,
        RECORD,
        records * RECORD
    );
    std::hint::black_box(&tags);
}
