//! docs/protocol.md, read as data: its tables and its examples. The host
//! tests below check every table against the protocol crate (codes,
//! statuses, limits, struct layouts, the access table) and run every
//! example through the parser and the document's order of checks;
//! `dpclockctl conform` sends the examples to the running driver.
//! A client written from the document alone therefore meets the same bytes
//! and statuses the driver produces.

use dpclock_ioctl::{Policy, STATS_TIMER_RUNNING, STATS_UNLOCKED_ALLOWED, spec};

use crate::device::{self, Device, status_name};

/// The document, as built into the harness.
pub const DOC: &str = include_str!("../../../docs/protocol.md");

/// A Markdown table: its header cells and rows, with backticks removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// Header cells.
    pub header: Vec<String>,
    /// Body rows.
    pub rows: Vec<Vec<String>>,
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    // `\|` inside a cell is a literal bar.
    inner
        .replace("\\|", "\u{1}")
        .split('|')
        .map(|c| c.trim().replace('`', "").replace('\u{1}', "|"))
        .collect()
}

/// Every table of the document, in order, each with the nearest heading
/// above it.
#[must_use]
pub fn tables() -> Vec<(String, Table)> {
    let mut found = Vec::new();
    let mut heading = String::new();
    let lines: Vec<&str> = DOC.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.starts_with('#') {
            heading = line.trim_start_matches('#').trim().replace('`', "");
        }
        let separator = lines
            .get(i + 1)
            .is_some_and(|l| l.trim().starts_with("|---") || l.trim().starts_with("| ---"));
        if line.starts_with('|') && separator {
            let header = cells(line);
            let mut rows = Vec::new();
            i += 2;
            while i < lines.len() && lines[i].trim().starts_with('|') {
                rows.push(cells(lines[i]));
                i += 1;
            }
            found.push((heading.clone(), Table { header, rows }));
            continue;
        }
        i += 1;
    }
    found
}

/// The first table whose heading starts with `heading` and whose first
/// header cell is `first_column`.
#[must_use]
pub fn table(heading: &str, first_column: &str) -> Option<Table> {
    tables()
        .into_iter()
        .find(|(h, t)| {
            h.starts_with(heading) && t.header.first().is_some_and(|c| c == first_column)
        })
        .map(|(_, t)| t)
}

/// A number written as `0x…` or in decimal, with `,` separators allowed.
#[must_use]
pub fn number(text: &str) -> Option<u64> {
    let text = text.trim().replace(',', "");
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The statuses the document lists for a handle whose device was removed.
#[must_use]
pub fn removal_statuses() -> Vec<u32> {
    table("Handles", "Status")
        .map(|t| {
            t.rows
                .iter()
                .filter_map(|r| number(&r[1]).map(|v| v as u32))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an example needs the unlocked control enabled or disabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// It must be enabled.
    On,
    /// It must be disabled.
    Off,
    /// Either.
    Any,
}

/// One row of the Examples table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// Its number.
    pub number: u32,
    /// The IOCTL's name, or the code as written.
    pub ioctl: String,
    /// The code.
    pub code: u32,
    /// The input bytes.
    pub input: Vec<u8>,
    /// The output buffer's length.
    pub output_len: usize,
    /// The unlocked control's setting it needs.
    pub control: Control,
    /// What must hold before it (`timer running`, `timer stopped`, `quiet`
    /// or nothing).
    pub state: String,
    /// The status it gets.
    pub status: i32,
    /// The reply's bytes; `None` where the document writes `??`.
    pub reply: Vec<Option<u8>>,
}

fn hex_bytes(text: &str) -> Result<Vec<Option<u8>>, String> {
    if text == "(none)" {
        return Ok(Vec::new());
    }
    let digits: String = text.split_whitespace().collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits in `{text}`"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| match &digits[i..i + 2] {
            "??" => Ok(None),
            pair => u8::from_str_radix(pair, 16)
                .map(Some)
                .map_err(|e| format!("`{pair}` in `{text}`: {e}")),
        })
        .collect()
}

