//! Parsing and validation of the values that define a data stream.
//!
//! Sizes follow coreutils: `K`, `M`, `G`, `T`, `P`, `E` and `KiB`..`EiB` are powers of 1024,
//! `KB`..`EB` are powers of 1000, and a bare number is a count of bytes. A fractional size
//! such as `1.5G` is rounded to the nearest byte. Every rejected value becomes a [`SpecError`]
//! that names the field, repeats the value and says what is allowed; nothing here panics.
//!
//! This module knows nothing about trees or mounts: it validates the content parameters
//! ([`ContentSpec`]) and offers the parsers other layers reuse for their own fields.

use std::fmt;

/// Smallest accepted dedup unit, in bytes (one sector).
pub const MIN_DEDUP_UNIT: u64 = 512;
/// Largest accepted dedup unit, in bytes (1 MiB).
pub const MAX_DEDUP_UNIT: u64 = 1 << 20;
/// Dedup unit used when none is given, in bytes (4 KiB).
pub const DEFAULT_DEDUP_UNIT: u64 = 4096;
/// Largest accepted compress ratio.
pub const MAX_COMPRESS: f64 = 64.0;
/// Largest accepted dedup ratio.
pub const MAX_DEDUP: f64 = 1000.0;

/// A value that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} '{value}': {allowed}")]
pub struct SpecError {
    /// The field, spelled as on the command line without dashes (`size`, `dedup-unit`).
    pub field: &'static str,
    /// The rejected value as the user wrote it.
    pub value: String,
    /// What the field accepts, as a short phrase.
    pub allowed: String,
}

impl SpecError {
    /// Builds an error for `field` holding `value`, with a phrase saying what is allowed.
    pub fn new(field: &'static str, value: impl fmt::Display, allowed: impl Into<String>) -> Self {
        SpecError {
            field,
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

const SIZE_ALLOWED: &str =
    "expected a byte count or a size such as 4096, 512KiB, 1.5G, 10T or 4GB (K/M/G/T/P \
     and KiB.. are powers of 1024, KB/MB/.. powers of 1000)";

/// Parses a size in bytes, such as `10T`, `1.5G`, `512KiB`, `4GB` or `4096`.
pub fn parse_size(field: &'static str, text: &str) -> Result<u64, SpecError> {
    let err = || SpecError::new(field, text, SIZE_ALLOWED);
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, suffix) = trimmed.split_at(split);
    let multiplier = size_multiplier(suffix.trim()).ok_or_else(err)?;
    let (whole, frac) = parse_decimal(number).ok_or_else(err)?;

    // Exact arithmetic: value = (whole + frac / 10^digits) * multiplier, rounded to nearest.
    let scale = 10u128.pow(frac.1);
    let scaled = (whole as u128)
        .checked_mul(scale)
        .and_then(|w| w.checked_add(frac.0 as u128))
        .and_then(|n| n.checked_mul(multiplier as u128))
        .ok_or_else(err)?;
    let bytes = (scaled + scale / 2) / scale;
    u64::try_from(bytes).map_err(|_| err())
}

/// Splits `12.345` into `(12, (345, 3))`: the whole part and the fraction with its digit count.
fn parse_decimal(number: &str) -> Option<(u64, (u64, u32))> {
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    // Eighteen fractional digits keep 10^digits inside u64; more precision is meaningless here.
    if frac.len() > 18 || frac.contains('.') {
        return None;
    }
    let whole_value = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac_value = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    Some((whole_value, (frac_value, frac.len() as u32)))
}

fn size_multiplier(suffix: &str) -> Option<u64> {
    const NAMES: [char; 6] = ['K', 'M', 'G', 'T', 'P', 'E'];
    if suffix.is_empty() || suffix == "B" {
        return Some(1);
    }
    let mut chars = suffix.chars();
    let letter = chars.next()?.to_ascii_uppercase();
    let power = NAMES.iter().position(|&n| n == letter)? as u32 + 1;
    match chars.as_str() {
        "" | "iB" | "ib" | "IB" => Some(1024u64.pow(power)),
        "B" | "b" => Some(1000u64.pow(power)),
        _ => None,
    }
}

/// Parses a ratio: a decimal number from `min` to `max` inclusive.
pub fn parse_ratio(field: &'static str, text: &str, min: f64, max: f64) -> Result<f64, SpecError> {
    let allowed = || format!("expected a number from {min} to {max}");
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| SpecError::new(field, text, allowed()))?;
    check_ratio(field, value, min, max).map_err(|mut e| {
        e.value = text.to_string();
        e
    })
}

/// Checks that an already numeric ratio lies in `min..=max` and is finite.
pub fn check_ratio(field: &'static str, value: f64, min: f64, max: f64) -> Result<f64, SpecError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(SpecError::new(
            field,
            value,
            format!("expected a number from {min} to {max}"),
        ))
    }
}

