//! FUSE over io_uring: one request queue per CPU, each served by a thread pinned to it.
//!
//! # Why
//!
//! Through `/dev/fuse` every request wakes whichever session thread has waited longest,
//! usually on another CPU than the reader, and every reply wakes the reader across CPUs
//! again. On the VMs this project is measured on a cross-CPU wake-up costs tens of
//! microseconds (the idle vCPU halts and needs an interrupt through the hypervisor), more
//! than serving a 4 KiB read. With io_uring (Linux 6.14 and later) the kernel queues each
//! request on the ring of the CPU that issued it; the thread serving that ring runs on the
//! same CPU, so both wake-ups stay local and the reply lands in a cache that is warm.
//!
//! # How
//!
//! The kernel offers `FUSE_OVER_IO_URING` in `FUSE_INIT` only when the `fuse` module's
//! `enable_uring` parameter is on; the adapter accepts it when asked to (see
//! [`UringMode`]). Once INIT is answered, [`RingServer`] starts one thread per possible
//! CPU (the kernel wants a queue for each), and each thread registers [`DEPTH`] entries:
//! a header buffer and a payload buffer that the kernel fills with a request. The thread
//! answers in place and hands the entry back with `COMMIT_AND_FETCH`, which also waits for
//! the next request. Requests the kernel never sends through the ring (FORGET, INTERRUPT)
//! still reach fuser's session threads through `/dev/fuse`.
//!
//! Each request is answered by the same [`FsCore`] calls as the fuser adapter, and every
//! error goes through [`errno`](super::fuse::errno).

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, UNIX_EPOCH};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use tracing::debug_span;

use super::fuse::{errno, TTL};
use super::{Attr, FsCore, FsError, Kind};
use crate::cache::Served;
use crate::tree::Ino;

/// Where the kernel says whether it may serve FUSE over io_uring.
pub const ENABLE_PARAM: &str = "/sys/module/fuse/parameters/enable_uring";

/// Entries (requests in flight) per CPU queue.
pub const DEPTH: usize = 4;

/// Largest payload: a 1 MiB read reply; the mount asks the kernel for max_write 1 MiB so
/// that the kernel's payload size (max of max_write and max_pages pages) is this.
pub const PAYLOAD: usize = 1 << 20;

/// `FUSE_IO_URING_CMD_REGISTER` and `FUSE_IO_URING_CMD_COMMIT_AND_FETCH`.
const CMD_REGISTER: u32 = 1;
const CMD_COMMIT_AND_FETCH: u32 = 2;

/// Layout of `struct fuse_uring_req_header`: in/out header, op header, entry in/out.
const IN_OUT: usize = 0;
const OP_IN: usize = 128;
const ENT_IN_OUT: usize = 256;
const HEADER: usize = 288;
/// Offsets inside `struct fuse_uring_ent_in_out`.
const COMMIT_ID: usize = ENT_IN_OUT + 8;
const PAYLOAD_SZ: usize = ENT_IN_OUT + 16;

/// Whether a mount serves through io_uring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UringMode {
    /// When the kernel offers it (`enable_uring` on), else through `/dev/fuse`.
    #[default]
    Auto,
    /// Always; mounting fails when the kernel does not offer it.
    On,
    /// Never: `/dev/fuse` only.
    Off,
}

impl std::str::FromStr for UringMode {
    type Err = String;

    fn from_str(text: &str) -> Result<UringMode, String> {
        match text {
            "auto" => Ok(UringMode::Auto),
            "on" => Ok(UringMode::On),
            "off" => Ok(UringMode::Off),
            other => Err(format!(
                "invalid io-uring '{other}': expected auto, on or off"
            )),
        }
    }
}

impl std::fmt::Display for UringMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UringMode::Auto => "auto",
            UringMode::On => "on",
            UringMode::Off => "off",
        })
    }
}

/// The scheduling class of the io_uring queue threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UringSched {
    /// `SCHED_IDLE`, so that the reader stays on its CPU (see [`set_idle_policy`]).
    #[default]
    Idle,
    /// The default class, for machines where CPU-bound work shares the readers' CPUs.
    Normal,
}

impl std::str::FromStr for UringSched {
    type Err = String;

