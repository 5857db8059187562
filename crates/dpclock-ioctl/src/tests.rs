extern crate std;

use std::vec;

use core::mem::size_of;

use proptest::prelude::*;

use super::*;

/// The default policy: the unlocked control is not enabled.
const P: Policy = Policy {
    unlocked_control: false,
};
/// The unlocked control enabled.
const ALLOW: Policy = Policy {
    unlocked_control: true,
};

fn lock_bytes(version: u32, kind: u32, iterations: u32, work: u32) -> [u8; 16] {
    let mut b = [0; 16];
    b[0..4].copy_from_slice(&version.to_le_bytes());
    b[4..8].copy_from_slice(&kind.to_le_bytes());
    b[8..12].copy_from_slice(&iterations.to_le_bytes());
    b[12..16].copy_from_slice(&work.to_le_bytes());
    b
}

#[test]
fn ctl_code_matches_the_wdk_macro() {
    // CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)
    assert_eq!(ctl_code(0x22, 0x800, 0, 0), 0x0022_2000);
    assert_eq!(IOCTL_DPCLOCK_NOOP, 0x8DC1_2000);
    assert_eq!(IOCTL_DPCLOCK_LOCK_PASSIVE, 0x8DC1_E004);
    assert_eq!(IOCTL_DPCLOCK_LOCK_DISPATCH, 0x8DC1_E008);
    assert_eq!(IOCTL_DPCLOCK_DPC_BURST, 0x8DC1_E00C);
    assert_eq!(IOCTL_DPCLOCK_TIMER_START, 0x8DC1_E010);
    assert_eq!(IOCTL_DPCLOCK_TIMER_STOP, 0x8DC1_E014);
    assert_eq!(IOCTL_DPCLOCK_GET_STATS, 0x8DC1_6018);
    assert_eq!(IOCTL_DPCLOCK_RESET, 0x8DC1_E01C);
    for code in ALL_IOCTLS {
        assert_eq!(code & 3, METHOD_BUFFERED, "{code:#x}");
    }
}

#[test]
fn lock_requests_are_validated_field_by_field() {
    let ok = lock_bytes(PROTOCOL_VERSION, 0, 10, 5);
    assert_eq!(
        parse_lock_passive(&ok, P),
        Ok(LockWork {
            lock_kind: LockKind::Plain,
            iterations: 10,
            work: 5
        })
    );
    assert_eq!(parse_lock_passive(&ok[..15], P), Err(Error::BufferTooSmall));
    assert_eq!(parse_lock_passive(&[], P), Err(Error::BufferTooSmall));
    assert_eq!(
        parse_lock_passive(&lock_bytes(PROTOCOL_VERSION + 1, 0, 10, 5), P),
        Err(Error::InvalidParameter)
    );
    assert_eq!(
        parse_lock_passive(&lock_bytes(0, 0, 10, 5), P),
        Err(Error::InvalidParameter)
    );
    assert_eq!(
        parse_lock_passive(&lock_bytes(PROTOCOL_VERSION, 3, 10, 5), P),
        Err(Error::InvalidParameter)
    );
    assert_eq!(
        parse_lock_passive(&lock_bytes(PROTOCOL_VERSION, 0, 0, 5), P),
        Err(Error::InvalidParameter)
    );
    assert_eq!(
        parse_lock_passive(&lock_bytes(PROTOCOL_VERSION, 0, u32::MAX, 5), P),
        Err(Error::InvalidParameter)
    );
    assert_eq!(
        parse_lock_passive(&lock_bytes(PROTOCOL_VERSION, 0, 1, limits::MAX_WORK + 1), P),
        Err(Error::InvalidParameter)
    );
    assert!(
        parse_lock_passive(
            &lock_bytes(
                PROTOCOL_VERSION,
                2,
                limits::MAX_PASSIVE_ITERATIONS,
                limits::MAX_WORK
            ),
            ALLOW
        )
        .is_ok()
    );
    assert_eq!(
        parse_lock_dispatch(
            &lock_bytes(PROTOCOL_VERSION, 1, limits::MAX_DISPATCH_ITERATIONS + 1, 0),
            P
        ),
        Err(Error::InvalidParameter)
    );
    assert!(
        parse_lock_dispatch(
            &lock_bytes(PROTOCOL_VERSION, 1, limits::MAX_DISPATCH_ITERATIONS, 0),
            P
        )
        .is_ok()
    );
    assert_eq!(
        parse_dpc_burst(
            &lock_bytes(PROTOCOL_VERSION, 1, limits::MAX_BURST_ITERATIONS + 1, 0),
            P
        ),
        Err(Error::InvalidParameter)
    );
    // Longer input is accepted; the extra bytes are ignored.
    let mut long = [0xAA_u8; 64];
    long[..16].copy_from_slice(&ok);
    assert!(parse_lock_passive(&long, P).is_ok());
    // The client-side encoder produces what the parser accepts.
    assert_eq!(
        parse_dpc_burst(&LockRequest::encode(LockKind::Unlocked, 7, 9), ALLOW),
        Ok(LockWork {
            lock_kind: LockKind::Unlocked,
            iterations: 7,
            work: 9
        })
    );
}

