//! Malformed requests, and the status each one must get.
//!
//! Cases are generated from the protocol's own tables
//! ([`dpclock_ioctl::spec`]): each IOCTL's code with one `CTL_CODE` field
//! changed (device type, function, method or access), its request struct
//! field by field with values at, inside and just outside each field's
//! documented range, truncated or extended, and output buffers around the
//! response's size; plus null and misaligned buffers and plain random
//! bytes. The expected status comes from [`spec::expected`], a reading of
//! docs/protocol.md's order of checks that is independent of the driver's
//! parser, plus the driver's few state rules ([`Model`]). Valid requests
//! that slip through are kept small, so the fuzz stays a fuzz and not a
//! stress.

use dpclock_ioctl::{
    DEVICE_TYPE, LockKind, METHOD_BUFFERED, Policy, STATUS_DEVICE_BUSY, STATUS_SUCCESS,
    spec::{self, Input, Ioctl, Output, Rule},
};

/// How a case passes a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buffer {
    /// An ordinary pointer.
    Aligned,
    /// A pointer 1 to 7 bytes past an 8-byte boundary.
    Misaligned(usize),
    /// A null pointer with a non-zero length: the I/O manager must refuse it
    /// before the driver sees the request.
    Null,
}

/// One request to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// The IOCTL code.
    pub code: u32,
    /// The input bytes (their length is the input length).
    pub input: Vec<u8>,
    /// How the input pointer is passed.
    pub input_buffer: Buffer,
    /// The output buffer length.
    pub output_len: u32,
    /// How the output pointer is passed.
    pub output_buffer: Buffer,
}

impl Case {
    /// Whether the driver would act on this case in a way that changes its
    /// state (`RESET`, `TIMER_START`, `TIMER_STOP`) or its ledgers (a lock
    /// IOCTL) under `policy`: the soak, whose ledgers are being verified,
    /// sends only cases that do not.
    #[must_use]
    pub fn acts(&self, policy: Policy) -> bool {
        let null = (self.input_buffer == Buffer::Null && !self.input.is_empty())
            || (self.output_buffer == Buffer::Null && self.output_len > 0);
        !null
            && spec::expected(self.code, &self.input, self.output_len as usize, policy).is_ok()
            && spec::ioctl_by_code(self.code)
                .is_some_and(|i| !matches!(i.name, "NOOP" | "GET_STATS" | "GET_HEALTH"))
    }
}

/// What a case must get back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this NTSTATUS.
    Status(i32),
    /// An error from the I/O manager (a null buffer with a length); the
    /// driver never sees the request. On Windows this is
    /// `STATUS_ACCESS_VIOLATION`; the status is reported as observed.
    IoManagerError,
}

/// The driver state that decides a valid request's status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Model {
    /// `AllowUnlockedControl` is set.
    pub unlocked_allowed: bool,
    /// The periodic timer runs (then `RESET` is `STATUS_DEVICE_BUSY`).
    pub timer_running: bool,
}

impl Model {
    /// The status `case` must get, and the model afterwards.
    #[must_use]
    pub fn expect(self, case: &Case) -> (Expect, Self) {
        let null_with_length = (case.input_buffer == Buffer::Null && !case.input.is_empty())
            || (case.output_buffer == Buffer::Null && case.output_len > 0);
        if null_with_length {
            return (Expect::IoManagerError, self);
        }
        let policy = Policy {
            unlocked_control: self.unlocked_allowed,
        };
        match spec::expected(case.code, &case.input, case.output_len as usize, policy) {
            Err(error) => (Expect::Status(error.ntstatus()), self),
            Ok(_) => match spec::ioctl_by_code(case.code).map(|i| i.name) {
                Some("RESET") if self.timer_running => (Expect::Status(STATUS_DEVICE_BUSY), self),
                Some("TIMER_START") => (
                    Expect::Status(STATUS_SUCCESS),
                    Self {
                        timer_running: true,
                        ..self
                    },
                ),
                Some("TIMER_STOP") => (
                    Expect::Status(STATUS_SUCCESS),
                    Self {
                        timer_running: false,
                        ..self
                    },
                ),
                _ => (Expect::Status(STATUS_SUCCESS), self),
            },
        }
    }
}

