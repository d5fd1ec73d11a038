//! Request ids over MQTT for clients fasten's Rust helpers do not wrap
//! (Go's paho, C's Mosquitto library): the same `_req` key and
//! `request-id` user property, by the same rules.

use std::ffi::c_char;

use fasten::RequestId;
use fasten::mqtt::IdSource;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};

use crate::abi::{Failure, Str, call, give, out};

/// Bytes borrowed for the call: `ptr` may be NULL when `len` is 0.
///
/// # Safety
///
/// `ptr` points to `len` readable bytes, or `len` is 0.
unsafe fn bytes<'a>(ptr: *const u8, len: usize, field: &str) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::argument(
            field,
            format!("invalid {field}: NULL pointer with length {len}"),
        ));
    }
    // SAFETY: non-NULL, and the caller promises `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// An outgoing MQTT payload stamped with `request_id` (checked; empty: the
/// ambient one, else a fresh one): when the payload is a JSON object its
/// `_req` key is set (replacing any); other payloads come back byte for
/// byte. `*out` is freed with `fasten_free`. MQTT v5 clients also send the
/// id as the user property `request-id`.
///
/// # Safety
///
/// `request_id` is valid; `payload` points to `payload_len` bytes (or the
/// length is 0); `out` and `out_len` are valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_mqtt_stamp(
    request_id: Str,
    payload: *const u8,
    payload_len: usize,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promises.
        let (id, payload) = unsafe {
            (
                request_id.get("request_id")?,
                bytes(payload, payload_len, "payload")?,
            )
        };
        let id = match id {
            Some(text) => RequestId::parse(text)?,
            None => fasten::context::current().unwrap_or_else(RequestId::mint),
        };
        let (stamped, _) =
            fasten::context::with(id, || fasten::mqtt::stamp(payload.to_vec(), None));
        // SAFETY: the caller's promise.
        unsafe { give(&stamped, out, out_len) }
    })
}

/// The request id of an inbound MQTT message by fasten's rules: the
/// `request-id` user property (empty if the client has none), else the
/// payload's `_req`, each only when it passes the request-id check; else a
/// fresh id. Writes the id, NUL-terminated, into `id_out` (at least
/// `FASTEN_REQUEST_ID_SIZE` bytes); `*source` gets 0 (user property), 1
/// (payload) or 2 (minted).
///
/// # Safety
///
/// `user_property` is valid; `payload` points to `payload_len` bytes (or
/// the length is 0); `id_out` holds `FASTEN_REQUEST_ID_SIZE` writable
/// bytes; `id_len` and `source` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_mqtt_request_id(
    user_property: Str,
    payload: *const u8,
    payload_len: usize,
    id_out: *mut c_char,
    id_len: *mut usize,
    source: *mut i32,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promises.
        let (property, payload) = unsafe {
            (
                user_property.get("user_property")?,
                bytes(payload, payload_len, "payload")?,
            )
        };
        out(id_out, "id_out")?;
        let properties = property.map(|p| PublishProperties {
            user_properties: vec![(fasten::mqtt::USER_PROPERTY.to_owned(), p.to_owned())],
            ..PublishProperties::default()
        });
        let message = Publish::new("", QoS::AtMostOnce, payload.to_vec(), properties);
        let (id, from) = fasten::mqtt::request_id_of(&message);
        let code = match from {
            IdSource::UserProperty => 0,
            IdSource::Payload => 1,
            _ => 2,
        };
        let text = id.as_str().as_bytes();
        // SAFETY: the caller promises FASTEN_REQUEST_ID_SIZE writable bytes
        // at `id_out` (an id is at most 128 bytes); the others are NULL or
        // writable.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), id_out.cast::<u8>(), text.len());
            *id_out.add(text.len()) = 0;
            if !id_len.is_null() {
                *id_len = text.len();
            }
            if !source.is_null() {
                *source = code;
            }
        }
        Ok(())
    })
}
