//! The file side of file transfer v1: building what is offered, deciding where an offer goes,
//! and the bulk data path on worker threads.
//!
//! Nothing here runs on the arbiter except [`decide_destination`] and [`free_space`] (a few
//! `stat` calls). Building a directory's zip, reading, hashing, sending, receiving, writing and
//! unpacking all run on plain threads, which report back with [`DataNews`] through a
//! `Recipient`, so a large transfer never delays the mailbox or control actors. Each direction
//! uses two threads joined by a bounded channel (file IO and SHA-256 on one, Transit records on
//! the other), so memory stays flat at a few records and both cores work. Record buffers cycle
//! between the two threads through a return channel instead of being allocated (and zeroed) per
//! record: the sender reads the file straight into a frame with room for the record header and
//! seals it in place; the receiver decrypts in the buffer the ciphertext was read into.
//!
//! Receiving is careful: data goes to a temporary file in the target folder (a directory's zip
//! too, then it is unpacked into a temporary folder there), and is renamed to the final name only
//! once every byte arrived and every zip entry was checked. On any failure the temporary files
//! are removed and the final name is untouched. Mirrors `cli/cmd_send.py` and `cmd_receive.py`.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use actix::{Message, Recipient};
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;
use wormhole_protocol::control::FailureKind;
use wormhole_protocol::transfer::layout::{self, DirectoryCounts};
use wormhole_protocol::transfer::{
    ack_record, DirectoryOffer, FileOffer, IncomingOffer, Offer, DIRECTORY_MODE_ZIPFILE_DEFLATED,
};
use wormhole_protocol::transit::record::FRAME_HEADER_LEN;

use crate::part_files::{PartJournal, PartRecord, PART_PREFIX, PART_SUFFIX};
use crate::transit::TransitConnection;

/// Plaintext bytes per Transit record we send (the reference sends 16 KiB; any size is valid).
const RECORD_SIZE: usize = 256 * 1024;
/// Records in flight between the two threads of one direction.
const CHANNEL_DEPTH: usize = 8;
/// Record buffers of one direction: those in the channel, plus one being filled and one being
/// used on the other side.
const POOL: usize = CHANNEL_DEPTH + 2;
/// A received record with a plaintext above this (1 MiB; we send 256 KiB, the reference 16 KiB)
/// is read into a fresh buffer once every other buffer is back, and its buffer is not kept: a
/// peer sending 64 MiB records makes the receiver hold one or two of them, not [`POOL`].
const LARGE_RECORD: usize = 1 << 20;
/// At most this many progress reports a second.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// What a sender sends over Transit.
#[derive(Debug)]
pub(crate) enum Source {
    /// A regular file, read in place.
    File {
        /// It, open for reading.
        file: File,
    },
    /// A directory, zipped to a temporary file (removed when dropped).
    Zip {
        /// The zip.
        file: NamedTempFile,
    },
}

/// An offer ready to send: what the peer is told, and the bytes that follow it.
#[derive(Debug)]
pub(crate) struct BuiltOffer {
    /// The offer message.
    pub(crate) offer: Offer,
    /// The bytes.
    pub(crate) source: Source,
    /// Their number.
    pub(crate) total: u64,
}

/// Stats `path` and builds the offer (blocking: a directory is zipped first). Anything that
/// cannot be sent (not a file or folder, unreadable, a folder that cannot be zipped) is an error
/// here, before any wormhole exists.
pub(crate) fn build_offer(path: &Path) -> Result<BuiltOffer, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("Cannot send: {} has no file name", path.display()))?;
    let meta = fs::metadata(path).map_err(|e| {
        format!(
            "Cannot send: no file/directory named '{}' ({e})",
            path.display()
        )
    })?;
    if meta.is_file() {
        // Opened now: an unreadable file is refused before a code exists, and the bytes sent
        // are those of the file that was offered.
        let file = File::open(path)
            .map_err(|e| format!("Cannot send: cannot read '{}' ({e})", path.display()))?;
        let offer = Offer::File(FileOffer {
            filename: name,
            filesize: meta.len(),
        });
        return Ok(BuiltOffer {
            offer,
            source: Source::File { file },
            total: meta.len(),
        });
    }
    if !meta.is_dir() {
        return Err(format!(
            "Cannot send: '{}' is neither file nor directory",
            path.display()
        ));
    }
    let (file, counts) = zip_directory(path).map_err(|e| {
        format!(
            "Cannot send '{}': building the zipfile: {e}",
            path.display()
        )
    })?;
    let zipsize = file.as_file().metadata().map_err(|e| e.to_string())?.len();
    let offer = Offer::Directory(DirectoryOffer {
        mode: DIRECTORY_MODE_ZIPFILE_DEFLATED.to_owned(),
        dirname: name,
        zipsize,
        numbytes: counts.numbytes,
        numfiles: counts.numfiles,
    });
    Ok(BuiltOffer {
        offer,
        source: Source::Zip { file },
        total: zipsize,
    })
}