/// xorshift64*: small, seedable, good enough to spread cases.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True `percent` times in 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A value for a field with `rule`: mostly valid (inside the range, or at
/// its ends), otherwise just outside it, or anything.
fn field_value(rng: &mut Rng, rule: Rule) -> u32 {
    let valid = rng.chance(80);
    let any = rng.u32();
    match rule {
        Rule::Version if valid => dpclock_ioctl::PROTOCOL_VERSION,
        Rule::Version => *rng.pick(&[0, 2, u32::MAX, any]),
        Rule::LockKind if valid => rng.below(3) as u32,
        Rule::LockKind => *rng.pick(&[3, 4, 0x100, u32::MAX, any]),
        Rule::Zero if valid => 0,
        Rule::Zero => *rng.pick(&[1, 0x8000_0000, any]),
        Rule::Range { min, max } if valid => match rng.below(4) {
            0 => min,
            1 => max,
            _ => min + rng.below(u64::from(max - min) + 1) as u32,
        },
        Rule::Range { min, max } => *rng.pick(&[
            min.wrapping_sub(1),
            max.wrapping_add(1),
            max.saturating_mul(2),
            0x8000_0000,
            u32::MAX,
            any,
        ]),
    }
}

/// A code: one of dpclock's, one with a `CTL_CODE` field changed, any
/// function of dpclock's device type, or anything.
fn code(rng: &mut Rng) -> u32 {
    let ioctl = *rng.pick(&spec::IOCTLS);
    let ctl = |device_type: u32, function: u32, method: u32, access: u32| {
        dpclock_ioctl::ctl_code(
            device_type & 0xFFFF,
            function & 0xFFF,
            method & 3,
            access & 3,
        )
    };
    match rng.below(8) {
        0..=3 => ioctl.code,
        4 => match rng.below(4) {
            0 => ctl(rng.u32(), ioctl.function, METHOD_BUFFERED, ioctl.access),
            1 => ctl(
                DEVICE_TYPE,
                ioctl.function ^ (1 << rng.below(12)),
                METHOD_BUFFERED,
                ioctl.access,
            ),
            2 => ctl(
                DEVICE_TYPE,
                ioctl.function,
                1 + rng.below(3) as u32,
                ioctl.access,
            ),
            _ => ctl(
                DEVICE_TYPE,
                ioctl.function,
                METHOD_BUFFERED,
                (ioctl.access + 1 + rng.below(3) as u32) & 3,
            ),
        },
        5 | 6 => ctl(
            DEVICE_TYPE,
            rng.below(0x1000) as u32,
            rng.below(4) as u32,
            rng.below(4) as u32,
        ),
        _ => rng.u32(),
    }
}

/// The bytes of `request`, field by field, then cut short or extended.
fn structured(rng: &mut Rng, request: &Input) -> Vec<u8> {
    let mut bytes = vec![0_u8; request.size];
    for field in request.fields {
        bytes[field.offset..field.offset + 4]
            .copy_from_slice(&field_value(rng, field.rule).to_le_bytes());
    }
    match rng.below(10) {
        0 => bytes.truncate(rng.below(request.size as u64) as usize),
        1 => bytes.truncate(request.size - 1),
        2 => bytes.extend((0..rng.below(64) + 1).map(|_| rng.next_u64() as u8)),
        _ => {}
    }
    bytes
}

fn input(rng: &mut Rng, code: u32) -> Vec<u8> {
    // Usually the struct of the code's IOCTL; sometimes another IOCTL's.
    let own = spec::ioctl_by_code(code).and_then(|i| i.input);
    let any_struct = spec::IOCTLS
        .iter()
        .filter_map(|i| i.input)
        .nth(rng.below(4) as usize);
    let request = if rng.chance(80) {
        own.or(any_struct)
    } else {
        any_struct
    };
    match request {
        Some(request) if rng.chance(85) => structured(rng, &request),
        _ => {
            let len = match rng.below(10) {
                0..=1 => 0,
                2..=5 => rng.below(64),
                6..=8 => 64 + rng.below(4096 - 64),
                _ => 4096 + rng.below(65536 - 4096 + 1),
            };
            (0..len).map(|_| rng.next_u64() as u8).collect()
        }
    }
}

fn output_len(rng: &mut Rng, ioctl: Option<&Ioctl>) -> u32 {
    let size = match ioctl.map(|i| i.output) {
        Some(Output::Response { size, .. } | Output::ZerosUpTo(size)) => size as u32,
        _ => *rng.pick(&[32, size_of::<dpclock_ioctl::Stats>() as u32]),
    };
    match rng.below(10) {
        0 | 1 => 0,
        2 => size - 1,
        3 | 4 => size,
        5 => size + 1 + rng.below(64) as u32,
        6 => 4096,
        _ => rng.below(65537) as u32,
    }
}

