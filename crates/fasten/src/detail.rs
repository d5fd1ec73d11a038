//! Strict conversion of a caller's `detail` into the JSON object that gets redacted, hashed
//! and stored.
//!
//! `serde_json::to_value` quietly turns NaN and infinities into `null`. For an audit trail
//! that is silent data loss sealed under a hash, so this module has its own serde
//! `Serializer` that builds the same `Value` `serde_json` would but refuses what it cannot
//! represent faithfully, and says where: `detail.readings[2]: NaN and infinite numbers are
//! not valid JSON`.
//!
//! Apart from refusing, the output matches `serde_json::to_value`: enums are externally
//! tagged, bytes become arrays of numbers, integer/bool/char map keys are stringified. The
//! one deliberate difference: float map keys are refused, since their text form is a
//! formatting choice no other implementation is bound to repeat.

use std::borrow::Cow;
use std::fmt;

use serde::ser::{self, Impossible, Serialize};
use serde_json::{Map, Number, Value};

/// Why a detail value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DetailError {
    /// Where in the detail, e.g. `detail.readings[2]`.
    pub(crate) path: String,
    /// What was wrong, phrased for the person who wrote the detail.
    pub(crate) rule: &'static str,
}

impl fmt::Display for DetailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.rule)
    }
}

impl std::error::Error for DetailError {}

/// Serialises `value` to a JSON object, refusing what `serde_json` would silently turn into `null`.
pub(crate) fn to_object<T: Serialize + ?Sized>(
    value: &T,
) -> Result<Map<String, Value>, DetailError> {
    match value.serialize(ValueSerializer::<true>) {
        Ok(Value::Object(map)) if too_deep(&map) => Err(DetailError {
            path: ROOT.to_owned(),
            rule: TOO_DEEP,
        }),
        Ok(Value::Object(map)) => Ok(map),
        // Unreachable while the top-level serializer refuses every other kind up front;
        // kept as an error rather than a panic in case that ever changes.
        Ok(other) => Err(DetailError {
            path: ROOT.to_owned(),
            rule: match other {
                Value::Array(_) => NOT_OBJECT_ARRAY,
                Value::String(_) => NOT_OBJECT_STRING,
                Value::Number(_) => NOT_OBJECT_NUMBER,
                Value::Bool(_) => NOT_OBJECT_BOOL,
                Value::Null | Value::Object(_) => NOT_OBJECT_NULL,
            },
        }),
        Err(e) => Err(e.into_detail_error()),
    }
}

const ROOT: &str = "detail";

/// How deep a detail may nest. JSON parsers, serde_json's included (128),
/// refuse deeper documents, so a deeper detail could be written but never
/// read back or verified.
const MAX_DEPTH: usize = 64;
const TOO_DEEP: &str = "nests deeper than 64 levels";

fn too_deep(map: &Map<String, Value>) -> bool {
    // Iterative, so a hostile detail cannot overflow the stack here.
    let mut stack: Vec<(&Value, usize)> = map.values().map(|v| (v, 2)).collect();
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Object(m) => Box::new(m.values()),
            Value::Array(a) => Box::new(a.iter()),
            _ => continue,
        };
        if depth > MAX_DEPTH {
            return true;
        }
        stack.extend(children.map(|v| (v, depth + 1)));
    }
    false
}
/// PostgreSQL's TEXT and JSONB cannot hold U+0000, so a detail carrying one
/// would fail every insert; refuse it at the call site instead, whatever
/// the store.
const NUL_CHAR: &str = "the NUL character (U+0000) cannot be stored";
const NON_FINITE: &str = "NaN and infinite numbers are not valid JSON";
const INT_RANGE: &str = "integers beyond the 64-bit range are not supported";
const KEY_KIND: &str = "map keys must be strings, integers, bools or chars";
const CUSTOM: &str = "the value's Serialize implementation reported an error";
const NOT_OBJECT_ARRAY: &str = "must be a JSON object, got an array";
const NOT_OBJECT_STRING: &str = "must be a JSON object, got a string";
const NOT_OBJECT_NUMBER: &str = "must be a JSON object, got a number";
const NOT_OBJECT_NULL: &str = "must be a JSON object, got null";
const NOT_OBJECT_BOOL: &str = "must be a JSON object, got a bool";