/// Zips `root` as the reference does: STORED entries named relative to `root` (no top folder),
/// Unix modes in `external_attr`, symlinks followed, empty folders as `name/`.
fn zip_directory(root: &Path) -> io::Result<(NamedTempFile, DirectoryCounts)> {
    let file = tempfile::Builder::new()
        .prefix("wormholed-send-")
        .suffix(".zip")
        .tempfile()?;
    let mut zip = zip::ZipWriter::new(io::BufWriter::new(file.reopen()?));
    let mut counts = DirectoryCounts::default();
    let mut stack: Vec<(PathBuf, Vec<String>)> = vec![(root.to_owned(), Vec::new())];
    while let Some((dir, components)) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(fs::DirEntry::file_name);
        let refs: Vec<&str> = components.iter().map(String::as_str).collect();
        if entries.is_empty() {
            if let Some(name) = layout::entry_name(&refs, true) {
                let mode = fs::metadata(&dir)?.mode();
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored)
                    .unix_permissions(mode & 0o7777);
                zip.add_directory(name, options).map_err(io::Error::other)?;
            }
        }
        for entry in entries.into_iter().rev() {
            let path = entry.path();
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let meta = fs::metadata(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            let mut child = components.clone();
            child.push(file_name);
            if meta.is_dir() {
                stack.push((path, child));
            } else if meta.is_file() {
                let refs: Vec<&str> = child.iter().map(String::as_str).collect();
                let Some(name) = layout::entry_name(&refs, false) else {
                    continue;
                };
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored)
                    .unix_permissions(meta.mode() & 0o7777)
                    .large_file(meta.len() >= u64::from(u32::MAX));
                zip.start_file(name, options).map_err(io::Error::other)?;
                let mut source = File::open(&path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                io::copy(&mut source, &mut zip)?;
                counts.add_file(meta.len());
            }
        }
    }
    zip.finish().map_err(io::Error::other)?.flush()?;
    Ok((file, counts))
}

/// Where an accepted offer will be written.
#[derive(Debug, Clone)]
pub(crate) struct Destination {
    /// The final absolute path.
    pub(crate) path: PathBuf,
    /// An existing file at `path` may be replaced (it was named with `--output-file`).
    pub(crate) replace: bool,
}

/// Decides where `offer` goes, following the reference (`_decide_destname`): `folder/name`, or
/// `output`, or `output/name` when `output` is an existing folder. Refuses to overwrite anything
/// not named by `output`, and never replaces a folder.
pub(crate) fn decide_destination(
    folder: &Path,
    output: Option<&Path>,
    offer: &IncomingOffer,
) -> Result<Destination, String> {
    let name = offer.name();
    let (path, replace) = match output {
        Some(out) if out.is_dir() => (out.join(name), true),
        Some(out) => (out.to_owned(), true),
        None => (folder.join(name), false),
    };
    if let Ok(meta) = fs::symlink_metadata(&path) {
        if !replace {
            return Err(format!("refusing to overwrite existing '{name}'"));
        }
        if meta.is_dir() {
            return Err(format!(
                "Not deleting existing directory: {}",
                path.display()
            ));
        }
    }
    Ok(Destination { path, replace })
}

/// Free bytes for an unprivileged user in the file system holding `path`'s folder.
pub(crate) fn free_space(path: &Path) -> Option<u64> {
    let folder = path.parent()?;
    let stat = nix::sys::statvfs::statvfs(folder).ok()?;
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    Some(u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size())))
}

/// What the data path reports to the app.
#[derive(Debug)]
pub(crate) enum DataEvent {
    /// Bytes moved so far.
    Progress {
        /// So far.
        done: u64,
        /// In all.
        total: u64,
    },
    /// Sender: every byte went out and the receiver's ack record came back.
    Sent {
        /// The ack record.
        record: Vec<u8>,
        /// SHA-256 of what we sent.
        sha256: [u8; 32],
    },
    /// Receiver: the data is in place under its final name and the ack was sent.
    Received {
        /// The final path.
        path: PathBuf,
    },
    /// The data path failed; temporary files are gone.
    Failed {
        /// How to report it.
        kind: FailureKind,
        /// What a person reads.
        message: String,
        /// The peer broke the connection off (reset, closed early): it may say why over the
        /// mailbox, and its reason is the better one to show.
        peer_hung_up: bool,
    },
}

/// A [`DataEvent`] for the app actor.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct DataNews(pub(crate) DataEvent);

/// Rate-limited progress reports.
struct Progress {
    to: Recipient<DataNews>,
    total: u64,
    done: u64,
    last: Option<Instant>,
}

impl Progress {
    fn new(to: Recipient<DataNews>, total: u64) -> Self {
        Self {
            to,
            total,
            done: 0,
            last: None,
        }
    }

    fn add(&mut self, bytes: usize) {
        self.done += bytes as u64;
        let now = Instant::now();
        let due = self
            .last
            .is_none_or(|last| now.duration_since(last) >= PROGRESS_INTERVAL);
        if due || self.done == self.total {
            self.last = Some(now);
            self.to.do_send(DataNews(DataEvent::Progress {
                done: self.done,
                total: self.total,
            }));
        }
    }
}

