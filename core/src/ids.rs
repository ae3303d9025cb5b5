//! The names the ledger passes around, each its own type: a VO, a site, a token's jti, a
//! person's id and a site's pseudonym of a person. Each is checked once where it enters (a
//! request's path or body), then travels typed; in JSON it is the plain string.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use crate::entry::{EntryError, check_id, validate_site_name, validate_vo_name};

/// Declares a checked string type named `$name`, whose values pass `$check`.
macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $rule:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Checks `value`: ", $rule, ".")]
            pub fn parse(value: impl Into<String>) -> Result<Self, EntryError> {
                let value = value.into();
                let check: fn(&str) -> Result<(), EntryError> = $check;
                check(&value)?;
                Ok($name(value))
            }

            /// Takes `value` as it is: one checked before (read back from the database, the
            /// log or the configuration), or one that only names what is then looked up (a
            /// request's path, whose unknown names find nothing, as before they were typed).
            pub fn unchecked(value: impl Into<String>) -> Self {
                $name(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = EntryError;

            fn try_from(value: String) -> Result<Self, EntryError> {
                $name::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

name_type! {
    /// A virtual organisation (`atlas`).
    Vo, "as [`validate_vo_name`]", validate_vo_name
}

name_type! {
    /// A site (`CERN-PROD`).
    Site, "as [`validate_site_name`]", validate_site_name
}

name_type! {
    /// A token's `jti`.
    Jti, "an identifier, as [`check_id`]", |v| check_id("jti", v)
}

name_type! {
    /// A person's id in a VO (`pe-...`).
    PersonId, "an identifier, as [`check_id`]", |v| check_id("person", v)
}

name_type! {
    /// A site's pseudonym of a person (`p1-...`).
    Pseudonym, "an identifier, as [`check_id`]", |v| check_id("pseudonym", v)
}

#[cfg(test)]
mod tests {
    use super::{Jti, Site, Vo};

    #[test]
    fn names_are_checked_once_and_plain_strings_in_json() {
        let jti = Jti::parse("a-jti").unwrap();
        assert_eq!(serde_json::to_string(&jti).unwrap(), r#""a-jti""#);
        assert_eq!(serde_json::from_str::<Jti>(r#""a-jti""#).unwrap(), jti);
        assert_eq!(
            Jti::parse("").unwrap_err().to_string(),
            "claim `jti` is invalid: must not be empty"
        );
        assert!(Vo::parse("ATLAS").is_err(), "a VO name is lowercase");
        assert!(Site::parse("CERN-PROD").is_ok() && Site::parse("a/b").is_err());
        assert!(serde_json::from_str::<Vo>(r#""""#).is_err());
        assert_eq!(&*Vo::parse("atlas").unwrap(), "atlas");
    }
}
