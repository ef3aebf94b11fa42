//! No SIGPIPE from a remote bucket's calls.
//!
//! Writing to a socket whose server went away raises SIGPIPE in the writing thread
//! unless the write is a `send` with `MSG_NOSIGNAL`, and a C program's default
//! action for SIGPIPE is to die. A Rust or Python program ignores SIGPIPE at
//! startup; a C program linking libstate has not asked for anything, so a remote
//! call must not kill it: a lost connection is `STATE_IO`, as documented.
//!
//! Rust's std sends on TCP sockets (and so TLS) with `MSG_NOSIGNAL`; on Unix
//! sockets only since a 2025 release (rust-lang/rust#140005; earlier ones `write`).
//! So the first remote call of the process finds out which std it was built with
//! ([`needed`]: one write to a closed socket pair, SIGPIPE blocked); only if that
//! raises SIGPIPE does each remote call run with SIGPIPE blocked in its thread
//! ([`NoSigpipe`]), take back a SIGPIPE it caused and restore the thread's mask.
//! The process's signal handlers are never touched.

use std::io::Write;
use std::mem::MaybeUninit;
use std::os::unix::net::UnixStream;
use std::ptr;
use std::sync::OnceLock;

/// Blocks SIGPIPE in the calling thread until dropped; on drop, discards a SIGPIPE
/// raised meanwhile and restores the thread's signal mask.
pub(crate) struct NoSigpipe {
    /// The thread's mask before, if SIGPIPE was not blocked in it (else nothing to
    /// undo: a SIGPIPE pending then is the program's own).
    old: Option<libc::sigset_t>,
}

fn sigpipe_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes the set it is given; sigaddset then adds a
    // valid signal number to the initialized set.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
        set.assume_init()
    }
}

/// Whether a write to a Unix socket whose peer is gone raises SIGPIPE with the std
/// this library was built with (found out once per process).
fn needed() -> bool {
    static NEEDED: OnceLock<bool> = OnceLock::new();
    *NEEDED.get_or_init(|| {
        let _blocked = NoSigpipe::block();
        let Ok((mut a, b)) = UnixStream::pair() else {
            return true;
        };
        drop(b);
        // Fails with EPIPE either way; the question is whether SIGPIPE came too.
        let _ = a.write(b"x");
        take_pending()
    })
}

/// Takes a pending SIGPIPE of this thread (blocked, so only pending); whether
/// there was one.
fn take_pending() -> bool {
    let set = sigpipe_set();
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `set` and `zero` are initialized; sigtimedwait with a zero timeout
    // takes a pending SIGPIPE or returns -1 at once; the info pointer may be NULL.
    unsafe { libc::sigtimedwait(&set, ptr::null_mut(), &zero) == libc::SIGPIPE }
}

impl NoSigpipe {
    /// For one remote call: blocks SIGPIPE if this std's socket writes can raise it.
    pub(crate) fn new() -> NoSigpipe {
        if needed() {
            NoSigpipe::block()
        } else {
            NoSigpipe { old: None }
        }
    }

    /// Blocks SIGPIPE in this thread until dropped.
    fn block() -> NoSigpipe {
        let set = sigpipe_set();
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `set` is an initialized signal set; `old` is written by the call
        // when it succeeds (returns 0), and read only then.
        let old = unsafe {
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, old.as_mut_ptr()) != 0 {
                return NoSigpipe { old: None };
            }
            old.assume_init()
        };
        // SAFETY: `old` is an initialized signal set.
        let was_blocked = unsafe { libc::sigismember(&old, libc::SIGPIPE) } == 1;
        NoSigpipe {
            old: (!was_blocked).then_some(old),
        }
    }
}

impl Drop for NoSigpipe {
    fn drop(&mut self) {
        let Some(old) = self.old else { return };
        take_pending();
        // SAFETY: `old` is an initialized signal set (the thread's mask before).
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sigpipe_raised_inside_is_taken_back() {
        // As in a C program: SIGPIPE's default action (Rust's runtime ignores it).
        // SAFETY: setting a signal's disposition to its default.
        let before = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        {
            let _g = NoSigpipe::block();
            // SAFETY: raising a signal that is blocked in this thread only makes it
            // pending (pthread_kill directs it at this thread).
            unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGPIPE) };
        }
        // Had it stayed pending, unblocking it would have killed the test process.
        let mut now = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: a query of the mask into `now`, read only after success.
        let now = unsafe {
            assert_eq!(
                libc::pthread_sigmask(libc::SIG_BLOCK, ptr::null(), now.as_mut_ptr()),
                0
            );
            now.assume_init()
        };
        // SAFETY: `now` is initialized.
        let blocked = unsafe { libc::sigismember(&now, libc::SIGPIPE) };
        assert_eq!(blocked, 0, "mask restored");
        // SAFETY: restoring the disposition found above.
        unsafe { libc::signal(libc::SIGPIPE, before) };
    }

    #[test]
    fn the_probe_answers_without_leaving_a_signal_behind() {
        // SAFETY: as above.
        let before = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        // Either answer is right for some std; the process must survive it.
        let _ = needed();
        drop(NoSigpipe::new());
        // SAFETY: as above.
        unsafe { libc::signal(libc::SIGPIPE, before) };
    }
}
