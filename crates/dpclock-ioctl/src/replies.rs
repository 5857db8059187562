//! What the driver answers with: docs/protocol.md's `LockResponse` and
//! `Health` ("Response structs").

use core::mem::{offset_of, size_of};

use crate::wire::{Reader, Writer, check_version, put_u32, put_u64, u32_at, u64_at};
use crate::{Error, PROTOCOL_VERSION};

/// Output of `LOCK_PASSIVE`, `LOCK_DISPATCH` and `DPC_BURST` (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockResponse {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The [`LockKind`] used.
    pub lock_kind: u32,
    /// Acquisitions made by this request (for `DPC_BURST`: `iterations`
    /// times `dpc_runs`).
    pub acquisitions: u64,
    /// Of those, how many found the lock held by someone else first.
    pub contended: u64,
    /// `DPC_BURST`: processors that ran the DPC; otherwise 0.
    pub dpc_runs: u32,
    /// Zero.
    pub reserved: u32,
}

const _: () = {
    assert!(size_of::<LockResponse>() == 32);
    assert!(offset_of!(LockResponse, version) == 0);
    assert!(offset_of!(LockResponse, lock_kind) == 4);
    assert!(offset_of!(LockResponse, acquisitions) == 8);
    assert!(offset_of!(LockResponse, contended) == 16);
    assert!(offset_of!(LockResponse, dpc_runs) == 24);
    assert!(offset_of!(LockResponse, reserved) == 28);
};

impl LockResponse {
    /// Writes the response into `out`, returning the bytes written.
    ///
    /// # Errors
    ///
    /// [`Error::BufferTooSmall`] if `out` cannot hold it.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        let out = out
            .get_mut(..size_of::<Self>())
            .ok_or(Error::BufferTooSmall)?;
        put_u32(out, offset_of!(Self, version), PROTOCOL_VERSION);
        put_u32(out, offset_of!(Self, lock_kind), self.lock_kind);
        put_u64(out, offset_of!(Self, acquisitions), self.acquisitions);
        put_u64(out, offset_of!(Self, contended), self.contended);
        put_u32(out, offset_of!(Self, dpc_runs), self.dpc_runs);
        put_u32(out, offset_of!(Self, reserved), 0);
        Ok(size_of::<Self>())
    }

    /// Reads a response, for clients.
    ///
    /// # Errors
    ///
    /// [`Error::BufferTooSmall`] or, for another version,
    /// [`Error::InvalidParameter`].
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < size_of::<Self>() {
            return Err(Error::BufferTooSmall);
        }
        check_version(u32_at(bytes, offset_of!(Self, version)))?;
        Ok(Self {
            version: PROTOCOL_VERSION,
            lock_kind: u32_at(bytes, offset_of!(Self, lock_kind)),
            acquisitions: u64_at(bytes, offset_of!(Self, acquisitions)),
            contended: u64_at(bytes, offset_of!(Self, contended)),
            dpc_runs: u32_at(bytes, offset_of!(Self, dpc_runs)),
            reserved: 0,
        })
    }
}

/// Output of `GET_HEALTH` (72 bytes): the driver's own counters, kept
/// driver-wide with interlocked operations. A quiet device answers with
/// `irps_in_flight` and `remove_lock_references` at 1 (the `GET_HEALTH`
/// request itself); a driver whose last device was removed has every
/// `*_in_flight`/`*_references`/`*_armed`/`*_live` counter at 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// Zero.
    pub reserved: u32,
    /// IRPs inside the driver's dispatch routines now, this one included.
    pub irps_in_flight: u64,
    /// Remove-lock acquisitions not yet released, this request's included.
    pub remove_lock_references: u64,
    /// Periodic timers armed (one per device at most).
    pub timers_armed: u64,
    /// Heap allocations made through the driver's allocator and not freed.
    pub allocations_live: u64,
    /// Bytes of those allocations.
    pub allocated_bytes_live: u64,
    /// Allocations made since the driver loaded.
    pub allocations_total: u64,
    /// IRPs dispatched since the driver loaded, this one included.
    pub irps_total: u64,
    /// Device objects the driver has (created in AddDevice, deleted at
    /// `IRP_MN_REMOVE_DEVICE`).
    pub devices: u64,
}

const _: () = {
    assert!(size_of::<Health>() == 72);
    assert!(offset_of!(Health, version) == 0);
    assert!(offset_of!(Health, reserved) == 4);
    assert!(offset_of!(Health, irps_in_flight) == 8);
    assert!(offset_of!(Health, remove_lock_references) == 16);
    assert!(offset_of!(Health, timers_armed) == 24);
    assert!(offset_of!(Health, allocations_live) == 32);
    assert!(offset_of!(Health, allocated_bytes_live) == 40);
    assert!(offset_of!(Health, allocations_total) == 48);
    assert!(offset_of!(Health, irps_total) == 56);
    assert!(offset_of!(Health, devices) == 64);
};

impl Health {
    /// Writes the counters into `out`, returning the bytes written.
    ///
    /// # Errors
    ///
    /// [`Error::BufferTooSmall`] if `out` cannot hold them.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        let out = out
            .get_mut(..size_of::<Self>())
            .ok_or(Error::BufferTooSmall)?;
        let mut w = Writer { out, at: 0 };
        w.put32(PROTOCOL_VERSION);
        w.put32(0);
        for v in [
            self.irps_in_flight,
            self.remove_lock_references,
            self.timers_armed,
            self.allocations_live,
            self.allocated_bytes_live,
            self.allocations_total,
            self.irps_total,
            self.devices,
        ] {
            w.put64(v);
        }
        debug_assert_eq!(w.at, size_of::<Self>());
        Ok(size_of::<Self>())
    }

    /// Reads the counters, for clients.
    ///
    /// # Errors
    ///
    /// [`Error::BufferTooSmall`] or, for another version,
    /// [`Error::InvalidParameter`].
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < size_of::<Self>() {
            return Err(Error::BufferTooSmall);
        }
        let mut r = Reader { bytes, at: 0 };
        check_version(r.get32())?;
        let _reserved = r.get32();
        Ok(Self {
            version: PROTOCOL_VERSION,
            reserved: 0,
            irps_in_flight: r.get64(),
            remove_lock_references: r.get64(),
            timers_armed: r.get64(),
            allocations_live: r.get64(),
            allocated_bytes_live: r.get64(),
            allocations_total: r.get64(),
            irps_total: r.get64(),
            devices: r.get64(),
        })
    }
}