fn buffer(rng: &mut Rng, code: u32, len: usize) -> Buffer {
    // Null buffers only for METHOD_BUFFERED, where the I/O manager's handling
    // is the same for every code; misaligned ones anywhere.
    if len > 0 && code & 3 == METHOD_BUFFERED && rng.chance(5) {
        Buffer::Null
    } else if rng.chance(25) {
        Buffer::Misaligned(1 + rng.below(7) as usize)
    } else {
        Buffer::Aligned
    }
}

/// A valid request that would run long is cut down; valid timer starts get
/// a gentle rate. Invalid requests are left exactly as generated.
fn tame(case: &mut Case) {
    let allow = Policy {
        unlocked_control: true,
    };
    if spec::expected(case.code, &case.input, case.output_len as usize, allow).is_err() {
        return;
    }
    let field = |input: &[u8], at: usize| {
        u32::from_le_bytes([input[at], input[at + 1], input[at + 2], input[at + 3]])
    };
    let input = &mut case.input;
    match spec::ioctl_by_code(case.code).map(|i| i.name) {
        Some("LOCK_PASSIVE" | "LOCK_DISPATCH" | "DPC_BURST") => {
            let (iterations, work) = (field(input, 8), field(input, 12));
            if u64::from(iterations) * (u64::from(work) + 1) > 20_000 {
                input[8..12].copy_from_slice(&(iterations % 20 + 1).to_le_bytes());
                input[12..16].copy_from_slice(&(work % 100).to_le_bytes());
            }
        }
        Some("TIMER_START") => {
            let (period, iterations, work) = (field(input, 8), field(input, 12), field(input, 16));
            if period < 10 || iterations > 10 || work > 100 {
                input[8..12].copy_from_slice(&(10 + period % 20).to_le_bytes());
                input[12..16].copy_from_slice(&(iterations % 10 + 1).to_le_bytes());
                input[16..20].copy_from_slice(&(work % 100).to_le_bytes());
            }
        }
        _ => {}
    }
}

/// The next case.
pub fn case(rng: &mut Rng) -> Case {
    case_with(rng, true)
}

/// The next case; null input buffers only if `null_inputs`. (Wine 8.0 does
/// not refuse a null input buffer with a length: the request that reaches
/// the driver is unpredictable there, so the harness sends none under Wine.
/// Null output buffers it refuses with `STATUS_INVALID_USER_BUFFER`.)
pub fn case_with(rng: &mut Rng, null_inputs: bool) -> Case {
    let code = code(rng);
    let input = input(rng, code);
    let output_len = output_len(rng, spec::ioctl_by_code(code));
    let mut input_buffer = buffer(rng, code, input.len());
    if input_buffer == Buffer::Null && !null_inputs {
        input_buffer = Buffer::Aligned;
    }
    let output_buffer = buffer(rng, code, output_len as usize);
    let mut case = Case {
        code,
        input,
        input_buffer,
        output_len,
        output_buffer,
    };
    tame(&mut case);
    case
}

/// One case whose status was not the expected one.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Mismatch {
    /// Index of the case in the run (replay with the same seed).
    pub index: u64,
    /// The IOCTL code.
    pub code: String,
    /// Input length and how it was passed.
    pub input: String,
    /// Output length and how it was passed.
    pub output: String,
    /// What the specification says.
    pub expected: String,
    /// What came back.
    pub got: String,
}

/// What a fuzz run found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Outcome {
    /// Cases sent.
    pub cases: u64,
    /// Cases per expected outcome.
    pub expected: std::collections::BTreeMap<String, u64>,
    /// Statuses the I/O manager gave null buffers.
    pub io_manager_statuses: std::collections::BTreeSet<String>,
    /// Cases that got another status than expected.
    pub mismatches: Vec<Mismatch>,
    /// `None` if the device served correct requests afterwards, else why not.
    pub unhealthy: Option<String>,
}

impl Outcome {
    /// Whether every case matched and the device is healthy.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty() && self.unhealthy.is_none()
    }
}

/// How long a fuzz run goes.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// This many cases.
    Cases(u64),
    /// Until this much time has passed.
    Time(std::time::Duration),
}

/// Room for a case's buffers. `u64` storage keeps the bases 8-byte
/// aligned; misaligned cases offset them.
pub struct CaseBuffers {
    input: Vec<u64>,
    output: Vec<u64>,
}

