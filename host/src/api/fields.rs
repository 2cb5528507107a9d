//! Field types of the demo's requests. Each checks its value when it is
//! parsed, so a handler of a request only ever sees valid input, and a bad
//! value is reported with the path of its field.

use serde::{Deserialize, Serialize};

/// Defines a string field type with a check, parsed from and written as a
/// JSON string.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(&s)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

checked_string!(
    /// A name: 1 to 200 characters, not only spaces.
    Name,
    |s| bounded_text(s, 200)
);

checked_string!(
    /// An identifier such as a user or order id: 1 to 128 visible characters.
    Id,
    |s| {
        bounded_text(s, 128)?;
        match s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            Some(c) => Err(format!("must not contain {c:?}")),
            None => Ok(()),
        }
    }
);

checked_string!(
    /// An e-mail address: `local@domain`, at most 254 characters.
    Email,
    |s| {
        let valid = s.len() <= 254
            && !s.chars().any(char::is_whitespace)
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
            });
        if valid {
            Ok(())
        } else {
            Err(format!("{s:?} is not an e-mail address"))
        }
    }
);

fn bounded_text(s: &str, max: usize) -> Result<(), String> {
    if s.trim().is_empty() {
        Err("must not be empty".into())
    } else if s.chars().count() > max {
        Err(format!("must be at most {max} characters"))
    } else {
        Ok(())
    }
}

/// An age in years, 0 to 150.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Age(u8);

impl TryFrom<u64> for Age {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        match u8::try_from(v) {
            Ok(age) if age <= 150 => Ok(Self(age)),
            _ => Err(format!("{v} is not an age (0 to 150)")),
        }
    }
}

impl From<Age> for u64 {
    fn from(a: Age) -> u64 {
        u64::from(a.0)
    }
}

/// An amount of money: a non-negative number.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Amount(f64);

impl TryFrom<f64> for Amount {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if v.is_finite() && v >= 0.0 {
            Ok(Self(v))
        } else {
            Err(format!("{v} is not an amount (a number of at least 0)"))
        }
    }
}

impl From<Amount> for f64 {
    fn from(a: Amount) -> f64 {
        a.0
    }
}

/// How many of an item: at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Quantity(u32);

impl TryFrom<u64> for Quantity {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        match u32::try_from(v) {
            Ok(q) if q >= 1 => Ok(Self(q)),
            _ => Err(format!("{v} is not a quantity (1 or more)")),
        }
    }
}

impl From<Quantity> for u64 {
    fn from(q: Quantity) -> u64 {
        u64::from(q.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_need_a_local_part_and_a_domain() {
        assert!(Email::try_from("ada@example.com".to_string()).is_ok());
        for bad in [
            "ada",
            "@example.com",
            "ada@example",
            "ada @example.com",
            "ada@.com",
        ] {
            assert!(Email::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_ids_must_have_content() {
        assert!(Name::try_from("Ada Lovelace".to_string()).is_ok());
        assert!(Name::try_from("   ".to_string()).is_err());
        assert!(Name::try_from("x".repeat(201)).is_err());
        assert!(Id::try_from("u-1".to_string()).is_ok());
        assert!(Id::try_from("u 1".to_string()).is_err());
    }

    #[test]
    fn numbers_are_range_checked() {
        assert!(Age::try_from(30).is_ok());
        assert!(Age::try_from(151).is_err());
        assert!(Amount::try_from(0.0).is_ok());
        assert!(Amount::try_from(-0.01).is_err());
        assert!(Quantity::try_from(0).is_err());
        assert!(Quantity::try_from(2).is_ok());
    }

    #[test]
    fn a_negative_age_is_a_type_error_with_its_field() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct P {
            age: Age,
        }
        let r: Result<P, _> = crate::api::error::parse(br#"{"age": -3}"#);
        assert!(
            matches!(r, Err(crate::api::error::ApiError::Invalid { field: Some(f), .. }) if f == "age")
        );
    }
}