/// Stops a transfer's data path at once. The flag is checked between records; the socket is
/// shut down, so that a thread blocked reading from or writing to a peer that stalled wakes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancel(Arc<CancelState>);

#[derive(Debug, Default)]
struct CancelState {
    cancelled: AtomicBool,
    /// A handle on the data path's socket while it runs.
    socket: Mutex<Option<TcpStream>>,
}

impl Cancel {
    /// Stops the data path (now, or as soon as it starts).
    pub(crate) fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::Relaxed);
        if let Some(socket) = self.socket().take() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Relaxed)
    }

    fn socket(&self) -> std::sync::MutexGuard<'_, Option<TcpStream>> {
        self.0.socket.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Watches the data path's socket until [`Cancel::release`].
    fn watch(&self, socket: TcpStream) {
        let mut held = self.socket();
        if self.is_cancelled() {
            let _ = socket.shutdown(Shutdown::Both);
        } else {
            *held = Some(socket);
        }
    }

    /// The data path has ended: its socket handle is closed.
    fn release(&self) {
        self.socket().take();
    }
}

/// Runs one direction's data path over `connection` on a worker thread named `name`: the
/// socket gets the idle timeout both ways and is watched by the cancel handle; the outcome is
/// reported once every descriptor, temporary file and helper thread of the transfer is gone.
fn spawn_data_path(
    name: &str,
    connection: TransitConnection,
    path: DataPath,
    data_path: impl FnOnce(TransitConnection, &Recipient<DataNews>, &Cancel) -> Result<DataEvent, DataError>
        + Send
        + 'static,
) {
    let to = path.to.clone();
    let spawned = thread::Builder::new().name(name.into()).spawn(move || {
        let DataPath { idle, cancel, to } = path;
        run_data_path(connection, idle, &cancel, &to, |connection| {
            data_path(connection, &to, &cancel)
        });
    });
    if let Err(e) = spawned {
        report(&to, Err(DataError::io("starting a transfer thread", &e)));
    }
}

/// [`spawn_data_path`]'s body, on the worker thread.
fn run_data_path(
    connection: TransitConnection,
    idle: Duration,
    cancel: &Cancel,
    to: &Recipient<DataNews>,
    data_path: impl FnOnce(TransitConnection) -> Result<DataEvent, DataError>,
) {
    let watched = connection.socket().try_clone().and_then(|socket| {
        socket.set_read_timeout(Some(idle))?;
        socket.set_write_timeout(Some(idle))?;
        Ok(socket)
    });
    let result = match watched {
        Ok(socket) => {
            cancel.watch(socket);
            data_path(connection)
        }
        Err(e) => Err(DataError::io("transit", &e)),
    };
    cancel.release();
    let result = result.map_err(|e| {
        if cancel.is_cancelled() {
            DataError::transfer("cancelled")
        } else if e.stalled {
            DataError::transfer(format!(
                "the peer stalled: nothing moved for {} s ({}; the limit is transit.idle_timeout)",
                idle.as_secs(),
                e.message
            ))
        } else {
            e
        }
    });
    report(to, result);
}

/// A failure of the data path.
struct DataError {
    kind: FailureKind,
    message: String,
    /// The socket's idle timeout ran out.
    stalled: bool,
    /// The peer broke the Transit connection off.
    peer_hung_up: bool,
}

impl DataError {
    fn transfer(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Transfer,
            message: message.into(),
            stalled: false,
            peer_hung_up: false,
        }
    }

    /// An error of the Transit socket: the peer hung up if it was reset or closed.
    fn net(what: &str, e: &io::Error) -> Self {
        Self {
            peer_hung_up: matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionAborted
            ),
            ..Self::io(what, e)
        }
    }

    /// The peer closed the Transit connection before the transfer was complete.
    fn hung_up(message: impl Into<String>) -> Self {
        Self {
            peer_hung_up: true,
            ..Self::transfer(message)
        }
    }

    fn io(what: &str, e: &io::Error) -> Self {
        let kind = if e.kind() == io::ErrorKind::StorageFull {
            FailureKind::DiskFull
        } else {
            FailureKind::Transfer
        };
        Self {
            kind,
            message: format!("{what}: {e}"),
            stalled: matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            peer_hung_up: false,
        }
    }
}

fn report(to: &Recipient<DataNews>, result: Result<DataEvent, DataError>) {
    let event = result.unwrap_or_else(|e| DataEvent::Failed {
        kind: e.kind,
        message: e.message,
        peer_hung_up: e.peer_hung_up,
    });
    to.do_send(DataNews(event));
}

/// How a data path runs: its idle timeout, its cancel handle, where it reports.
pub(crate) struct DataPath {
    /// No byte moving either way for this long fails the transfer.
    pub(crate) idle: Duration,
    /// Stops it.
    pub(crate) cancel: Cancel,
    /// Progress and the outcome.
    pub(crate) to: Recipient<DataNews>,
}

/// Sends `source` (`total` bytes) over `connection` on worker threads, then waits for the ack.
pub(crate) fn spawn_sender(
    connection: TransitConnection,
    source: Source,
    total: u64,
    path: DataPath,
) {
    spawn_data_path(
        "wormholed-send",
        connection,
        path,
        move |connection, to, cancel| send_data(connection, &source, total, to, cancel),
    );
}