    fn from_str(text: &str) -> Result<UringSched, String> {
        match text {
            "idle" => Ok(UringSched::Idle),
            "normal" => Ok(UringSched::Normal),
            other => Err(format!(
                "invalid uring-sched '{other}': expected idle or normal"
            )),
        }
    }
}

impl std::fmt::Display for UringSched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UringSched::Idle => "idle",
            UringSched::Normal => "normal",
        })
    }
}

/// Whether the running kernel would offer FUSE over io_uring to a new mount.
pub fn kernel_offers() -> bool {
    std::fs::read_to_string(ENABLE_PARAM).is_ok_and(|v| matches!(v.trim(), "Y" | "1"))
}

/// The outcome of FUSE_INIT as the adapter saw it, for the ring threads to wait on.
#[derive(Debug, Default)]
pub struct InitSignal {
    accepted: Mutex<Option<bool>>,
    done: Condvar,
}

impl InitSignal {
    /// Records whether INIT agreed on io_uring.
    pub fn set(&self, accepted: bool) {
        *self.accepted.lock().unwrap_or_else(|e| e.into_inner()) = Some(accepted);
        self.done.notify_all();
    }

    /// Waits up to `timeout` for INIT; `None` when it has not happened by then.
    pub fn wait(&self, timeout: Duration) -> Option<bool> {
        let guard = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .done
            .wait_timeout_while(guard, timeout, |a| a.is_none())
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }
}

/// The ring threads of one mount; they end when the connection does.
#[derive(Debug)]
pub struct RingServer {
    threads: Vec<JoinHandle<()>>,
    init: Arc<InitSignal>,
}

impl RingServer {
    /// Starts one thread per possible CPU serving `core` through `dev` (a `/dev/fuse` fd
    /// of the mount), once `init` says the kernel agreed, in the scheduling class `sched`.
    pub fn start(
        dev: OwnedFd,
        core: Arc<FsCore>,
        direct_io: bool,
        sched: UringSched,
        init: Arc<InitSignal>,
    ) -> std::io::Result<RingServer> {
        let dev = Arc::new(dev);
        let signal = Arc::clone(&init);
        let online = crate::content::threads::allowed_cpus();
        let mut threads = Vec::new();
        for qid in 0..possible_cpus() {
            let (dev, core, init) = (Arc::clone(&dev), Arc::clone(&core), Arc::clone(&init));
            let cpu = online.contains(&qid).then_some(qid);
            let handle = std::thread::Builder::new()
                .name(format!("fuse-ring-{qid}"))
                .spawn(move || {
                    if init.wait(Duration::from_secs(30)) != Some(true) {
                        return;
                    }
                    if let Some(cpu) = cpu {
                        crate::content::threads::pin_current_thread(cpu);
                    }
                    let idle = sched == UringSched::Idle;
                    if idle {
                        set_idle_policy();
                    }
                    let queue = Queue::new(qid as u16, &dev, core, direct_io, idle);
                    match queue.and_then(Queue::serve) {
                        Ok(()) => tracing::debug!(qid, "fuse ring queue closed"),
                        Err(err) => tracing::warn!(qid, %err, "fuse ring queue failed"),
                    }
                })?;
            threads.push(handle);
        }
        Ok(RingServer {
            threads,
            init: signal,
        })
    }

    /// Whether the kernel agreed to io_uring at INIT, waiting a moment for INIT.
    pub fn accepted(&self) -> bool {
        self.init.wait(Duration::from_secs(2)) == Some(true)
    }

    /// Waits up to `timeout` for the threads, which end once the connection is gone; any
    /// still running then are left to end with the process.
    pub fn join(self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        for handle in self.threads {
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                tracing::warn!("an io_uring queue thread outlived its mount");
            }
        }
    }
}

/// Puts the calling thread in the `SCHED_IDLE` class.
///
/// A queue thread answers the reader that runs on its CPU and wakes it when the reply is
/// in. At that moment the queue thread still runs, so the scheduler sees the reader's CPU
/// busy and wakes the reader on an idle CPU instead, which on a VM costs an inter-processor
/// interrupt and a halted vCPU's exit (tens of microseconds here, several times a 4 KiB
/// read). A CPU that runs only `SCHED_IDLE` threads counts as idle for that choice, so the
/// reader is woken where it was, preempts the queue thread, and both stay on one CPU.
/// The cost: a CPU-bound process on the reader's CPU starves the queue thread (`--uring-sched
/// normal` keeps the default class for such machines).
fn set_idle_policy() {
    set_policy(libc::SCHED_IDLE);
}

