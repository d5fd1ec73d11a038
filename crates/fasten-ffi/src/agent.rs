//! Agent calls: a binding times and catches the call in its own language,
//! then hands how it ended to the engine, which picks the code, the detail
//! fields and the outcome (`fasten::agent`).

use std::ffi::c_char;
use std::fmt::Write as _;

use fasten::RequestId;
use fasten::agent::Call;

use crate::abi::{FASTEN_EVENT_ID_SIZE, Failure, Str, arg, call};
use crate::engine::{Engine, Fixed};

/// One finished agent call. `kind` and `name` are required; a zero length
/// means "not given" for the rest.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AgentCallFields {
    /// `tool` (`TOOL_CALLED`), `model` (`MODEL_CALLED`) or `handoff`
    /// (`AGENT_HANDOFF`).
    pub kind: Str,
    /// What was called: the tool, the model, or the agent handed to.
    pub name: Str,
    /// Which agent called (default: the thread's actor, else `system`).
    pub actor: Str,
    /// The actor's kind (default `agent` when `actor` is given).
    pub actor_kind: Str,
    /// What the call acted on (a handoff's default: the receiving agent).
    pub target: Str,
    /// The tenant.
    pub tenant: Str,
    /// The request id; default the ambient one.
    pub request_id: Str,
    /// Why the call failed; not given for a success.
    pub error: Str,
    /// What the call reported, as a JSON object: `cost_usd`,
    /// `input_tokens`, `output_tokens`, `model`, `denied`.
    pub usage_json: Str,
}

/// Records one agent call that took `duration_ms` milliseconds: checks its
/// fields, writes the row (redacted like any detail) and, when `id_out` is
/// not NULL, the event id into it (`FASTEN_EVENT_ID_SIZE` bytes).
///
/// # Safety
///
/// `engine` and `fields` are valid; every `Str` in `fields` is valid;
/// `id_out` is NULL or holds `FASTEN_EVENT_ID_SIZE` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_agent_call(
    engine: *const Engine,
    fields: *const AgentCallFields,
    duration_ms: u64,
    id_out: *mut c_char,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promises, checked for NULL.
        let (engine, f) = unsafe { (arg(engine, "engine")?, arg(fields, "fields")?) };
        // SAFETY: the caller promises every string in the struct is valid.
        let (kind, name) = unsafe { (f.kind.required("kind")?, f.name.required("name")?) };
        let mut c = Call::parse(kind, name)?;
        // SAFETY: as above.
        let kind_text = unsafe { f.actor_kind.get("actor_kind") }?;
        // SAFETY: as above.
        match (unsafe { f.actor.get("actor") }?, kind_text) {
            (Some(actor), kind) => c = c.actor_text(actor, kind)?,
            (None, Some(_)) => {
                return Err(Failure::invalid(
                    "actor_kind",
                    "invalid actor_kind: given without an actor; set actor too",
                ));
            }
            (None, None) => {}
        }
        // SAFETY: as above.
        if let Some(t) = unsafe { f.target.get("target") }? {
            c = c.target(t);
        }
        // SAFETY: as above.
        if let Some(t) = unsafe { f.tenant.get("tenant") }? {
            c = c.tenant(t);
        }
        // SAFETY: as above.
        if let Some(r) = unsafe { f.request_id.get("request_id") }? {
            c = c.request_id(RequestId::parse(r)?);
        }
        // SAFETY: as above.
        let usage =
            match unsafe { f.usage_json.get("usage_json") }? {
                Some(text) => Some(serde_json::from_str::<serde_json::Value>(text).map_err(
                    |e| Failure::invalid("usage", format!("invalid usage: not JSON ({e})")),
                )?),
                None => None,
            };
        // SAFETY: as above.
        let error = unsafe { f.error.get("error") }?;
        let event = c.finish_json(duration_ms, usage.as_ref(), error)?;
        let id = engine.fasten.emit(event)?;
        if !id_out.is_null() {
            // SAFETY: the caller promises FASTEN_EVENT_ID_SIZE writable bytes.
            let buf = unsafe {
                std::slice::from_raw_parts_mut(id_out.cast::<u8>(), FASTEN_EVENT_ID_SIZE)
            };
            let mut w = Fixed { buf, len: 0 };
            write!(w, "{id}").map_err(|_| Failure {
                status: crate::abi::FASTEN_ERR_OTHER,
                field: String::new(),
                message: "event id longer than FASTEN_EVENT_ID_SIZE".to_owned(),
            })?;
            let len = w.len;
            w.buf[len] = 0;
        }
        Ok(())
    })
}
