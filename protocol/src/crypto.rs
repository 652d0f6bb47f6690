//! Cryptography of the Wormhole protocol: SPAKE2, the HKDF key schedule, SecretBox.
//!
//! Everything here is a pure function of its arguments; randomness (the SPAKE2 scalar, SecretBox
//! nonces) is passed in by the caller, so a seeded RNG replays a whole run.
//!
//! Mirrors `src/wormhole/_key.py` (derive_key, derive_phase_key, encrypt_data, decrypt_data, the
//! SPAKE2 half of `_SortedKey`), `src/wormhole/util.py` (HKDF) and the key derivations of
//! `src/wormhole/transit.py` and `src/wormhole/_dilation/manager.py`. The wire facts are in
//! PROTOCOL.md §0, §2, §3 and §4; the known-answer vectors of §7 are tested below.

use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use unicode_normalization::UnicodeNormalization;
use xsalsa20poly1305::aead::{Aead, AeadInPlace, KeyInit};
use xsalsa20poly1305::XSalsa20Poly1305;

mod sodium;

/// Length of a SecretBox key.
pub const KEY_LEN: usize = 32;
/// Length of a SecretBox nonce.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Length of a symmetric SPAKE2 message: `0x53` followed by a compressed Ed25519 point.
pub const PAKE_MSG_LEN: usize = 33;

/// The transit key purpose. Fixed to the file-transfer appid even when another appid is used
/// (magic-wormhole bug #339, PROTOCOL.md §6.8).
pub const TRANSIT_KEY_PURPOSE: &[u8] = b"lothar.com/wormhole/text-or-file-xfer/transit-key";
/// The Dilation key purpose.
pub const DILATION_KEY_PURPOSE: &[u8] = b"dilation-v1";

/// Errors of the cryptographic layer. None of them is a panic: all come from peer input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A SecretBox shorter than nonce and tag.
    #[error("secretbox too short: {len} bytes, need at least {}", NONCE_LEN + TAG_LEN)]
    SecretBoxTooShort {
        /// The length that was received.
        len: usize,
    },
    /// The SecretBox did not authenticate under this key (wrong key or tampered data).
    #[error("secretbox authentication failed")]
    SecretBoxAuth,
    /// The peer's SPAKE2 message equals our own: a reflection.
    #[error("the peer's pake message is our own (reflected)")]
    PakeReflected,
    /// The peer's SPAKE2 message is malformed (wrong length, wrong side byte, not a point).
    #[error("invalid pake message: {0}")]
    PakeInvalid(String),
}

/// HKDF-SHA256 with no salt, `info = purpose`, `length` bytes of output.
///
/// `length` must be at most 255×32 bytes (HKDF's limit); a longer request returns the longest
/// possible output rather than panicking.
#[must_use]
pub fn derive_key(key: &[u8], purpose: &[u8], length: usize) -> Vec<u8> {
    let length = length.min(255 * 32);
    let mut out = vec![0u8; length];
    let hk = Hkdf::<Sha256>::new(None, key);
    // Cannot fail: `length` is within HKDF-SHA256's 255×32 limit (clamped above).
    if hk.expand(purpose, &mut out).is_err() {
        out.clear();
    }
    out
}

/// [`derive_key`] with the default length of 32 bytes.
#[must_use]
pub fn derive_key32(key: &[u8], purpose: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let hk = Hkdf::<Sha256>::new(None, key);
    // 32 bytes is always within HKDF-SHA256's limit, so expand cannot fail.
    let _ = hk.expand(purpose, &mut out);
    out
}

/// The verifier shown to users: HKDF(K, `wormhole:verifier`).
#[must_use]
pub fn verifier(key: &[u8]) -> [u8; 32] {
    derive_key32(key, b"wormhole:verifier")
}

/// The key of one mailbox phase, for messages sent by `side`:
/// HKDF(K, `wormhole:phase:` ‖ SHA256(side) ‖ SHA256(phase)), raw digests.
#[must_use]
pub fn phase_key(key: &[u8], side: &str, phase: &str) -> [u8; 32] {
    let mut purpose = Vec::with_capacity(15 + 64);
    purpose.extend_from_slice(b"wormhole:phase:");
    purpose.extend_from_slice(&Sha256::digest(side.as_bytes()));
    purpose.extend_from_slice(&Sha256::digest(phase.as_bytes()));
    derive_key32(key, &purpose)
}

