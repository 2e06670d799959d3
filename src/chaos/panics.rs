//! A process-wide panic counter for the length of a run: a panic in any thread — the
//! workload's tasks, pgha-client's background tasks, anything else — fails the run, even where
//! the panicking task's handle is never joined.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type Hook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Counts panics until dropped; then the previous hook is back.
pub(super) struct PanicCounter {
    count: Arc<AtomicU64>,
    previous: Arc<Mutex<Option<Hook>>>,
}

impl PanicCounter {
    /// Installs the counting hook; the previous hook still runs (and prints) on every panic.
    pub(super) fn install() -> Self {
        let count = Arc::new(AtomicU64::new(0));
        let previous = Arc::new(Mutex::new(Some(std::panic::take_hook())));
        let (c, p) = (count.clone(), previous.clone());
        std::panic::set_hook(Box::new(move |info| {
            c.fetch_add(1, Ordering::SeqCst);
            if let Some(hook) = p.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                hook(info);
            }
        }));
        Self { count, previous }
    }

    /// Panics so far.
    pub(super) fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}

impl Drop for PanicCounter {
    fn drop(&mut self) {
        let previous = self.previous.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(hook) = previous {
            // Our hook goes away with the value `take_hook` returns.
            drop(std::panic::take_hook());
            std::panic::set_hook(hook);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_any_thread_is_counted_until_the_counter_goes() {
        let counter = PanicCounter::install();
        let joined = std::thread::spawn(|| panic!("a background panic")).join();
        assert!(joined.is_err());
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        // A task nobody joins: its panic is caught by tokio and seen only by the hook.
        runtime.block_on(async {
            drop(tokio::spawn(async { panic!("a detached task panic") }));
            tokio::task::yield_now().await;
        });
        assert_eq!(counter.count(), 2);
        drop(counter);
        let after = PanicCounter::install();
        assert_eq!(after.count(), 0);
    }
}
