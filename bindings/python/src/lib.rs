//! `fasten._native`: the Python binding's extension module.
//!
//! Thin by rule: every check, redaction, hash and query is the engine's.
//! This module converts Python values to the engine's types (a Python
//! `detail` is fed to the engine's own strict serializer, so NaN, a
//! non-dict or a non-string key is refused there, naming the path), turns
//! `fasten::Error` into `fasten.FastenError`, and releases the GIL around
//! every call that may block: emit (a full queue, `raise` mode), flush,
//! shutdown, build, verify and the reader.
//!
//! The context (request id, actor, tenant) lives in Python's `contextvars`
//! and arrives here explicitly with each call.

mod convert;
mod error;
mod pipeline;
mod reader;

use pyo3::prelude::*;
use pyo3::types::PyDict;

pub(crate) use error::{FastenError, to_py_err};

/// The module's functions, classes and the fork hook.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("FastenError", py.get_type::<FastenError>())?;
    m.add_class::<pipeline::Pipeline>()?;
    m.add_class::<pipeline::JobRun>()?;
    m.add_class::<reader::ReaderApp>()?;
    m.add_function(wrap_pyfunction!(pipeline::build, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::register, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::load_codes_file, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::load_codes_str, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::verify, m)?)?;
    m.add_function(wrap_pyfunction!(ids::parse_request_id, m)?)?;
    m.add_function(wrap_pyfunction!(ids::mint_request_id, m)?)?;
    m.add_function(wrap_pyfunction!(ids::request_id_from_headers, m)?)?;
    m.add_function(wrap_pyfunction!(ids::outbound_headers, m)?)?;
    m.add_function(wrap_pyfunction!(ids::mqtt_stamp, m)?)?;
    m.add_function(wrap_pyfunction!(ids::mqtt_request_id_of, m)?)?;
    m.add_function(wrap_pyfunction!(contract::canonical_json, m)?)?;
    m.add_function(wrap_pyfunction!(contract::detail_commitment, m)?)?;
    m.add_function(wrap_pyfunction!(contract::row_hash, m)?)?;
    m.add_function(wrap_pyfunction!(contract::env_is_known, m)?)?;
    m.add_function(wrap_pyfunction!(contract::env_nearest, m)?)?;
    m.add_function(wrap_pyfunction!(contract::env_names, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::after_fork_in_child, m)?)?;
    m.add("MQTT_USER_PROPERTY", fasten::mqtt::USER_PROPERTY)?;
    m.add("MQTT_REQ_KEY", fasten::mqtt::REQ_KEY)?;
    // After os.fork() the child has none of the parent's threads: every
    // pipeline built before is marked stale so it is never used (its writer
    // is gone) nor dropped (dropping would wait for that writer).
    let kwargs = PyDict::new(py);
    kwargs.set_item("after_in_child", m.getattr("after_fork_in_child")?)?;
    py.import("os")?
        .call_method("register_at_fork", (), Some(&kwargs))?;
    Ok(())
}

