//! Deadlines across process boundaries, in gRPC's `grpc-timeout` wire format.
//!
//! A caller sends the time its context has left; the callee starts its request context with a
//! deadline no later than that. The value is 1 to 8 ASCII digits followed by a unit: `H` hours,
//! `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds (so `M` and `m`
//! differ). [`encode_timeout`] picks the finest unit whose value fits in 8 digits and rounds
//! *down*, so the callee's deadline is never later than the caller's. [`parse_timeout`] accepts
//! exactly that grammar and nothing else: a malformed or hostile value is an error to ignore,
//! never a reason to extend a deadline.
//!
//! ```
//! use std::time::Duration;
//! use ctx_http::grpc_timeout::{encode_timeout, parse_timeout};
//!
//! assert_eq!(encode_timeout(Duration::from_millis(300)), "300000u");
//! assert_eq!(encode_timeout(Duration::from_secs(3600)), "3600000m");
//! assert_eq!(parse_timeout(b"250m"), Ok(Duration::from_millis(250)));
//! assert!(parse_timeout(b"1.5S").is_err());
//! ```

use std::fmt;

use tokio::time::{Duration, Instant};

use ctx_core::{Context, Error};

/// The header that carries the remaining time: `grpc-timeout`.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The largest value the wire format carries: 8 digits.
const MAX_VALUE: u128 = 99_999_999;

/// Nanoseconds per unit, finest first.
const UNITS: [(u128, u8); 6] = [
    (1, b'n'),
    (1_000, b'u'),
    (1_000_000, b'm'),
    (1_000_000_000, b'S'),
    (60_000_000_000, b'M'),
    (3_600_000_000_000, b'H'),
];

/// Encodes `timeout` in the `grpc-timeout` format: the finest unit whose value fits in 8
/// digits, rounded down. Timeouts beyond `99999999H` (over 11,000 years) are sent as that.
///
/// ```
/// use std::time::Duration;
/// use ctx_http::grpc_timeout::encode_timeout;
///
/// assert_eq!(encode_timeout(Duration::from_nanos(1500)), "1500n");
/// assert_eq!(encode_timeout(Duration::from_millis(150)), "150000u");
/// assert_eq!(encode_timeout(Duration::from_secs(100_000)), "100000S"); // 1e8 ms needs 9 digits
/// ```
pub fn encode_timeout(timeout: Duration) -> String {
    let nanos = timeout.as_nanos();
    let (value, unit) = UNITS
        .iter()
        .map(|&(per_unit, unit)| (nanos / per_unit, unit))
        .find(|&(value, _)| value <= MAX_VALUE)
        .unwrap_or((MAX_VALUE, b'H'));
    format!("{value}{}", unit as char)
}

/// Why a `grpc-timeout` value was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutHeaderError {
    /// The value is empty or has no digits before the unit.
    Empty,
    /// More than 8 digits.
    TooLong,
    /// A character other than an ASCII digit before the unit.
    NotADigit,
    /// The last character is not one of `H M S m u n`.
    UnknownUnit,
}

impl fmt::Display for TimeoutHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutHeaderError::Empty => "grpc-timeout has no value",
            TimeoutHeaderError::TooLong => "grpc-timeout has more than 8 digits",
            TimeoutHeaderError::NotADigit => "grpc-timeout has a character that is not a digit",
            TimeoutHeaderError::UnknownUnit => "grpc-timeout has no unit among H, M, S, m, u, n",
        })
    }
}

impl std::error::Error for TimeoutHeaderError {}

