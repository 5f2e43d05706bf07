//! The `grpc-timeout` codec on arbitrary bytes. `parse_timeout` never panics and accepts
//! exactly the grammar (1 to 8 ASCII digits, then one of `H M S m u n`), checked against a
//! second implementation written here; whatever it accepts re-encodes to exactly the value it
//! parsed (never more); `deadline_from_header` agrees with it. The first 12 bytes, read as a
//! `Duration`, check that `encode_timeout` rounds down by less than the unit it picked.

#![no_main]

use std::time::Duration;

use ctx_http::grpc_timeout::{deadline_from_header, encode_timeout, parse_timeout};
use libfuzzer_sys::fuzz_target;
use tokio::time::Instant;

/// Nanoseconds per unit of the wire format.
fn unit_nanos(unit: u8) -> Option<u128> {
    Some(match unit {
        b'H' => 3_600_000_000_000,
        b'M' => 60_000_000_000,
        b'S' => 1_000_000_000,
        b'm' => 1_000_000,
        b'u' => 1_000,
        b'n' => 1,
        _ => return None,
    })
}

/// The grammar, read independently of the parser under test.
fn reference(value: &[u8]) -> Option<Duration> {
    let (digits, unit) = (value.get(..value.len().checked_sub(1)?)?, *value.last()?);
    let per_unit = unit_nanos(unit)?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let count: u128 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let nanos = count * per_unit;
    Some(Duration::new(
        u64::try_from(nanos / 1_000_000_000).ok()?,
        (nanos % 1_000_000_000) as u32,
    ))
}

fuzz_target!(|data: &[u8]| {
    let parsed = parse_timeout(data);
    assert_eq!(
        parsed.as_ref().ok(),
        reference(data).as_ref(),
        "{}",
        data.escape_ascii()
    );

    let now = Instant::now();
    match parsed {
        Ok(timeout) => {
            let encoded = encode_timeout(timeout);
            let again = parse_timeout(encoded.as_bytes()).expect("the encoder's output parses");
            // Every unit divides the coarser ones, so a parsed value re-encodes exactly.
            assert_eq!(
                again,
                timeout,
                "{} re-encoded as {encoded}",
                data.escape_ascii()
            );
            assert_eq!(
                deadline_from_header(data, now),
                Ok(now.checked_add(timeout))
            );
        }
        Err(err) => assert_eq!(deadline_from_header(data, now), Err(err)),
    }

    if let Some(bytes) = data.get(..12) {
        let secs = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        let nanos = u32::from_le_bytes(bytes[8..].try_into().unwrap()) % 1_000_000_000;
        let timeout = Duration::new(secs, nanos);
        let encoded = encode_timeout(timeout);
        let sent = parse_timeout(encoded.as_bytes()).expect("the encoder's output parses");
        // Never later than the caller's deadline, and (below the format's cap) less than one
        // unit earlier.
        assert!(sent <= timeout, "{timeout:?} sent as {encoded}");
        let unit = unit_nanos(*encoded.as_bytes().last().unwrap()).unwrap();
        if encoded != "99999999H" {
            assert!(
                timeout.as_nanos() - sent.as_nanos() < unit,
                "{timeout:?} sent as {encoded}"
            );
        }
    }
});