/// One step of the path to a refused value.
#[derive(Debug)]
enum Segment {
    Key(Cow<'static, str>),
    Index(usize),
}

/// The serializer's error: the rule, plus the path collected innermost-first as the error
/// propagates outwards, so the success path pays nothing for path tracking.
#[derive(Debug)]
struct Error(Box<ErrorInner>);

#[derive(Debug)]
struct ErrorInner {
    rule: &'static str,
    rev_path: Vec<Segment>,
}

impl Error {
    fn new(rule: &'static str) -> Self {
        Self(Box::new(ErrorInner {
            rule,
            rev_path: Vec::new(),
        }))
    }

    fn at(mut self, segment: Segment) -> Self {
        self.0.rev_path.push(segment);
        self
    }

    fn into_detail_error(self) -> DetailError {
        let mut path = String::from(ROOT);
        for segment in self.0.rev_path.iter().rev() {
            match segment {
                Segment::Index(i) => {
                    path.push('[');
                    path.push_str(&i.to_string());
                    path.push(']');
                }
                Segment::Key(k) if is_plain_key(k) => {
                    path.push('.');
                    path.push_str(k);
                }
                // Quote keys that would make the path ambiguous (dots, brackets, spaces).
                Segment::Key(k) => {
                    path.push('[');
                    path.push_str(&Value::from(k.as_ref()).to_string());
                    path.push(']');
                }
            }
        }
        DetailError {
            path,
            rule: self.0.rule,
        }
    }
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.rule)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    // The message is dropped: `DetailError::rule` is `&'static str`. Custom errors come from
    // hand-written Serialize impls (a poisoned Mutex, a RefCell already borrowed), which are
    // rare in details; the path still says where.
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Self::new(CUSTOM)
    }
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds a `Value`. `TOP` is true only for the outermost value, which must be an object;
/// the other kinds are refused there before anything is built or any inner error is hit.
#[derive(Clone, Copy)]
struct ValueSerializer<const TOP: bool>;

fn refuse_at_top<const TOP: bool>(rule: &'static str) -> Result<()> {
    if TOP { Err(Error::new(rule)) } else { Ok(()) }
}

impl<const TOP: bool> ser::Serializer for ValueSerializer<TOP> {
    type Ok = Value;
    type Error = Error;
    type SerializeSeq = SerializeVec;
    type SerializeTuple = SerializeVec;
    type SerializeTupleStruct = SerializeVec;
    type SerializeTupleVariant = SerializeTupleVariant;
    type SerializeMap = SerializeMap;
    type SerializeStruct = SerializeMap;
    type SerializeStructVariant = SerializeStructVariant;

    fn serialize_bool(self, v: bool) -> Result<Value> {
        refuse_at_top::<TOP>(NOT_OBJECT_BOOL)?;
        Ok(Value::Bool(v))
    }

    fn serialize_i8(self, v: i8) -> Result<Value> {
        self.serialize_i64(v.into())
    }

    fn serialize_i16(self, v: i16) -> Result<Value> {
        self.serialize_i64(v.into())
    }

    fn serialize_i32(self, v: i32) -> Result<Value> {
        self.serialize_i64(v.into())
    }

    fn serialize_i64(self, v: i64) -> Result<Value> {
        refuse_at_top::<TOP>(NOT_OBJECT_NUMBER)?;
        Ok(Value::Number(v.into()))
    }

    fn serialize_i128(self, v: i128) -> Result<Value> {
        refuse_at_top::<TOP>(NOT_OBJECT_NUMBER)?;
        if let Ok(u) = u64::try_from(v) {
            Ok(Value::Number(u.into()))
        } else if let Ok(i) = i64::try_from(v) {
            Ok(Value::Number(i.into()))
        } else {
            Err(Error::new(INT_RANGE))
        }
    }

    fn serialize_u8(self, v: u8) -> Result<Value> {
        self.serialize_u64(v.into())
    }