/// Puts the calling thread in scheduling class `policy` (`SCHED_IDLE` or `SCHED_OTHER`).
fn set_policy(policy: libc::c_int) {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
        let err = std::io::Error::last_os_error();
        tracing::debug!(%err, policy, "queue thread keeps its scheduling class");
    }
}

/// Notices two readers sharing the queue's CPU, so that one can be moved off it.
///
/// A `SCHED_IDLE` queue thread keeps its reader on its CPU (see [`set_idle_policy`]), but
/// it keeps a second reader there too: when it wakes either, the CPU looks idle, so both
/// stay, and one queue thread serves both readers one request at a time while the other
/// CPU has nothing to do (in 6 of 20 two-reader `dd` runs here, at about one reader's
/// speed). Such a queue sees reads from two threads in turn ([`Crowd::TURNS`] in a row).
/// The next reply then goes out from the default class, so the CPU looks busy and the
/// scheduler wakes that reader on an idle CPU if there is one, whose queue serves it from
/// then on. A reader alone on its CPU never triggers this; with more readers than CPUs, no
/// CPU is idle and the wake-up stays where it was.
#[derive(Debug, Default)]
struct Crowd {
    last_pid: u32,
    /// Reads in a row, each from another thread than the read before it.
    turns: u32,
}

impl Crowd {
    /// Turns in a row that mean two readers share the CPU.
    const TURNS: u32 = 8;

    /// Notes a read from `pid`; says whether its reply should go out in the default class.
    fn note(&mut self, pid: u32) -> bool {
        if pid == self.last_pid {
            self.turns = 0;
            return false;
        }
        self.last_pid = pid;
        self.turns += 1;
        if self.turns < Self::TURNS {
            return false;
        }
        self.turns = 0;
        true
    }
}

/// Number of possible CPUs, as `/sys/devices/system/cpu/possible` lists them (the kernel
/// makes one queue per possible CPU).
fn possible_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|list| parse_cpu_list_end(list.trim()))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// One past the highest CPU in a kernel CPU list such as `0-3,8,10-11`.
fn parse_cpu_list_end(list: &str) -> Option<usize> {
    list.split(',')
        .map(|part| part.rsplit('-').next()?.parse::<usize>().ok())
        .try_fold(0, |end, last| Some(end.max(last? + 1)))
}

/// A page-aligned anonymous mapping; untouched pages cost no memory.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by one queue thread at a time.
unsafe impl Send for Mapping {}

impl Mapping {
    /// `len` bytes (a multiple of 4 KiB) starting on a 2 MiB boundary, advised to be backed
    /// by huge pages before anything touches them. The kernel pins a reply's source pages
    /// one by one when it copies the reply out of the payload buffer; on 4 KiB pages that
    /// walk took about as long as generating the reply (`docs/BENCHMARKS.md`, "FUSE").
    fn new(len: usize) -> std::io::Result<Mapping> {
        const HUGE: usize = 2 << 20;
        // SAFETY: an anonymous private mapping with no address hint has no preconditions.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len + HUGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let head = (raw as usize).next_multiple_of(HUGE) - raw as usize;
        // SAFETY: both trimmed ranges lie inside the mapping just made and hold nothing;
        // madvise only changes how the kernel backs the kept range, and a failure leaves
        // ordinary pages.
        let ptr = unsafe {
            let ptr = raw.cast::<u8>().add(head);
            if head > 0 {
                libc::munmap(raw, head);
            }
            libc::munmap(ptr.add(len).cast(), HUGE - head);
            libc::madvise(ptr.cast(), len, libc::MADV_HUGEPAGE);
            ptr
        };
        Ok(Mapping { ptr, len })
    }