/// SecretBox (XSalsa20-Poly1305) in the wire layout `nonce(24) ‖ tag(16) ‖ ciphertext`.
#[must_use]
pub fn secretbox_seal(key: &[u8; 32], nonce: &[u8; 24], plaintext: &[u8]) -> Vec<u8> {
    let cipher = XSalsa20Poly1305::new(key.into());
    let mut out = Vec::with_capacity(NONCE_LEN + TAG_LEN + plaintext.len());
    out.extend_from_slice(nonce);
    // The RustCrypto crate returns `tag ‖ ct` for XSalsa20Poly1305 (NaCl layout). Encryption only
    // fails for plaintexts beyond the cipher's limit (2^38 bytes), far above any mailbox message.
    match cipher.encrypt(nonce.into(), plaintext) {
        Ok(ct) => out.extend_from_slice(&ct),
        Err(_) => out.clear(),
    }
    out
}

/// Opens `nonce(24) ‖ tag(16) ‖ ciphertext` made by [`secretbox_seal`].
pub fn secretbox_open(key: &[u8; 32], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if data.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::SecretBoxTooShort { len: data.len() });
    }
    let (nonce, sealed) = data.split_at(NONCE_LEN);
    let cipher = XSalsa20Poly1305::new(key.into());
    cipher
        .decrypt(nonce.into(), sealed)
        .map_err(|_| CryptoError::SecretBoxAuth)
}

/// Which implementation of XSalsa20-Poly1305 a [`SecretBox`] uses. Both give the same bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretBoxBackend {
    /// libsodium's `crypto_secretbox` (about 1.6 GB/s on one core here): the default.
    Libsodium,
    /// The pure-Rust `xsalsa20poly1305` crate (about 0.26 GB/s): the fallback, and the
    /// cross-check of the tests.
    RustCrypto,
}

/// A SecretBox key, for bulk use: in-place, detached-tag encryption of the Transit records.
///
/// [`SecretBox::new`] picks libsodium when it initialises, else the pure-Rust crate.
#[derive(Clone)]
pub struct SecretBox {
    key: [u8; KEY_LEN],
    inner: BoxImpl,
}

#[derive(Clone)]
enum BoxImpl {
    Libsodium,
    RustCrypto(Box<XSalsa20Poly1305>),
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl SecretBox {
    /// The fastest available backend for `key`.
    #[must_use]
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        Self::with_backend(key, SecretBoxBackend::Libsodium)
            .unwrap_or_else(|| Self::rust_crypto(key))
    }

    /// A given backend for `key`; `None` if libsodium is asked for and cannot be initialised.
    #[must_use]
    pub fn with_backend(key: &[u8; KEY_LEN], backend: SecretBoxBackend) -> Option<Self> {
        match backend {
            SecretBoxBackend::Libsodium => sodium::available().then_some(Self {
                key: *key,
                inner: BoxImpl::Libsodium,
            }),
            SecretBoxBackend::RustCrypto => Some(Self::rust_crypto(key)),
        }
    }

    fn rust_crypto(key: &[u8; KEY_LEN]) -> Self {
        Self {
            key: *key,
            inner: BoxImpl::RustCrypto(Box::new(XSalsa20Poly1305::new(key.into()))),
        }
    }

    /// The backend in use.
    #[must_use]
    pub fn backend(&self) -> SecretBoxBackend {
        match self.inner {
            BoxImpl::Libsodium => SecretBoxBackend::Libsodium,
            BoxImpl::RustCrypto(_) => SecretBoxBackend::RustCrypto,
        }
    }

    /// Encrypts `buf` in place; returns the 16-byte tag (which goes before the ciphertext on
    /// the wire).
    pub fn seal_in_place(&self, nonce: &[u8; NONCE_LEN], buf: &mut [u8]) -> [u8; TAG_LEN] {
        match &self.inner {
            BoxImpl::Libsodium => sodium::seal_detached(&self.key, nonce, buf),
            BoxImpl::RustCrypto(cipher) => {
                // Fails only beyond XSalsa20's 2^38-byte keystream, far above any record (the
                // record codec caps them at 64 MiB); a zero tag then fails the peer's check.
                cipher
                    .encrypt_in_place_detached(nonce.into(), b"", buf)
                    .map(Into::into)
                    .unwrap_or([0; TAG_LEN])
            }
        }
    }

