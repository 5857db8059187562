//! IRQL values, and whether a platform's reads of them can be trusted: the
//! bottom layer, imported by everything else.

/// An interrupt request level (`KIRQL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Irql(pub u8);

impl Irql {
    /// `PASSIVE_LEVEL`: threads, IOCTL dispatch routines.
    pub const PASSIVE: Self = Self(0);
    /// `APC_LEVEL`.
    pub const APC: Self = Self(1);
    /// `DISPATCH_LEVEL`: DPC routines, code holding a spin lock.
    pub const DISPATCH: Self = Self(2);
}

/// Whether a platform's IRQL reads can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum IrqlModel {
    /// IRQL reads report the real level: IRQL assertions are on.
    Modelled = 1,
    /// The environment does not model IRQL (Wine): IRQL assertions are off
    /// and reported as unavailable.
    NotModelled = 0,
}
