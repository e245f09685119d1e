//! Kubernetes resource quantities (`500m`, `2Gi`, `1.5`, `1e3`) as exact values, to compare
//! them: a stack's requests and limits against a member cluster's container bounds, and a
//! planned quantity against the one the API server stored (it rewrites them in canonical form,
//! `1024Mi` as `1Gi`, `0.5` as `500m`). Pure.
//!
//! The grammar is Kubernetes' own: an optional sign, a decimal number (`1`, `1.5`, `1.`, `.5`)
//! and a suffix: none, a decimal SI one (`n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`, `E`), a binary
//! one (`Ki` … `Ei`) or a decimal exponent (`e3`, `E-2`). Values are held in billionths (the
//! finest `n` gives), rounded up like Kubernetes rounds what is finer.

use std::fmt;

/// An exact quantity, ordered by value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuantityValue {
    nanos: i128,
}

impl QuantityValue {
    /// The value in billionths of its unit (`1` is 1 000 000 000, `1m` is 1 000 000).
    pub fn nanos(self) -> i128 {
        self.nanos
    }
}

/// Why a text is not a quantity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not of the grammar.
    #[error(
        "{0:?} is not a quantity (a number with an optional suffix such as m, k, M, G, Ki, Mi or Gi)"
    )]
    Malformed(String),
    /// Of the grammar, but larger than anything Kubernetes holds.
    #[error("{0:?} is too large a quantity")]
    TooLarge(String),
}

/// The scale a suffix gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scale {
    /// × 10^n.
    Decimal(i32),
    /// × 2^n.
    Binary(u32),
}

/// Parses a quantity.
pub fn parse(text: &str) -> Result<QuantityValue, QuantityError> {
    let malformed = || QuantityError::Malformed(text.to_owned());
    let too_large = || QuantityError::TooLarge(text.to_owned());
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let number_len = unsigned
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (number, suffix) = unsigned.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') || whole.len() + fraction.len() == 0 {
        return Err(malformed());
    }
    let scale = scale_of(suffix).ok_or_else(malformed)?;
    let mut mantissa: u128 = 0;
    for digit in whole.bytes().chain(fraction.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(digit - b'0')))
            .ok_or_else(too_large)?;
    }
    let fraction_digits = i32::try_from(fraction.len()).map_err(|_| too_large())?;
    // Billionths: × 10^9, then the suffix, then ÷ 10^(fraction digits). Binary factors first,
    // so that only the last division rounds.
    let (decimal_exponent, binary_exponent) = match scale {
        Scale::Decimal(exponent) => (exponent, 0),
        Scale::Binary(exponent) => (0, exponent),
    };
    let mantissa = mantissa
        .checked_mul(1u128.checked_shl(binary_exponent).ok_or_else(too_large)?)
        .ok_or_else(too_large)?;
    let exponent = decimal_exponent + 9 - fraction_digits;
    let magnitude = if exponent >= 0 {
        pow10(exponent.unsigned_abs())
            .and_then(|factor| mantissa.checked_mul(factor))
            .ok_or_else(too_large)?
    } else {
        match pow10(exponent.unsigned_abs()) {
            Some(divisor) => mantissa.div_ceil(divisor),
            // Finer than 10^-38 of a billionth: rounds up to one, or is zero.
            None => u128::from(mantissa > 0),
        }
    };
    let magnitude = i128::try_from(magnitude).map_err(|_| too_large())?;
    Ok(QuantityValue {
        nanos: if negative { -magnitude } else { magnitude },
    })
}

/// Whether two texts are the same quantity (both parse, to equal values).
pub fn same(a: &str, b: &str) -> bool {
    matches!((parse(a), parse(b)), (Ok(a), Ok(b)) if a == b)
}

fn scale_of(suffix: &str) -> Option<Scale> {
    let decimal = |exponent| Some(Scale::Decimal(exponent));
    let binary = |exponent| Some(Scale::Binary(exponent));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let exponent = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            let digits = exponent
                .strip_prefix('-')
                .or_else(|| exponent.strip_prefix('+'))
                .unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Past ±60 every quantity is either too large or rounds to its least value.
            let exponent: i32 = exponent.parse().ok()?;
            decimal(exponent.clamp(-60, 60))
        }
    }
}

fn pow10(exponent: u32) -> Option<u128> {
    10u128.checked_pow(exponent)
}

