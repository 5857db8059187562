//! Lock classes: the name every lock is created with, and, in checked
//! builds, the unit of lock-order checking and hold-time statistics (as in
//! lockdep, locks made at one place share a class).

#[cfg(feature = "checked")]
use core::sync::atomic::{AtomicU32, AtomicU64};

/// A lock class: a name, and in checked builds its order-graph node and
/// hold-time statistics. Create one per lock-creation site with
/// [`lock_class!`](crate::lock_class), or as a `static`.
///
/// Never as a `const`: a `const` is a new value at every use (in checked
/// builds, a new class each time), and in checked builds, where the class
/// holds atomics, `&CONST` is no longer promoted to `'static` and does not
/// compile.
pub struct LockClass {
    name: &'static str,
    #[cfg(feature = "checked")]
    pub(crate) checked: ClassState,
}

/// Buckets of a class's hold-time histogram (see `checked::HoldStats`).
#[cfg(feature = "checked")]
pub(crate) const HISTOGRAM_BUCKETS: usize = 32;
/// Subclasses a class can have (`0..MAX_SUBCLASSES`).
#[cfg(feature = "checked")]
pub(crate) const MAX_SUBCLASSES: usize = 8;

/// What the validator keeps for one lock class: its order-graph nodes and
/// hold-time statistics. Plain data here; `checked` gives it meaning.
#[cfg(feature = "checked")]
pub(crate) struct ClassState {
    /// Order-graph node + 1 of each subclass; 0 until first acquired.
    pub(crate) nodes: [AtomicU32; MAX_SUBCLASSES],
    pub(crate) count: AtomicU64,
    pub(crate) total_ns: AtomicU64,
    pub(crate) max_ns: AtomicU64,
    pub(crate) over_guidance: AtomicU64,
    pub(crate) histogram: [AtomicU64; HISTOGRAM_BUCKETS],
}

#[cfg(feature = "checked")]
impl ClassState {
    const fn new() -> Self {
        Self {
            nodes: [const { AtomicU32::new(0) }; MAX_SUBCLASSES],
            count: AtomicU64::new(0),
            total_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
            over_guidance: AtomicU64::new(0),
            histogram: [const { AtomicU64::new(0) }; HISTOGRAM_BUCKETS],
        }
    }
}

impl LockClass {
    /// A class named `name`. Prefer [`lock_class!`](crate::lock_class), which
    /// makes the `static` for you.
    #[must_use]
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            #[cfg(feature = "checked")]
            checked: ClassState::new(),
        }
    }

    /// The name the class was created with.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl core::fmt::Debug for LockClass {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LockClass")
            .field("name", &self.name)
            .finish()
    }
}

/// A `&'static LockClass` for this call site.
///
/// ```
/// let ledger = kspin::host::SpinLock::new(0u64, kspin::lock_class!("ledger"));
/// # let _ = ledger;
/// ```
#[macro_export]
macro_rules! lock_class {
    ($name:expr) => {{
        static CLASS: $crate::LockClass = $crate::LockClass::new($name);
        &CLASS
    }};
}
