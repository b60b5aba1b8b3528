//! Kazoo's listing conventions (crossbar basics, "Pagination"): `page_size`,
//! `start_key` (echoed, also on the first page) and `next_start_key` (absent
//! on the last page), and `filter_{key}=value` on the rows' fields.
//!
//! A start key is the `id` of the first row of a page: opaque to clients,
//! as Kazoo's encoded keys are, and stable while rows are added at the end.
//!
//! Every listing is paged, as Kazoo pages its views: [`DEFAULT_PAGE_SIZE`]
//! rows unless `page_size` asks otherwise, at most [`MAX_PAGE_SIZE`]; a
//! client that wants everything follows `next_start_key` (issue 27: one
//! unpaged listing of 409,000 queued faxes took 30 s and 108 MB).

use serde_json::{Value, json};

use super::reply::{Answer, ApiError, Success};
use crate::model::FieldError;
use crate::store::{Mark, Start};

/// Rows on a page when the client does not say.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// The most rows on one page; a larger `page_size` gets this many, and
/// `next_start_key` to the rest.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Rows read from the store at a time while `filter_` keeps few of them.
const FILTER_CHUNK: usize = 500;

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

    /// The same request with `n` rows a page (a listing's own older name
    /// for `page_size`).
    pub fn with_size(self, n: usize) -> Paging {
        Paging {
            size: Some(n),
            ..self
        }
    }

    /// The rows on one page.
    pub fn size(&self) -> usize {
        self.size.unwrap_or(DEFAULT_PAGE_SIZE).min(MAX_PAGE_SIZE)
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

    /// One page of `rows` (a short list read whole: accounts, users,
    /// faxboxes) in Kazoo's envelope.
    pub fn answer(&self, rows: Vec<Value>) -> Result<Answer, ApiError> {
        let rows: Vec<Value> = rows.into_iter().filter(|r| self.keeps(r)).collect();
        let start = match &self.start_key {
            Some(key) => rows
                .iter()
                .position(|r| row_id(r).as_deref() == Some(key))
                .ok_or_else(|| not_a_start_key(key))?,
            None => 0,
        };
        let end = (start + self.size()).min(rows.len());
        let next = rows.get(end).and_then(row_id);
        let start_key = self
            .start_key
            .clone()
            .or_else(|| rows.get(start).and_then(row_id));
        let page: Vec<Value> = rows.into_iter().skip(start).take(end - start).collect();
        Ok(envelope(&page, start_key, next))
    }

    /// One page read from the store in the listing's order: `locate` finds
    /// the place of a start key, `read(start, n)` gives up to `n` rows
    /// (each with its place) from `start` on. Only the page and one row
    /// more are read, unless `filter_` drops rows: then the listing is read
    /// on, a chunk at a time, until the page is full.
    pub fn answer_from(
        &self,
        locate: impl FnOnce(&str) -> Result<Option<Mark>, ApiError>,
        mut read: impl FnMut(Start, usize) -> Result<Vec<(Mark, Value)>, ApiError>,
        fill: impl FnMut(Value) -> Result<Value, ApiError>,
    ) -> Result<Answer, ApiError> {
        let wanted = self.size() + 1;
        let mut start = match &self.start_key {
            Some(key) => Start::At(locate(key)?.ok_or_else(|| not_a_start_key(key))?),
            None => Start::Top,
        };
        let chunk = if self.filters.is_empty() {
            wanted
        } else {
            wanted.max(FILTER_CHUNK)
        };
        let mut rows = Vec::with_capacity(wanted);
        loop {
            let read_now = read(start, chunk)?;
            let exhausted = read_now.len() < chunk;
            if let Some((mark, _)) = read_now.last() {
                start = Start::After(*mark);
            }
            rows.extend(
                read_now
                    .into_iter()
                    .map(|(_, r)| r)
                    .filter(|r| self.keeps(r)),
            );
            if exhausted || rows.len() >= wanted {
                break;
            }
        }
        let next = rows.get(self.size()).and_then(row_id);
        rows.truncate(self.size());
        let start_key = self
            .start_key
            .clone()
            .or_else(|| rows.first().and_then(row_id));
        let page: Vec<Value> = rows.into_iter().map(fill).collect::<Result<_, _>>()?;
        Ok(envelope(&page, start_key, next))
    }
}

/// A row's `id` as a start key (the audit trail's ids are numbers).
fn row_id(row: &Value) -> Option<String> {
    match &row["id"] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn not_a_start_key(key: &str) -> ApiError {
    ApiError::from(
        FieldError::new(
            "start_key",
            "not_found",
            format!("{key} is not a start key of this listing; start again without start_key"),
        )
        .with(None, key),
    )
}

/// Kazoo's listing envelope: the rows, how many, where this page began and
/// (when there is more) where the next one begins.
fn envelope(page: &[Value], start_key: Option<String>, next: Option<String>) -> Answer {
    let mut success = Success::ok(&page);
    success.extra.insert("page_size".into(), json!(page.len()));
    if let Some(key) = start_key {
        success.extra.insert("start_key".into(), json!(key));
    }
    if let Some(next) = next {
        success.extra.insert("next_start_key".into(), json!(next));
    }
    Answer::Json(success)
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

    #[test]
    fn every_listing_is_paged_by_default_and_no_page_is_over_the_maximum() {
        let rows: Vec<Value> = (0..1200)
            .map(|i| json!({"id": format!("r{i:04}")}))
            .collect();
        let default = page(&Paging::default(), &rows);
        assert_eq!(default["page_size"], DEFAULT_PAGE_SIZE);
        assert_eq!(default["next_start_key"], "r0050");
        let huge = page(
            &Paging::from_query(&q(&[("page_size", "5000")])).unwrap(),
            &rows,
        );
        assert_eq!(huge["page_size"], MAX_PAGE_SIZE);
        assert_eq!(huge["next_start_key"], "r1000");
    }
}