fn send_data(
    connection: TransitConnection,
    source: &Source,
    total: u64,
    to: &Recipient<DataNews>,
    cancel: &Cancel,
) -> Result<DataEvent, DataError> {
    let (mut writer, mut reader) = connection
        .split()
        .map_err(|e| DataError::io("transit", &e))?;
    let file = match source {
        Source::File { file } => file.try_clone(),
        Source::Zip { file } => file.reopen(),
    }
    .map_err(|e| DataError::io("opening the file to send", &e))?;
    // Frames: FRAME_HEADER_LEN bytes of room, then the plaintext, sealed in place.
    let (frames, incoming) = sync_channel::<Vec<u8>>(CHANNEL_DEPTH);
    let (recycle, returned) = sync_channel::<Vec<u8>>(POOL);
    // Reads and hashes; the network side encrypts and sends.
    let hasher = thread::Builder::new()
        .name("wormholed-read".into())
        .spawn(move || -> Result<[u8; 32], DataError> {
            let mut file = file;
            let mut hash = Sha256::new();
            let mut left = total;
            let mut made = 0;
            while left > 0 {
                let want = usize::try_from(left)
                    .unwrap_or(RECORD_SIZE)
                    .min(RECORD_SIZE);
                let Some(mut frame) = pooled(&returned, &mut made) else {
                    break;
                };
                // Zeroes only room the buffer never had (the first use, a smaller last record).
                frame.resize(FRAME_HEADER_LEN + want, 0);
                let plaintext = &mut frame[FRAME_HEADER_LEN..];
                file.read_exact(plaintext)
                    .map_err(|e| DataError::io("reading the file to send", &e))?;
                hash.update(&*plaintext);
                left -= want as u64;
                if frames.send(frame).is_err() {
                    break;
                }
            }
            Ok(hash.finalize().into())
        })
        .map_err(|e| DataError::io("starting a reader thread", &e))?;
    let mut progress = Progress::new(to.clone(), total);
    let mut sent = Ok(());
    for mut frame in incoming.iter() {
        if cancel.is_cancelled() {
            sent = Err(DataError::transfer("cancelled"));
            break;
        }
        if let Err(e) = writer.send_frame(&mut frame) {
            sent = Err(DataError::net("sending over transit", &e));
            break;
        }
        progress.add(frame.len() - FRAME_HEADER_LEN);
        // Never full: at most POOL frames exist.
        let _ = recycle.try_send(frame);
    }
    drop(incoming);
    drop(recycle);
    let hashed = hasher
        .join()
        .map_err(|_| DataError::transfer("the reader thread panicked"))?;
    sent?;
    let sha256 = hashed?;
    if total == 0 {
        progress.add(0);
    }
    match reader.receive_record() {
        Ok(Some(record)) => Ok(DataEvent::Sent { record, sha256 }),
        Ok(None) => Err(DataError::hung_up(
            "the receiver hung up before confirming the transfer",
        )),
        Err(e) => Err(DataError::net(
            "waiting for the receiver's confirmation",
            &e,
        )),
    }
}

/// A buffer for the next record: one given back, else a new one while fewer than [`POOL`] were
/// made, else the next one given back. `None` once the other thread has ended.
fn pooled(returned: &Receiver<Vec<u8>>, made: &mut usize) -> Option<Vec<u8>> {
    if let Ok(buf) = returned.try_recv() {
        return Some(buf);
    }
    if *made < POOL {
        *made += 1;
        return Some(Vec::new());
    }
    returned.recv().ok()
}

/// Receives `offer`'s data over `connection` into `destination` on worker threads; its
/// temporary files are recorded in `journal` while they exist.
pub(crate) fn spawn_receiver(
    connection: TransitConnection,
    offer: IncomingOffer,
    destination: Destination,
    journal: PartJournal,
    path: DataPath,
) {
    spawn_data_path(
        "wormholed-receive",
        connection,
        path,
        move |connection, to, cancel| {
            let receiving = Receiving {
                offer: &offer,
                destination: &destination,
                journal: &journal,
            };
            receive_data(connection, &receiving, to, cancel)
        },
    );
}

/// What a receiver receives, and where.
struct Receiving<'a> {
    offer: &'a IncomingOffer,
    destination: &'a Destination,
    journal: &'a PartJournal,
}