    /// Authenticates and decrypts `buf` in place. On [`CryptoError::SecretBoxAuth`] the content
    /// of `buf` is unspecified.
    pub fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        tag: &[u8; TAG_LEN],
        buf: &mut [u8],
    ) -> Result<(), CryptoError> {
        let ok = match &self.inner {
            BoxImpl::Libsodium => sodium::open_detached(&self.key, nonce, tag, buf),
            BoxImpl::RustCrypto(cipher) => cipher
                .decrypt_in_place_detached(nonce.into(), b"", buf, tag.into())
                .is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(CryptoError::SecretBoxAuth)
        }
    }
}

/// The Transit key: HKDF(K, [`TRANSIT_KEY_PURPOSE`]).
#[must_use]
pub fn transit_key(key: &[u8]) -> [u8; 32] {
    derive_key32(key, TRANSIT_KEY_PURPOSE)
}

/// The Dilation key: HKDF(K, `dilation-v1`).
#[must_use]
pub fn dilation_key(key: &[u8]) -> [u8; 32] {
    derive_key32(key, DILATION_KEY_PURPOSE)
}

/// The relay token of a Transit (or Dilation) key: HKDF(tk, `transit_relay_token`).
#[must_use]
pub fn transit_relay_token(transit_key: &[u8]) -> [u8; 32] {
    derive_key32(transit_key, b"transit_relay_token")
}

/// The relay handshake line `please relay <hex64> for side <side>\n` (side: 16 hex chars).
#[must_use]
pub fn transit_relay_handshake(transit_key: &[u8], side: &str) -> String {
    format!(
        "please relay {} for side {side}\n",
        hex::encode(transit_relay_token(transit_key))
    )
}

/// The sender's handshake line `transit sender <hex(HKDF(tk,"transit_sender"))> ready\n\n`.
#[must_use]
pub fn transit_sender_handshake(transit_key: &[u8]) -> String {
    format!(
        "transit sender {} ready\n\n",
        hex::encode(derive_key32(transit_key, b"transit_sender"))
    )
}

/// The receiver's handshake line `transit receiver <hex(HKDF(tk,"transit_receiver"))> ready\n\n`.
#[must_use]
pub fn transit_receiver_handshake(transit_key: &[u8]) -> String {
    format!(
        "transit receiver {} ready\n\n",
        hex::encode(derive_key32(transit_key, b"transit_receiver"))
    )
}

/// The key the Transit sender encrypts its records with: HKDF(tk, `transit_record_sender_key`).
#[must_use]
pub fn transit_sender_record_key(transit_key: &[u8]) -> [u8; 32] {
    derive_key32(transit_key, b"transit_record_sender_key")
}

/// The key the Transit receiver encrypts its records with: HKDF(tk, `transit_record_receiver_key`).
#[must_use]
pub fn transit_receiver_record_key(transit_key: &[u8]) -> [u8; 32] {
    derive_key32(transit_key, b"transit_record_receiver_key")
}

/// The SPAKE2 password bytes of a code: NFC-normalised, UTF-8.
#[must_use]
pub fn code_password(code: &str) -> Vec<u8> {
    code.nfc().collect::<String>().into_bytes()
}

/// One side of a symmetric SPAKE2 exchange (Ed25519, python-spake2 compatible).
///
/// States: started (this value) → finished (consumed by [`Pake::finish`]).
pub struct Pake {
    spake: Spake2<Ed25519Group>,
    outbound: [u8; PAKE_MSG_LEN],
}

impl std::fmt::Debug for Pake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pake")
            .field("outbound", &hex::encode(self.outbound))
            .finish_non_exhaustive()
    }
}

