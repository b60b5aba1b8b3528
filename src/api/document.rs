//! Kazoo documents as clients write them: the request envelope, lenient
//! typing, the client's own keys, and merge patches.
//!
//! Kazoo keeps every key a client stores on a document (Monster UI adds
//! `ui_metadata` to each write) and validates only the keys its schema
//! names, converting `"3"` to `3` and `"true"` to `true` where the schema
//! wants an integer or a boolean (crossbar's default, non-strict
//! validation). A `PATCH` is a JSON merge patch (RFC 7396: `null` removes a
//! key) applied to the stored document, then validated as a whole.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::reply::ApiError;
use crate::model::FieldError;
use crate::store::UpdateMode;

/// Keys Faxbox writes and a client cannot: ignored when a client sends
/// back what it read.
const READ_ONLY: &[&str] = &["id", "_id", "_rev", "_read_only", "created", "modified"];

/// The `data` object of `{"data": {...}}`, and the tunnelled verb of the
/// envelope (`"verb": "PUT"`, Kazoo's basics).
pub fn envelope(body: &[u8], what: &str) -> Result<(Map<String, Value>, Option<String>), ApiError> {
    let Value::Object(mut top) = super::json_body(body)? else {
        return Err(ApiError::BadRequest(format!(
            "the body must be a JSON object {{\"data\": {{...}}}} with the {what}'s fields"
        )));
    };
    let verb = top.get("verb").and_then(Value::as_str).map(str::to_owned);
    match top.remove("data") {
        Some(Value::Object(data)) => Ok((data, verb)),
        Some(_) => Err(ApiError::BadRequest(format!(
            "\"data\" must be an object with the {what}'s fields"
        ))),
        None => Err(ApiError::BadRequest(format!(
            "the body must be {{\"data\": {{...}}}} with the {what}'s fields"
        ))),
    }
}

/// Reads `data` into `T`: strings that Kazoo would convert become integers
/// or booleans (in `data` too), and every field of the wrong type gets its
/// own error with its full path. Unknown keys are errors only when `T`
/// refuses them.
pub fn typed<T: DeserializeOwned>(
    data: &mut Map<String, Value>,
    what: &str,
) -> Result<T, ApiError> {
    match typed_leniently(data, what)? {
        (value, errors) if errors.is_empty() => Ok(value),
        (_, errors) => Err(ApiError::Invalid(errors)),
    }
}

/// As `typed`, but a key of the wrong type is left out of `T` and its error
/// returned beside it, so that the other rules can still be checked and
/// every problem reported at once (as Kazoo's schema validation does).
pub fn typed_leniently<T: DeserializeOwned>(
    data: &mut Map<String, Value>,
    what: &str,
) -> Result<(T, Vec<FieldError>), ApiError> {
    let keys: Vec<String> = data.keys().cloned().collect();
    let mut errors = Vec::new();
    let mut wrong: Vec<String> = Vec::new();
    for key in keys {
        // Each key on its own, so that one reply names every bad field.
        loop {
            let mut one = Map::new();
            one.insert(key.clone(), data[&key].clone());
            let Err(e) = serde_path_to_error::deserialize::<_, T>(Value::Object(one)) else {
                break;
            };
            let path = e.path().to_string();
            let text = e.inner().to_string();
            if text.starts_with("missing field") {
                // A required field is another key's business.
                break;
            }
            if text.starts_with("unknown field") {
                errors.push(
                    FieldError::new(
                        &key,
                        "additionalProperties",
                        format!("{key} is not a field of a {what}"),
                    )
                    .with(None, data[&key].clone()),
                );
                wrong.push(key.clone());
                break;
            }
            if let Some(slot) = pointer_mut(data, &path)
                && let Some(fixed) = coerce(slot, &text)
            {
                *slot = fixed;
                continue;
            }
            let value = pointer_mut(data, &path)
                .map(|v| v.clone())
                .unwrap_or(Value::Null);
            let types = expected_types(&text);
            wrong.push(key.clone());
            errors.push(
                FieldError::new(
                    if path == "." { &key } else { &path },
                    "type",
                    format!("Value did not match type(s): {types}"),
                )
                .with(Some(Value::String(types.to_owned())), value),
            );
            break;
        }
    }
    let mut usable = data.clone();
    for key in &wrong {
        usable.remove(key);
    }
    match serde_json::from_value(Value::Object(usable)) {
        Ok(value) => Ok((value, errors)),
        Err(e) => {
            let text = e.to_string();
            errors.push(
                match text
                    .strip_prefix("missing field `")
                    .and_then(|t| t.split_once('`'))
                {
                    Some((field, _)) => {
                        FieldError::new(field, "required", format!("a {what} needs {field}"))
                    }
                    None => FieldError::new("data", "type", text),
                },
            );
            Err(ApiError::Invalid(errors))
        }
    }
}

/// The value at a dotted serde path (`notifications.inbound.email`,
/// `flags[1]`).
fn pointer_mut<'a>(data: &'a mut Map<String, Value>, path: &str) -> Option<&'a mut Value> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let (name, index) = split_index(first);
    let mut at = data.get_mut(name)?;
    if let Some(i) = index {
        at = at.get_mut(i)?;
    }
    for part in parts {
        let (name, index) = split_index(part);
        at = at.get_mut(name)?;
        if let Some(i) = index {
            at = at.get_mut(i)?;
        }
    }
    Some(at)
}

fn split_index(part: &str) -> (&str, Option<usize>) {
    match part.split_once('[') {
        Some((name, rest)) => (name, rest.trim_end_matches(']').parse().ok()),
        None => (part, None),
    }
}

