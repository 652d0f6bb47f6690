//! Test payloads and their digests: deterministic pseudo-random bytes ([`Noise`], [`noise`]),
//! the same in every run, and [`sha256`] by the `sha256sum` command (no hashing crate here).

use std::io::Write;
use std::process::{Command, Stdio};

/// An endless deterministic pseudo-random byte stream (xorshift64, fixed seed): every `Noise`
/// yields the same bytes, so a test can name what it sent without keeping it.
#[derive(Clone, Debug)]
pub struct Noise {
    state: u64,
}

impl Default for Noise {
    fn default() -> Self {
        Self {
            state: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

impl Noise {
    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for byte in buf {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            // Truncation intended: one byte of the state.
            *byte = (self.state >> 24) as u8;
        }
    }
}

/// The first `len` bytes of [`Noise`].
pub fn noise(len: usize) -> Vec<u8> {
    let mut data = vec![0; len];
    Noise::default().fill(&mut data);
    data
}

/// `sha256sum` of `data`, as lowercase hex.
pub fn sha256(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    let mut stdin = child.stdin.take().expect("a stdin pipe");
    let owned = data.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&owned));
    let output = child.wait_with_output().expect("sha256sum output");
    feeder
        .join()
        .expect("the feeder thread")
        .expect("feed sha256sum");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("a hash")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_one_stream_whatever_the_chunks() {
        let whole = noise(1000);
        let mut stream = Noise::default();
        let mut parts = vec![0; 1000];
        let (a, b) = parts.split_at_mut(333);
        stream.fill(a);
        stream.fill(b);
        assert_eq!(whole, parts);
        assert_ne!(whole[..500], whole[500..]);
    }

    #[test]
    fn sha256_of_a_known_input() {
        assert_eq!(
            sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
