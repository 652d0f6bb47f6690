//! The blocking record halves of an established Transit connection, for worker threads.
//!
//! [`RecordWriter`] seals each record with the pure [`RecordSealer`] into one reused buffer and
//! writes it out whole (one `write_all` per record: nothing lingers in a buffer, so a sender
//! that then waits for the receiver's ack cannot deadlock). [`RecordReader`] reads through a
//! large [`BufReader`]: the length prefix, checked by [`RecordOpener::parse_length`] before any
//! allocation, then nonce and tag, then the ciphertext straight into the `Vec` it returns,
//! decrypted in place.

use std::io::{self, BufReader, Chain, Cursor, Read, Write};
use std::net::TcpStream;

use wormhole_protocol::transit::record::{
    RecordError, RecordOpener, RecordSealer, LENGTH_LEN, RECORD_OVERHEAD,
};
use wormhole_protocol::transit::Role;

/// Read buffer of the receiving half.
const READ_BUFFER: usize = 1 << 20;

fn invalid(e: RecordError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Sends encrypted records (length prefix, SecretBox with a counter nonce).
pub(crate) struct RecordWriter {
    stream: TcpStream,
    sealer: RecordSealer,
    buf: Vec<u8>,
}

impl RecordWriter {
    pub(super) fn new(stream: TcpStream, role: Role, transit_key: &[u8; 32]) -> Self {
        Self {
            stream,
            sealer: RecordSealer::new(role, transit_key),
            buf: Vec::new(),
        }
    }

    /// Encrypts and sends one record (blocking). The record is fully written to the socket
    /// when this returns. Records up to 64 MiB; 256 KiB–1 MiB is fastest.
    pub(crate) fn send_record(&mut self, plaintext: &[u8]) -> io::Result<()> {
        self.buf.clear();
        self.sealer
            .seal_into(plaintext, &mut self.buf)
            .map_err(invalid)?;
        self.stream.write_all(&self.buf)
    }

    /// Records sent so far.
    #[cfg(test)]
    pub(crate) fn records_sent(&self) -> u64 {
        self.sealer.count()
    }
}

/// Receives and decrypts records; a bad nonce, a bad MAC or an oversized length is an error.
pub(crate) struct RecordReader {
    input: BufReader<Chain<Cursor<Vec<u8>>, TcpStream>>,
    opener: RecordOpener,
}

impl RecordReader {
    pub(super) fn new(
        stream: TcpStream,
        leftover: Vec<u8>,
        role: Role,
        transit_key: &[u8; 32],
    ) -> Self {
        Self {
            input: BufReader::with_capacity(READ_BUFFER, Cursor::new(leftover).chain(stream)),
            opener: RecordOpener::new(role, transit_key),
        }
    }

    /// Receives one record (blocking); `Ok(None)` at a clean end of stream. Errors of kind
    /// `InvalidData` wrap a [`RecordError`] (bad nonce, bad MAC, bad length); an end of stream
    /// inside a record is `UnexpectedEof`.
    pub(crate) fn receive_record(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut prefix = [0u8; LENGTH_LEN];
        if !read_exact_or_eof(&mut self.input, &mut prefix)? {
            return Ok(None);
        }
        let len = RecordOpener::parse_length(prefix).map_err(invalid)?;
        let mut head = [0u8; RECORD_OVERHEAD];
        self.input.read_exact(&mut head)?;
        // Read into the spare capacity (no zero-filling); `len` was bounded by parse_length.
        let ct_len = len - RECORD_OVERHEAD;
        let mut body = Vec::with_capacity(ct_len);
        (&mut self.input)
            .take(ct_len as u64)
            .read_to_end(&mut body)?;
        if body.len() != ct_len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "end of stream inside a record",
            ));
        }
        self.opener
            .open_in_place(&head, &mut body)
            .map_err(invalid)?;
        Ok(Some(body))
    }

    /// Records received so far.
    #[cfg(test)]
    pub(crate) fn records_received(&self) -> u64 {
        self.opener.count()
    }
}

/// Fills `buf`; `Ok(false)` on end of stream before its first byte, `UnexpectedEof` after.
fn read_exact_or_eof(input: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "end of stream inside a record's length prefix",
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