/// Kazoo's non-strict conversion of a string where an integer or a boolean
/// is wanted.
fn coerce(value: &Value, error: &str) -> Option<Value> {
    let Value::String(s) = value else { return None };
    let s = s.trim();
    match expected_types(error) {
        "integer" => s.parse::<i64>().ok().map(Value::from),
        "boolean" => match s {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        _ => None,
    }
}

/// The JSON schema type names for serde's "expected ..." text.
fn expected_types(error: &str) -> &'static str {
    let expected = error.rsplit("expected").next().unwrap_or_default();
    if ["i64", "i32", "u8", "u16", "u32", "u64", "integer"]
        .iter()
        .any(|t| expected.contains(t))
    {
        "integer"
    } else if expected.contains("bool") {
        "boolean"
    } else if expected.contains("sequence") {
        "array"
    } else if expected.contains("string") || expected.contains("str") {
        "string"
    } else if expected.contains("map") || expected.contains("struct") {
        "object"
    } else if error.contains("untagged enum") {
        "string, array"
    } else {
        "object"
    }
}

/// The keys of `data` that Faxbox does not model: what a client stored of
/// its own, kept and returned as given. Read-only and private (`pvt_`)
/// keys are dropped.
pub fn extra_keys(data: &Map<String, Value>, modelled: &[&str]) -> Map<String, Value> {
    data.iter()
        .filter(|(k, _)| {
            !READ_ONLY.contains(&k.as_str())
                && !k.starts_with("pvt_")
                && !modelled.contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The fields an update leaves: the request's own when it replaces the
/// document (POST), or the request merged over what `shown` reads now when
/// it patches it (PATCH). Only a patch reads the document.
pub fn updated(
    mode: UpdateMode,
    changes: Map<String, Value>,
    shown: impl FnOnce() -> Result<Value, ApiError>,
) -> Result<Map<String, Value>, ApiError> {
    match mode {
        UpdateMode::Replace => Ok(changes),
        UpdateMode::Merge => {
            let mut doc = shown()?;
            merge_patch(&mut doc, &Value::Object(changes));
            Ok(match doc {
                Value::Object(m) => m,
                _ => Map::new(),
            })
        }
    }
}

/// RFC 7396 merge patch: objects merge key by key, `null` removes a key,
/// anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(changes) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(doc) = target {
                for (k, v) in changes {
                    if v.is_null() {
                        doc.remove(k);
                    } else {
                        merge_patch(doc.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// A document as shown: the client's own keys, with Faxbox's fields laid
/// over them (nested objects merge, so `notifications.inbound.sms` stays
/// beside the `email` Faxbox models).
pub fn overlay(extra: &Map<String, Value>, ours: Value) -> Value {
    let mut doc = Value::Object(extra.clone());
    lay_over(&mut doc, ours);
    doc
}

fn lay_over(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => lay_over(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, t) => *b = t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        retries: Option<i64>,
        media: Option<Media>,
        flags: Option<Vec<String>>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Media {
        fax_option: Option<bool>,
    }

    fn data(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn strings_become_integers_and_booleans_as_kazoo_converts_them() {
        let mut d =
            data(json!({"retries": "3", "media": {"fax_option": "true"}, "ui_metadata": {"x": 1}}));
        let s: Sample = typed(&mut d, "faxbox").unwrap();
        assert_eq!(s.retries, Some(3));
        assert_eq!(s.media.unwrap().fax_option, Some(true));
        assert_eq!(d["retries"], json!(3));
        assert_eq!(
            extra_keys(&d, &["retries", "media"]),
            data(json!({"ui_metadata": {"x": 1}}))
        );
    }

    #[test]
    fn every_field_of_the_wrong_type_is_named_by_its_path() {
        let mut d =
            data(json!({"retries": "three", "media": {"fax_option": "maybe"}, "flags": ["a", 2]}));
        let Err(ApiError::Invalid(errors)) = typed::<Sample>(&mut d, "faxbox") else {
            panic!("expected errors")
        };
        let mut got: Vec<(String, &str, Option<Value>)> = errors
            .into_iter()
            .map(|e| (e.field, e.code, e.target.map(|t| *t)))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            [
                ("flags[1]".to_owned(), "type", Some(json!("string"))),
                (
                    "media.fax_option".to_owned(),
                    "type",
                    Some(json!("boolean"))
                ),
                ("retries".to_owned(), "type", Some(json!("integer"))),
            ]
        );
    }

    #[test]
    fn a_merge_patch_removes_nulls_and_merges_objects() {
        let mut doc = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_patch(
            &mut doc,
            &json!({"a": null, "b": {"c": null, "x": 4}, "e": [2]}),
        );
        assert_eq!(doc, json!({"b": {"d": 3, "x": 4}, "e": [2]}));
    }

    #[test]
    fn our_fields_lie_over_the_clients_own() {
        let extra = data(
            json!({"notifications": {"inbound": {"sms": {"send_to": "1"}, "email": {"send_to": "old"}}}, "ui_metadata": {}}),
        );
        let doc = overlay(
            &extra,
            json!({"notifications": {"inbound": {"email": {"send_to": ["a@b.c"]}}}, "name": "n"}),
        );
        assert_eq!(
            doc,
            json!({"notifications": {"inbound": {"sms": {"send_to": "1"}, "email": {"send_to": ["a@b.c"]}}}, "ui_metadata": {}, "name": "n"})
        );
    }
}