/// Parses a `grpc-timeout` value: 1 to 8 ASCII digits and a unit, nothing else (no sign, no
/// space, no fraction). Never panics, whatever the bytes.
///
/// ```
/// use std::time::Duration;
/// use ctx_http::grpc_timeout::{parse_timeout, TimeoutHeaderError};
///
/// assert_eq!(parse_timeout(b"5S"), Ok(Duration::from_secs(5)));
/// assert_eq!(parse_timeout(b"2M"), Ok(Duration::from_secs(120)));
/// assert_eq!(parse_timeout(b"2m"), Ok(Duration::from_millis(2)));
/// assert_eq!(parse_timeout(b"123456789S"), Err(TimeoutHeaderError::TooLong));
/// assert_eq!(parse_timeout(b"-1S"), Err(TimeoutHeaderError::NotADigit));
/// assert_eq!(parse_timeout(b"5 S"), Err(TimeoutHeaderError::NotADigit));
/// assert_eq!(parse_timeout(b"5s"), Err(TimeoutHeaderError::UnknownUnit));
/// ```
pub fn parse_timeout(value: &[u8]) -> Result<Duration, TimeoutHeaderError> {
    let (&unit, digits) = value.split_last().ok_or(TimeoutHeaderError::Empty)?;
    let per_unit = UNITS
        .iter()
        .find(|&&(_, u)| u == unit)
        .map(|&(per_unit, _)| per_unit)
        .ok_or(TimeoutHeaderError::UnknownUnit)?;
    if digits.is_empty() {
        return Err(TimeoutHeaderError::Empty);
    }
    if digits.len() > 8 {
        return Err(TimeoutHeaderError::TooLong);
    }
    let mut count: u128 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return Err(TimeoutHeaderError::NotADigit);
        }
        count = count * 10 + u128::from(digit - b'0');
    }
    // At most 99999999 hours: about 3.6e20 ns, which fits in a u128 and, as seconds, in a u64.
    let nanos = count * per_unit;
    Ok(Duration::new(
        (nanos / 1_000_000_000) as u64,
        (nanos % 1_000_000_000) as u32,
    ))
}

/// The `grpc-timeout` value for a call made under `ctx`: `Ok(None)` if it has no deadline,
/// `Ok(Some(value))` with the time it has left, or `Err` if it has already ended, in which case
/// the call should not be sent at all.
///
/// ```
/// use std::time::Duration;
/// use ctx_core::{Context, Error};
/// use ctx_http::grpc_timeout::timeout_header;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(300));
/// assert_eq!(timeout_header(&ctx), Ok(Some("300000u".to_string())));
/// assert_eq!(timeout_header(&Context::background()), Ok(None));
/// let (ended, _h) = Context::background().with_timeout(Duration::ZERO);
/// assert_eq!(timeout_header(&ended), Err(Error::DeadlineExceeded));
/// # }
/// ```
pub fn timeout_header(ctx: &Context) -> Result<Option<String>, Error> {
    Ok(time_left(ctx)?.map(encode_timeout))
}

/// The time `ctx` has left: `Ok(None)` without a deadline, `Err` if it has ended (never
/// `Some(Duration::ZERO)`). This is what a client sends as `grpc-timeout`, before encoding.
///
/// ```
/// use std::time::Duration;
/// use ctx_core::{Context, Error};
/// use ctx_http::grpc_timeout::time_left;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(2));
/// assert_eq!(time_left(&ctx), Ok(Some(Duration::from_secs(2))));
/// assert_eq!(time_left(&Context::background()), Ok(None));
/// let (ended, h) = Context::background().with_cancel();
/// h.cancel();
/// assert_eq!(time_left(&ended), Err(Error::Canceled));
/// # }
/// ```
pub fn time_left(ctx: &Context) -> Result<Option<Duration>, Error> {
    if let Some(err) = ctx.err() {
        return Err(err);
    }
    let Some(deadline) = ctx.deadline() else {
        return Ok(None);
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        // The deadline passed between the two readings of the clock.
        return Err(ctx.err().unwrap_or(Error::DeadlineExceeded));
    }
    Ok(Some(left))
}

/// The deadline a callee should give its request context for a received `grpc-timeout`
/// value: `Some(now + timeout)`, or `None` if the value is malformed or too far away to
/// represent (the caller's deadline then does not apply; log the error and go on with the
/// local timeout).
///
/// Pass the result to [`Context::with_deadline`]: a child's deadline is never later than its
/// parent's, so a received value can only shorten the request's deadline.
///
/// ```
/// use std::time::Duration;
/// use tokio::time::Instant;
/// use ctx_http::grpc_timeout::deadline_from_header;
///
/// let now = Instant::now();
/// assert_eq!(deadline_from_header(b"2S", now), Ok(Some(now + Duration::from_secs(2))));
/// assert!(deadline_from_header(b"soon", now).is_err());
/// ```
pub fn deadline_from_header(
    value: &[u8],
    now: Instant,
) -> Result<Option<Instant>, TimeoutHeaderError> {
    Ok(now.checked_add(parse_timeout(value)?))
}