    /// `len` bytes at `offset`.
    ///
    /// # Safety
    /// The range must lie inside the mapping, and the kernel must not be writing to it (the
    /// entry it belongs to is back in user space).
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, offset: usize, len: usize) -> &mut [u8] {
        debug_assert!(offset + len <= self.len);
        // SAFETY: see the function's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(offset), len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr + len` is the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// One CPU's queue: its ring, its entries' buffers, and the filesystem it serves.
///
/// Fields drop in declaration order, so the ring closes before the buffers it points at
/// are unmapped.
struct Queue {
    qid: u16,
    ring: IoUring<squeue::Entry128, cqueue::Entry>,
    fd: types::Fd,
    headers: Mapping,
    payloads: Mapping,
    /// The two iovecs (header, payload) of each entry, read by the kernel at REGISTER.
    iovecs: Box<[[libc::iovec; 2]; DEPTH]>,
    core: Arc<FsCore>,
    open_flags: u32,
    /// Whether the thread runs in `SCHED_IDLE`, and so may keep two readers on its CPU.
    idle: bool,
    crowd: Crowd,
    /// Keeps the fd open as long as the ring uses it.
    _dev: Arc<OwnedFd>,
}

impl Queue {
    fn new(
        qid: u16,
        dev: &Arc<OwnedFd>,
        core: Arc<FsCore>,
        direct_io: bool,
        idle: bool,
    ) -> std::io::Result<Queue> {
        // Only this thread submits and waits, so completion work can wait until it asks.
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(2 * DEPTH as u32)?;
        let headers = Mapping::new(4096)?;
        let payloads = Mapping::new(DEPTH * PAYLOAD)?;
        let iovecs = Box::new(std::array::from_fn(|e| {
            [
                libc::iovec {
                    // SAFETY: offsets inside the mappings just made.
                    iov_base: unsafe { headers.ptr.add(e * HEADER) }.cast(),
                    iov_len: HEADER,
                },
                libc::iovec {
                    // SAFETY: as above.
                    iov_base: unsafe { payloads.ptr.add(e * PAYLOAD) }.cast(),
                    iov_len: PAYLOAD,
                },
            ]
        }));
        let open_flags = if direct_io {
            fuser::FopenFlags::FOPEN_DIRECT_IO.bits()
        } else {
            fuser::FopenFlags::FOPEN_KEEP_CACHE.bits()
        };
        Ok(Queue {
            qid,
            ring,
            fd: types::Fd(dev.as_raw_fd()),
            headers,
            payloads,
            iovecs,
            core,
            open_flags,
            idle,
            crowd: Crowd::default(),
            _dev: Arc::clone(dev),
        })
    }

    /// The SQE for `cmd` on entry `entry`.
    fn command(&self, cmd: u32, entry: usize, commit_id: u64) -> squeue::Entry128 {
        let mut req = [0u8; 80];
        req[8..16].copy_from_slice(&commit_id.to_ne_bytes());
        req[16..18].copy_from_slice(&self.qid.to_ne_bytes());
        let mut sqe = opcode::UringCmd80::new(self.fd, cmd).cmd(req);
        if cmd == CMD_REGISTER {
            sqe = sqe.addr(Some(self.iovecs[entry].as_ptr() as u64));
        }
        let sqe = sqe.build().user_data(entry as u64);
        if cmd != CMD_REGISTER {
            return sqe;
        }
        // REGISTER reads the iovec count from the SQE's `len` (offset 24), which the
        // builder does not set.
        // SAFETY: Entry128 is repr(C): a 64-byte io_uring_sqe followed by 64 bytes.
        let mut raw: [u8; 128] = unsafe { std::mem::transmute(sqe) };
        raw[24..28].copy_from_slice(&2u32.to_ne_bytes());
        // SAFETY: the bytes came from an Entry128 and only `len` changed.
        unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(raw) }
    }

    fn push(&mut self, sqe: squeue::Entry128) -> std::io::Result<()> {
        // SAFETY: the SQE points at `iovecs` and the mappings, which live as long as the
        // ring (they are fields of the same struct, dropped after the ring is closed).
        while unsafe { self.ring.submission().push(&sqe) }.is_err() {
            self.ring.submit()?;
        }
        Ok(())
    }

    /// Registers the entries, then answers requests until the connection ends.
    fn serve(mut self) -> std::io::Result<()> {
        for entry in 0..DEPTH {
            let sqe = self.command(CMD_REGISTER, entry, 0);
            self.push(sqe)?;
        }
        let mut live = DEPTH;
        let mut retry_until = Instant::now() + Duration::from_secs(10);
        while live > 0 {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(err) if err.raw_os_error() == Some(libc::EINTR) => continue,
                Err(err) => return Err(err),
            }
            let done: Vec<(usize, i32)> = self
                .ring
                .completion()
                .map(|c| (c.user_data() as usize, c.result()))
                .collect();
            for (entry, result) in done {
                let (sqe, spread) = match result {
                    0 => {
                        let (commit_id, spread) = self.answer(entry);
                        (self.command(CMD_COMMIT_AND_FETCH, entry, commit_id), spread)
                    }
                    // INIT is answered but the kernel has not taken it in yet.
                    r if r == -libc::EAGAIN && Instant::now() < retry_until => {
                        std::thread::sleep(Duration::from_millis(1));
                        (self.command(CMD_REGISTER, entry, 0), false)
                    }
                    r => {
                        live -= 1;
                        // ENOTCONN is the normal end: the mount went away.
                        if r != -libc::ENOTCONN {
                            let err = std::io::Error::from_raw_os_error(-r);
                            tracing::debug!(qid = self.qid, entry, %err, "ring entry ended");
                        }
                        continue;
                    }
                };
                retry_until = Instant::now();
                self.push(sqe)?;
                if spread {
                    // The reply wakes its reader while this thread counts as busy.
                    tracing::debug!(qid = self.qid, "reply sent in the default class");
                    set_policy(libc::SCHED_OTHER);
                    let sent = self.ring.submit();
                    set_idle_policy();
                    sent?;
                }
            }
        }
        Ok(())
    }

    /// Answers the request in `entry`'s buffers. Returns its commit id, and whether the
    /// reply should wake its reader from the default class (see [`Crowd`]).
    fn answer(&mut self, entry: usize) -> (u64, bool) {
        // SAFETY: the entry's completion hands its buffers to us until we commit it.
        let header = unsafe { self.headers.slice(entry * HEADER, HEADER) };
        // SAFETY: as above.
        let payload = unsafe { self.payloads.slice(entry * PAYLOAD, PAYLOAD) };
        let opcode = u32_at(header, IN_OUT + 4);
        let unique = u64_at(header, IN_OUT + 8);
        let nodeid = u64_at(header, IN_OUT + 16);
        let commit_id = u64_at(header, COMMIT_ID);
        let in_len = u32_at(header, PAYLOAD_SZ) as usize;
        let spread =
            self.idle && opcode == op::READ && self.crowd.note(u32_at(header, IN_OUT + 32));
        let (op, ent) = header.split_at_mut(ENT_IN_OUT);
        let request = Request {
            opcode,
            ino: Ino(nodeid),
            op: &op[OP_IN..],
            input_len: in_len.min(PAYLOAD),
        };
        let outcome = self.dispatch(&request, payload);
        let (error, len) = match outcome {
            Ok(Reply::Payload(len)) => (0, len),
            Ok(Reply::Data(bytes)) => {
                payload[..bytes.len()].copy_from_slice(&bytes);
                (0, bytes.len())
            }
            Err(code) => (-code, 0),
        };
        // Out header: len, error, unique.
        op[IN_OUT..IN_OUT + 4].copy_from_slice(&(16 + len as u32).to_ne_bytes());
        op[IN_OUT + 4..IN_OUT + 8].copy_from_slice(&error.to_ne_bytes());
        op[IN_OUT + 8..IN_OUT + 16].copy_from_slice(&unique.to_ne_bytes());
        ent[PAYLOAD_SZ - ENT_IN_OUT..PAYLOAD_SZ - ENT_IN_OUT + 4]
            .copy_from_slice(&(len as u32).to_ne_bytes());
        (commit_id, spread)
    }

    /// Answers `req`, whose input (a name for LOOKUP) is at the start of `payload`; the
    /// reply goes to the same buffer.
    fn dispatch(&self, req: &Request<'_>, payload: &mut [u8]) -> Result<Reply, i32> {
        match req.opcode {
            op::LOOKUP => {
                let _span = debug_span!("lookup", ino = req.ino.0).entered();
                let name = req.name(payload);
                let attr = self.core.lookup(req.ino, name).map_err(code)?;
                Ok(Reply::Data(entry_out(&attr)))
            }
            op::GETATTR => {
                let _span = debug_span!("getattr", ino = req.ino.0).entered();
                let attr = self.core.getattr(req.ino).map_err(code)?;
                Ok(Reply::Data(attr_out(&attr)))
            }
            op::OPEN => {
                let flags = u32_at(req.op, 0) as i32;
                let _span = debug_span!("open", ino = req.ino.0, flags).entered();
                let write = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
                let fh = self.core.open(req.ino, write).map_err(code)?;
                Ok(Reply::Data(open_out(fh, self.open_flags)))
            }
            op::OPENDIR => {
                let _span = debug_span!("opendir", ino = req.ino.0).entered();
                self.core.opendir(req.ino).map_err(code)?;
                Ok(Reply::Data(open_out(0, 0)))
            }
            op::READ | op::READDIR => self.read(req, payload),
            op::RELEASE => {
                let _span = debug_span!("release", ino = req.ino.0).entered();
                self.core.release(u64_at(req.op, 0));
                Ok(Reply::Payload(0))
            }
            op::RELEASEDIR | op::DESTROY => Ok(Reply::Payload(0)),
            op::STATFS => {
                let _span = debug_span!("statfs").entered();
                Ok(Reply::Data(statfs_out(&self.core)))
            }
            op::SETATTR
            | op::SYMLINK
            | op::MKNOD
            | op::MKDIR
            | op::UNLINK
            | op::RMDIR
            | op::RENAME
            | op::LINK
            | op::WRITE
            | op::SETXATTR
            | op::REMOVEXATTR
            | op::CREATE
            | op::FALLOCATE
            | op::RENAME2
            | op::COPY_FILE_RANGE
            | op::TMPFILE => {
                let _span = debug_span!("write-op", ino = req.ino.0, opcode = req.opcode).entered();
                Err(code(FsError::ReadOnly))
            }
            // What fuser answers for operations a filesystem does not implement; the
            // kernel then stops asking (flush, fsync, xattrs, access, locks, lseek...).
            _ => Err(libc::ENOSYS),
        }
    }

    /// READ and READDIR: both take `fuse_read_in` and answer into the payload.
    fn read(&self, req: &Request<'_>, payload: &mut [u8]) -> Result<Reply, i32> {
        let fh = u64_at(req.op, 0);
        let offset = u64_at(req.op, 8);
        let size = (u32_at(req.op, 16) as usize).min(payload.len());
        let out = &mut payload[..size];
        if req.opcode == op::READDIR {
            let _span = debug_span!("readdir", ino = req.ino.0, offset).entered();
            let mut used = 0;
            self.core
                .readdir(req.ino, offset, |e| {
                    match dirent(&mut out[used..], e.ino.0, e.next_offset, e.kind, &e.name) {
                        Some(n) => {
                            used += n;
                            true
                        }
                        None => false,
                    }
                })
                .map_err(code)?;
            return Ok(Reply::Payload(used));
        }
        let _span = debug_span!("read", ino = req.ino.0, offset, size).entered();
        match self
            .core
            .read_served(req.ino, fh, offset, out)
            .map_err(code)?
        {
            Served::Buffer(n) => Ok(Reply::Payload(n)),
            // TODO: a cached block is copied into the ring's payload buffer; the
            // /dev/fuse path replies from the block itself. Zero-copy replies over
            // io_uring need kernel support for replying from a registered buffer.
            Served::Block(slice) => {
                let bytes = slice.as_slice();
                out[..bytes.len()].copy_from_slice(bytes);
                Ok(Reply::Payload(bytes.len()))
            }
        }
    }
}

