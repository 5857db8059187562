//! Every input either parses into a request that keeps the documented
//! limits, or gets the documented error; the hand-written parser agrees
//! with the table-driven reading of docs/protocol.md's order of checks
//! (`spec::expected`); and every encoder and decoder round-trips.
//!
//! Input layout: byte 0 picks the code (one of dpclock's, one with a
//! `CTL_CODE` field changed, or four raw bytes) and the policy; bytes 1–2
//! are the output buffer's length; the rest is the input buffer.

#![no_main]

use dpclock_ioctl::{
    ALL_IOCTLS, Health, LockKind, LockRequest, LockResponse, NOOP_MAX_OUTPUT, Policy, Request,
    Stats, TimerRequest, ctl_code, limits, noop_reply, parse, spec,
};
use libfuzzer_sys::fuzz_target;

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let selector = data[0];
    let policy = Policy {
        unlocked_control: selector & 0x80 != 0,
    };
    let output_len = usize::from(u16::from_le_bytes([data[1], data[2]]));
    let mut input = &data[3..];
    let pick = usize::from(selector & 0x3F);
    let code = match selector & 0x40 {
        0 => ALL_IOCTLS[pick % ALL_IOCTLS.len()],
        _ if input.len() >= 4 => {
            // A code with one field changed, or any four bytes.
            let raw = u32_at(input, 0);
            input = &input[4..];
            match pick % 4 {
                0 => raw,
                1 => ctl_code(0x8DC1, raw & 0xFFF, 0, (raw >> 12) & 3),
                2 => ALL_IOCTLS[pick % ALL_IOCTLS.len()] ^ (1 << (raw % 32)),
                _ => ctl_code(0x8DC1, 0x800 + raw % 16, (raw >> 4) & 3, (raw >> 6) & 3),
            }
        }
        _ => return,
    };

    let parsed = parse(code, input, output_len, policy);
    let expected = spec::expected(code, input, output_len, policy);
    assert_eq!(
        parsed.map(|_| ()),
        expected.map(|_| ()),
        "code {code:#x}, {} input bytes, {output_len} output bytes, {policy:?}",
        input.len()
    );

    match parsed {
        Err(error) => {
            // Only documented statuses.
            assert!(
                spec::STATUSES
                    .iter()
                    .any(|s| s.1.cast_signed() == error.ntstatus())
            );
        }
        Ok(request) => {
            assert!(ALL_IOCTLS.contains(&code));
            assert!(output_len >= request.output_len());
            assert_eq!(
                expected,
                Ok(request.output_len().max(match request {
                    Request::Noop => output_len.min(NOOP_MAX_OUTPUT),
                    _ => 0,
                }))
            );
            match request {
                Request::LockPassive(w) | Request::LockDispatch(w) | Request::DpcBurst(w) => {
                    let max = match request {
                        Request::LockPassive(_) => limits::MAX_PASSIVE_ITERATIONS,
                        Request::LockDispatch(_) => limits::MAX_DISPATCH_ITERATIONS,
                        _ => limits::MAX_BURST_ITERATIONS,
                    };
                    assert!((1..=max).contains(&w.iterations));
                    assert!(w.work <= limits::MAX_WORK);
                    assert!(w.lock_kind != LockKind::Unlocked || policy.unlocked_control);
                    // The request is the input's fields, and encodes back
                    // to the input's first 16 bytes.
                    let encoded = LockRequest::encode(w.lock_kind, w.iterations, w.work);
                    assert_eq!(&encoded[..], &input[..16]);
                    assert_eq!(parse(code, &encoded, output_len, policy), Ok(request));
                }
                Request::TimerStart(t) => {
                    assert!(
                        (limits::MIN_TIMER_PERIOD_MS..=limits::MAX_TIMER_PERIOD_MS)
                            .contains(&t.period_ms)
                    );
                    assert!((1..=limits::MAX_TIMER_ITERATIONS).contains(&t.tick.iterations));
                    assert!(t.tick.work <= limits::MAX_WORK);
                    // One tick is one DPC run: it fits its budget.
                    assert!(limits::timer_tick_fits(t.tick.iterations, t.tick.work));
                    assert!(t.tick.lock_kind != LockKind::Unlocked || policy.unlocked_control);
                    let encoded = TimerRequest::encode(
                        t.tick.lock_kind,
                        t.period_ms,
                        t.tick.iterations,
                        t.tick.work,
                    );
                    assert_eq!(&encoded[..], &input[..24]);
                    assert_eq!(parse(code, &encoded, output_len, policy), Ok(request));
                }
                Request::Noop => {
                    let mut out = vec![0xAA_u8; output_len.min(64)];
                    let written = noop_reply(&mut out);
                    assert_eq!(written, out.len().min(NOOP_MAX_OUTPUT));
                    assert!(out[..written].iter().all(|&b| b == 0));
                    assert!(out[written..].iter().all(|&b| b == 0xAA));
                }
                Request::TimerStop | Request::GetStats | Request::Reset | Request::GetHealth => {}
            }
        }
    }

    // Replies: whatever decodes re-encodes to the same bytes (reserved
    // fields are written as zero), and decodes again to the same value.
    if let Ok(response) = LockResponse::decode(input) {
        let mut bytes = [0_u8; 32];
        assert_eq!(response.encode(&mut bytes), Ok(32));
        assert_eq!(&bytes[..28], &input[..28]);
        assert_eq!(&bytes[28..], &[0; 4]);
        assert_eq!(LockResponse::decode(&bytes), Ok(response));
    }
    if let Ok(stats) = Stats::decode(input) {
        let mut bytes = vec![0_u8; size_of::<Stats>()];
        assert_eq!(stats.encode(&mut bytes), Ok(size_of::<Stats>()));
        assert_eq!(&bytes[..], &input[..size_of::<Stats>()]);
        assert_eq!(Stats::decode(&bytes), Ok(stats));
    }
    if let Ok(health) = Health::decode(input) {
        let mut bytes = [0_u8; size_of::<Health>()];
        assert_eq!(health.encode(&mut bytes), Ok(size_of::<Health>()));
        assert_eq!(&bytes[..4], &input[..4]);
        assert_eq!(&bytes[8..], &input[8..size_of::<Health>()]);
        assert_eq!(Health::decode(&bytes), Ok(health));
    }
    // Any value encodes and decodes to itself.
    if input.len() >= 32 {
        let response = LockResponse {
            version: dpclock_ioctl::PROTOCOL_VERSION,
            lock_kind: u32_at(input, 0),
            acquisitions: u64::from(u32_at(input, 4)) << 32 | u64::from(u32_at(input, 8)),
            contended: u64::from(u32_at(input, 12)),
            dpc_runs: u32_at(input, 16),
            reserved: 0,
        };
        let mut bytes = [0_u8; 32];
        response.encode(&mut bytes).unwrap();
        assert_eq!(LockResponse::decode(&bytes), Ok(response));
    }
});
