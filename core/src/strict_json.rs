//! JSON with one reading: an object that names a member twice, at any depth, is refused.
//!
//! RFC 8259 leaves the meaning of repeated names open ("the names within an object SHOULD be
//! unique"): serde_json keeps the last value, other parsers the first, so a token or report
//! with two `sub`s means one identity to the ledger and another to a consumer that reads the
//! same bytes. These deserializers build the same [`Value`]s as serde_json's own, in the same
//! single pass, and fail at the second occurrence of a name (serde_json adds its position).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

/// How the refusal of a repeated name reads: "member `<name>` appears twice in one object".
const REPEATED: (&str, &str) = ("member `", "` appears twice in one object");

/// Any JSON value in which no object repeats a member name.
#[derive(Clone, Debug, PartialEq)]
pub struct StrictValue(pub Value);

/// A JSON object in which no object (itself or any nested one) repeats a member name.
#[derive(Clone, Debug, PartialEq)]
pub struct StrictObject(pub Map<String, Value>);

/// Parses `bytes` as one JSON value, refusing repeated member names at any depth.
pub fn from_slice(bytes: &[u8]) -> serde_json::Result<Value> {
    serde_json::from_slice::<StrictValue>(bytes).map(|v| v.0)
}

/// Parses `bytes` as one JSON object, refusing repeated member names at any depth.
pub fn object_from_slice(bytes: &[u8]) -> serde_json::Result<Map<String, Value>> {
    serde_json::from_slice::<StrictObject>(bytes).map(|o| o.0)
}

/// Whether `error` (from this module's parsers) is the refusal of a repeated member name
/// rather than malformed JSON or a value of the wrong type.
pub fn is_duplicate_member(error: &serde_json::Error) -> bool {
    error.classify() == Category::Data && error.to_string().starts_with(REPEATED.0)
}

/// For `#[serde(deserialize_with = ...)]` on an `Option<Map<String, Value>>` field.
pub fn optional_object<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Map<String, Value>>, D::Error> {
    Ok(Option::<StrictObject>::deserialize(deserializer)?.map(|o| o.0))
}

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor).map(StrictValue)
    }
}

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(ObjectVisitor)
            .map(StrictObject)
    }
}

/// Builds a [`Value`] as serde_json does, with every nested object read by [`read_object`].
struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        StrictValue::deserialize(deserializer).map(|v| v.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        read_object(map).map(Value::Object)
    }
}

/// Accepts only an object (as serde_json's `Map` does), read by [`read_object`].
struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Map<String, Value>, A::Error> {
        read_object(map)
    }
}

/// The members of an object; the second occurrence of a name is an error, raised before
/// its value is read.
fn read_object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Map<String, Value>, A::Error> {
    let mut members = Map::new();
    while let Some(name) = map.next_key::<String>()? {
        match members.entry(name) {
            Entry::Occupied(seen) => {
                let (before, after) = REPEATED;
                return Err(de::Error::custom(format_args!(
                    "{before}{}{after}",
                    seen.key()
                )));
            }
            Entry::Vacant(slot) => {
                slot.insert(map.next_value_seed(ValueSeed)?);
            }
        }
    }
    Ok(members)
}

/// Reads one member's value with [`ValueVisitor`].
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_what_serde_json_reads_when_names_are_unique() {
        let text = br#"{"iss":"https://i/","n":-3,"big":18446744073709551615,"f":1.5,
            "t":true,"z":null,"a":[1,{"x":"\u00e9"},[]],"o":{"p":{"q":[{"r":1}]}},"e":{}}"#;
        let ours = from_slice(text).unwrap();
        assert_eq!(ours, serde_json::from_slice::<Value>(text).unwrap());
        assert_eq!(
            object_from_slice(text).unwrap(),
            serde_json::from_slice::<Map<String, Value>>(text).unwrap()
        );
        assert_eq!(from_slice(b"[1,2]").unwrap(), json!([1, 2]));
        assert_eq!(from_slice(b"\"s\"").unwrap(), json!("s"));
    }

    #[test]
    fn a_name_repeated_in_any_object_at_any_depth_is_refused() {
        let cases: [&[u8]; 6] = [
            br#"{"sub":"alice","sub":"bob"}"#,
            br#"{"sub":"alice","iss":"x","sub":"alice"}"#,
            br#"{"act":{"sub":"a","sub":"b"}}"#,
            br#"{"list":[{"ok":1},{"k":1,"k":2}]}"#,
            br#"[{"a":{"b":{"c":1,"c":1}}}]"#,
            br#"{"a\u0062":1,"ab":2}"#,
        ];
        for text in cases {
            let err = from_slice(text).unwrap_err();
            assert!(
                is_duplicate_member(&err),
                "{}: {err}",
                String::from_utf8_lossy(text)
            );
            assert!(object_from_slice(text).is_err());
        }
        let err = object_from_slice(br#"{"sub":"alice","sub":"bob"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "member `sub` appears twice in one object at line 1 column 20"
        );
    }

    #[test]
    fn an_object_is_required_where_one_is_expected() {
        let err = object_from_slice(b"[1]").unwrap_err();
        assert!(err.to_string().contains("expected a JSON object"), "{err}");
        assert!(!is_duplicate_member(&err));
        let lookalike = object_from_slice(br#""member `a` appears twice in one object""#);
        assert!(!is_duplicate_member(&lookalike.unwrap_err()));
        assert!(!is_duplicate_member(&from_slice(b"{").unwrap_err()));
    }

    #[test]
    fn optional_objects_in_a_struct_are_read_strictly() {
        #[derive(Deserialize)]
        struct Report {
            #[serde(default, deserialize_with = "optional_object")]
            claims: Option<Map<String, Value>>,
        }
        let read = |text: &str| serde_json::from_str::<Report>(text).map(|r| r.claims);
        assert_eq!(read("{}").unwrap(), None);
        assert_eq!(read(r#"{"claims":null}"#).unwrap(), None);
        assert_eq!(
            read(r#"{"claims":{"a":{"b":1}}}"#).unwrap(),
            json!({"a": {"b": 1}}).as_object().cloned()
        );
        assert!(read(r#"{"claims":{"a":{"b":1,"b":2}}}"#).is_err());
        // The same field read from an already built Value (the JSON-array path) still works.
        let value = json!({"claims": {"jti": "j"}});
        let report: Report = serde_json::from_value(value).unwrap();
        assert_eq!(report.claims.unwrap()["jti"], "j");
    }
}