    fn serialize_u16(self, v: u16) -> Result<Value> {
        self.serialize_u64(v.into())
    }

    fn serialize_u32(self, v: u32) -> Result<Value> {
        self.serialize_u64(v.into())
    }

    fn serialize_u64(self, v: u64) -> Result<Value> {
        refuse_at_top::<TOP>(NOT_OBJECT_NUMBER)?;
        Ok(Value::Number(v.into()))
    }

    fn serialize_u128(self, v: u128) -> Result<Value> {
        refuse_at_top::<TOP>(NOT_OBJECT_NUMBER)?;
        u64::try_from(v)
            .map(|u| Value::Number(u.into()))
            .map_err(|_| Error::new(INT_RANGE))
    }

    fn serialize_f32(self, v: f32) -> Result<Value> {
        self.serialize_f64(v.into())
    }

    fn serialize_f64(self, v: f64) -> Result<Value> {
        refuse_at_top::<TOP>(NOT_OBJECT_NUMBER)?;
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| Error::new(NON_FINITE))
    }

    fn serialize_char(self, v: char) -> Result<Value> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, v: &str) -> Result<Value> {
        refuse_at_top::<TOP>(NOT_OBJECT_STRING)?;
        if v.contains('\0') {
            return Err(Error::new(NUL_CHAR));
        }
        Ok(Value::String(v.to_owned()))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Value> {
        refuse_at_top::<TOP>(NOT_OBJECT_ARRAY)?;
        Ok(Value::Array(v.iter().map(|&b| b.into()).collect()))
    }

    fn serialize_none(self) -> Result<Value> {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Value> {
        refuse_at_top::<TOP>(NOT_OBJECT_NULL)?;
        Ok(Value::Null)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value> {
        let inner = to_inner_value(value, || Segment::Key(Cow::Borrowed(variant)))?;
        Ok(tagged(variant, inner))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<SerializeVec> {
        refuse_at_top::<TOP>(NOT_OBJECT_ARRAY)?;
        Ok(SerializeVec(Vec::with_capacity(len.unwrap_or(0))))
    }

    fn serialize_tuple(self, len: usize) -> Result<SerializeVec> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<SerializeVec> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SerializeTupleVariant> {
        Ok(SerializeTupleVariant {
            variant,
            items: SerializeVec(Vec::with_capacity(len)),
        })
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<SerializeMap> {
        Ok(SerializeMap {
            map: Map::new(),
            next_key: None,
        })
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<SerializeMap> {
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SerializeStructVariant> {
        Ok(SerializeStructVariant {
            variant,
            fields: self.serialize_map(Some(len))?,
        })
    }
}

fn to_inner_value<T: Serialize + ?Sized>(
    value: &T,
    segment: impl FnOnce() -> Segment,
) -> Result<Value> {
    value
        .serialize(ValueSerializer::<false>)
        .map_err(|e| e.at(segment()))
}

struct SerializeVec(Vec<Value>);

impl SerializeVec {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let index = self.0.len();
        self.0
            .push(to_inner_value(value, || Segment::Index(index))?);
        Ok(())
    }
}

impl ser::SerializeSeq for SerializeVec {
    type Ok = Value;
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }

    fn end(self) -> Result<Value> {
        Ok(Value::Array(self.0))
    }
}

impl ser::SerializeTuple for SerializeVec {
    type Ok = Value;
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }

    fn end(self) -> Result<Value> {
        Ok(Value::Array(self.0))
    }
}

impl ser::SerializeTupleStruct for SerializeVec {
    type Ok = Value;
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }

    fn end(self) -> Result<Value> {
        Ok(Value::Array(self.0))
    }
}

struct SerializeTupleVariant {
    variant: &'static str,
    items: SerializeVec,
}

impl ser::SerializeTupleVariant for SerializeTupleVariant {
    type Ok = Value;
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.items
            .push(value)
            .map_err(|e| e.at(Segment::Key(Cow::Borrowed(self.variant))))
    }

    fn end(self) -> Result<Value> {
        Ok(tagged(self.variant, Value::Array(self.items.0)))
    }
}

fn tagged(variant: &'static str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(variant.to_owned(), value);
    Value::Object(map)
}

struct SerializeMap {
    map: Map<String, Value>,
    next_key: Option<String>,
}

impl SerializeMap {
    fn insert<T: Serialize + ?Sized>(&mut self, key: String, value: &T) -> Result<()> {
        match value.serialize(ValueSerializer::<false>) {
            Ok(v) => {
                self.map.insert(key, v);
                Ok(())
            }
            Err(e) => Err(e.at(Segment::Key(Cow::Owned(key)))),
        }
    }
}

impl ser::SerializeMap for SerializeMap {
    type Ok = Value;
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.next_key = Some(key.serialize(MapKeySerializer)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let key = self
            .next_key
            .take()
            .expect("serde calls serialize_key before serialize_value");
        self.insert(key, value)
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<()> {
        let key = key.serialize(MapKeySerializer)?;
        self.insert(key, value)
    }

    fn end(self) -> Result<Value> {
        Ok(Value::Object(self.map))
    }
}

impl ser::SerializeStruct for SerializeMap {
    type Ok = Value;
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        let v = to_inner_value(value, || Segment::Key(Cow::Borrowed(key)))?;
        self.map.insert(key.to_owned(), v);
        Ok(())
    }

    fn end(self) -> Result<Value> {
        Ok(Value::Object(self.map))
    }
}

struct SerializeStructVariant {
    variant: &'static str,
    fields: SerializeMap,
}

impl ser::SerializeStructVariant for SerializeStructVariant {
    type Ok = Value;
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        ser::SerializeStruct::serialize_field(&mut self.fields, key, value)
            .map_err(|e| e.at(Segment::Key(Cow::Borrowed(self.variant))))
    }

    fn end(self) -> Result<Value> {
        Ok(tagged(self.variant, Value::Object(self.fields.map)))
    }
}