fn receive_data(
    connection: TransitConnection,
    receiving: &Receiving<'_>,
    to: &Recipient<DataNews>,
    cancel: &Cancel,
) -> Result<DataEvent, DataError> {
    let Receiving {
        offer,
        destination,
        journal,
    } = *receiving;
    let total = offer.transfer_size();
    let folder = destination
        .path
        .parent()
        .ok_or_else(|| DataError::transfer("the destination has no parent folder"))?;
    let part = tempfile::Builder::new()
        .prefix(PART_PREFIX)
        .suffix(PART_SUFFIX)
        .tempfile_in(folder)
        .map_err(|e| DataError::io("creating the temporary file", &e))?;
    let part = Recorded::new(part, |part| journal.record(&absolute(part.path())));
    let (mut writer, mut reader) = connection
        .split()
        .map_err(|e| DataError::io("transit", &e))?;
    let out = part
        .value
        .reopen()
        .map_err(|e| DataError::io("opening the temporary file", &e))?;
    let (chunks, incoming) = sync_channel::<Vec<u8>>(CHANNEL_DEPTH);
    let (recycle, returned) = sync_channel::<Vec<u8>>(POOL);
    // Hashes and writes; the network side receives and decrypts.
    let disk = thread::Builder::new()
        .name("wormholed-write".into())
        .spawn(move || -> Result<[u8; 32], DataError> {
            // Records of RECORD_SIZE and more bypass the buffer.
            let mut out = io::BufWriter::with_capacity(RECORD_SIZE, out);
            let mut hash = Sha256::new();
            for chunk in incoming.iter() {
                hash.update(&chunk);
                out.write_all(&chunk)
                    .map_err(|e| DataError::io("writing the received data", &e))?;
                // Never full: at most POOL buffers are out. Given back with its length, so
                // that the next record of the same size is read into it without zero-filling.
                let _ = recycle.try_send(chunk);
            }
            out.flush()
                .map_err(|e| DataError::io("writing the received data", &e))?;
            Ok(hash.finalize().into())
        })
        .map_err(|e| DataError::io("starting a writer thread", &e))?;
    let mut progress = Progress::new(to.clone(), total);
    let mut received: u64 = 0;
    let mut net = Ok(());
    // Buffers handed to the writer thread and not yet given back.
    let mut out = 0usize;
    while received < total {
        if cancel.is_cancelled() {
            net = Err(DataError::transfer("cancelled"));
            break;
        }
        let len = match reader.next_record_len() {
            Ok(Some(len)) => len,
            Ok(None) => {
                net = Err(DataError::hung_up(format!(
                    "Connection dropped before full file received (got {received} bytes, \
                     wanted {total})"
                )));
                break;
            }
            Err(e) => {
                net = Err(DataError::net("receiving over transit", &e));
                break;
            }
        };
        if received + len as u64 > total {
            net = Err(DataError::transfer(
                "the sender sent more data than it offered",
            ));
            break;
        }
        let mut record = receive_buffer(&returned, &mut out, len);
        match reader.receive_record_into(&mut record) {
            Ok(true) => {}
            Ok(false) => {
                net = Err(DataError::hung_up("the transfer stopped early"));
                break;
            }
            Err(e) => {
                net = Err(DataError::net("receiving over transit", &e));
                break;
            }
        }
        received += len as u64;
        if chunks.send(record).is_err() {
            break;
        }
        out += 1;
        progress.add(len);
    }
    drop(chunks);
    drop(returned);
    let written = disk
        .join()
        .map_err(|_| DataError::transfer("the writer thread panicked"))?;
    net?;
    let sha256 = written?;
    if received < total {
        return Err(DataError::transfer("the transfer stopped early"));
    }
    if cancel.is_cancelled() {
        return Err(DataError::transfer("cancelled"));
    }
    if total == 0 {
        progress.add(0);
    }
    match offer {
        IncomingOffer::File { .. } => place_file(part.value, destination)?,
        IncomingOffer::Directory { numbytes, .. } => {
            unpack_directory(part.value, destination, *numbytes, journal)?;
        }
    }
    writer
        .send_record(&ack_record(&sha256))
        .map_err(|e| DataError::io("sending the confirmation", &e))?;
    Ok(DataEvent::Received {
        path: destination.path.clone(),
    })
}

/// A temporary file or folder with its journal record: on drop the temporary goes first, then
/// the record, so that no moment leaves a temporary unrecorded. Moving `value` out (to rename
/// it into place) keeps the record until the rest is dropped.
struct Recorded<T> {
    value: T,
    _record: PartRecord,
}

impl<T> Recorded<T> {
    fn new(value: T, record: impl FnOnce(&T) -> PartRecord) -> Self {
        let record = record(&value);
        Self {
            value,
            _record: record,
        }
    }
}

/// `path` made absolute against the working directory (a journal names absolute paths).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// A buffer for a received record of `len` plaintext bytes (see [`LARGE_RECORD`]): a large
/// record waits until every buffer is back, so that at most one large buffer exists.
fn receive_buffer(returned: &Receiver<Vec<u8>>, out: &mut usize, len: usize) -> Vec<u8> {
    let keep = |buf: Vec<u8>| (buf.capacity() <= LARGE_RECORD + FRAME_HEADER_LEN).then_some(buf);
    if len > LARGE_RECORD {
        while *out > 0 && returned.recv().is_ok() {
            *out -= 1;
        }
        return Vec::new();
    }
    if let Ok(buf) = returned.try_recv() {
        *out -= 1;
        return keep(buf).unwrap_or_default();
    }
    if *out < POOL - 1 {
        return Vec::new();
    }
    match returned.recv() {
        Ok(buf) => {
            *out -= 1;
            keep(buf).unwrap_or_default()
        }
        // The writer thread has ended; sending to it fails next.
        Err(_) => Vec::new(),
    }
}

