//! JSON bodies read strictly, and their errors told plainly.
//!
//! - [`Strict`]: a JSON value whose objects never repeat a key. serde_json keeps the last of
//!   `{"quantity": 1, "quantity": 1000}` silently; a proxy or a log may read the first, so
//!   the body means two things — refused (422, `fields.body`).
//! - [`plain`]: serde's message without Rust's type names or parser positions
//!   (`invalid type: floating point 1.5, expected i32` → `got the number 1.5, expected a whole
//!   number from -2147483648 to 2147483647`), cut to a few hundred characters.

use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{Error, MapAccess, SeqAccess, Visitor},
};
use serde_json::{Map, Number, Value};

use crate::bounded;

/// A JSON value with no key twice in any object.
#[derive(Debug)]
pub(crate) struct Strict(pub(crate) Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        Strict::deserialize(de).map(|s| s.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let key = bounded::text(&key, 64);
                return Err(A::Error::custom(format!("the key `{key}` appears more than once")));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Rust's names for the numbers a body holds, in words.
const TYPES: [(&str, &str); 8] = [
    ("i32", "a whole number from -2147483648 to 2147483647"),
    ("i64", "a whole number from -9223372036854775808 to 9223372036854775807"),
    ("u64", "a whole number of 0 or more"),
    ("u32", "a whole number from 0 to 4294967295"),
    ("u16", "a whole number from 0 to 65535"),
    ("u8", "a whole number from 0 to 255"),
    ("usize", "a whole number of 0 or more"),
    ("f64", "a number"),
];

/// serde's message `raw`, said without Rust's words (see the module documentation).
pub(crate) fn plain(raw: &str) -> String {
    let mut message = raw.to_owned();
    // " at line 1 column 42": the parser's position says nothing to the client.
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    for (got, said) in
        [("invalid type: ", "got "), ("invalid value: ", "got "), ("floating point ", "the number ")]
    {
        message = message.replace(got, said);
    }
    message = message.replace("integer `", "the number `").replace('`', "");
    for (rust, words) in TYPES {
        if let Some(stripped) = message.strip_suffix(&format!("expected {rust}")) {
            message = format!("{stripped}expected {words}");
        }
    }
    bounded::text(&message, 300).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_twice_in_any_object_is_refused() {
        assert!(serde_json::from_str::<Strict>(r#"{"a": 1, "b": {"c": [1, {"d": 2}]}}"#).is_ok());
        for body in [r#"{"a": 1, "a": 2}"#, r#"{"b": {"c": 1, "c": 1}}"#, r#"[{"x": 0, "x": 0}]"#] {
            let e = serde_json::from_str::<Strict>(body).expect_err(body);
            assert!(e.is_data() && e.to_string().contains("more than once"), "{e}");
        }
    }

    #[test]
    fn messages_carry_no_rust_type_names_or_positions() {
        assert_eq!(
            plain("invalid type: floating point `1.5`, expected i32 at line 1 column 30"),
            "got the number 1.5, expected a whole number from -2147483648 to 2147483647"
        );
        assert_eq!(
            plain("invalid type: integer `5`, expected a string"),
            "got the number 5, expected a string"
        );
        assert_eq!(plain("missing field `email`"), "missing field email");
    }
}
