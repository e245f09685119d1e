//! Prometheus' own units as exact values, to compare them: durations (`90d`, `1h30m`) and byte
//! sizes (`50GiB`, `512MB`). Pure.
//!
//! Durations follow Prometheus' `model.ParseDuration`: units `y` (365 days), `w`, `d`, `h`, `m`,
//! `s` and `ms`, each at most once and in that order, or `0`. Sizes follow the `retentionSize`
//! grammar (`units.ParseBase2Bytes`): a decimal number and `B` with an optional `K`, `M`, `G`,
//! `T`, `P` or `E`, with or without `i`: both are powers of 1024, as in Prometheus.

/// Why a text is not a duration or a size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Not a Prometheus duration.
    #[error("{0:?} is not a Prometheus duration (such as 15d, 12h or 1h30m)")]
    Duration(String),
    /// Not a byte size.
    #[error("{0:?} is not a byte size (such as 512MB or 50GiB)")]
    Size(String),
}

/// The units of a duration, in the order they must come, with their length in milliseconds.
const DURATION_UNITS: [(&str, u128); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// A Prometheus duration in milliseconds.
pub fn parse_duration(text: &str) -> Result<u128, UnitError> {
    let fail = || UnitError::Duration(text.to_owned());
    if text == "0" {
        return Ok(0);
    }
    if text.is_empty() {
        return Err(fail());
    }
    let mut rest = text;
    let mut total: u128 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(fail());
        }
        let (number, after) = rest.split_at(digits);
        let number: u128 = number.parse().map_err(|_| fail())?;
        // `ms` before `m`: the longest unit that matches.
        let (index, unit, millis) = DURATION_UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (unit, _))| after.starts_with(unit))
            .map(|(index, (unit, millis))| (index, *unit, *millis))
            .max_by_key(|(_, unit, _)| unit.len())
            .ok_or_else(fail)?;
        total = number
            .checked_mul(millis)
            .and_then(|value| total.checked_add(value))
            .ok_or_else(fail)?;
        next_unit = index + 1;
        rest = &after[unit.len()..];
    }
    Ok(total)
}

/// A `retentionSize` in bytes (rounded up to a whole byte).
pub fn parse_size(text: &str) -> Result<u128, UnitError> {
    let fail = || UnitError::Size(text.to_owned());
    if text == "0" {
        return Ok(0);
    }
    let number_len = text
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (number, suffix) = text.split_at(number_len);
    let unit = suffix.strip_suffix('B').ok_or_else(fail)?;
    let unit = unit
        .strip_suffix('i')
        .filter(|prefix| !prefix.is_empty())
        .unwrap_or(unit);
    let power = match unit {
        "" => 0,
        "K" => 1,
        "M" => 2,
        "G" => 3,
        "T" => 4,
        "P" => 5,
        "E" => 6,
        _ => return Err(fail()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(fail());
    }
    let mut mantissa: u128 = 0;
    for digit in whole.bytes().chain(fraction.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(digit - b'0')))
            .ok_or_else(fail)?;
    }
    let scaled = mantissa
        .checked_mul(1024u128.checked_pow(power).ok_or_else(fail)?)
        .ok_or_else(fail)?;
    let divisor = u32::try_from(fraction.len())
        .ok()
        .and_then(|digits| 10u128.checked_pow(digits))
        .ok_or_else(fail)?;
    Ok(scaled.div_ceil(divisor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_add_up_their_units() {
        const H: u128 = 3_600_000;
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("15d"), Ok(15 * 24 * H));
        assert_eq!(parse_duration("12h"), Ok(12 * H));
        assert_eq!(parse_duration("1h30m"), Ok(H + 30 * 60_000));
        assert_eq!(parse_duration("2w"), Ok(14 * 24 * H));
        assert_eq!(parse_duration("1y"), Ok(365 * 24 * H));
        assert_eq!(parse_duration("1m500ms"), Ok(60_500));
        assert_eq!(parse_duration("30s"), Ok(30_000));
        assert_eq!(parse_duration("0d"), Ok(0));
        assert!(parse_duration("2w").unwrap() > parse_duration("10d").unwrap());
        assert!(parse_duration("90d").unwrap() < parse_duration("13w").unwrap());
    }

    #[test]
    fn what_is_not_a_duration_says_so() {
        for text in [
            "", "d", "15", "1.5h", "30m1h", "1h1h", "1x", "-1d", " 1d", "1d ", "1D",
        ] {
            assert_eq!(
                parse_duration(text),
                Err(UnitError::Duration(text.to_owned())),
                "{text:?}"
            );
        }
        assert!(parse_duration("99999999999999999999999999999999999999y").is_err());
    }

    #[test]
    fn sizes_are_powers_of_1024_with_or_without_i() {
        const GI: u128 = 1 << 30;
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("1KB"), Ok(1024));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("50GiB"), Ok(50 * GI));
        assert_eq!(parse_size("50GB"), Ok(50 * GI));
        assert_eq!(parse_size("1.5GiB"), Ok(3 * GI / 2));
        assert_eq!(parse_size(".5MB"), Ok(512 * 1024));
        assert_eq!(parse_size("1TiB"), Ok(1024 * GI));
        assert_eq!(parse_size("1EB"), Ok(1 << 60));
        assert!(parse_size("45GiB").unwrap() < parse_size("50GB").unwrap());
    }

    #[test]
    fn what_is_not_a_size_says_so() {
        for text in [
            "", "B", "1", "1G", "1Gi", "1iB", "1kB", "1.2.3GB", "GB", "1 GB", "1GiBB",
        ] {
            assert_eq!(
                parse_size(text),
                Err(UnitError::Size(text.to_owned())),
                "{text:?}"
            );
        }
    }
}
