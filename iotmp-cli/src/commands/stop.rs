//! Ctrl-C and SIGTERM for the long-running commands (`server`, `device`, `demo`): the first
//! signal sets a flag the command polls to stop cleanly (DISCONNECT sent, stores flushed).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Exit status when a second signal cuts a clean stop short (128 + SIGINT, as shells report it).
pub(crate) const FORCED_EXIT: i32 = 130;

/// Set by SIGINT or SIGTERM.
pub(crate) struct StopSignal(Arc<AtomicBool>);

/// What a second signal does while the command is stopping.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecondSignal {
    /// Exit at once with [`FORCED_EXIT`]: a stuck stop must not hold an impatient user.
    Exits,
    /// Nothing more: the stop is bounded anyway, and quitting would leave things behind.
    Ignored,
}

impl StopSignal {
    /// Registers the handlers.
    pub(crate) fn install(second: SecondSignal) -> io::Result<StopSignal> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM] {
            if second == SecondSignal::Exits {
                // Registered first, so it runs before the flag is set: it exits only when the
                // flag was already set, i.e. on the second signal.
                signal_hook::flag::register_conditional_shutdown(
                    signal,
                    FORCED_EXIT,
                    Arc::clone(&flag),
                )?;
            }
            signal_hook::flag::register(signal, Arc::clone(&flag))?;
        }
        Ok(StopSignal(flag))
    }

    /// True once a signal came.
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Blocks until a signal came (true) or `gone` says there is nothing left to wait for
    /// (false), looking every `poll`.
    pub(crate) fn wait_unless(&self, gone: impl Fn() -> bool, poll: Duration) -> bool {
        loop {
            if self.is_set() {
                return true;
            }
            if gone() {
                return false;
            }
            std::thread::sleep(poll);
        }
    }
}
