//! Cryptography of the Wormhole protocol: SPAKE2, the HKDF key schedule, SecretBox.
