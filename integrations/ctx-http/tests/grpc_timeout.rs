//! The `grpc-timeout` codec: a property test over arbitrary strings (never a panic, only the
//! exact grammar accepted, never a longer deadline than sent) and the encoder's rounding.

use std::time::Duration;

use ctx_http::grpc_timeout::{encode_timeout, parse_timeout};
use proptest::prelude::*;

fn grammar(value: &[u8]) -> bool {
    match value.split_last() {
        Some((unit, digits)) => {
            b"HMSmun".contains(unit)
                && (1..=8).contains(&digits.len())
                && digits.iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_only_the_grammar_parses(value in prop::collection::vec(any::<u8>(), 0..12)) {
        prop_assert_eq!(parse_timeout(&value).is_ok(), grammar(&value));
    }

    #[test]
    fn arbitrary_strings_never_panic_and_only_the_grammar_parses(value in ".{0,12}") {
        prop_assert_eq!(parse_timeout(value.as_bytes()).is_ok(), grammar(value.as_bytes()));
    }

    #[test]
    fn near_misses_are_rejected(digits in "[0-9]{1,8}", noise in "[ +\\-.,_eExX]|[a-zA-Z&&[^HMSmun]]", at in 0usize..10) {
        let mut value = format!("{digits}S");
        let at = at.min(value.len());
        value.insert_str(at, &noise);
        prop_assert!(parse_timeout(value.as_bytes()).is_err(), "{value:?} parsed");
    }

    #[test]
    fn encoding_rounds_down_within_one_unit_and_fits_the_grammar(nanos in any::<u64>(), secs in 0u64..10_000_000_000) {
        let timeout = Duration::new(secs, (nanos % 1_000_000_000) as u32);
        let encoded = encode_timeout(timeout);
        prop_assert!(grammar(encoded.as_bytes()), "{encoded} is not in the grammar");
        let decoded = parse_timeout(encoded.as_bytes()).unwrap();
        prop_assert!(decoded <= timeout, "{encoded} is later than {timeout:?}");
        let unit = match encoded.as_bytes().last().unwrap() {
            b'n' => Duration::from_nanos(1),
            b'u' => Duration::from_micros(1),
            b'm' => Duration::from_millis(1),
            b'S' => Duration::from_secs(1),
            b'M' => Duration::from_secs(60),
            _ => Duration::from_secs(3600),
        };
        prop_assert!(timeout - decoded < unit, "{encoded} lost more than one unit of {timeout:?}");
        // Never rounded down to zero: the finest unit that fits leaves at least 100,000 of it.
        prop_assert_eq!(timeout.is_zero(), decoded.is_zero());
    }
}

#[test]
fn the_largest_values_parse_without_overflow() {
    assert_eq!(
        parse_timeout(b"99999999H"),
        Ok(Duration::from_secs(99_999_999 * 3600))
    );
    assert_eq!(parse_timeout(b"00000000n"), Ok(Duration::ZERO));
    assert_eq!(encode_timeout(Duration::MAX), "99999999H");
}