fn status_value(name: &str) -> Option<i32> {
    spec::STATUSES
        .iter()
        .find(|s| s.0 == name)
        .map(|s| s.1.cast_signed())
}

/// Every example of the document.
///
/// # Errors
///
/// A row the harness cannot read, with why.
pub fn examples() -> Result<Vec<Example>, String> {
    let table = table("Examples", "#").ok_or("the document has no Examples table")?;
    table
        .rows
        .iter()
        .map(|row| {
            let [number, ioctl, input, output, control, state, status, reply] = &row[..] else {
                return Err(format!("an example row with {} cells: {row:?}", row.len()));
            };
            let code = match spec::ioctl_by_name(ioctl) {
                Some(i) => i.code,
                None => number_u32(ioctl)?,
            };
            let input = hex_bytes(input)?
                .into_iter()
                .map(|b| b.ok_or("`??` in an input"))
                .collect::<Result<_, _>>()?;
            Ok(Example {
                number: number_u32(number)?,
                ioctl: ioctl.clone(),
                code,
                input,
                output_len: number_u32(output)? as usize,
                control: match control.as_str() {
                    "on" => Control::On,
                    "off" => Control::Off,
                    "any" => Control::Any,
                    other => return Err(format!("control `{other}`")),
                },
                state: state.clone(),
                status: status_value(status).ok_or(format!("unknown status {status}"))?,
                reply: hex_bytes(reply)?,
            })
        })
        .collect()
}

fn number_u32(text: &str) -> Result<u32, String> {
    number(text)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(format!("`{text}` is not a number"))
}

/// Whether `bytes` match the reply pattern.
#[must_use]
pub fn reply_matches(pattern: &[Option<u8>], bytes: &[u8]) -> bool {
    pattern.len() == bytes.len()
        && pattern
            .iter()
            .zip(bytes)
            .all(|(want, got)| want.is_none_or(|w| w == *got))
}

/// Sends every example whose control setting matches the device's to it, in
/// order, after making its state hold. The timer is left stopped.
#[must_use]
pub fn run_examples(device: &dyn Device) -> Vec<(String, Result<String, String>)> {
    let examples = match examples() {
        Ok(examples) => examples,
        Err(e) => return vec![("table".into(), Err(e))],
    };
    let allowed = match device::stats(device) {
        Ok(stats) => stats.flags & STATS_UNLOCKED_ALLOWED != 0,
        Err(e) => return vec![("GET_STATS".into(), Err(e.to_string()))],
    };
    let mut results = Vec::new();
    for example in examples {
        let name = format!("{} ({})", example.number, example.ioctl);
        let applies = match example.control {
            Control::On => allowed,
            Control::Off => !allowed,
            Control::Any => true,
        };
        if !applies {
            // Run by `conform` against a driver installed the other way.
            continue;
        }
        let prepared = match example.state.as_str() {
            "timer running" => {
                device::timer_start(device, dpclock_ioctl::LockKind::Plain, 1000, 1, 0)
            }
            "timer stopped" | "quiet" => device::timer_stop(device),
            _ => Ok(()),
        };
        if let Err(e) = prepared {
            results.push((name, Err(format!("making `{}` hold: {e}", example.state))));
            continue;
        }
        let mut output = vec![0xCD_u8; example.output_len];
        let got = device.ioctl(example.code, &example.input, &mut output);
        let bytes = &output[..got.information.min(output.len())];
        let result = if got.status != example.status {
            Err(format!(
                "expected {}, got {}",
                status_name(example.status),
                status_name(got.status)
            ))
        } else if !reply_matches(&example.reply, bytes) {
            Err(format!("reply {bytes:02x?} does not match the document"))
        } else {
            Ok(format!(
                "{}, {} bytes",
                status_name(got.status),
                bytes.len()
            ))
        };
        results.push((name, result));
    }
    let _ = device::timer_stop(device);
    results
}