/// Renames the complete temporary file to its final name.
fn place_file(part: NamedTempFile, destination: &Destination) -> Result<(), DataError> {
    let placed = if destination.replace {
        part.persist(&destination.path)
    } else {
        part.persist_noclobber(&destination.path)
    };
    let file = placed.map_err(|e| DataError::io("renaming into place", &e.error))?;
    let mode = 0o666 & !current_umask();
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| DataError::io("setting the file mode", &e))
}

/// The process umask, read without changing it (Linux `/proc/self/status`); 0o022 otherwise.
fn current_umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Umask:"))
                .and_then(|value| u32::from_str_radix(value.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// The first name that two central directory headers of the zip share, walking the headers from
/// `directory_start` to the end of the directory; `None` when every name is unique.
fn repeated_entry_name(
    zip: &mut (impl Read + io::Seek),
    directory_start: u64,
) -> io::Result<Option<String>> {
    zip.seek(io::SeekFrom::Start(directory_start))?;
    let mut names = std::collections::HashSet::new();
    let mut fixed = [0u8; layout::CENTRAL_HEADER_LEN];
    loop {
        match zip.read_exact(&mut fixed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let Some((name_len, rest_len)) = layout::central_header_lengths(&fixed) else {
            return Ok(None);
        };
        let mut name = vec![0u8; name_len];
        zip.read_exact(&mut name)?;
        zip.seek(io::SeekFrom::Current(rest_len as i64))?;
        if !names.insert(name.clone()) {
            return Ok(Some(String::from_utf8_lossy(&name).into_owned()));
        }
    }
}

/// Checks every entry of the received zip, unpacks it into a temporary folder beside the
/// destination, applies the modes, and renames the folder into place.
fn unpack_directory(
    part: NamedTempFile,
    destination: &Destination,
    numbytes: u64,
    journal: &PartJournal,
) -> Result<(), DataError> {
    let zip_err = |e: zip::result::ZipError| DataError::transfer(format!("bad zipfile: {e}"));
    let file = part
        .reopen()
        .map_err(|e| DataError::io("opening the received zipfile", &e))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(zip_err)?;
    // The zip crate keeps one entry per name: a second `dup.txt` would vanish unseen.
    let repeated = part
        .reopen()
        .and_then(|file| {
            repeated_entry_name(&mut BufReader::new(file), archive.central_directory_start())
        })
        .map_err(|e| DataError::io("reading the received zipfile", &e))?;
    if let Some(name) = repeated {
        return Err(DataError::transfer(
            layout::LayoutError::Duplicate(name).to_string(),
        ));
    }
    // Every entry is checked before anything is written.
    let mut entries = Vec::with_capacity(archive.len().min(1 << 16));
    let mut seen = std::collections::HashSet::new();
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(zip_err)?;
        let attr = entry.unix_mode().map_or(0, |mode| mode << 16);
        let checked = layout::check_entry(entry.name(), attr)
            .map_err(|e| DataError::transfer(e.to_string()))?;
        if !checked.is_dir && !seen.insert(checked.components.clone()) {
            return Err(DataError::transfer(
                layout::LayoutError::Duplicate(entry.name().to_owned()).to_string(),
            ));
        }
        entries.push((index, checked));
    }
    let folder = destination
        .path
        .parent()
        .ok_or_else(|| DataError::transfer("the destination has no parent folder"))?;
    let staging = tempfile::Builder::new()
        .prefix(PART_PREFIX)
        .suffix(PART_SUFFIX)
        .tempdir_in(folder)
        .map_err(|e| DataError::io("creating the temporary folder", &e))?;
    let staging = Recorded::new(staging, |staging| journal.record(&absolute(staging.path())));
    let mut budget = numbytes;
    let mut dir_modes = Vec::new();
    // Modes as the sender's files had them, cut by our umask as any file we create.
    let umask = current_umask();
    for (index, checked) in &entries {
        let target = checked
            .components
            .iter()
            .fold(staging.value.path().to_owned(), |path, part| {
                path.join(part)
            });
        if checked.is_dir {
            fs::create_dir_all(&target).map_err(|e| DataError::io("creating a folder", &e))?;
            if let Some(mode) = checked.mode {
                dir_modes.push((target, mode & !umask));
            }
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| DataError::io("creating a folder", &e))?;
        }
        let mut entry = archive.by_index(*index).map_err(zip_err)?;
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(|e| DataError::io("creating a received file", &e))?;
        let copied = io::copy(&mut (&mut entry).take(budget.saturating_add(1)), &mut out)
            .map_err(|e| DataError::io("unpacking the zipfile", &e))?;
        if copied > budget {
            return Err(DataError::transfer(
                "malicious zipfile: more data than the offer announced",
            ));
        }
        budget -= copied;
        if let Some(mode) = checked.mode {
            fs::set_permissions(&target, fs::Permissions::from_mode(mode & !umask))
                .map_err(|e| DataError::io("setting a file mode", &e))?;
        }
    }
    // Deepest first, so that a read-only folder does not block its children.
    dir_modes.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
    for (path, mode) in dir_modes {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|e| DataError::io("setting a folder mode", &e))?;
    }
    fs::set_permissions(
        staging.value.path(),
        fs::Permissions::from_mode(0o777 & !umask),
    )
    .map_err(|e| DataError::io("setting the folder mode", &e))?;
    if destination.replace && destination.path.is_file() {
        fs::remove_file(&destination.path)
            .map_err(|e| DataError::io("removing the file to overwrite", &e))?;
    }
    if destination.path.exists() {
        return Err(DataError::transfer(format!(
            "refusing to overwrite existing '{}'",
            destination.path.display()
        )));
    }
    let kept = staging.value.keep();
    fs::rename(&kept, &destination.path).map_err(|e| {
        let _ = fs::remove_dir_all(&kept);
        DataError::io("renaming into place", &e)
    })
}