impl Default for CaseBuffers {
    fn default() -> Self {
        Self {
            input: vec![0; 65_536 / 8 + 16],
            output: vec![0; 65_536 / 8 + 16],
        }
    }
}

impl CaseBuffers {
    /// Sends `case` to `device`, its buffers null, aligned or misaligned as
    /// the case says.
    pub fn send(
        &mut self,
        device: &dyn crate::device::Device,
        case: &Case,
    ) -> crate::device::IoResult {
        let offset = |b: Buffer| {
            if let Buffer::Misaligned(by) = b {
                by
            } else {
                0
            }
        };
        let input_base = self.input.as_mut_ptr().cast::<u8>();
        let output_base = self.output.as_mut_ptr().cast::<u8>();
        // SAFETY: the storage is 65,664 bytes and inputs are at most 65,600
        // bytes past an offset below 8; outputs at most 65,536.
        unsafe {
            let input = input_base.add(offset(case.input_buffer));
            std::ptr::copy_nonoverlapping(case.input.as_ptr(), input, case.input.len());
            let input = if case.input_buffer == Buffer::Null {
                std::ptr::null()
            } else {
                input.cast_const()
            };
            let output = if case.output_buffer == Buffer::Null {
                std::ptr::null_mut()
            } else {
                output_base.add(offset(case.output_buffer))
            };
            device.ioctl_raw(
                case.code,
                input,
                case.input.len() as u32,
                output,
                case.output_len,
            )
        }
    }
}

fn describe(buffer: Buffer, len: usize) -> String {
    match buffer {
        Buffer::Aligned => format!("{len} bytes"),
        Buffer::Misaligned(by) => format!("{len} bytes at +{by}"),
        Buffer::Null => format!("{len} bytes at NULL"),
    }
}

/// Sends cases from `seed` to `device` within `budget`, then checks the
/// device still serves correct requests.
pub fn run(
    device: &dyn crate::device::Device,
    seed: u64,
    budget: Budget,
    unlocked_allowed: bool,
    null_inputs: bool,
) -> Outcome {
    use crate::device::status_name;

    let mut rng = Rng::new(seed);
    let mut model = Model {
        unlocked_allowed,
        timer_running: false,
    };
    let mut outcome = Outcome::default();
    let start = std::time::Instant::now();
    let mut buffers = CaseBuffers::default();
    loop {
        let done = match budget {
            Budget::Cases(n) => outcome.cases >= n,
            Budget::Time(limit) => start.elapsed() >= limit,
        };
        if done {
            break;
        }
        let case = case_with(&mut rng, null_inputs);
        let (expect, next) = model.expect(&case);
        let result = buffers.send(device, &case);
        let matched = match expect {
            Expect::Status(status) => result.status == status,
            Expect::IoManagerError => {
                outcome
                    .io_manager_statuses
                    .insert(status_name(result.status));
                result.status < 0
            }
        };
        *outcome
            .expected
            .entry(match expect {
                Expect::Status(status) => status_name(status),
                Expect::IoManagerError => "I/O manager error (null buffer)".to_owned(),
            })
            .or_insert(0) += 1;
        if !matched && outcome.mismatches.len() < 100 {
            outcome.mismatches.push(Mismatch {
                index: outcome.cases,
                code: format!("{:#010x}", case.code),
                input: describe(case.input_buffer, case.input.len()),
                output: describe(case.output_buffer, case.output_len as usize),
                expected: format!("{expect:?}"),
                got: status_name(result.status),
            });
        }
        model = next;
        outcome.cases += 1;
    }
    outcome.unhealthy = health_check(device).err();
    outcome
}