#[test]
fn timer_requests_are_validated_field_by_field() {
    let ok = TimerRequest::encode(LockKind::Queued, 5, 3, 2);
    assert_eq!(
        parse_timer_start(&ok, P),
        Ok(TimerWork {
            period_ms: 5,
            tick: LockWork {
                lock_kind: LockKind::Queued,
                iterations: 3,
                work: 2
            }
        })
    );
    assert_eq!(parse_timer_start(&ok[..23], P), Err(Error::BufferTooSmall));
    for (offset, bad) in [
        (0, 9),
        (4, 7),
        (8, 0),
        (8, limits::MAX_TIMER_PERIOD_MS + 1),
        (12, 0),
        (16, u32::MAX),
        (20, 1),
    ] {
        let mut b = ok;
        b[offset..offset + 4].copy_from_slice(&u32::to_le_bytes(bad));
        assert_eq!(
            parse_timer_start(&b, P),
            Err(Error::InvalidParameter),
            "field at {offset} = {bad}"
        );
    }
}

#[test]
fn parse_dispatches_on_the_code_and_checks_the_output_size() {
    let lock = lock_bytes(PROTOCOL_VERSION, 0, 1, 0);
    assert_eq!(
        parse(0x8DC1_2003, &[], 0, P),
        Err(Error::InvalidDeviceRequest),
        "METHOD_NEITHER variant"
    );
    assert_eq!(
        parse(ctl_code(0x22, 0x801, 0, 3), &lock, 64, P),
        Err(Error::InvalidDeviceRequest)
    );
    assert_eq!(parse(0, &[], 0, P), Err(Error::InvalidDeviceRequest));
    assert_eq!(
        parse(IOCTL_DPCLOCK_NOOP, &[1, 2, 3], 0, P),
        Ok(Request::Noop)
    );
    assert_eq!(
        parse(IOCTL_DPCLOCK_LOCK_PASSIVE, &lock, 31, P),
        Err(Error::BufferTooSmall)
    );
    assert!(matches!(
        parse(IOCTL_DPCLOCK_LOCK_PASSIVE, &lock, 32, P),
        Ok(Request::LockPassive(_))
    ));
    // A bad input is reported before a short output buffer.
    assert_eq!(
        parse(IOCTL_DPCLOCK_LOCK_PASSIVE, &lock[..4], 0, P),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(
        parse(
            IOCTL_DPCLOCK_LOCK_PASSIVE,
            &lock_bytes(PROTOCOL_VERSION, 9, 1, 0),
            0,
            P
        ),
        Err(Error::InvalidParameter)
    );
    assert_eq!(
        parse(IOCTL_DPCLOCK_GET_STATS, &[], size_of::<Stats>() - 1, P),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(
        parse(IOCTL_DPCLOCK_GET_STATS, &[], size_of::<Stats>(), P),
        Ok(Request::GetStats)
    );
    assert_eq!(parse(IOCTL_DPCLOCK_RESET, &[], 0, P), Ok(Request::Reset));
    assert_eq!(
        parse(IOCTL_DPCLOCK_TIMER_STOP, &[], 0, P),
        Ok(Request::TimerStop)
    );
}

#[test]
fn responses_round_trip() {
    let response = LockResponse {
        version: PROTOCOL_VERSION,
        lock_kind: 1,
        acquisitions: 42,
        contended: 7,
        dpc_runs: 2,
        reserved: 0,
    };
    let mut buffer = [0_u8; 40];
    assert_eq!(response.encode(&mut buffer), Ok(32));
    assert_eq!(LockResponse::decode(&buffer), Ok(response));
    assert_eq!(
        response.encode(&mut buffer[..31]),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(
        LockResponse::decode(&buffer[..31]),
        Err(Error::BufferTooSmall)
    );

    let mut stats = Stats {
        version: PROTOCOL_VERSION,
        flags: 5,
        processors: 2,
        timer_period_ms: 3,
        timer_ticks: 4,
        burst_dpc_runs: 6,
        ..Stats::default()
    };
    for (k, ledger) in stats.ledgers.iter_mut().enumerate() {
        let k = k as u64 * 100;
        ledger.updates = [k + 1, k + 2, k + 3, k + 4];
        ledger.total = k + 5;
        ledger.checksum = k + 6;
        ledger.performed = [k + 7, k + 8, k + 9, k + 10];
        ledger.contended = k + 11;
        ledger.hold = HoldStats {
            count: k + 12,
            total_ns: k + 13,
            max_ns: k + 14,
            over_guidance: k + 15,
            histogram: core::array::from_fn(|i| k + 16 + i as u64),
        };
    }
    stats.validator = ValidatorStats {
        irql_checks: 1,
        classes: 2,
        recursive_acquires: 3,
        foreign_releases: 4,
        order_inversions: 5,
        same_class_nesting: 6,
        irql_at_acquire: 7,
        irql_at_release: 8,
        held_at_scope_end: 9,
        untracked: 10,
    };
    let mut buffer = [0_u8; size_of::<Stats>()];
    assert_eq!(stats.encode(&mut buffer), Ok(size_of::<Stats>()));
    assert_eq!(Stats::decode(&buffer), Ok(stats));
    assert_eq!(stats.validator.violations(), 3 + 4 + 5 + 6 + 7 + 8 + 9);
    // The documented offsets hold in the encoding.
    assert_eq!(
        &buffer[40..48],
        &1_u64.to_le_bytes(),
        "ledgers[0].updates[0] at 40"
    );
    assert_eq!(
        &buffer[40 + 376..40 + 384],
        &101_u64.to_le_bytes(),
        "ledgers[1] at 416"
    );
}

#[test]
fn checksum_is_order_independent_and_catches_lost_and_duplicated_updates() {
    // Apply updates the way the driver does, in an interleaved order.
    let mut updates = [0_u64; PATH_COUNT];
    let mut checksum = 0_u64;
    for step in 0..1000_u64 {
        let path = ((step * 7) % 4) as usize;
        updates[path] += 1;
        checksum = checksum.wrapping_add(update_mix(path as u32, updates[path]));
    }
    assert_eq!(checksum, expected_checksum(&updates));

    // A lost update: two racing updates both wrote count k.
    let mut lost = updates;
    lost[2] -= 1;
    assert_ne!(checksum, expected_checksum(&lost));
    let duplicated = checksum.wrapping_add(update_mix(2, updates[2]));
    assert_ne!(duplicated, expected_checksum(&updates));
}

proptest! {
    #[test]
    fn parse_never_panics_and_accepts_exactly_what_the_spec_allows(
        code in prop_oneof![
            Just(IOCTL_DPCLOCK_LOCK_PASSIVE), Just(IOCTL_DPCLOCK_LOCK_DISPATCH), Just(IOCTL_DPCLOCK_DPC_BURST),
            Just(IOCTL_DPCLOCK_TIMER_START), Just(IOCTL_DPCLOCK_GET_STATS), Just(IOCTL_DPCLOCK_NOOP),
            any::<u32>(), (0_u32..0x1000).prop_map(|f| ctl_code(DEVICE_TYPE, f, f & 3, (f >> 2) & 3)),
        ],
        input in prop::collection::vec(any::<u8>(), 0..64),
        output_len in 0_usize..4096,
    ) {
        let result = parse(code, &input, output_len, P);
        if let Ok(request) = result {
            prop_assert!(ALL_IOCTLS.contains(&code));
            prop_assert!(output_len >= request.output_len());
        }
        if !ALL_IOCTLS.contains(&code) {
            prop_assert_eq!(result, Err(Error::InvalidDeviceRequest));
        }
        if code == IOCTL_DPCLOCK_LOCK_PASSIVE {
            let valid = input.len() >= 16 && {
                let field = |i: usize| u32::from_le_bytes(input[i..i + 4].try_into().unwrap());
                field(0) == PROTOCOL_VERSION && field(4) < 2 && (1..=limits::MAX_PASSIVE_ITERATIONS).contains(&field(8))
                    && field(12) <= limits::MAX_WORK
            };
            prop_assert_eq!(result.is_ok(), valid && output_len >= 32);
        }
    }

    #[test]
    fn well_formed_lock_requests_are_accepted(kind in 0_u32..3, iterations in 1..=limits::MAX_DISPATCH_ITERATIONS, work in 0..=limits::MAX_WORK) {
        let bytes = lock_bytes(PROTOCOL_VERSION, kind, iterations, work);
        for code in [IOCTL_DPCLOCK_LOCK_PASSIVE, IOCTL_DPCLOCK_LOCK_DISPATCH, IOCTL_DPCLOCK_DPC_BURST] {
            prop_assert!(parse(code, &bytes, 32, ALLOW).is_ok());
        }
    }

    #[test]
    fn stats_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..1400)) {
        let _ = Stats::decode(&bytes);
        let _ = LockResponse::decode(&bytes);
    }
}

#[test]
fn noop_zero_fills_at_most_a_lock_response() {
    let mut big = [0xAA_u8; 40];
    assert_eq!(noop_reply(&mut big), NOOP_MAX_OUTPUT);
    assert_eq!(NOOP_MAX_OUTPUT, size_of::<LockResponse>());
    assert!(big[..32].iter().all(|&b| b == 0));
    assert!(big[32..].iter().all(|&b| b == 0xAA), "wrote past 32 bytes");
    let mut small = [0xAA_u8; 5];
    assert_eq!(noop_reply(&mut small), 5);
    assert_eq!(small, [0; 5]);
    assert_eq!(noop_reply(&mut []), 0);
}

/// The case a client written from docs/protocol.md found: the unlocked
/// control while it is not enabled is an input check, so it decides the
/// status before a short output buffer does.
#[test]
fn the_unlocked_control_is_refused_before_the_output_size_is_checked() {
    let unlocked = LockRequest::encode(LockKind::Unlocked, 1, 0);
    for code in [
        IOCTL_DPCLOCK_LOCK_PASSIVE,
        IOCTL_DPCLOCK_LOCK_DISPATCH,
        IOCTL_DPCLOCK_DPC_BURST,
    ] {
        for output_len in [0, 31, 32, 4096] {
            assert_eq!(
                parse(code, &unlocked, output_len, P),
                Err(Error::NotSupported),
                "{code:#x} with {output_len} output bytes"
            );
        }
        assert_eq!(
            parse(code, &unlocked, 31, ALLOW),
            Err(Error::BufferTooSmall)
        );
        assert!(parse(code, &unlocked, 32, ALLOW).is_ok());
    }
    let timer = TimerRequest::encode(LockKind::Unlocked, 10, 1, 0);
    assert_eq!(
        parse(IOCTL_DPCLOCK_TIMER_START, &timer, 0, P),
        Err(Error::NotSupported)
    );
    assert!(parse(IOCTL_DPCLOCK_TIMER_START, &timer, 0, ALLOW).is_ok());
}

/// Two bad fields: the one at the lower offset decides.
#[test]
fn the_first_bad_field_in_offset_order_decides() {
    // lock_kind 2 (not enabled) before a bad iteration count ...
    assert_eq!(
        parse_lock_passive(&lock_bytes(PROTOCOL_VERSION, 2, 0, 0), P),
        Err(Error::NotSupported)
    );
    // ... but after a bad version.
    assert_eq!(
        parse_lock_passive(&lock_bytes(7, 2, 1, 0), P),
        Err(Error::InvalidParameter)
    );
    // An unknown kind is invalid whatever the policy.
    assert_eq!(
        parse_lock_passive(&lock_bytes(PROTOCOL_VERSION, 3, 1, 0), ALLOW),
        Err(Error::InvalidParameter)
    );
    let mut timer = TimerRequest::encode(LockKind::Unlocked, 0, 0, 0);
    timer[20] = 1; // reserved
    assert_eq!(parse_timer_start(&timer, P), Err(Error::NotSupported));
    assert_eq!(
        parse_timer_start(&timer, ALLOW),
        Err(Error::InvalidParameter)
    );
}

#[test]
fn health_round_trips_at_its_documented_offsets() {
    let health = Health {
        version: PROTOCOL_VERSION,
        reserved: 0,
        irps_in_flight: 1,
        remove_lock_references: 2,
        timers_armed: 3,
        allocations_live: 4,
        allocated_bytes_live: 5,
        allocations_total: 6,
        irps_total: 7,
        devices: 8,
    };
    let mut buffer = [0xEE_u8; 80];
    assert_eq!(health.encode(&mut buffer), Ok(72));
    assert_eq!(&buffer[72..], &[0xEE; 8], "wrote past the struct");
    assert_eq!(&buffer[4..8], &[0; 4], "reserved is zero");
    assert_eq!(&buffer[64..72], &8_u64.to_le_bytes(), "devices at 64");
    assert_eq!(Health::decode(&buffer), Ok(health));
    assert_eq!(Health::decode(&buffer[..71]), Err(Error::BufferTooSmall));
    assert_eq!(
        parse(IOCTL_DPCLOCK_GET_HEALTH, &[], 71, P),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(
        parse(IOCTL_DPCLOCK_GET_HEALTH, &[1, 2], 72, P),
        Ok(Request::GetHealth)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5_000))]

    /// The hand-written parser and the table-driven reading of the
    /// document's order of checks agree on every request. Requests are
    /// built field by field from the spec, each field valid, at a limit or
    /// just past it, so that every rule and every pair of bad fields is
    /// reached often.
    #[test]
    fn parse_agrees_with_the_documented_order_of_checks(
        which in 0_usize..11,
        other_code in any::<u32>(),
        picks in prop::array::uniform6(0_usize..6),
        truncate in prop_oneof![Just(0_usize), Just(0), Just(1), 0_usize..24],
        extra in 0_usize..3,
        output in 0_usize..8,
        unlocked_control in any::<bool>(),
    ) {
        let ioctl = spec::IOCTLS.get(which);
        let code = ioctl.map_or(other_code, |i| i.code);
        // The struct of the code's IOCTL or, for the others, LockRequest's.
        let request = ioctl.and_then(|i| i.input).or(spec::IOCTLS[1].input).unwrap();
        let mut input = vec![0_u8; request.size + extra * 4];
        for (field, &pick) in request.fields.iter().zip(&picks) {
            let value = match field.rule {
                spec::Rule::Version => [1, 1, 1, 0, 2, u32::MAX][pick],
                spec::Rule::LockKind => [0, 1, 2, 2, 3, u32::MAX][pick],
                spec::Rule::Range { min, max } => {
                    [min, max, min + (max - min) / 2, min.wrapping_sub(1), max + 1, u32::MAX][pick]
                }
                spec::Rule::Zero => [0, 0, 0, 1, 0x8000_0000, u32::MAX][pick],
            };
            input[field.offset..field.offset + 4].copy_from_slice(&value.to_le_bytes());
        }
        input.truncate(input.len().saturating_sub(truncate));
        let response = match ioctl.map(|i| i.output) {
            Some(spec::Output::Response { size, .. } | spec::Output::ZerosUpTo(size)) => size,
            _ => 32,
        };
        let output_len = [0, 1, response - 1, response, response + 1, 31, 4096, 65536][output];
        let policy = Policy { unlocked_control };
        let parsed = parse(code, &input, output_len, policy);
        let expected = spec::expected(code, &input, output_len, policy);
        prop_assert_eq!(parsed.map(|_| ()), expected.map(|_| ()));
    }
}