#[cfg(test)]
mod tests {
    use std::io::Seek;

    use super::*;

    fn folder() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("file-transfer-test-")
            .tempdir()
            .expect("a temporary folder")
    }

    /// A journal in a folder of its own, outside the folders the tests list.
    fn journal() -> (tempfile::TempDir, PartJournal) {
        let dir = folder();
        let journal = PartJournal::new(dir.path().join("parts"));
        (dir, journal)
    }

    /// One zip entry for [`zip_of`]: name, Unix mode, content (`None`: a folder).
    type Entry<'a> = (&'a str, u32, Option<&'a [u8]>);

    /// A zip in a temporary file with these entries.
    fn zip_of(entries: &[Entry<'_>]) -> NamedTempFile {
        let mut file = NamedTempFile::new().expect("temp file");
        {
            let mut zip = zip::ZipWriter::new(file.as_file_mut());
            for (name, mode, content) in entries {
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored)
                    .unix_permissions(*mode);
                match content {
                    Some(target) if *mode == 0o120_777 => {
                        let target = String::from_utf8_lossy(target).into_owned();
                        zip.add_symlink(*name, target, options).expect("symlink");
                    }
                    Some(bytes) => {
                        zip.start_file(*name, options).expect("entry");
                        zip.write_all(bytes).expect("data");
                    }
                    None => zip.add_directory(*name, options).expect("dir"),
                }
            }
            zip.finish().expect("finish");
        }
        file.as_file_mut().rewind().expect("rewind");
        file
    }

    #[test]
    fn directory_offers_follow_the_reference_layout() {
        let dir = folder();
        let root = dir.path().join("top");
        fs::create_dir_all(root.join("sub/empty")).expect("mkdir");
        fs::write(root.join("a.txt"), b"abc").expect("write");
        fs::write(root.join("sub/run.sh"), b"#!/bin/sh\n").expect("write");
        fs::set_permissions(root.join("sub/run.sh"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let BuiltOffer {
            offer,
            source,
            total,
        } = build_offer(&root).expect("offer");
        let Offer::Directory(directory) = offer else {
            panic!("a directory offer")
        };
        assert_eq!(directory.dirname, "top");
        assert_eq!((directory.numfiles, directory.numbytes), (2, 13));
        let Source::Zip { file } = source else {
            panic!("a zip source")
        };
        assert_eq!(file.as_file().metadata().expect("stat").len(), total);
        assert_eq!(directory.zipsize, total);
        let mut archive = zip::ZipArchive::new(file.reopen().expect("open")).expect("zip");
        let mut seen = Vec::new();
        for index in 0..archive.len() {
            let entry = archive.by_index(index).expect("entry");
            assert_eq!(entry.compression(), zip::CompressionMethod::Stored);
            seen.push((
                entry.name().to_owned(),
                entry.unix_mode().map(|m| m & 0o777),
            ));
        }
        seen.sort();
        assert_eq!(
            seen,
            [
                ("a.txt".to_owned(), Some(0o644 & !current_umask())),
                ("sub/empty/".to_owned(), Some(0o755 & !current_umask())),
                ("sub/run.sh".to_owned(), Some(0o755)),
            ]
        );
    }

    /// Unpacks a zip of `entries` (announced as `numbytes`) into `got` of a new folder, which
    /// must succeed; returns the folder and the mode bits (`0o7777`) of a path under `got`.
    fn unpacked(entries: &[Entry<'_>], numbytes: u64) -> (tempfile::TempDir, impl Fn(&str) -> u32) {
        let dir = folder();
        let got = dir.path().join("got");
        let destination = Destination {
            path: got.clone(),
            replace: false,
        };
        if let Err(e) = unpack_directory(zip_of(entries), &destination, numbytes, &journal().1) {
            panic!("{}", e.message);
        }
        let mode = move |p: &str| {
            fs::metadata(got.join(p))
                .expect("exists")
                .permissions()
                .mode()
                & 0o7777
        };
        (dir, mode)
    }

    #[test]
    fn unpacking_applies_modes_and_renames_into_place() {
        let (dir, mode) = unpacked(
            &[
                ("x/run.sh", 0o755, Some(b"#!")),
                ("x/plain", 0o600, Some(b"p")),
                ("empty/", 0o700, None),
            ],
            3,
        );
        assert_eq!(mode("x/run.sh"), 0o755);
        assert_eq!(mode("x/plain"), 0o600);
        assert_eq!(mode("empty"), 0o700);
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["got"], "no temporary folder is left");
    }

    #[test]
    fn hostile_zips_write_nothing() {
        let cases: &[&[Entry<'_>]] = &[
            &[
                ("ok.txt", 0o644, Some(b"ok")),
                ("../evil", 0o644, Some(b"x")),
            ],
            &[("a/../../evil", 0o644, Some(b"x"))],
            &[("/etc/evil", 0o644, Some(b"x"))],
            &[("link", 0o120_777, Some(b"/etc/passwd"))],
            &[("a", 0o644, Some(b"1")), ("a/b", 0o644, Some(b"2"))],
            &[("big", 0o644, Some(b"more than announced"))],
            // Two names that become one once their control characters are rewritten.
            &[("a\x1b", 0o644, Some(b"1")), ("a\n", 0o644, Some(b"2"))],
        ];
        for entries in cases {
            let dir = folder();
            let inner = dir.path().join("inner");
            fs::create_dir(&inner).expect("mkdir");
            let destination = Destination {
                path: inner.join("got"),
                replace: false,
            };
            let result = unpack_directory(zip_of(entries), &destination, 4, &journal().1);
            assert!(result.is_err(), "{entries:?} must be refused");
            assert_eq!(
                fs::read_dir(&inner).expect("list").count(),
                0,
                "{entries:?}"
            );
            assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
        }
    }

    #[test]
    fn unpacked_modes_lose_setuid_setgid_sticky_and_what_the_umask_clears() {
        let (_dir, mode) = unpacked(
            &[
                ("suid.sh", 0o4755, Some(b"#!")),
                ("sgid-ww.sh", 0o6777, Some(b"#!")),
                ("ww", 0o666, Some(b"w")),
                ("sticky/", 0o1777, None),
            ],
            5,
        );
        let umask = current_umask();
        assert_eq!(mode("suid.sh"), 0o755 & !umask);
        assert_eq!(mode("sgid-ww.sh"), 0o777 & !umask);
        assert_eq!(mode("ww"), 0o666 & !umask);
        assert_eq!(mode("sticky"), 0o777 & !umask);
    }

    #[test]
    fn a_zip_with_two_entries_of_one_name_is_refused_whole() {
        let dir = folder();
        let inner = dir.path().join("inner");
        fs::create_dir(&inner).expect("mkdir");
        let destination = Destination {
            path: inner.join("got"),
            replace: false,
        };
        // The zip writer refuses a second name, so the second entry is renamed in the bytes:
        // its name appears twice (local header, central header), its CRC covers only the data.
        let zip = zip_of(&[
            ("dup.txt", 0o644, Some(b"six b\n")),
            ("dux.txt", 0o644, Some(b"seven b")),
        ]);
        let mut bytes = fs::read(zip.path()).expect("read");
        let renamed = bytes
            .windows(7)
            .enumerate()
            .filter(|(_, w)| *w == b"dux.txt")
            .map(|(at, _)| at)
            .collect::<Vec<_>>();
        assert_eq!(renamed.len(), 2);
        for at in renamed {
            bytes[at..at + 7].copy_from_slice(b"dup.txt");
        }
        fs::write(zip.path(), &bytes).expect("write");
        let archive = zip::ZipArchive::new(File::open(zip.path()).expect("open")).expect("zip");
        assert_eq!(archive.len(), 1, "the zip crate shows only one of the two");
        let Err(refused) = unpack_directory(zip, &destination, 13, &journal().1) else {
            panic!("a zip with a repeated name must be refused");
        };
        assert!(
            refused.message.contains("\"dup.txt\" appears twice"),
            "{}",
            refused.message
        );
        assert_eq!(fs::read_dir(&inner).expect("list").count(), 0);
    }

    #[test]
    fn destinations_follow_the_reference_rules() {
        let dir = folder();
        let offer = IncomingOffer::File {
            name: "a.txt".into(),
            size: 1,
        };
        let d = decide_destination(dir.path(), None, &offer).expect("free name");
        assert_eq!((d.path, d.replace), (dir.path().join("a.txt"), false));
        fs::write(dir.path().join("a.txt"), b"old").expect("write");
        let refused = decide_destination(dir.path(), None, &offer).expect_err("exists");
        assert!(
            refused.contains("refusing to overwrite existing 'a.txt'"),
            "{refused}"
        );
        let named = dir.path().join("a.txt");
        let d = decide_destination(dir.path(), Some(&named), &offer).expect("named");
        assert!(d.replace);
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).expect("mkdir");
        let d = decide_destination(dir.path(), Some(&sub), &offer).expect("inside");
        assert_eq!(d.path, sub.join("a.txt"));
        fs::create_dir(sub.join("a.txt")).expect("mkdir");
        let refused = decide_destination(dir.path(), Some(&sub), &offer).expect_err("a folder");
        assert!(
            refused.contains("Not deleting existing directory"),
            "{refused}"
        );
        assert!(free_space(&dir.path().join("x")).is_some_and(|free| free > 0));
    }
}
