//! Little-endian fields at fixed offsets: the conventions every struct of
//! docs/protocol.md follows ("Conventions").

use crate::{Error, PROTOCOL_VERSION};

pub(crate) fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}

pub(crate) fn put_u32(out: &mut [u8], offset: usize, value: u32) {
    out[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut [u8], offset: usize, value: u64) {
    out[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(word)
}

pub(crate) fn check_version(version: u32) -> Result<(), Error> {
    if version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(Error::InvalidParameter)
    }
}

/// Writes little-endian fields in struct order.
pub(crate) struct Writer<'a> {
    pub(crate) out: &'a mut [u8],
    pub(crate) at: usize,
}

impl Writer<'_> {
    pub(crate) fn put32(&mut self, v: u32) {
        put_u32(self.out, self.at, v);
        self.at += 4;
    }
    pub(crate) fn put64(&mut self, v: u64) {
        put_u64(self.out, self.at, v);
        self.at += 8;
    }
}

/// Reads little-endian fields in struct order.
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) at: usize,
}

impl Reader<'_> {
    pub(crate) fn get32(&mut self) -> u32 {
        self.at += 4;
        u32_at(self.bytes, self.at - 4)
    }
    pub(crate) fn get64(&mut self) -> u64 {
        self.at += 8;
        u64_at(self.bytes, self.at - 8)
    }
}