/// Parses a seed: an unsigned 64-bit integer, decimal or `0x` hexadecimal.
pub fn parse_seed(text: &str) -> Result<u64, SpecError> {
    let trimmed = text.trim();
    let parsed = match trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => trimmed.parse(),
    };
    parsed.map_err(|_| {
        SpecError::new(
            "seed",
            text,
            "expected an integer from 0 to 18446744073709551615",
        )
    })
}

/// Picks a seed for a run that did not ask for one; report it so the run can be repeated.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is keyed from the operating system's entropy source once per process;
    // mixing in the time and pid makes two seeds drawn in one process differ as well.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(now);
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// The parameters that determine every byte of a stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContentSpec {
    /// Seed of the stream; streams of different seeds share no unit.
    pub seed: u64,
    /// Target compress ratio, from 1.0 (incompressible) to 64.
    pub compress: f64,
    /// Target dedup ratio: units in the stream divided by distinct units, from 1.0 to 1000.
    pub dedup: f64,
    /// Size of a dedup unit in bytes: a power of two from 512 B to 1 MiB (default 4 KiB).
    pub dedup_unit: u64,
}

impl ContentSpec {
    /// A spec with the given seed, no compression, no dedup and the default dedup unit.
    pub fn with_seed(seed: u64) -> Self {
        ContentSpec {
            seed,
            compress: 1.0,
            dedup: 1.0,
            dedup_unit: DEFAULT_DEDUP_UNIT,
        }
    }

    /// Checks every field, returning the first one out of range.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_ratio("compress", self.compress, 1.0, MAX_COMPRESS)?;
        check_ratio("dedup", self.dedup, 1.0, MAX_DEDUP)?;
        check_dedup_unit(self.dedup_unit)?;
        Ok(())
    }
}

/// Checks that a dedup unit is a power of two from 512 B to 1 MiB.
pub fn check_dedup_unit(unit: u64) -> Result<u64, SpecError> {
    if unit.is_power_of_two() && (MIN_DEDUP_UNIT..=MAX_DEDUP_UNIT).contains(&unit) {
        Ok(unit)
    } else {
        Err(SpecError::new(
            "dedup-unit",
            unit,
            "expected a power of two from 512 to 1MiB (512, 1K, 2K, 4K, .., 1M)",
        ))
    }
}

/// Parses a dedup unit such as `4K`, `64KiB` or `512`.
pub fn parse_dedup_unit(text: &str) -> Result<u64, SpecError> {
    let unit = parse_size("dedup-unit", text)?;
    check_dedup_unit(unit).map_err(|mut e| {
        e.value = text.to_string();
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_coreutils() {
        let cases = [
            ("4096", 4096),
            ("0", 0),
            ("10T", 10 << 40),
            ("1.5G", 3 << 29),
            ("512KiB", 512 << 10),
            ("4GB", 4_000_000_000),
            ("1k", 1024),
            ("2MB", 2_000_000),
            ("1P", 1 << 50),
            (" 7 ", 7),
            ("1.0000001K", 1024),
            (".5K", 512),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size("size", text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_sizes_name_the_field() {
        for text in ["10X", "", "G", "1..5G", "-1", "1.5.5", "20E", "1e9", "KiB4"] {
            let err = parse_size("size", text).unwrap_err();
            assert_eq!(err.field, "size");
            assert!(err.to_string().starts_with("invalid size '"), "{err}");
        }
    }

    #[test]
    fn ratios_are_bounded() {
        assert_eq!(parse_ratio("compress", "2.5", 1.0, 64.0), Ok(2.5));
        assert_eq!(parse_ratio("compress", "64", 1.0, 64.0), Ok(64.0));
        for text in ["0.5", "-1", "nan", "inf", "65", "two"] {
            let err = parse_ratio("compress", text, 1.0, 64.0).unwrap_err();
            assert_eq!(err.value, text);
            assert!(err.to_string().contains("from 1 to 64"), "{err}");
        }
    }

    #[test]
    fn dedup_units_are_powers_of_two_in_range() {
        assert_eq!(parse_dedup_unit("4K"), Ok(4096));
        assert_eq!(parse_dedup_unit("512"), Ok(512));
        assert_eq!(parse_dedup_unit("1MiB"), Ok(1 << 20));
        for text in ["3000", "256", "2M", "0"] {
            assert_eq!(parse_dedup_unit(text).unwrap_err().field, "dedup-unit");
        }
    }

    #[test]
    fn seeds_parse_decimal_and_hex() {
        assert_eq!(parse_seed("7"), Ok(7));
        assert_eq!(parse_seed("0xff"), Ok(255));
        assert!(parse_seed("-1").is_err());
        assert_ne!(random_seed(), random_seed());
    }

    #[test]
    fn spec_validation_reports_first_bad_field() {
        let mut spec = ContentSpec::with_seed(1);
        assert!(spec.validate().is_ok());
        spec.dedup = 0.5;
        assert_eq!(spec.validate().unwrap_err().field, "dedup");
        spec.dedup = 2.0;
        spec.dedup_unit = 3000;
        assert_eq!(spec.validate().unwrap_err().field, "dedup-unit");
    }
}