/// A request as read from an entry's header buffer.
struct Request<'a> {
    opcode: u32,
    ino: Ino,
    /// The op's fixed header (`fuse_read_in`, `fuse_open_in`, ...).
    op: &'a [u8],
    /// Bytes of further input at the start of the payload (a name for LOOKUP).
    input_len: usize,
}

impl Request<'_> {
    /// The NUL-terminated name of a LOOKUP, from the payload.
    fn name<'p>(&self, payload: &'p [u8]) -> &'p OsStr {
        let input = &payload[..self.input_len];
        let end = input.iter().position(|&b| b == 0).unwrap_or(input.len());
        OsStr::from_bytes(&input[..end])
    }
}

/// What goes into the payload of a reply.
enum Reply {
    /// The first `n` bytes of the payload already hold it.
    Payload(usize),
    /// These bytes, copied into the payload.
    Data(Vec<u8>),
}

fn code(err: FsError) -> i32 {
    errno(err).code()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// FUSE opcodes (include/uapi/linux/fuse.h).
mod op {
    pub const LOOKUP: u32 = 1;
    pub const GETATTR: u32 = 3;
    pub const SETATTR: u32 = 4;
    pub const SYMLINK: u32 = 6;
    pub const MKNOD: u32 = 8;
    pub const MKDIR: u32 = 9;
    pub const UNLINK: u32 = 10;
    pub const RMDIR: u32 = 11;
    pub const RENAME: u32 = 12;
    pub const LINK: u32 = 13;
    pub const OPEN: u32 = 14;
    pub const READ: u32 = 15;
    pub const WRITE: u32 = 16;
    pub const STATFS: u32 = 17;
    pub const RELEASE: u32 = 18;
    pub const SETXATTR: u32 = 21;
    pub const REMOVEXATTR: u32 = 24;
    pub const OPENDIR: u32 = 27;
    pub const READDIR: u32 = 28;
    pub const RELEASEDIR: u32 = 29;
    pub const CREATE: u32 = 35;
    pub const DESTROY: u32 = 38;
    pub const FALLOCATE: u32 = 43;
    pub const RENAME2: u32 = 45;
    pub const COPY_FILE_RANGE: u32 = 47;
    pub const TMPFILE: u32 = 51;
}

/// Appends `v` in native byte order.
fn put<const N: usize>(out: &mut Vec<u8>, v: [u8; N]) {
    out.extend_from_slice(&v);
}

/// `struct fuse_attr` (88 bytes).
fn put_attr(out: &mut Vec<u8>, attr: &Attr) {
    let since = attr.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (secs, nsecs) = (since.as_secs(), since.subsec_nanos());
    let mode = match attr.kind {
        Kind::File => libc::S_IFREG,
        Kind::Directory => libc::S_IFDIR,
    } | u32::from(attr.perm);
    put(out, attr.ino.0.to_ne_bytes());
    put(out, attr.size.to_ne_bytes());
    put(out, attr.blocks.to_ne_bytes());
    for _ in 0..3 {
        put(out, secs.to_ne_bytes());
    }
    for _ in 0..3 {
        put(out, nsecs.to_ne_bytes());
    }
    put(out, mode.to_ne_bytes());
    put(out, attr.nlink.to_ne_bytes());
    put(out, attr.uid.to_ne_bytes());
    put(out, attr.gid.to_ne_bytes());
    put(out, 0u32.to_ne_bytes()); // rdev
    put(out, super::BLOCK_SIZE.to_ne_bytes());
    put(out, 0u32.to_ne_bytes()); // flags
}

/// `struct fuse_entry_out` (128 bytes).
fn entry_out(attr: &Attr) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    put(&mut out, attr.ino.0.to_ne_bytes());
    put(&mut out, 0u64.to_ne_bytes()); // generation
    put(&mut out, TTL.as_secs().to_ne_bytes());
    put(&mut out, TTL.as_secs().to_ne_bytes());
    put(&mut out, TTL.subsec_nanos().to_ne_bytes());
    put(&mut out, TTL.subsec_nanos().to_ne_bytes());
    put_attr(&mut out, attr);
    out
}

