//! libsodium's `crypto_secretbox` (XSalsa20-Poly1305), through `libsodium-sys-stable`.
//!
//! The only module of this crate with `unsafe` code: three FFI calls, each wrapped in a safe
//! function whose arguments are Rust references of the exact sizes libsodium expects. The safe
//! front is [`super::SecretBox`]; the pure-Rust backend stays beside it, and the tests of
//! `crypto` prove that both give the same bytes.
//!
//! libsodium (about 1.6 GB/s here) is six times as fast as the `xsalsa20poly1305` crate, which
//! makes it the bulk cipher of Transit (docs/benchmarks.md, "Transit cipher").

#![allow(unsafe_code)]

use std::ffi::{c_uchar, c_ulonglong};
use std::sync::OnceLock;

use libsodium_sys as ffi;

use super::{KEY_LEN, NONCE_LEN, TAG_LEN};

/// Initialises libsodium once per process; `false` if it cannot be used.
pub(super) fn available() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        // SAFETY: `sodium_init` takes no arguments, is thread-safe and may be called any number
        // of times (it returns 1 when already initialised, -1 on failure).
        let rc = unsafe { ffi::sodium_init() };
        rc >= 0
    })
}

/// Encrypts `buf` in place under `key` and `nonce`; returns the Poly1305 tag. libsodium's
/// detached secretbox has no failure mode for messages that fit in memory.
///
/// Callers must have checked [`available`].
pub(super) fn seal_detached(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    buf: &mut [u8],
) -> [u8; TAG_LEN] {
    let mut tag = [0u8; TAG_LEN];
    let len = buf.len() as c_ulonglong;
    let ptr = buf.as_mut_ptr().cast::<c_uchar>();
    // SAFETY: `ptr` points to `len` initialised, writable bytes (the whole of `buf`); libsodium
    // documents that the ciphertext and message buffers may be the same (in-place encryption).
    // `tag` is a writable 16-byte buffer (crypto_secretbox_MACBYTES), `nonce` 24 readable bytes
    // (NONCEBYTES) and `key` 32 readable bytes (KEYBYTES). libsodium keeps no pointer after the
    // call returns. The return value is always 0 for in-memory messages.
    let _ = unsafe {
        ffi::crypto_secretbox_detached(
            ptr,
            tag.as_mut_ptr(),
            ptr,
            len,
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    tag
}

/// Authenticates and decrypts `buf` in place; `false` (and `buf` unspecified) if the tag does
/// not match.
///
/// Callers must have checked [`available`].
pub(super) fn open_detached(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    tag: &[u8; TAG_LEN],
    buf: &mut [u8],
) -> bool {
    let len = buf.len() as c_ulonglong;
    let ptr = buf.as_mut_ptr().cast::<c_uchar>();
    // SAFETY: `ptr` points to `len` initialised, writable bytes (the whole of `buf`); libsodium
    // allows the message and ciphertext buffers to be the same (in-place decryption). `tag` is 16
    // readable bytes (MACBYTES), `nonce` 24 (NONCEBYTES), `key` 32 (KEYBYTES). libsodium keeps no
    // pointer after the call returns; it returns 0 on success and -1 on a bad tag.
    let rc = unsafe {
        ffi::crypto_secretbox_open_detached(
            ptr,
            ptr,
            tag.as_ptr(),
            len,
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    rc == 0
}