/// The numbers docs/protocol.md's "Budgets" states, recomputed.
#[test]
fn the_budget_arithmetic_is_the_documented_one() {
    assert_eq!(limits::WORK_UNIT_PS, 10_160);
    assert_eq!(limits::acquisition_cost_ps(0), 1_000_000);
    assert_eq!(limits::acquisition_cost_ps(limits::MAX_WORK), 21_320_000);
    assert_eq!(limits::chunk_iterations(0), 100);
    assert_eq!(limits::chunk_iterations(limits::MAX_WORK), 4);
    assert_eq!(limits::MAX_TIMER_ITERATIONS, 50);
    // The most work that fits one hold: MAX_WORK is rounded down from it.
    let most = (limits::HOLD_BUDGET_NS * 1_000 - limits::ACQUISITION_OVERHEAD_NS * 1_000)
        / limits::WORK_UNIT_PS;
    assert_eq!(most, 2_362);
    assert!(u64::from(limits::MAX_WORK) <= most);
}

/// Every work value: one hold fits its budget, a chunk fits the DPC budget
/// and is the largest that does, and the largest timer tick that fits is
/// accepted while one more acquisition is refused.
#[test]
fn every_work_value_keeps_holds_chunks_and_ticks_within_budget() {
    for work in 0..=limits::MAX_WORK {
        let cost = limits::acquisition_cost_ps(work);
        assert!(cost <= limits::HOLD_BUDGET_NS * 1_000, "work {work}");
        let chunk = u64::from(limits::chunk_iterations(work));
        assert!(chunk >= 1);
        assert!(chunk * cost <= limits::DPC_BUDGET_NS * 1_000, "work {work}");
        assert!(
            (chunk + 1) * cost > limits::DPC_BUDGET_NS * 1_000,
            "work {work}"
        );
        let fits = (1..=limits::MAX_TIMER_ITERATIONS)
            .rev()
            .find(|&n| limits::timer_tick_fits(n, work))
            .expect("one acquisition always fits a tick");
        let ok = TimerRequest::encode(LockKind::Plain, 1, fits, work);
        assert!(parse_timer_start(&ok, P).is_ok(), "work {work}: {fits}");
        assert!(u64::from(fits) * cost <= limits::TIMER_TICK_BUDGET_NS * 1_000);
        let over = TimerRequest::encode(LockKind::Plain, 1, fits + 1, work);
        assert_eq!(
            parse_timer_start(&over, P),
            Err(Error::InvalidParameter),
            "work {work}: {} acquisitions are over budget",
            fits + 1
        );
        assert_eq!(
            spec::expected(IOCTL_DPCLOCK_TIMER_START, &over, 0, P),
            Err(Error::InvalidParameter)
        );
    }
}