impl Pake {
    /// Starts SPAKE2 with password = the code (NFC, UTF-8) and identity = the appid. Returns the
    /// machine and the 33-byte message to send (`0x53` ‖ point).
    pub fn start<R: RngCore + CryptoRng>(code: &str, appid: &str, rng: &mut R) -> (Self, Vec<u8>) {
        let password = Password::new(code_password(code));
        let identity = Identity::new(appid.as_bytes());
        let (spake, msg) =
            Spake2::<Ed25519Group>::start_symmetric_with_rng(&password, &identity, rng);
        let mut outbound = [0u8; PAKE_MSG_LEN];
        // The symmetric Ed25519 message is always 33 bytes.
        if msg.len() == PAKE_MSG_LEN {
            outbound.copy_from_slice(&msg);
        }
        (Self { spake, outbound }, msg)
    }

    /// Our outbound message (the one [`Pake::start`] returned).
    #[must_use]
    pub fn outbound(&self) -> &[u8] {
        &self.outbound
    }

    /// Finishes with the peer's message: the 32-byte session key K. Rejects our own message
    /// reflected back, and malformed messages.
    pub fn finish(self, peer_msg: &[u8]) -> Result<[u8; 32], CryptoError> {
        if peer_msg == self.outbound {
            return Err(CryptoError::PakeReflected);
        }
        let key = self
            .spake
            .finish(peer_msg)
            .map_err(|e| CryptoError::PakeInvalid(e.to_string()))?;
        <[u8; 32]>::try_from(key.as_slice())
            .map_err(|_| CryptoError::PakeInvalid(format!("key of {} bytes", key.len())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k() -> Vec<u8> {
        (0u8..32).collect()
    }

    fn h(bytes: &[u8]) -> String {
        hex::encode(bytes)
    }

    /// An RNG that yields the same byte forever: scalar = that byte ×64, reduced mod L.
    struct ConstRng(u8);

    impl RngCore for ConstRng {
        fn next_u32(&mut self) -> u32 {
            u32::from_le_bytes([self.0; 4])
        }
        fn next_u64(&mut self) -> u64 {
            u64::from_le_bytes([self.0; 8])
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            dest.fill(self.0);
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            dest.fill(self.0);
            Ok(())
        }
    }

    impl CryptoRng for ConstRng {}

    #[test]
    fn verifier_vector() {
        assert_eq!(
            h(&verifier(&k())),
            "116c6e41d0faf2886a5b488079748585db2c4d6d151cca6c580055e1bd176459"
        );
    }

    #[test]
    fn phase_key_vectors() {
        assert_eq!(
            h(&phase_key(&k(), "aaaaaaaaaa", "version")),
            "db65b44c89ebb7f29f964098157cccd4de30e72b26b91fa671f9dfc5d7314c99"
        );
        assert_eq!(
            h(&phase_key(&k(), "aaaaaaaaaa", "0")),
            "4ed9b57892dc7f10725f2433e9cbbf17356b708759de280ecd9fb7b5283803e8"
        );
    }

    #[test]
    fn transit_vectors() {
        let tk = transit_key(&k());
        assert_eq!(
            h(&tk),
            "9329a646acaba7172c557c7971191ec6a1e287f84abe58c60dce2659c44c2925"
        );
        assert_eq!(
            transit_sender_handshake(&tk),
            "transit sender 6fa5ad1bb11461d5165ff989e5ce9bf1c2d464385caf06870527e62fc0643f4c ready\n\n"
        );
        assert_eq!(
            transit_receiver_handshake(&tk),
            "transit receiver 0b5d03da4672ec8428bd2485e126faf13ef3ffb278196ddc2f95d96d3d82c1fd ready\n\n"
        );
        assert_eq!(
            h(&transit_relay_token(&tk)),
            "ecd85f320731169f5768239a248b8b0f3e7834f1c05937a5939b13d6bfa933e1"
        );
        let line = transit_relay_handshake(&tk, "0123456789abcdef");
        assert_eq!(
            line,
            "please relay ecd85f320731169f5768239a248b8b0f3e7834f1c05937a5939b13d6bfa933e1 \
             for side 0123456789abcdef\n"
        );
        assert_eq!(line.len(), 104);
        assert_eq!(
            h(&transit_sender_record_key(&tk)),
            "4860c8f20d819f7caff59f3e9c6c90c7d70405c6e1247fc6eebb6686768b0d75"
        );
        assert_eq!(
            h(&transit_receiver_record_key(&tk)),
            "31b1d3d847b354590e5db2d5f1fa0c018f175e569925258ecaeb456b3ce7de39"
        );
    }

    #[test]
    fn transit_key_ignores_appid() {
        // The purpose is a constant, not derived from an appid.
        assert_eq!(transit_key(&k()), derive_key32(&k(), TRANSIT_KEY_PURPOSE));
    }

    #[test]
    fn dilation_vector() {
        assert_eq!(
            h(&dilation_key(&k())),
            "982be0f500b3f356de6d205123e12da73b04de97d7bf326f2752e4f7cff6d070"
        );
    }

    #[test]
    fn derive_key_lengths() {
        assert_eq!(
            derive_key(&k(), b"x", 32),
            derive_key32(&k(), b"x").to_vec()
        );
        let long = derive_key(&k(), b"x", 64);
        assert_eq!(long.len(), 64);
        assert_eq!(&long[..32], &derive_key32(&k(), b"x"));
        assert_eq!(derive_key(&k(), b"x", 0), Vec::<u8>::new());
        assert_eq!(derive_key(&k(), b"x", 1_000_000).len(), 255 * 32);
    }

    #[test]
    fn secretbox_vector() {
        let sealed = secretbox_seal(&[0; 32], &[0; 24], b"");
        assert_eq!(
            h(&sealed),
            format!("{}5c8636d9998d194d605ac3ba3cff1512", "00".repeat(24))
        );
        assert_eq!(secretbox_open(&[0; 32], &sealed), Ok(vec![]));
    }

    #[test]
    fn secretbox_round_trip_and_errors() {
        let key = [7u8; 32];
        let sealed = secretbox_seal(&key, &[9; 24], b"hello");
        assert_eq!(sealed.len(), 24 + 16 + 5);
        assert_eq!(&sealed[..24], &[9; 24]);
        assert_eq!(secretbox_open(&key, &sealed).as_deref(), Ok(&b"hello"[..]));
        assert_eq!(
            secretbox_open(&[8; 32], &sealed),
            Err(CryptoError::SecretBoxAuth)
        );
        let mut tampered = sealed.clone();
        tampered[30] ^= 1;
        assert_eq!(
            secretbox_open(&key, &tampered),
            Err(CryptoError::SecretBoxAuth)
        );
        for len in 0..40 {
            assert_eq!(
                secretbox_open(&key, &sealed[..len]),
                Err(CryptoError::SecretBoxTooShort { len })
            );
        }
    }

    fn backends(key: &[u8; 32]) -> Vec<SecretBox> {
        let fast = SecretBox::with_backend(key, SecretBoxBackend::Libsodium)
            .expect("libsodium initialises here");
        let pure =
            SecretBox::with_backend(key, SecretBoxBackend::RustCrypto).expect("always available");
        assert_eq!(SecretBox::new(key).backend(), SecretBoxBackend::Libsodium);
        vec![fast, pure]
    }

    #[test]
    fn secretbox_backends_match_vector() {
        for sb in backends(&[0; 32]) {
            let mut buf = [];
            let tag = sb.seal_in_place(&[0; 24], &mut buf);
            assert_eq!(h(&tag), "5c8636d9998d194d605ac3ba3cff1512", "{sb:?}");
            assert_eq!(sb.open_in_place(&[0; 24], &tag, &mut buf), Ok(()));
        }
    }

    #[test]
    fn secretbox_backends_agree_with_each_other_and_seal() {
        let key = [0x42u8; 32];
        let [fast, pure] = <[SecretBox; 2]>::try_from(backends(&key)).expect("two backends");
        for len in [0usize, 1, 15, 16, 17, 63, 64, 65, 1000, 16384, 100_000] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let mut nonce = [0u8; 24];
            nonce[23] = len as u8;
            nonce[0] = 9;
            let mut a = plain.clone();
            let mut b = plain.clone();
            let tag_a = fast.seal_in_place(&nonce, &mut a);
            let tag_b = pure.seal_in_place(&nonce, &mut b);
            assert_eq!((tag_a, &a), (tag_b, &b), "len {len}");
            // Same bytes as the combined-mode `secretbox_seal`.
            let combined = secretbox_seal(&key, &nonce, &plain);
            assert_eq!(&combined[24..40], &tag_a);
            assert_eq!(&combined[40..], &a[..]);
            // Each opens the other's output; tampering is caught by both.
            let mut open_a = b.clone();
            fast.open_in_place(&nonce, &tag_b, &mut open_a)
                .expect("authentic");
            assert_eq!(open_a, plain);
            let mut open_b = a.clone();
            pure.open_in_place(&nonce, &tag_a, &mut open_b)
                .expect("authentic");
            assert_eq!(open_b, plain);
            let mut bad_tag = tag_a;
            bad_tag[0] ^= 1;
            for sb in [&fast, &pure] {
                let mut c = a.clone();
                assert_eq!(
                    sb.open_in_place(&nonce, &bad_tag, &mut c),
                    Err(CryptoError::SecretBoxAuth)
                );
                if len > 0 {
                    let mut c = a.clone();
                    c[len / 2] ^= 0x80;
                    assert_eq!(
                        sb.open_in_place(&nonce, &tag_a, &mut c),
                        Err(CryptoError::SecretBoxAuth)
                    );
                }
            }
        }
    }

    const CODE: &str = "4-purple-sausages";
    const APPID: &str = "lothar.com/wormhole/text-or-file-xfer";

    #[test]
    fn spake2_vector() {
        let (a, msg_a) = Pake::start(CODE, APPID, &mut ConstRng(1));
        let (b, msg_b) = Pake::start(CODE, APPID, &mut ConstRng(2));
        assert_eq!(
            h(&msg_a),
            "536a928cea2838b2972aa5e5475694d119e31603ca3d91c2b9861e9a0dd97cb531"
        );
        assert_eq!(
            h(&msg_b),
            "5353d94497672d21dc7d7be95f45ffc27c161e66407d6dafaf037bd9bf0f64dde0"
        );
        assert_eq!(a.outbound(), &msg_a[..]);
        let ka = a.finish(&msg_b).expect("valid peer message");
        let kb = b.finish(&msg_a).expect("valid peer message");
        assert_eq!(
            h(&ka),
            "83edd9cc7706af51037babba0b58772809c6ec6fbbe0d7b7eddee9fa9575b011"
        );
        assert_eq!(ka, kb);
    }

    #[test]
    fn spake2_code_is_nfc_normalised() {
        // "é" precomposed (NFC) and decomposed (NFD) give the same message.
        let (_, m1) = Pake::start("4-caf\u{e9}", APPID, &mut ConstRng(1));
        let (_, m2) = Pake::start("4-cafe\u{301}", APPID, &mut ConstRng(1));
        assert_eq!(m1, m2);
        assert_eq!(code_password("4-cafe\u{301}"), "4-caf\u{e9}".as_bytes());
    }

    #[test]
    fn spake2_wrong_code_gives_different_keys() {
        let (a, msg_a) = Pake::start(CODE, APPID, &mut ConstRng(1));
        let (b, msg_b) = Pake::start("4-purple-sausage", APPID, &mut ConstRng(2));
        let ka = a.finish(&msg_b).expect("a valid point");
        let kb = b.finish(&msg_a).expect("a valid point");
        assert_ne!(ka, kb);
    }

    #[test]
    fn spake2_rejects_reflection_and_garbage() {
        let (a, msg_a) = Pake::start(CODE, APPID, &mut ConstRng(1));
        assert_eq!(a.finish(&msg_a), Err(CryptoError::PakeReflected));
        let (a, _) = Pake::start(CODE, APPID, &mut ConstRng(1));
        assert!(matches!(a.finish(b""), Err(CryptoError::PakeInvalid(_))));
        let (a, _) = Pake::start(CODE, APPID, &mut ConstRng(1));
        let mut bad_side = vec![0x41];
        bad_side.extend_from_slice(&[0; 32]);
        assert!(matches!(
            a.finish(&bad_side),
            Err(CryptoError::PakeInvalid(_))
        ));
        let (a, _) = Pake::start(CODE, APPID, &mut ConstRng(1));
        // y = 2 is not on the curve: decompression fails.
        let mut not_a_point = vec![0x53, 2];
        not_a_point.extend_from_slice(&[0; 31]);
        assert!(matches!(
            a.finish(&not_a_point),
            Err(CryptoError::PakeInvalid(_))
        ));
    }
}