/// Map keys become JSON strings; only kinds with one obvious text form are accepted.
struct MapKeySerializer;

fn key_error<T>() -> Result<T> {
    Err(Error::new(KEY_KIND))
}

/// Keys with exactly one text form are written as `serde_json` writes them.
macro_rules! stringify_keys {
    ($($method:ident: $ty:ty),* $(,)?) => {$(
        fn $method(self, v: $ty) -> Result<String> {
            Ok(v.to_string())
        }
    )*};
}

impl ser::Serializer for MapKeySerializer {
    type Ok = String;
    type Error = Error;
    type SerializeSeq = Impossible<String, Error>;
    type SerializeTuple = Impossible<String, Error>;
    type SerializeTupleStruct = Impossible<String, Error>;
    type SerializeTupleVariant = Impossible<String, Error>;
    type SerializeMap = Impossible<String, Error>;
    type SerializeStruct = Impossible<String, Error>;
    type SerializeStructVariant = Impossible<String, Error>;

    stringify_keys! {
        serialize_bool: bool, serialize_char: char,
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128,
    }
    fn serialize_f32(self, _v: f32) -> Result<String> {
        key_error()
    }
    fn serialize_f64(self, _v: f64) -> Result<String> {
        key_error()
    }
    fn serialize_str(self, v: &str) -> Result<String> {
        if v.contains('\0') {
            return Err(Error::new(NUL_CHAR));
        }
        Ok(v.to_owned())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<String> {
        key_error()
    }
    fn serialize_none(self) -> Result<String> {
        key_error()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<String> {
        key_error()
    }
    fn serialize_unit(self) -> Result<String> {
        key_error()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<String> {
        key_error()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<String> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<String> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<String> {
        key_error()
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq> {
        key_error()
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple> {
        key_error()
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        key_error()
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        key_error()
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap> {
        key_error()
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeStruct> {
        key_error()
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        key_error()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn details_nested_deeper_than_readers_accept_are_refused() {
        // The detail object itself is level 1: 63 arrays inside make 64.
        let mut deep = serde_json::json!(1);
        for _ in 0..63 {
            deep = serde_json::json!([deep]);
        }
        assert!(super::to_object(&serde_json::json!({ "ok": deep })).is_ok());
        let err = super::to_object(&serde_json::json!({ "bad": [deep] })).unwrap_err();
        insta::assert_snapshot!(err, @"detail: nests deeper than 64 levels");
    }

    #[test]
    fn nul_characters_are_refused_in_values_and_keys() {
        let err = super::to_object(&serde_json::json!({"a": {"b": "x\u{0}y"}})).unwrap_err();
        insta::assert_snapshot!(err, @"detail.a.b: the NUL character (U+0000) cannot be stored");
        let err = super::to_object(&serde_json::json!({"k\u{0}": 1})).unwrap_err();
        assert_eq!(err.rule, super::NUL_CHAR);
    }

    use super::*;
    use serde::Serialize;
    use serde_json::json;
    use std::collections::{BTreeMap, HashMap};

    fn err<T: Serialize + ?Sized>(value: &T) -> DetailError {
        to_object(value).unwrap_err()
    }

    #[derive(Serialize)]
    struct Reading {
        sensor: &'static str,
        value: f64,
    }

    #[derive(Serialize)]
    struct Batch {
        site: String,
        readings: Vec<f64>,
        latest: Reading,
        by_name: HashMap<String, f64>,
    }

    fn batch() -> Batch {
        Batch {
            site: "plant-7".into(),
            readings: vec![1.0, 2.5, 3.0],
            latest: Reading {
                sensor: "t1",
                value: 20.5,
            },
            by_name: HashMap::from([("t1".into(), 20.5)]),
        }
    }

    #[test]
    fn non_finite_refused_with_path() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = err(&Reading {
                sensor: "x",
                value: bad,
            });
            assert_eq!(e.path, "detail.value");
            assert_eq!(e.rule, NON_FINITE);

            let mut b = batch();
            b.readings[2] = bad;
            assert_eq!(err(&b).path, "detail.readings[2]");

            let mut b = batch();
            b.latest.value = bad;
            assert_eq!(err(&b).path, "detail.latest.value");

            let mut b = batch();
            b.by_name.insert("t 2".into(), bad);
            assert_eq!(err(&b).path, r#"detail.by_name["t 2"]"#);

            let e = err(&BTreeMap::from([("deep", vec![vec![0.0_f32, bad as f32]])]));
            assert_eq!(e.path, "detail.deep[0][1]");
            assert_eq!(e.rule, NON_FINITE);
        }
    }

    #[test]
    fn non_finite_refused_inside_enums() {
        #[derive(Serialize)]
        enum E {
            New(f64),
            Tuple(u8, f64),
            Struct { x: f64 },
        }
        let at = |e: E| err(&BTreeMap::from([("e", e)])).path;
        assert_eq!(at(E::New(f64::NAN)), "detail.e.New");
        assert_eq!(at(E::Tuple(1, f64::NAN)), "detail.e.Tuple[1]");
        assert_eq!(at(E::Struct { x: f64::NAN }), "detail.e.Struct.x");
    }

    #[test]
    fn error_messages() {
        let mut b = batch();
        b.readings[2] = f64::NAN;
        insta::assert_snapshot!(err(&b), @"detail.readings[2]: NaN and infinite numbers are not valid JSON");
        insta::assert_snapshot!(err(&[1, 2]), @"detail: must be a JSON object, got an array");
        insta::assert_snapshot!(err("text"), @"detail: must be a JSON object, got a string");
        insta::assert_snapshot!(err(&'c'), @"detail: must be a JSON object, got a string");
        insta::assert_snapshot!(err(&1.5), @"detail: must be a JSON object, got a number");
        insta::assert_snapshot!(err(&f64::NAN), @"detail: must be a JSON object, got a number");
        insta::assert_snapshot!(err(&7_u128), @"detail: must be a JSON object, got a number");
        insta::assert_snapshot!(err(&()), @"detail: must be a JSON object, got null");
        insta::assert_snapshot!(err(&None::<Batch>), @"detail: must be a JSON object, got null");
        insta::assert_snapshot!(err(&true), @"detail: must be a JSON object, got a bool");
        insta::assert_snapshot!(err(&json!([f64::NAN])), @"detail: must be a JSON object, got an array");
        insta::assert_snapshot!(
            err(&BTreeMap::from([("big", u128::MAX)])),
            @"detail.big: integers beyond the 64-bit range are not supported"
        );
        insta::assert_snapshot!(
            err(&BTreeMap::from([(
                "outer",
                BTreeMap::from([("a.b", BTreeMap::from([("", vec![f32::INFINITY])]))]),
            )])),
            @r#"detail.outer["a.b"][""][0]: NaN and infinite numbers are not valid JSON"#
        );
        insta::assert_snapshot!(
            err(&BTreeMap::from([("m", BTreeMap::from([((1, 2), "pair")]))])),
            @"detail.m: map keys must be strings, integers, bools or chars"
        );
    }

    #[test]
    fn top_level_objects_accepted_in_every_form() {
        #[derive(Serialize)]
        struct Wrapper(BTreeMap<String, u8>);
        #[derive(Serialize)]
        enum E {
            V(u8),
            S { a: u8 },
            T(u8, u8),
        }
        assert_eq!(
            to_object(&json!({"a": 1})).unwrap(),
            *json!({"a": 1}).as_object().unwrap()
        );
        assert_eq!(
            to_object(&Some(Wrapper(BTreeMap::from([("k".into(), 1)])))).unwrap()["k"],
            1
        );
        assert_eq!(Value::Object(to_object(&E::V(1)).unwrap()), json!({"V": 1}));
        assert_eq!(
            Value::Object(to_object(&E::S { a: 2 }).unwrap()),
            json!({"S": {"a": 2}})
        );
        assert_eq!(
            Value::Object(to_object(&E::T(1, 2)).unwrap()),
            json!({"T": [1, 2]})
        );
        assert!(
            to_object(&BTreeMap::<String, u8>::new())
                .unwrap()
                .is_empty()
        );
    }

    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Unit,
        Newtype(Option<u32>),
        Tuple(i8, String),
        Struct { flag: bool, ratio: f32 },
    }

    #[derive(Serialize)]
    struct Newtype(u16);

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Everything<'a> {
        text: &'a str,
        ch: char,
        small: i8,
        big: u64,
        neg: i64,
        wide: i128,
        wide_neg: i128,
        uwide: u128,
        float: f64,
        neg_zero: f64,
        float32: f32,
        none: Option<String>,
        some: Option<Vec<u8>>,
        kinds: Vec<Kind>,
        tuple: (u8, &'a str, bool),
        newtype: Newtype,
        unit: Unit,
        empty: (),
        #[serde(with = "serde_bytes_like")]
        bytes: &'a [u8],
        sorted: BTreeMap<&'a str, Vec<Option<f64>>>,
        int_keys: BTreeMap<i32, &'a str>,
        bool_keys: BTreeMap<bool, u8>,
        char_keys: BTreeMap<char, u8>,
        enum_keys: BTreeMap<KeyKind, u8>,
        newtype_keys: BTreeMap<KeyNewtype, u8>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        #[serde(flatten)]
        flat: BTreeMap<String, Value>,
        json: Value,
    }

    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    enum KeyKind {
        Alpha,
        Beta,
    }

    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    struct KeyNewtype(u64);

    /// Serialises via `serialize_bytes`, as `serde_bytes` would.
    mod serde_bytes_like {
        pub(super) fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
    }

    #[test]
    fn matches_serde_json_to_value() {
        let value = Everything {
            text: "h\u{e9}llo \"q\"",
            ch: '\u{1d11e}',
            small: -8,
            big: u64::MAX,
            neg: i64::MIN,
            wide: i128::from(u64::MAX),
            wide_neg: i128::from(i64::MIN),
            uwide: 5,
            float: 0.1,
            neg_zero: -0.0,
            float32: 1.1,
            none: None,
            some: Some(vec![1, 2]),
            kinds: vec![
                Kind::Unit,
                Kind::Newtype(Some(3)),
                Kind::Newtype(None),
                Kind::Tuple(-1, "t".into()),
                Kind::Struct {
                    flag: true,
                    ratio: 0.5,
                },
            ],
            tuple: (1, "two", false),
            newtype: Newtype(9),
            unit: Unit,
            empty: (),
            bytes: &[0, 127, 255],
            sorted: BTreeMap::from([("b", vec![Some(1.5), None]), ("a", vec![])]),
            int_keys: BTreeMap::from([(-3, "minus three"), (10, "ten")]),
            bool_keys: BTreeMap::from([(true, 1), (false, 0)]),
            char_keys: BTreeMap::from([('x', 1)]),
            enum_keys: BTreeMap::from([(KeyKind::Alpha, 1), (KeyKind::Beta, 2)]),
            newtype_keys: BTreeMap::from([(KeyNewtype(42), 1)]),
            skipped: None,
            flat: BTreeMap::from([("extra".to_owned(), json!({"n": [1, 2.5, null]}))]),
            json: json!({"nested": {"deep": [true, "x", -0.25]}}),
        };
        let expected = serde_json::to_value(&value).unwrap();
        let got = Value::Object(to_object(&value).unwrap());
        assert_eq!(got, expected);
        // Spot-check that the comparison is meaningful, not two empty objects.
        assert_eq!(got["kinds"][3], json!({"tuple": [-1, "t"]}));
        assert_eq!(got["bytes"], json!([0, 127, 255]));
        assert_eq!(got["int_keys"]["-3"], "minus three");
        assert_eq!(got["bool_keys"]["true"], 1);
        assert_eq!(got["enum_keys"]["Beta"], 2);
        assert_eq!(got["newtype_keys"]["42"], 1);
        assert_eq!(got["extra"]["n"][1], 2.5);
        assert!(got.get("skipped").is_none());
    }

    struct FloatKeyed;

    impl Serialize for FloatKeyed {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap as _;
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry(&1.5_f64, &1)?;
            m.end()
        }
    }

    #[test]
    fn refuses_keys_serde_json_would_mangle_or_reject() {
        let e = err(&BTreeMap::from([("m", HashMap::from([(Some(1), 1)]))]));
        assert_eq!((e.path.as_str(), e.rule), ("detail.m", KEY_KIND));
        let e = err(&BTreeMap::from([(vec![1_u8], 1)]));
        assert_eq!((e.path.as_str(), e.rule), ("detail", KEY_KIND));
        // serde_json would print these with its own float formatter; no contract pins that.
        let e = err(&BTreeMap::from([("f", FloatKeyed)]));
        assert_eq!((e.path.as_str(), e.rule), ("detail.f", KEY_KIND));
    }

    #[test]
    fn integer_range() {
        let ok = to_object(&BTreeMap::from([
            ("a", i128::from(i64::MIN)),
            ("b", i128::from(u64::MAX)),
        ]))
        .unwrap();
        assert_eq!(ok["a"], json!(i64::MIN));
        assert_eq!(ok["b"], json!(u64::MAX));
        let e = err(&BTreeMap::from([("x", i128::from(i64::MIN) - 1)]));
        assert_eq!((e.path.as_str(), e.rule), ("detail.x", INT_RANGE));
        let e = err(&BTreeMap::from([("x", u128::from(u64::MAX) + 1)]));
        assert_eq!((e.path.as_str(), e.rule), ("detail.x", INT_RANGE));
    }

    #[test]
    fn custom_errors_keep_the_path() {
        struct Failing;
        impl Serialize for Failing {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("boom"))
            }
        }
        let e = err(&BTreeMap::from([("list", vec![None, Some(Failing)])]));
        insta::assert_snapshot!(e, @"detail.list[1]: the value's Serialize implementation reported an error");
    }

    #[test]
    fn display_and_error_trait() {
        let e = DetailError {
            path: "detail.a".into(),
            rule: NON_FINITE,
        };
        let boxed: Box<dyn std::error::Error> = Box::new(e.clone());
        assert_eq!(
            boxed.to_string(),
            "detail.a: NaN and infinite numbers are not valid JSON"
        );
    }
}