impl fmt::Display for QuantityValue {
    /// The value in plain decimal (`0.5`, `1073741824`), for messages that compare two
    /// quantities written differently.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.nanos < 0 { "-" } else { "" };
        let magnitude = self.nanos.unsigned_abs();
        let whole = magnitude / 1_000_000_000;
        let fraction = magnitude % 1_000_000_000;
        if fraction == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let digits = format!("{fraction:09}");
            write!(f, "{sign}{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(text: &str) -> i128 {
        parse(text).unwrap().nanos()
    }

    #[test]
    fn every_suffix_scales_its_number() {
        const G: i128 = 1_000_000_000;
        assert_eq!(nanos("1"), G);
        assert_eq!(nanos("500m"), G / 2);
        assert_eq!(nanos("0.5"), G / 2);
        assert_eq!(nanos(".5"), G / 2);
        assert_eq!(nanos("1."), G);
        assert_eq!(nanos("+2"), 2 * G);
        assert_eq!(nanos("-2"), -2 * G);
        assert_eq!(nanos("7n"), 7);
        assert_eq!(nanos("3u"), 3_000);
        assert_eq!(nanos("2k"), 2_000 * G);
        assert_eq!(nanos("1M"), 1_000_000 * G);
        assert_eq!(nanos("1G"), 1_000_000_000 * G);
        assert_eq!(nanos("1T"), 1_000_000_000_000 * G);
        assert_eq!(nanos("1P"), 1_000_000_000_000_000 * G);
        assert_eq!(nanos("1E"), 1_000_000_000_000_000_000 * G);
        assert_eq!(nanos("1Ki"), 1024 * G);
        assert_eq!(nanos("1Mi"), (1 << 20) * G);
        assert_eq!(nanos("1Gi"), (1 << 30) * G);
        assert_eq!(nanos("1Ti"), (1 << 40) * G);
        assert_eq!(nanos("1Pi"), (1 << 50) * G);
        assert_eq!(nanos("1Ei"), (1 << 60) * G);
        assert_eq!(nanos("1e3"), 1_000 * G);
        assert_eq!(nanos("1E3"), 1_000 * G);
        assert_eq!(nanos("15e-1"), 3 * G / 2);
        assert_eq!(nanos("1e+2"), 100 * G);
        assert_eq!(nanos("0"), 0);
    }

    #[test]
    fn the_api_servers_canonical_forms_are_the_same_quantity() {
        for (written, canonical) in [
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1e3", "1k"),
            ("0.1", "100m"),
            ("2048Ki", "2Mi"),
            ("4", "4"),
        ] {
            assert!(same(written, canonical), "{written} = {canonical}");
        }
        assert!(!same("1Gi", "1G"));
        assert!(!same("1Gi", "not a quantity"));
        assert!(
            !same("x", "x"),
            "texts that are no quantity are never the same quantity"
        );
    }

    #[test]
    fn quantities_order_by_value() {
        let q = |text| parse(text).unwrap();
        assert!(q("100m") < q("1"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("256Mi") > q("128Mi"));
        assert!(q("8Gi") > q("4096Mi"));
        assert!(q("-1") < q("0"));
    }

    #[test]
    fn finer_than_a_billionth_rounds_up() {
        assert_eq!(nanos("0.1n"), 1);
        assert_eq!(nanos("0.0000000001Ki"), 103);
        assert_eq!(nanos("1e-60"), 1);
        assert_eq!(nanos("0e-60"), 0);
    }

    #[test]
    fn what_is_not_a_quantity_says_so() {
        for text in [
            "", "abc", "Mi", "1.2.3", "1Gb", "1 Gi", "--1", ".", "1e", "1e+", "1ee3", "1mi", " 1",
        ] {
            assert_eq!(
                parse(text),
                Err(QuantityError::Malformed(text.to_owned())),
                "{text:?}"
            );
        }
        for text in [
            "1e40",
            "99999999999999999999999999999999999999999",
            "999999999999Ei",
        ] {
            assert_eq!(
                parse(text),
                Err(QuantityError::TooLarge(text.to_owned())),
                "{text:?}"
            );
        }
        assert_eq!(
            parse("2Gb").unwrap_err().to_string(),
            "\"2Gb\" is not a quantity (a number with an optional suffix such as m, k, M, G, Ki, \
             Mi or Gi)"
        );
    }

    #[test]
    fn a_value_displays_in_plain_decimal() {
        assert_eq!(parse("500m").unwrap().to_string(), "0.5");
        assert_eq!(parse("1Ki").unwrap().to_string(), "1024");
        assert_eq!(parse("-1.25").unwrap().to_string(), "-1.25");
        assert_eq!(parse("7n").unwrap().to_string(), "0.000000007");
    }
}
