//! The driver's own counters, driver-wide and interlocked: IRPs inside a
//! dispatch routine, remove-lock references held, periodic timers armed,
//! device objects alive, and the allocator's live allocations. `GET_HEALTH`
//! reports them, and `IRP_MN_REMOVE_DEVICE` and `DriverUnload` print them,
//! so that a soak can see each of them back at zero after every removal.

use core::{
    alloc::{GlobalAlloc, Layout},
    sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
};

use dpclock_ioctl::{Health, PROTOCOL_VERSION};

/// IRPs inside one of the driver's dispatch routines.
static IRPS_IN_FLIGHT: AtomicI64 = AtomicI64::new(0);
/// IRPs dispatched since load.
static IRPS_TOTAL: AtomicU64 = AtomicU64::new(0);
/// Remove-lock acquisitions not yet released.
static REMOVE_LOCK_REFERENCES: AtomicI64 = AtomicI64::new(0);
/// Periodic timers armed.
static TIMERS_ARMED: AtomicI64 = AtomicI64::new(0);
/// Device objects alive.
static DEVICES: AtomicI64 = AtomicI64::new(0);
static ALLOCATIONS_LIVE: AtomicI64 = AtomicI64::new(0);
static ALLOCATED_BYTES_LIVE: AtomicI64 = AtomicI64::new(0);
static ALLOCATIONS_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Counts one IRP for as long as it lives; every dispatch routine makes one
/// first and drops it after completing or passing the IRP on.
#[must_use = "the IRP stops being counted as soon as this is dropped"]
pub struct IrpInFlight(());

impl IrpInFlight {
    pub fn enter() -> Self {
        IRPS_IN_FLIGHT.fetch_add(1, Relaxed);
        IRPS_TOTAL.fetch_add(1, Relaxed);
        Self(())
    }
}

impl Drop for IrpInFlight {
    fn drop(&mut self) {
        IRPS_IN_FLIGHT.fetch_sub(1, Relaxed);
    }
}

/// A remove-lock acquisition succeeded (`wdm::RemoveLock`).
pub fn remove_lock_acquired() {
    REMOVE_LOCK_REFERENCES.fetch_add(1, Relaxed);
}

/// A remove-lock acquisition was released.
pub fn remove_lock_released() {
    REMOVE_LOCK_REFERENCES.fetch_sub(1, Relaxed);
}

/// A device's periodic timer went from stopped to armed.
pub fn timer_armed() {
    TIMERS_ARMED.fetch_add(1, Relaxed);
}

/// A device's periodic timer went from armed to stopped.
pub fn timer_disarmed() {
    TIMERS_ARMED.fetch_sub(1, Relaxed);
}

/// A device object was created (`true`) or deleted (`false`).
pub fn device(created: bool) {
    DEVICES.fetch_add(if created { 1 } else { -1 }, Relaxed);
}

/// A counter that must never go below zero; a negative value (a double
/// release) is reported as a huge count, which no check mistakes for zero.
fn count(counter: &AtomicI64) -> u64 {
    counter.load(Relaxed).cast_unsigned()
}

/// The counters now.
pub fn snapshot() -> Health {
    Health {
        version: PROTOCOL_VERSION,
        reserved: 0,
        irps_in_flight: count(&IRPS_IN_FLIGHT),
        remove_lock_references: count(&REMOVE_LOCK_REFERENCES),
        timers_armed: count(&TIMERS_ARMED),
        allocations_live: count(&ALLOCATIONS_LIVE),
        allocated_bytes_live: count(&ALLOCATED_BYTES_LIVE),
        allocations_total: ALLOCATIONS_TOTAL.load(Relaxed),
        irps_total: IRPS_TOTAL.load(Relaxed),
        devices: count(&DEVICES),
    }
}

/// The global allocator, counting what passes through it. The driver itself
/// allocates nothing (every structure lives in the device extension), so
/// its live allocations must stay at zero; a leak would show here.
pub struct CountingAllocator<A>(pub A);

// SAFETY: every call is forwarded unchanged to the wrapped allocator, which
// upholds GlobalAlloc's contract; the counters have no effect on memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let block = unsafe { self.0.alloc(layout) };
        if !block.is_null() {
            counted(layout.size(), 1);
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { self.0.dealloc(block, layout) };
        counted(layout.size(), -1);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let block = unsafe { self.0.alloc_zeroed(layout) };
        if !block.is_null() {
            counted(layout.size(), 1);
        }
        block
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let moved = unsafe { self.0.realloc(block, layout, new_size) };
        if !moved.is_null() {
            // The old block is gone and a new one lives.
            counted(layout.size(), -1);
            counted(new_size, 1);
        }
        moved
    }
}

fn counted(size: usize, sign: i64) {
    ALLOCATIONS_LIVE.fetch_add(sign, Relaxed);
    ALLOCATED_BYTES_LIVE.fetch_add(sign * size as i64, Relaxed);
    if sign > 0 {
        ALLOCATIONS_TOTAL.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The allocator wrapper counts what it forwards (on the host, over the
    /// system allocator; the counters are driver-wide, so only deltas are
    /// compared).
    #[test]
    fn the_counting_allocator_counts_live_allocations() {
        let allocator = CountingAllocator(std::alloc::System);
        let before = snapshot();
        let layout = Layout::from_size_align(48, 8).unwrap();
        // SAFETY: a non-zero layout; each block is freed once with its layout.
        unsafe {
            let a = allocator.alloc(layout);
            let b = allocator.alloc_zeroed(layout);
            let mid = snapshot();
            assert_eq!(mid.allocations_live - before.allocations_live, 2);
            assert_eq!(mid.allocated_bytes_live - before.allocated_bytes_live, 96);
            let b = allocator.realloc(b, layout, 100);
            let grown = snapshot();
            assert_eq!(grown.allocations_live - before.allocations_live, 2);
            assert_eq!(
                grown.allocated_bytes_live - before.allocated_bytes_live,
                148
            );
            allocator.dealloc(a, layout);
            allocator.dealloc(b, Layout::from_size_align(100, 8).unwrap());
        }
        let after = snapshot();
        assert_eq!(after.allocations_live, before.allocations_live);
        assert_eq!(after.allocated_bytes_live, before.allocated_bytes_live);
        assert_eq!(after.allocations_total - before.allocations_total, 3);
    }

    #[test]
    fn irps_are_counted_while_their_guard_lives() {
        let before = snapshot();
        let guard = IrpInFlight::enter();
        assert_eq!(snapshot().irps_in_flight, before.irps_in_flight + 1);
        drop(guard);
        assert_eq!(snapshot().irps_in_flight, before.irps_in_flight);
        assert_eq!(snapshot().irps_total, before.irps_total + 1);
    }
}