/// After a fuzz run: the device still answers correct requests, and the
/// locked ledgers are still consistent.
fn health_check(device: &dyn crate::device::Device) -> Result<(), String> {
    use crate::device;
    use dpclock_ioctl::{IOCTL_DPCLOCK_LOCK_PASSIVE, expected_checksum};

    device::timer_stop(device).map_err(|e| e.to_string())?;
    let response = device::lock(
        device,
        "LOCK_PASSIVE",
        IOCTL_DPCLOCK_LOCK_PASSIVE,
        LockKind::Plain,
        10,
        1,
    )
    .map_err(|e| format!("a correct request failed after the fuzz: {e}"))?;
    if response.acquisitions != 10 {
        return Err(format!(
            "a correct request made {} acquisitions instead of 10",
            response.acquisitions
        ));
    }
    let stats =
        device::stats(device).map_err(|e| format!("GET_STATS failed after the fuzz: {e}"))?;
    for kind in [LockKind::Plain, LockKind::Queued] {
        let ledger = &stats.ledgers[kind.index()];
        let consistent = ledger.updates == ledger.performed
            && ledger.total == ledger.updates.iter().sum::<u64>()
            && ledger.checksum == expected_checksum(&ledger.updates);
        if !consistent {
            return Err(format!(
                "the {} ledger is inconsistent after the fuzz: {ledger:?}",
                kind.name()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use dpclock_ioctl::{
        IOCTL_DPCLOCK_LOCK_PASSIVE, IOCTL_DPCLOCK_RESET, IOCTL_DPCLOCK_TIMER_START,
        IOCTL_DPCLOCK_TIMER_STOP, LockRequest, Request, STATUS_BUFFER_TOO_SMALL,
        STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_PARAMETER, STATUS_NOT_SUPPORTED,
        TimerRequest, parse,
    };

    use super::*;

    #[test]
    fn the_generator_covers_every_outcome() {
        let mut rng = Rng::new(1);
        let mut model = Model::default();
        let mut seen = std::collections::BTreeMap::new();
        for _ in 0..20_000 {
            let case = case(&mut rng);
            assert!(case.input.len() <= 65_536 + 64);
            let (expect, next) = model.expect(&case);
            model = next;
            *seen.entry(format!("{expect:?}")).or_insert(0) += 1;
        }
        for status in [
            STATUS_SUCCESS,
            STATUS_BUFFER_TOO_SMALL,
            STATUS_INVALID_PARAMETER,
            STATUS_INVALID_DEVICE_REQUEST,
            STATUS_NOT_SUPPORTED,
        ] {
            assert!(
                seen.contains_key(&format!("{:?}", Expect::Status(status))),
                "{status:#x} never expected: {seen:?}"
            );
        }
        assert!(seen.contains_key("IoManagerError"), "{seen:?}");
    }

    #[test]
    fn the_model_follows_the_timer_and_the_unlocked_switch() {
        let case = |code, input: &[u8], output_len| Case {
            code,
            input: input.to_vec(),
            input_buffer: Buffer::Aligned,
            output_len,
            output_buffer: Buffer::Aligned,
        };
        let model = Model::default();
        let start = case(
            IOCTL_DPCLOCK_TIMER_START,
            &TimerRequest::encode(LockKind::Plain, 10, 1, 1),
            0,
        );
        let (expect, running) = model.expect(&start);
        assert_eq!(
            (expect, running.timer_running),
            (Expect::Status(STATUS_SUCCESS), true)
        );
        assert_eq!(
            running.expect(&case(IOCTL_DPCLOCK_RESET, &[], 0)).0,
            Expect::Status(STATUS_DEVICE_BUSY)
        );
        let (_, stopped) = running.expect(&case(IOCTL_DPCLOCK_TIMER_STOP, &[], 0));
        assert_eq!(
            stopped.expect(&case(IOCTL_DPCLOCK_RESET, &[], 0)).0,
            Expect::Status(STATUS_SUCCESS)
        );

        let unlocked = case(
            IOCTL_DPCLOCK_LOCK_PASSIVE,
            &LockRequest::encode(LockKind::Unlocked, 1, 0),
            32,
        );
        assert_eq!(
            model.expect(&unlocked).0,
            Expect::Status(STATUS_NOT_SUPPORTED)
        );
        let allowed = Model {
            unlocked_allowed: true,
            ..model
        };
        assert_eq!(allowed.expect(&unlocked).0, Expect::Status(STATUS_SUCCESS));

        let mut null = unlocked;
        null.input_buffer = Buffer::Null;
        assert_eq!(allowed.expect(&null).0, Expect::IoManagerError);
    }

    #[test]
    fn valid_requests_are_kept_small() {
        let mut rng = Rng::new(7);
        for _ in 0..20_000 {
            let c = case(&mut rng);
            let allow = Policy {
                unlocked_control: true,
            };
            if let Ok(Request::LockPassive(w) | Request::LockDispatch(w) | Request::DpcBurst(w)) =
                parse(c.code, &c.input, c.output_len as usize, allow)
            {
                assert!(
                    u64::from(w.iterations) * (u64::from(w.work) + 1) <= 20_000,
                    "{w:?}"
                );
            }
        }
    }
}
