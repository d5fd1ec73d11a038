//! Python values into the engine's types.
//!
//! A `detail` reaches the engine as a [`serde::Serialize`] view of the
//! Python object, so the engine's own strict serializer decides what is
//! valid (NaN, infinities, non-objects, depth) and names the path. Log
//! fields are free-form: they become JSON leniently, with `str()` of
//! anything JSON has no type for.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde_json::{Map, Value};

/// Far deeper than the engine accepts (it refuses past 64 levels, naming
/// the path): this bound only keeps a self-referencing list from
/// overflowing the stack before the engine can say so.
const MAX_WALK: usize = 256;

/// A Python object seen through serde, for `Event::detail`.
pub(crate) struct Detail<'a, 'py> {
    pub(crate) obj: &'a Bound<'py, PyAny>,
    pub(crate) depth: usize,
}

impl serde::Serialize for Detail<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let o = self.obj;
        if self.depth > MAX_WALK {
            return Err(S::Error::custom("nests too deep (a cycle?)"));
        }
        if o.is_none() {
            return s.serialize_unit();
        }
        if let Ok(b) = o.downcast::<PyBool>() {
            return s.serialize_bool(b.is_true());
        }
        if o.is_instance_of::<PyInt>() {
            if let Ok(v) = o.extract::<i64>() {
                return s.serialize_i64(v);
            }
            if let Ok(v) = o.extract::<u64>() {
                return s.serialize_u64(v);
            }
            return Err(S::Error::custom("an integer outside the 64-bit range"));
        }
        if let Ok(f) = o.downcast::<PyFloat>() {
            return s.serialize_f64(f.value());
        }
        if let Ok(text) = o.downcast::<PyString>() {
            let text = text.to_cow().map_err(S::Error::custom)?;
            return s.serialize_str(&text);
        }
        if let Ok(d) = o.downcast::<PyDict>() {
            let mut map = s.serialize_map(Some(d.len()))?;
            for (k, v) in d.iter() {
                let Ok(key) = k.downcast::<PyString>() else {
                    return Err(S::Error::custom(format!(
                        "key {} is not a string",
                        k.repr().map(|r| r.to_string()).unwrap_or_default()
                    )));
                };
                let key = key.to_cow().map_err(S::Error::custom)?;
                map.serialize_entry(
                    &*key,
                    &Detail {
                        obj: &v,
                        depth: self.depth + 1,
                    },
                )?;
            }
            return map.end();
        }
        if o.is_instance_of::<PyList>() || o.is_instance_of::<PyTuple>() {
            let items: Vec<Bound<'_, PyAny>> = o
                .try_iter()
                .and_then(|it| it.collect::<PyResult<_>>())
                .map_err(S::Error::custom)?;
            let mut seq = s.serialize_seq(Some(items.len()))?;
            for item in &items {
                seq.serialize_element(&Detail {
                    obj: item,
                    depth: self.depth + 1,
                })?;
            }
            return seq.end();
        }
        let type_name = o
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        Err(S::Error::custom(format!(
            "a {type_name} is not JSON: use a dict, list, str, int, float, bool or None"
        )))
    }
}

/// Log fields: a dict of anything, as JSON, leniently.
pub(crate) fn fields(d: &Bound<'_, PyDict>) -> Map<String, Value> {
    d.iter()
        .map(|(k, v)| (text_of(&k), lenient(&v, 0)))
        .collect()
}

fn text_of(o: &Bound<'_, PyAny>) -> String {
    match o.downcast::<PyString>() {
        Ok(s) => s.to_cow().map(|c| c.into_owned()).unwrap_or_default(),
        Err(_) => o.str().map(|s| s.to_string()).unwrap_or_default(),
    }
}

fn lenient(o: &Bound<'_, PyAny>, depth: usize) -> Value {
    if depth > MAX_WALK || o.is_none() {
        return Value::Null;
    }
    if let Ok(b) = o.downcast::<PyBool>() {
        return Value::Bool(b.is_true());
    }
    if o.is_instance_of::<PyInt>() {
        if let Ok(v) = o.extract::<i64>() {
            return v.into();
        }
        if let Ok(v) = o.extract::<u64>() {
            return v.into();
        }
    }
    if let Ok(f) = o.downcast::<PyFloat>() {
        return serde_json::Number::from_f64(f.value())
            .map_or_else(|| Value::String(f.value().to_string()), Value::Number);
    }
    if let Ok(d) = o.downcast::<PyDict>() {
        return Value::Object(
            d.iter()
                .map(|(k, v)| (text_of(&k), lenient(&v, depth + 1)))
                .collect(),
        );
    }
    if (o.is_instance_of::<PyList>() || o.is_instance_of::<PyTuple>())
        && let Ok(it) = o.try_iter()
    {
        return Value::Array(
            it.filter_map(Result::ok)
                .map(|v| lenient(&v, depth + 1))
                .collect(),
        );
    }
    Value::String(text_of(o))
}
