//! Loading `<domain>.codes.yaml` files, and finding each code's line in them.

use super::*;

// === YAML ===

/// A `*.codes.yaml` file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) domain: String,
    #[serde(default)]
    pub(super) emitter: Option<String>,
    pub(super) codes: RawCodes,
}

/// The `codes:` mapping in file order, repeated keys included, so that a
/// duplicate is reported by us with both lines whatever the parser does.
pub(super) struct RawCodes(pub(super) Vec<(String, RawCode)>);

impl<'de> Deserialize<'de> for RawCodes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CodesVisitor;

        impl<'de> Visitor<'de> for CodesVisitor {
            type Value = RawCodes;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping from code to its metadata")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawCodes, A::Error> {
                let mut codes = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry()? {
                    codes.push(entry);
                }
                Ok(RawCodes(codes))
            }
        }

        deserializer.deserialize_map(CodesVisitor)
    }
}

/// One code as written. Severity and retention are parsed while
/// deserializing so that a bad value gets the parser's line and column.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCode {
    category: String,
    action: String,
    #[serde(default, deserialize_with = "parse_opt")]
    severity: Option<Severity>,
    #[serde(default)]
    description: Option<String>,
    /// `None` when absent: a pii code then gets `short`, while an explicit
    /// `medium` or `long` on a pii code is kept as declared and forced to
    /// `short` (with a warning).
    #[serde(default, deserialize_with = "parse_opt")]
    retention_class: Option<RetentionClass>,
    #[serde(default)]
    pii_in_detail: bool,
    #[serde(default)]
    detail_passthrough_keys: Vec<String>,
    #[serde(default)]
    pub(super) domain: Option<String>,
}

impl RawCode {
    pub(super) fn to_meta(&self) -> Meta {
        let default_retention = if self.pii_in_detail {
            RetentionClass::Short
        } else {
            RetentionClass::default()
        };
        Meta {
            category: self.category.clone(),
            action: self.action.clone(),
            severity: self.severity.unwrap_or_default(),
            description: self.description.clone().unwrap_or_default(),
            retention_class: self.retention_class.unwrap_or(default_retention),
            pii_in_detail: self.pii_in_detail,
            detail_passthrough_keys: self.detail_passthrough_keys.clone(),
        }
    }
}

/// Deserializes an optional string through `T::from_str`, whose error lists
/// the accepted values. The string is parsed inside the parser's own
/// `deserialize_str` so that a bad value's error carries its line, column
/// and path (`codes.ORDER_PLACED.severity`), not those of the enclosing code.
pub(super) fn parse_opt<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    struct Parse<T>(PhantomData<T>);

    impl<T> Visitor<'_> for Parse<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            s.parse().map(Some).map_err(E::custom)
        }
    }

    struct ParseOpt<T>(PhantomData<T>);

    impl<'de, T> Visitor<'de> for ParseOpt<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(Parse(PhantomData))
        }
    }

    deserializer.deserialize_option(ParseOpt(PhantomData))
}

/// Where the keys of a codes file sit, found by scanning its text (the parser
/// gives no positions for mapping keys). Lines are 1-based.
pub(super) struct Layout<'a> {
    lines: Vec<&'a str>,
    pub(super) domain_line: Option<usize>,
    pub(super) emitter_line: Option<usize>,
    pub(super) codes_line: Option<usize>,
    /// The keys directly under `codes:`, in order, with their 0-based index
    /// into `lines`.
    keys: Vec<(&'a str, usize)>,
}

impl<'a> Layout<'a> {
    pub(super) fn scan(yaml: &'a str) -> Self {
        let lines: Vec<&str> = yaml.lines().collect();
        let mut layout = Layout {
            lines: Vec::new(),
            domain_line: None,
            emitter_line: None,
            codes_line: None,
            keys: Vec::new(),
        };
        let mut in_codes = false;
        let mut key_indent = None;
        for (i, line) in lines.iter().enumerate() {
            let Some((indent, content)) = significant(line) else {
                continue;
            };
            if indent == 0 {
                if content.starts_with("---") || content.starts_with('%') {
                    continue;
                }
                let key = key_of(content);
                in_codes = key == Some("codes");
                // The first occurrence wins, as does the parser's error on a
                // repeated top-level key.
                let slot = match key {
                    Some("domain") => &mut layout.domain_line,
                    Some("emitter") => &mut layout.emitter_line,
                    Some("codes") => &mut layout.codes_line,
                    _ => continue,
                };
                slot.get_or_insert(i + 1);
            } else if in_codes {
                let key_indent = *key_indent.get_or_insert(indent);
                if indent == key_indent
                    && let Some(key) = key_of(content)
                {
                    layout.keys.push((key, i));
                }
            }
        }
        layout.lines = lines;
        layout
    }

    /// The line of the `nth` (0-based) occurrence of `code` under `codes:`.
    pub(super) fn key_line(&self, code: &str, nth: usize) -> Option<usize> {
        self.key_index(code, nth).map(|i| i + 1)
    }

    fn key_index(&self, code: &str, nth: usize) -> Option<usize> {
        self.keys
            .iter()
            .filter(|(key, _)| *key == code)
            .nth(nth)
            .map(|&(_, i)| i)
    }

    /// The line of `field` directly inside the first declaration of `code`.
    pub(super) fn field_line(&self, code: &str, field: &str) -> Option<usize> {
        let start = self.key_index(code, 0)?;
        let (key_indent, _) = significant(self.lines[start])?;
        let mut field_indent = None;
        for (i, line) in self.lines.iter().enumerate().skip(start + 1) {
            let Some((indent, content)) = significant(line) else {
                continue;
            };
            if indent <= key_indent {
                break;
            }
            if *field_indent.get_or_insert(indent) == indent && key_of(content) == Some(field) {
                return Some(i + 1);
            }
        }
        None
    }
}

/// The indentation and content of a line that holds more than blanks or a
/// comment.
pub(super) fn significant(line: &str) -> Option<(usize, &str)> {
    let content = line.trim_start_matches(' ');
    if content.trim().is_empty() || content.starts_with('#') {
        return None;
    }
    Some((line.len() - content.len(), content))
}

/// The key of a `key: value` line: plain, `"quoted"` or `'quoted'`.
pub(super) fn key_of(content: &str) -> Option<&str> {
    let (key, rest) = match content.as_bytes().first() {
        Some(&q @ (b'"' | b'\'')) => {
            let inner = &content[1..];
            let end = inner.find(char::from(q))?;
            (&inner[..end], &inner[end + 1..])
        }
        _ => {
            // A plain key ends at the first `:` followed by a blank or the
            // end of the line (`a:b` is a scalar, not a key).
            let end = content.match_indices(':').map(|(i, _)| i).find(|&i| {
                content[i + 1..]
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace)
            })?;
            (content[..end].trim_end(), &content[end..])
        }
    };
    let after = rest.trim_start_matches(' ').strip_prefix(':')?;
    after
        .chars()
        .next()
        .is_none_or(char::is_whitespace)
        .then_some(key)
}