/// Request ids: parsing, minting, and reading them from HTTP headers and
/// MQTT messages with the engine's rules.
mod ids {
    use fasten::RequestId;
    use pyo3::prelude::*;
    use pyo3::types::PyBytes;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};

    use crate::to_py_err;

    /// The id, validated (`FastenError`, field `request_id`, when it breaks the rule).
    #[pyfunction]
    pub(crate) fn parse_request_id(py: Python<'_>, id: &str) -> PyResult<String> {
        RequestId::parse(id)
            .map(|id| id.as_str().to_owned())
            .map_err(|e| to_py_err(py, &e))
    }

    /// A fresh W3C trace-id shaped request id.
    #[pyfunction]
    pub(crate) fn mint_request_id() -> String {
        RequestId::mint().as_str().to_owned()
    }

    /// `(id, source)` for an inbound request's headers: a safe
    /// `X-Request-ID`, else a well-formed `traceparent`'s trace-id, else
    /// minted. `source` is `header`, `traceparent` or `minted`.
    #[pyfunction]
    pub(crate) fn request_id_from_headers(
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> (String, &'static str) {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(&name),
                http::HeaderValue::from_bytes(&value),
            ) else {
                continue;
            };
            map.append(name, value);
        }
        let (id, source) = fasten::http::request_id_from(&map);
        let source = match source {
            fasten::http::IdSource::Header => "header",
            fasten::http::IdSource::Traceparent => "traceparent",
            _ => "minted",
        };
        (id.as_str().to_owned(), source)
    }

    /// `X-Request-ID` and `traceparent` for a call to another service.
    #[pyfunction]
    pub(crate) fn outbound_headers(
        py: Python<'_>,
        request_id: &str,
    ) -> PyResult<Vec<(String, String)>> {
        let id = RequestId::parse(request_id).map_err(|e| to_py_err(py, &e))?;
        let headers = fasten::context::with(id, fasten::http::outbound_headers);
        Ok(headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect())
    }

    /// `(payload, id)`: the payload with `_req` set when it is a JSON
    /// object (other payloads byte for byte), and the id to send as the v5
    /// user property `request-id`. A fresh id when `request_id` is `None`.
    #[pyfunction]
    #[pyo3(signature = (payload, request_id=None))]
    pub(crate) fn mqtt_stamp<'py>(
        py: Python<'py>,
        payload: Vec<u8>,
        request_id: Option<&str>,
    ) -> PyResult<(Bound<'py, PyBytes>, String)> {
        let id = match request_id {
            Some(id) => RequestId::parse(id).map_err(|e| to_py_err(py, &e))?,
            None => RequestId::mint(),
        };
        let (payload, _) = fasten::context::with(id.clone(), || fasten::mqtt::stamp(payload, None));
        Ok((PyBytes::new(py, &payload), id.as_str().to_owned()))
    }

    /// `(id, source)` of an inbound message: a safe `request-id` user
    /// property, else a safe `_req`, else minted (`user_property`,
    /// `payload`, `minted`).
    #[pyfunction]
    pub(crate) fn mqtt_request_id_of(
        topic: &str,
        payload: Vec<u8>,
        user_properties: Vec<(String, String)>,
    ) -> (String, &'static str) {
        let properties = PublishProperties {
            user_properties,
            ..PublishProperties::default()
        };
        let msg = Publish::new(topic.to_owned(), QoS::AtMostOnce, payload, Some(properties));
        let (id, source) = fasten::mqtt::request_id_of(&msg);
        let source = match source {
            fasten::mqtt::IdSource::UserProperty => "user_property",
            fasten::mqtt::IdSource::Payload => "payload",
            _ => "minted",
        };
        (id.as_str().to_owned(), source)
    }
}

/// The row contract's functions and the `FASTEN_*` table.
mod contract {
    use pyo3::exceptions::PyValueError;
    use pyo3::prelude::*;

    fn parse<T: serde::de::DeserializeOwned>(text: &str) -> PyResult<T> {
        serde_json::from_str(text).map_err(|e| PyValueError::new_err(format!("invalid JSON: {e}")))
    }

    /// RFC 8785 canonical JSON of a JSON text.
    #[pyfunction]
    pub(crate) fn canonical_json(json: &str) -> PyResult<String> {
        Ok(fasten::contract::canonical_json(&parse(json)?))
    }

    /// The detail commitment of a salt and a JSON object text.
    #[pyfunction]
    pub(crate) fn detail_commitment(salt: &str, detail_json: &str) -> PyResult<String> {
        Ok(fasten::contract::detail_commitment(
            salt,
            &parse(detail_json)?,
        ))
    }

    /// The form-3 hash of a row given as JSON.
    #[pyfunction]
    pub(crate) fn row_hash(row_json: &str) -> PyResult<String> {
        Ok(fasten::contract::row_hash(&parse(row_json)?))
    }

    /// Whether fasten reads a variable of this name.
    #[pyfunction]
    pub(crate) fn env_is_known(name: &str) -> bool {
        fasten::env::is_known(name)
    }

    /// The known variable nearest to a misspelt name.
    #[pyfunction]
    pub(crate) fn env_nearest(name: &str) -> Option<&'static str> {
        fasten::env::nearest(name)
    }

    /// Every variable fasten reads.
    #[pyfunction]
    pub(crate) fn env_names() -> Vec<&'static str> {
        fasten::env::VARIABLES.iter().map(|v| v.name).collect()
    }
}