/// One unit over each limit is refused, the limit itself accepted, for
/// every IOCTL that has it.
#[test]
fn one_unit_over_each_limit_is_refused() {
    let passive = |i, w| parse_lock_passive(&lock_bytes(PROTOCOL_VERSION, 0, i, w), P);
    let dispatch = |i, w| parse_lock_dispatch(&lock_bytes(PROTOCOL_VERSION, 0, i, w), P);
    let burst = |i, w| parse_dpc_burst(&lock_bytes(PROTOCOL_VERSION, 0, i, w), P);
    for (parse, max) in [
        (
            &passive as &dyn Fn(u32, u32) -> Result<LockWork, Error>,
            limits::MAX_PASSIVE_ITERATIONS,
        ),
        (&dispatch, limits::MAX_DISPATCH_ITERATIONS),
        (&burst, limits::MAX_BURST_ITERATIONS),
    ] {
        assert!(parse(max, limits::MAX_WORK).is_ok());
        assert_eq!(parse(max + 1, 0), Err(Error::InvalidParameter));
        assert_eq!(parse(1, limits::MAX_WORK + 1), Err(Error::InvalidParameter));
        assert_eq!(parse(0, 0), Err(Error::InvalidParameter));
    }
    let timer = |period, iterations, work| {
        parse_timer_start(
            &TimerRequest::encode(LockKind::Plain, period, iterations, work),
            P,
        )
    };
    assert!(timer(limits::MAX_TIMER_PERIOD_MS, limits::MAX_TIMER_ITERATIONS, 0).is_ok());
    assert_eq!(
        timer(limits::MAX_TIMER_PERIOD_MS + 1, 1, 0),
        Err(Error::InvalidParameter)
    );
    assert_eq!(timer(0, 1, 0), Err(Error::InvalidParameter));
    assert_eq!(
        timer(1, limits::MAX_TIMER_ITERATIONS + 1, 0),
        Err(Error::InvalidParameter)
    );
    assert!(timer(1, 1, limits::MAX_WORK).is_ok());
    assert_eq!(
        timer(1, 1, limits::MAX_WORK + 1),
        Err(Error::InvalidParameter)
    );
}