/// What the document's order of checks and state rules say an example
/// gets: its status and the bytes a success returns.
#[must_use]
pub fn expected(example: &Example, timer_running: bool) -> (i32, usize) {
    let policy = Policy {
        unlocked_control: example.control == Control::On,
    };
    match spec::expected(example.code, &example.input, example.output_len, policy) {
        Err(error) => (error.ntstatus(), 0),
        Ok(_) if example.ioctl == "RESET" && timer_running => {
            (dpclock_ioctl::STATUS_DEVICE_BUSY, 0)
        }
        Ok(bytes) => (0, bytes),
    }
}

/// Whether a `GET_STATS` reply says the timer runs (for callers that check
/// example states).
#[must_use]
pub fn timer_running(stats: &dpclock_ioctl::Stats) -> bool {
    stats.flags & STATS_TIMER_RUNNING != 0
}

#[cfg(test)]
mod tests {
    use core::mem::{offset_of, size_of};

    use dpclock_ioctl::{
        Error, Health, HoldStats, LedgerStats, LockKind, LockRequest, LockResponse, Request, Stats,
        TimerRequest, Timings, ValidatorStats, limits, parse,
    };

    use super::*;

    fn row_named<'a>(table: &'a Table, name: &str) -> &'a Vec<String> {
        table
            .rows
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("no row `{name}` in {table:?}"))
    }

    #[test]
    fn the_table_of_codes_is_the_protocol_crates() {
        let table = table("Codes", "Name").expect("the table of codes");
        assert_eq!(table.rows.len(), spec::IOCTLS.len(), "one row per IOCTL");
        for (row, ioctl) in table.rows.iter().zip(&spec::IOCTLS) {
            assert_eq!(row[0], ioctl.name, "rows in the protocol crate's order");
            assert_eq!(number(&row[1]), Some(u64::from(ioctl.function)), "{row:?}");
            let access = row[2]
                .rsplit('(')
                .next()
                .and_then(|a| number(a.trim_end_matches(')')));
            assert_eq!(access, Some(u64::from(ioctl.access)), "{row:?}");
            assert_eq!(number(&row[3]), Some(u64::from(ioctl.code)), "{row:?}");
            match ioctl.input {
                Some(input) => assert_eq!(row[4], input.name, "{row:?}"),
                None => assert_eq!(row[4], "ignored", "{row:?}"),
            }
            match ioctl.output {
                spec::Output::Nothing => assert_eq!(row[5], "nothing"),
                spec::Output::Response { name, .. } => assert_eq!(row[5], name),
                spec::Output::ZerosUpTo(n) => {
                    assert_eq!(row[5], format!("up to {n} zero bytes"));
                }
            }
        }
    }

    #[test]
    fn the_table_of_statuses_is_the_protocol_crates() {
        let table = table("Statuses", "NTSTATUS").expect("the table of statuses");
        assert_eq!(table.rows.len(), spec::STATUSES.len());
        for (name, value, win32, win32_name) in spec::STATUSES {
            let row = row_named(&table, name);
            assert_eq!(number(&row[1]), Some(u64::from(value)), "{row:?}");
            if value == 0 {
                assert_eq!(row[2], "—");
            } else {
                assert_eq!(row[2], format!("{win32} {win32_name}"), "{row:?}");
            }
        }
        // Every error the parser can return has its row.
        for error in [
            Error::BufferTooSmall,
            Error::InvalidParameter,
            Error::InvalidDeviceRequest,
            Error::NotSupported,
        ] {
            assert!(
                spec::STATUSES
                    .iter()
                    .any(|s| s.1.cast_signed() == error.ntstatus()),
                "{error:?}"
            );
        }
    }

    #[test]
    fn the_table_of_limits_is_the_protocol_crates() {
        let table = table("Limits", "Field").expect("the table of limits");
        let range = |text: &str| {
            let (min, max) = text.split_once('–').expect("a range `min – max`");
            let max = max.split('(').next().unwrap_or(max);
            (number(min).unwrap(), number(max).unwrap())
        };
        let rule_of = |ioctl: &str, field: &str| {
            let ioctl = spec::ioctl_by_name(ioctl).unwrap();
            let input = ioctl.input.unwrap();
            let field = input.fields.iter().find(|f| f.name == field).unwrap();
            match field.rule {
                spec::Rule::Range { min, max } => (u64::from(min), u64::from(max)),
                other => panic!("{other:?}"),
            }
        };
        for (label, ioctls, field) in [
            (
                "LOCK_PASSIVE iterations",
                &["LOCK_PASSIVE"][..],
                "iterations",
            ),
            ("LOCK_DISPATCH iterations", &["LOCK_DISPATCH"], "iterations"),
            (
                "DPC_BURST iterations (per processor)",
                &["DPC_BURST"],
                "iterations",
            ),
            (
                "TIMER_START iterations (per tick)",
                &["TIMER_START"],
                "iterations",
            ),
            (
                "work (per acquisition)",
                &["LOCK_PASSIVE", "LOCK_DISPATCH", "DPC_BURST", "TIMER_START"],
                "work",
            ),
            ("period_ms", &["TIMER_START"], "period_ms"),
        ] {
            let row = row_named(&table, label);
            for ioctl in ioctls {
                assert_eq!(range(&row[1]), rule_of(ioctl, field), "{label}: {ioctl}");
            }
        }
        assert_eq!(table.rows.len(), 6);
        assert_eq!(limits::MAX_WORK, 2_000);
    }

    /// A struct's name, size, and each field's name, offset and size.
    type StructLayout = (&'static str, usize, Vec<(&'static str, usize, usize)>);

    /// Every struct table: its size in the heading, rows that tile the
    /// struct from 0 with no gap, and the Rust layout's offset and size of
    /// each named field.
    #[test]
    fn every_struct_table_is_the_rust_layout() {
        let layouts: Vec<StructLayout> = vec![
            (
                "LockRequest",
                size_of::<LockRequest>(),
                vec![
                    ("version", offset_of!(LockRequest, version), 4),
                    ("lock_kind", offset_of!(LockRequest, lock_kind), 4),
                    ("iterations", offset_of!(LockRequest, iterations), 4),
                    ("work", offset_of!(LockRequest, work), 4),
                ],
            ),
            (
                "TimerRequest",
                size_of::<TimerRequest>(),
                vec![
                    ("version", offset_of!(TimerRequest, version), 4),
                    ("lock_kind", offset_of!(TimerRequest, lock_kind), 4),
                    ("period_ms", offset_of!(TimerRequest, period_ms), 4),
                    ("iterations", offset_of!(TimerRequest, iterations), 4),
                    ("work", offset_of!(TimerRequest, work), 4),
                    ("reserved", offset_of!(TimerRequest, reserved), 4),
                ],
            ),
            (
                "LockResponse",
                size_of::<LockResponse>(),
                vec![
                    ("version", offset_of!(LockResponse, version), 4),
                    ("lock_kind", offset_of!(LockResponse, lock_kind), 4),
                    ("acquisitions", offset_of!(LockResponse, acquisitions), 8),
                    ("contended", offset_of!(LockResponse, contended), 8),
                    ("dpc_runs", offset_of!(LockResponse, dpc_runs), 4),
                    ("reserved", offset_of!(LockResponse, reserved), 4),
                ],
            ),
            (
                "Stats",
                size_of::<Stats>(),
                vec![
                    ("version", offset_of!(Stats, version), 4),
                    ("flags", offset_of!(Stats, flags), 4),
                    ("processors", offset_of!(Stats, processors), 4),
                    ("timer_period_ms", offset_of!(Stats, timer_period_ms), 4),
                    ("timer_ticks", offset_of!(Stats, timer_ticks), 8),
                    ("timer_skipped", offset_of!(Stats, timer_skipped), 8),
                    ("burst_dpc_runs", offset_of!(Stats, burst_dpc_runs), 8),
                    (
                        "ledgers[0]",
                        offset_of!(Stats, ledgers),
                        size_of::<LedgerStats>(),
                    ),
                    (
                        "ledgers[1]",
                        offset_of!(Stats, ledgers) + size_of::<LedgerStats>(),
                        size_of::<LedgerStats>(),
                    ),
                    (
                        "ledgers[2]",
                        offset_of!(Stats, ledgers) + 2 * size_of::<LedgerStats>(),
                        size_of::<LedgerStats>(),
                    ),
                    (
                        "validator",
                        offset_of!(Stats, validator),
                        size_of::<ValidatorStats>(),
                    ),
                    ("timings", offset_of!(Stats, timings), size_of::<Timings>()),
                ],
            ),
            (
                "LedgerStats",
                size_of::<LedgerStats>(),
                vec![
                    ("updates", offset_of!(LedgerStats, updates), 32),
                    ("total", offset_of!(LedgerStats, total), 8),
                    ("checksum", offset_of!(LedgerStats, checksum), 8),
                    ("performed", offset_of!(LedgerStats, performed), 32),
                    ("contended", offset_of!(LedgerStats, contended), 8),
                    (
                        "hold",
                        offset_of!(LedgerStats, hold),
                        size_of::<HoldStats>(),
                    ),
                ],
            ),
            (
                "HoldStats",
                size_of::<HoldStats>(),
                vec![
                    ("count", offset_of!(HoldStats, count), 8),
                    ("total_ns", offset_of!(HoldStats, total_ns), 8),
                    ("max_ns", offset_of!(HoldStats, max_ns), 8),
                    ("over_guidance", offset_of!(HoldStats, over_guidance), 8),
                    ("histogram", offset_of!(HoldStats, histogram), 256),
                ],
            ),
            (
                "ValidatorStats",
                size_of::<ValidatorStats>(),
                vec![
                    ("irql_checks", offset_of!(ValidatorStats, irql_checks), 4),
                    ("classes", offset_of!(ValidatorStats, classes), 4),
                    (
                        "recursive_acquires",
                        offset_of!(ValidatorStats, recursive_acquires),
                        8,
                    ),
                    (
                        "foreign_releases",
                        offset_of!(ValidatorStats, foreign_releases),
                        8,
                    ),
                    (
                        "order_inversions",
                        offset_of!(ValidatorStats, order_inversions),
                        8,
                    ),
                    (
                        "same_class_nesting",
                        offset_of!(ValidatorStats, same_class_nesting),
                        8,
                    ),
                    (
                        "irql_at_acquire",
                        offset_of!(ValidatorStats, irql_at_acquire),
                        8,
                    ),
                    (
                        "irql_at_release",
                        offset_of!(ValidatorStats, irql_at_release),
                        8,
                    ),
                    (
                        "held_at_scope_end",
                        offset_of!(ValidatorStats, held_at_scope_end),
                        8,
                    ),
                    ("untracked", offset_of!(ValidatorStats, untracked), 8),
                ],
            ),
            (
                "Timings",
                size_of::<Timings>(),
                vec![
                    ("max_hold_ns", offset_of!(Timings, max_hold_ns), 8),
                    ("max_dpc_ns", offset_of!(Timings, max_dpc_ns), 8),
                    ("max_raised_ns", offset_of!(Timings, max_raised_ns), 8),
                    (
                        "timer_back_to_back",
                        offset_of!(Timings, timer_back_to_back),
                        8,
                    ),
                ],
            ),
            (
                "Health",
                size_of::<Health>(),
                vec![
                    ("version", offset_of!(Health, version), 4),
                    ("reserved", offset_of!(Health, reserved), 4),
                    ("irps_in_flight", offset_of!(Health, irps_in_flight), 8),
                    (
                        "remove_lock_references",
                        offset_of!(Health, remove_lock_references),
                        8,
                    ),
                    ("timers_armed", offset_of!(Health, timers_armed), 8),
                    ("allocations_live", offset_of!(Health, allocations_live), 8),
                    (
                        "allocated_bytes_live",
                        offset_of!(Health, allocated_bytes_live),
                        8,
                    ),
                    (
                        "allocations_total",
                        offset_of!(Health, allocations_total),
                        8,
                    ),
                    ("irps_total", offset_of!(Health, irps_total), 8),
                    ("devices", offset_of!(Health, devices), 8),
                ],
            ),
        ];
        let all = tables();
        for (name, size, fields) in layouts {
            let heading = format!("{name} ({size} bytes)");
            let (_, table) = all
                .iter()
                .find(|(h, _)| *h == heading)
                .unwrap_or_else(|| panic!("no heading `{heading}`"));
            assert_eq!(table.header[..4], ["Offset", "Size", "Type", "Field"]);
            let mut next = 0;
            for row in &table.rows {
                let (offset, bytes) = (
                    number(&row[0]).unwrap() as usize,
                    number(&row[1]).unwrap() as usize,
                );
                assert_eq!(offset, next, "{name}: a gap or overlap at {row:?}");
                next = offset + bytes;
                let (_, rust_offset, rust_size) =
                    fields.iter().find(|f| f.0 == row[3]).unwrap_or_else(|| {
                        panic!(
                            "{name}: the document's field {} is not in the struct",
                            row[3]
                        )
                    });
                assert_eq!(
                    (offset, bytes),
                    (*rust_offset, *rust_size),
                    "{name}.{}",
                    row[3]
                );
            }
            assert_eq!(next, size, "{name}: the rows end at the struct's size");
            assert_eq!(
                table.rows.len(),
                fields.len(),
                "{name}: every field documented"
            );
        }
    }

    /// The request structs' field tables are also the order the spec checks
    /// them in.
    #[test]
    fn request_tables_list_the_fields_in_the_order_they_are_checked() {
        for ioctl in &spec::IOCTLS {
            let Some(input) = ioctl.input else { continue };
            let heading = format!("{} ({} bytes)", input.name, input.size);
            let table = table(&heading, "Offset").unwrap();
            let names: Vec<&str> = table.rows.iter().map(|r| r[3].as_str()).collect();
            let spec_names: Vec<&str> = input.fields.iter().map(|f| f.name).collect();
            assert_eq!(names, spec_names, "{}", ioctl.name);
            let offsets: Vec<usize> = input.fields.iter().map(|f| f.offset).collect();
            assert!(offsets.is_sorted(), "checked in offset order");
        }
    }

    #[test]
    fn the_access_table_follows_the_codes_access_bits() {
        let table = table("Handles", "Handle opened with").expect("the access table");
        for (row_name, granted) in [
            ("GENERIC_READ | GENERIC_WRITE", 3),
            ("GENERIC_READ", 1),
            ("GENERIC_WRITE", 2),
            ("0 (no access)", 0),
        ] {
            let row = row_named(&table, row_name);
            let allowed: Vec<&str> = spec::IOCTLS
                .iter()
                .filter(|i| i.access & granted == i.access)
                .map(|i| i.name)
                .collect();
            let listed = match row[1].as_str() {
                "every code" => spec::IOCTLS.iter().map(|i| i.name).collect(),
                list => list.split(", ").collect::<Vec<_>>(),
            };
            assert_eq!(listed, allowed, "{row_name}");
            let refused = spec::IOCTLS.len() - allowed.len();
            let described = match row[2].as_str() {
                "none" => 0,
                "the other six" => 6,
                "every other code" => spec::IOCTLS.len() - 1,
                other => panic!("{other}"),
            };
            assert_eq!(described, refused, "{row_name}");
        }
    }

    #[test]
    fn the_harness_treats_every_documented_removal_status_as_a_removal() {
        let documented = removal_statuses();
        assert!(documented.contains(&0xC000_0056), "STATUS_DELETE_PENDING");
        assert!(documented.contains(&0xC000_0123), "STATUS_FILE_DELETED");
        for status in documented {
            let error = device::DeviceError {
                operation: "test",
                status: status.cast_signed(),
            };
            // STATUS_INVALID_DEVICE_REQUEST is also a dpclock status: the
            // harness confirms it with a NOOP, as the document says.
            assert_eq!(
                error.is_removal(),
                status != 0xC000_0010,
                "{}",
                status_name(status.cast_signed())
            );
        }
    }

    #[test]
    fn every_example_gets_its_documented_status_and_reply_from_the_protocol_crate() {
        let examples = examples().expect("the examples parse");
        assert!(examples.len() >= 20);
        let mut timer_running = false;
        let mut statuses = std::collections::BTreeSet::new();
        for example in &examples {
            if example.state == "timer running" {
                timer_running = true;
            } else if matches!(example.state.as_str(), "timer stopped" | "quiet") {
                timer_running = false;
            }
            let (status, bytes) = expected(example, timer_running);
            assert_eq!(
                status_name(status),
                status_name(example.status),
                "example {}: the document's order of checks",
                example.number
            );
            // The driver's parser agrees with the document's reading.
            let policy = Policy {
                unlocked_control: example.control == Control::On,
            };
            let parsed = parse(example.code, &example.input, example.output_len, policy);
            match (&parsed, status) {
                (Err(e), s) => assert_eq!(e.ntstatus(), s, "example {}", example.number),
                (Ok(_), s) => assert!(
                    s == 0 || s == dpclock_ioctl::STATUS_DEVICE_BUSY,
                    "example {}",
                    example.number
                ),
            }
            if status != 0 {
                assert!(
                    example.reply.is_empty(),
                    "example {}: an error returns nothing",
                    example.number
                );
                continue;
            }
            assert_eq!(
                example.reply.len(),
                bytes,
                "example {}: reply length",
                example.number
            );
            // The reply's fixed bytes are what the encoders produce.
            let filled: Vec<u8> = example.reply.iter().map(|b| b.unwrap_or(0)).collect();
            match parsed.expect("accepted") {
                Request::LockPassive(w) | Request::LockDispatch(w) => {
                    let r = LockResponse::decode(&filled).unwrap();
                    assert_eq!(
                        (r.lock_kind, r.acquisitions, r.dpc_runs),
                        (w.lock_kind as u32, u64::from(w.iterations), 0),
                        "example {}",
                        example.number
                    );
                    let mut encoded = [0; 32];
                    r.encode(&mut encoded).unwrap();
                    assert!(
                        reply_matches(&example.reply, &encoded),
                        "example {}",
                        example.number
                    );
                }
                Request::Noop => assert!(filled.iter().all(|&b| b == 0)),
                Request::GetHealth => {
                    let h = Health::decode(&filled).unwrap();
                    let mut encoded = [0; 72];
                    h.encode(&mut encoded).unwrap();
                    assert!(reply_matches(&example.reply, &encoded));
                }
                _ => assert!(example.reply.is_empty()),
            }
            statuses.insert(status_name(status));
            if example.ioctl == "TIMER_START" {
                timer_running = true;
            } else if example.ioctl == "TIMER_STOP" {
                timer_running = false;
            }
        }
        // The examples show every status the driver completes with.
        let all: std::collections::BTreeSet<String> =
            examples.iter().map(|e| status_name(e.status)).collect();
        for (name, ..) in spec::STATUSES {
            // Removal and cancellation stop a request while it runs: no
            // request alone shows them.
            if name != "STATUS_DELETE_PENDING" && name != "STATUS_CANCELLED" {
                assert!(
                    all.iter().any(|s| s.starts_with(name)),
                    "no example of {name}"
                );
            }
        }
    }

    /// The case the issue reported, as the document now specifies it.
    #[test]
    fn the_documented_order_puts_the_unlocked_control_before_the_output_size() {
        let examples = examples().unwrap();
        let row = |n: u32| examples.iter().find(|e| e.number == n).unwrap();
        for n in [5, 6] {
            assert_eq!(row(n).status, Error::NotSupported.ntstatus());
            assert!(row(n).output_len < 32);
            assert_eq!(row(n).control, Control::Off);
        }
        let unlocked = LockRequest::encode(LockKind::Unlocked, 1, 0);
        assert_eq!(&row(5).input[..], &unlocked[..]);
    }
}
