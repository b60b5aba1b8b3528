//! Kazoo's listing conventions (crossbar basics, "Pagination"): `page_size`,
//! `start_key` (echoed, also on the first page) and `next_start_key` (absent
//! on the last page), and `filter_{key}=value` on the rows' fields.
//!
//! A start key is the `id` of the first row of a page: opaque to clients,
//! as Kazoo's encoded keys are, and stable while rows are added at the end.

use serde_json::{Value, json};

use super::reply::{Answer, ApiError, Success};
use crate::model::FieldError;

/// What a listing request asks for.
#[derive(Debug, Default, Clone)]
pub struct Paging {
    size: Option<usize>,
    start_key: Option<String>,
    /// `filter_owner_id=...`: (path in the row, wanted value).
    filters: Vec<(String, String)>,
}

impl Paging {
    pub fn from_query(query: &[(String, String)]) -> Result<Paging, ApiError> {
        let mut paging = Paging::default();
        for (key, value) in query {
            if key == "page_size" {
                match value.parse::<usize>() {
                    Ok(n) if n > 0 => paging.size = Some(n),
                    _ => {
                        return Err(FieldError::new(
                            "page_size",
                            "minimum",
                            format!("page_size is a number of rows from 1 up, not {value:?}"),
                        )
                        .with(Some(1.into()), value.as_str())
                        .into());
                    }
                }
            } else if key == "start_key" {
                paging.start_key = Some(value.clone());
            } else if let Some(field) = key.strip_prefix("filter_") {
                paging.filters.push((field.to_owned(), value.clone()));
            }
        }
        Ok(paging)
    }

    /// Whether a row passes every `filter_` (a dotted key names a nested
    /// field; a number or boolean matches its text).
    fn keeps(&self, row: &Value) -> bool {
        self.filters.iter().all(|(path, wanted)| {
            let pointer = format!("/{}", path.replace('.', "/"));
            match row.pointer(&pointer) {
                Some(Value::String(s)) => s == wanted,
                Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(wanted)),
                Some(Value::Number(n)) => {
                    wanted.parse::<serde_json::Number>().is_ok_and(|w| w == *n)
                }
                Some(Value::Bool(b)) => wanted == if *b { "true" } else { "false" },
                _ => false,
            }
        })
    }

    /// One page of `rows` in Kazoo's envelope.
    pub fn answer(&self, rows: Vec<Value>) -> Result<Answer, ApiError> {
        self.answer_with(rows, Ok)
    }

    /// One page of `rows`, each row of the page completed by `fill` (the
    /// costly parts of a row, read only for the rows shown).
    pub fn answer_with(
        &self,
        rows: Vec<Value>,
        fill: impl FnMut(Value) -> Result<Value, ApiError>,
    ) -> Result<Answer, ApiError> {
        let rows: Vec<Value> = rows.into_iter().filter(|r| self.keeps(r)).collect();
        let id = |r: &Value| r["id"].as_str().map(str::to_owned);
        let start = match &self.start_key {
            Some(key) => rows
                .iter()
                .position(|r| id(r).as_deref() == Some(key))
                .ok_or_else(|| {
                    ApiError::from(
                        FieldError::new(
                            "start_key",
                            "not_found",
                            format!("{key} is not a start key of this listing; start again without start_key"),
                        )
                        .with(None, key.as_str()),
                    )
                })?,
            None => 0,
        };
        let end = self
            .size
            .map_or(rows.len(), |n| (start + n).min(rows.len()));
        let next = rows.get(end).and_then(id);
        let start_key = self
            .start_key
            .clone()
            .or_else(|| rows.get(start).and_then(id));
        let page: Vec<Value> = rows
            .into_iter()
            .skip(start)
            .take(end - start)
            .map(fill)
            .collect::<Result<_, _>>()?;
        let mut success = Success::ok(&page);
        success.extra.insert("page_size".into(), json!(page.len()));
        if let Some(key) = start_key {
            success.extra.insert("start_key".into(), json!(key));
        }
        if let Some(next) = next {
            success.extra.insert("next_start_key".into(), json!(next));
        }
        Ok(Answer::Json(success))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn page(paging: &Paging, rows: &[Value]) -> Value {
        let Answer::Json(s) = paging.answer(rows.to_vec()).unwrap() else {
            panic!("json")
        };
        let mut v = json!({"data": s.data});
        for (k, x) in s.extra {
            v[k] = x;
        }
        v
    }

    #[test]
    fn pages_follow_start_keys_and_filters_apply_first() {
        let rows: Vec<Value> = (0..5)
            .map(|i| json!({"id": format!("r{i}"), "owner_id": if i % 2 == 0 { "u1" } else { "u2" }}))
            .collect();
        let first = page(
            &Paging::from_query(&q(&[("page_size", "2")])).unwrap(),
            &rows,
        );
        assert_eq!(first["data"].as_array().unwrap().len(), 2);
        assert_eq!(first["start_key"], "r0");
        assert_eq!(first["next_start_key"], "r2");
        let last = page(
            &Paging::from_query(&q(&[("page_size", "2"), ("start_key", "r4")])).unwrap(),
            &rows,
        );
        assert_eq!(last["page_size"], 1);
        assert!(last.get("next_start_key").is_none());
        let mine = page(
            &Paging::from_query(&q(&[("filter_owner_id", "u2")])).unwrap(),
            &rows,
        );
        assert_eq!(
            mine["data"],
            json!([{"id": "r1", "owner_id": "u2"}, {"id": "r3", "owner_id": "u2"}])
        );
        assert!(Paging::from_query(&q(&[("page_size", "x")])).is_err());
        assert!(
            Paging::from_query(&q(&[("start_key", "zz")]))
                .unwrap()
                .answer(rows)
                .is_err()
        );
    }
}