/// `struct fuse_attr_out` (104 bytes).
fn attr_out(attr: &Attr) -> Vec<u8> {
    let mut out = Vec::with_capacity(104);
    put(&mut out, TTL.as_secs().to_ne_bytes());
    put(&mut out, TTL.subsec_nanos().to_ne_bytes());
    put(&mut out, 0u32.to_ne_bytes());
    put_attr(&mut out, attr);
    out
}

/// `struct fuse_open_out` (16 bytes).
fn open_out(fh: u64, open_flags: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    put(&mut out, fh.to_ne_bytes());
    put(&mut out, open_flags.to_ne_bytes());
    put(&mut out, 0i32.to_ne_bytes()); // backing_id
    out
}

/// `struct fuse_statfs_out` (80 bytes).
fn statfs_out(core: &FsCore) -> Vec<u8> {
    let s = core.statfs();
    let mut out = Vec::with_capacity(80);
    for v in [s.blocks, 0, 0, s.files, 0] {
        put(&mut out, v.to_ne_bytes());
    }
    for v in [s.block_size, s.name_max, s.block_size, 0, 0, 0, 0, 0, 0, 0] {
        put(&mut out, v.to_ne_bytes());
    }
    out
}

/// Writes one `struct fuse_dirent` (padded to 8 bytes) into `out`, or `None` if it does
/// not fit.
fn dirent(out: &mut [u8], ino: u64, next: u64, kind: Kind, name: &str) -> Option<usize> {
    let size = (24 + name.len()).next_multiple_of(8);
    let out = out.get_mut(..size)?;
    let dtype: u32 = match kind {
        Kind::File => libc::DT_REG.into(),
        Kind::Directory => libc::DT_DIR.into(),
    };
    out[..8].copy_from_slice(&ino.to_ne_bytes());
    out[8..16].copy_from_slice(&next.to_ne_bytes());
    out[16..20].copy_from_slice(&(name.len() as u32).to_ne_bytes());
    out[20..24].copy_from_slice(&dtype.to_ne_bytes());
    out[24..24 + name.len()].copy_from_slice(name.as_bytes());
    out[24 + name.len()..].fill(0);
    Some(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crowd_spreads_only_readers_taking_turns() {
        let mut crowd = Crowd::default();
        // One reader, however many reads: never.
        assert!((0..1000).all(|_| !crowd.note(41)));
        // Two readers in turn: every TURNS-th read.
        let spreads: Vec<usize> = (0..4 * Crowd::TURNS as usize)
            .filter(|&i| crowd.note(if i % 2 == 0 { 42 } else { 43 }))
            .collect();
        let turns = Crowd::TURNS as usize;
        assert_eq!(
            spreads,
            vec![turns - 1, 2 * turns - 1, 3 * turns - 1, 4 * turns - 1]
        );
        // A second read in a row from one reader starts the count again.
        let mut crowd = Crowd::default();
        let pid = |i: u32| i % 2 + 1;
        assert!((0..Crowd::TURNS - 1).all(|i| !crowd.note(pid(i))));
        assert!(!crowd.note(pid(Crowd::TURNS - 2)));
        assert!((1..Crowd::TURNS).all(|i| !crowd.note(pid(i + Crowd::TURNS))));
        assert!(crowd.note(pid(0)));
    }

    fn attr(kind: Kind) -> Attr {
        Attr {
            ino: Ino(7),
            kind,
            size: 1000,
            blocks: 2,
            perm: 0o444,
            nlink: 1,
            uid: 1,
            gid: 2,
            time: UNIX_EPOCH + Duration::from_secs(5),
        }
    }

    #[test]
    fn reply_layouts_have_the_kernels_sizes() {
        assert_eq!(entry_out(&attr(Kind::File)).len(), 128);
        assert_eq!(attr_out(&attr(Kind::File)).len(), 104);
        assert_eq!(open_out(1, 2).len(), 16);
        let core = crate::fs::tests::core(1 << 20, 1 << 10, 10);
        assert_eq!(statfs_out(&core).len(), 80);
    }

    #[test]
    fn attr_carries_mode_and_times() {
        let out = attr_out(&attr(Kind::Directory));
        let a = &out[16..];
        assert_eq!(u64_at(a, 0), 7);
        assert_eq!(u64_at(a, 8), 1000);
        assert_eq!(u64_at(a, 24), 5); // atime
        assert_eq!(u32_at(a, 60), libc::S_IFDIR | 0o444);
        assert_eq!(u32_at(a, 80), super::super::BLOCK_SIZE);
    }

    #[test]
    fn dirents_are_padded_and_refuse_to_overflow() {
        let mut buf = [0xffu8; 40];
        assert_eq!(dirent(&mut buf, 3, 9, Kind::File, "file_1"), Some(32));
        assert_eq!(u32_at(&buf, 16), 6);
        assert_eq!(&buf[24..30], b"file_1");
        assert_eq!(&buf[30..32], &[0, 0]);
        assert_eq!(dirent(&mut buf[32..], 3, 9, Kind::File, "x"), None);
    }

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list_end("0-1"), Some(2));
        assert_eq!(parse_cpu_list_end("0"), Some(1));
        assert_eq!(parse_cpu_list_end("0-3,8,10-11"), Some(12));
        assert_eq!(parse_cpu_list_end("x"), None);
    }
}
