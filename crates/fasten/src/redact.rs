//! TEMPORARY compile stub; replaced by the real module.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Redacted {
    pub(crate) keys: u32,
    pub(crate) values: u32,
    pub(crate) dropped: u32,
    pub(crate) truncated: bool,
}
#[derive(Debug, Clone)]
pub(crate) struct Policy;
impl Policy {
    pub(crate) fn new(_extra_keys: &[String], _max_detail_bytes: usize) -> Policy {
        Policy
    }
    pub(crate) fn apply(
        &self,
        _detail: &mut serde_json::Map<String, serde_json::Value>,
        _passthrough: Option<&[String]>,
    ) -> Redacted {
        Redacted::default()
    }
}
