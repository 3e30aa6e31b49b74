//! A resident ID number (身份证号): 18 characters with a valid check digit; never printed in clear.

use crate::domain::Rule;
use std::fmt;

use chrono::{Datelike, NaiveDate};

use super::{Invalid, Sex};

/// A resident identity card number (居民身份证号码, GB 11643-1999): 6-digit region, 8-digit
/// birth date, 3-digit sequence (odd for men), and an ISO 7064 MOD 11-2 check character.
///
/// Personal data: `Debug` and `Display` show it masked; the digits are reachable only through
/// [`IdNumber::expose`], which the encryption and keyed-hash code calls.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdNumber(String);

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: &[u8; 11] = b"10X98765432";

impl IdNumber {
    /// Parses an 18-character number; a lowercase `x` check character is accepted.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let value = value.trim().to_ascii_uppercase();
        let bytes = value.as_bytes();
        if bytes.len() != 18
            || !bytes[..17].iter().all(u8::is_ascii_digit)
            || !(bytes[17].is_ascii_digit() || bytes[17] == b'X')
        {
            return Err(Invalid::new(
                Rule::IdNumberFormat,
                "须为 18 位：17 位数字加 1 位数字或 X",
            ));
        }
        if check_character(&value[..17]) != Some(bytes[17] as char) {
            return Err(Invalid::new(
                Rule::IdNumberCheckDigit,
                "校验位不对（GB 11643）",
            ));
        }
        if &value[..2] == "00" {
            return Err(Invalid::new(Rule::IdNumberRegion, "开头不是地区码"));
        }
        let birth = NaiveDate::parse_from_str(&value[6..14], "%Y%m%d")
            .map_err(|_| Invalid::new(Rule::IdNumberBirthDate, "其中的出生日期不存在"))?;
        if birth.year() < 1890 {
            return Err(Invalid::new(
                Rule::IdNumberBirthDate,
                "其中的出生日期早于 1890 年",
            ));
        }
        Ok(Self(value))
    }

    /// A valid number for generated data (`taizhang seed`, the field simulator): born in
    /// `year`, of `sex`. The day of the year and the sequence follow from `counter`, so numbers
    /// of one region, year and sex are distinct for counters that differ by less than 182,500
    /// (365 days × 500 sequences of each parity); the day is scrambled so that people counted
    /// one after the other are not born on consecutive days.
    pub fn generated(region: &str, year: i32, sex: Sex, counter: u64) -> Result<Self, Invalid> {
        let day = (counter % 365) * 151 % 365; // 151 is prime to 365: a bijection of the days
        let birth = NaiveDate::from_yo_opt(year, day as u32 + 1)
            .ok_or_else(|| Invalid::new(Rule::IdNumberBirthDate, "出生年份无效"))?;
        let parity = u64::from(sex == Sex::Male); // an odd sequence is a man's
        let sequence = (counter / 365) % 500 * 2 + parity;
        let first = format!("{region}{}{sequence:03}", birth.format("%Y%m%d"));
        let check = check_character(&first)
            .ok_or_else(|| Invalid::new(Rule::IdNumberFormat, "地区码须为 6 位数字"))?;
        Self::parse(&format!("{first}{check}"))
    }

    pub fn birth_date(&self) -> NaiveDate {
        // Checked in `parse`.
        NaiveDate::parse_from_str(&self.0[6..14], "%Y%m%d").unwrap_or_default()
    }

    /// The sex the sequence number encodes (odd: male).
    pub fn sex(&self) -> Sex {
        if (self.0.as_bytes()[16] - b'0') % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// `220802********1238`: region and last four kept, birth date and sequence hidden.
    pub fn masked(&self) -> String {
        format!("{}********{}", &self.0[..6], &self.0[14..])
    }

    /// The digits themselves, for encryption and the keyed hash only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The ISO 7064 MOD 11-2 check character of the first 17 digits (none unless 17 digits).
fn check_character(first17: &str) -> Option<char> {
    let digits = first17.as_bytes();
    if digits.len() != 17 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = digits
        .iter()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    Some(CHECK[(sum % 11) as usize] as char)
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdNumber({})", self.masked())
    }
}

impl fmt::Display for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_numbers_and_reads_them() {
        let id = IdNumber::parse("220802197001011238").expect("the spec's example is valid");
        assert_eq!(
            id.birth_date(),
            NaiveDate::from_ymd_opt(1970, 1, 1).expect("date")
        );
        assert_eq!(id.sex(), Sex::Male);
        assert_eq!(id.masked(), "220802********1238");
        assert_eq!(format!("{id:?}"), "IdNumber(220802********1238)");
        assert!(IdNumber::parse("11010519491231002x").is_ok(), "lowercase x");
    }

    #[test]
    fn refuses_bad_numbers_by_rule() {
        let rule = |s: &str| IdNumber::parse(s).err().map(|e| e.rule);
        assert_eq!(rule("220802197001011239"), Some(Rule::IdNumberCheckDigit));
        assert_eq!(rule("22080219700101123"), Some(Rule::IdNumberFormat));
        assert_eq!(rule("2208021970010112A8"), Some(Rule::IdNumberFormat));
        // 1970-02-30 does not exist; the check digit is right for the digits.
        let bad_date = with_check("22080219700230123");
        assert_eq!(rule(&bad_date), Some(Rule::IdNumberBirthDate));
    }

    fn with_check(first17: &str) -> String {
        format!("{first17}{}", check_character(first17).expect("17 digits"))
    }

    #[test]
    fn generated_numbers_are_valid_and_distinct() {
        let a = IdNumber::generated("220802", 1965, Sex::Female, 0).expect("valid");
        assert_eq!(
            a.birth_date(),
            NaiveDate::from_ymd_opt(1965, 1, 1).expect("date")
        );
        assert_eq!(&a.expose()[..17], "22080219650101000");
        assert_eq!(a.sex(), Sex::Female);
        let b = IdNumber::generated("220802", 1965, Sex::Male, 1).expect("valid");
        assert_eq!(b.sex(), Sex::Male);
        assert_eq!(b.birth_date().year(), 1965);
        assert_ne!(
            b.birth_date().ordinal(),
            2,
            "consecutive counters, scattered days"
        );
        let mut seen = std::collections::HashSet::new();
        for counter in 0..182_500 {
            let id = IdNumber::generated("220802", 1990, Sex::Male, counter).expect("valid");
            assert_eq!(id.sex(), Sex::Male);
            assert!(seen.insert(id.expose().to_owned()), "counter {counter}");
        }
        assert!(IdNumber::generated("2208", 1990, Sex::Male, 1).is_err());
    }
}
