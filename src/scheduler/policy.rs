//! The retry policy: after an attempt, what happens to the job. A pure
//! function of the attempt's result, the job's budget and the settings, so
//! it is table-tested here and the run loop only applies its decision.
//!
//! `retries` is the total number of attempts (docs/kazoo.md 5.1; 0 behaves as
//! 1). Kazoo's `reschedule` rules (docs/kazoo.md 5.2) come first; otherwise the
//! delay depends on the cause, in the spirit of HylaFAX: a busy number is
//! tried again sooner than one that did not answer, a T.30 failure sooner
//! still, and everything else after `default_retry_period`.

use serde_json::{Map, Value};

use crate::store::NextStep;

/// Why an attempt did not deliver the fax, as far as retrying cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Busy,
    NoAnswer,
    /// The network or far end refused the call.
    Rejected(String),
    /// T.30 failed after the far end answered.
    Fax {
        /// The T.30 completion code (FreeSWITCH `fax_result_code`).
        code: i64,
        text: String,
        /// Whether calling again could help (a far end that is no fax
        /// machine, or one that cannot print our pages, will not change).
        retry_may_help: bool,
    },
    /// A stage took longer than its timeout.
    Timeout {
        stage: &'static str,
    },
    /// The document cannot be faxed: no retry can fix it.
    Document(String),
    /// The number cannot be dialled: no retry can fix it.
    InvalidNumber(String),
    /// Faxbox itself failed.
    Internal(String),
    /// The line or the phone system behind it failed (the text names it
    /// and what to check).
    Line(String),
}

impl Failure {
    /// The words a fax user reads in the error email and the job list.
    pub fn describe(&self) -> String {
        match self {
            Failure::Busy => "the number was busy".into(),
            Failure::NoAnswer => "nobody answered".into(),
            Failure::Rejected(why) => format!("the call was rejected: {why}"),
            Failure::Fax { text, code, .. } => format!("the fax failed: {text} (code {code})"),
            Failure::Timeout { stage } => format!("fax job timed out - {stage}"),
            Failure::Document(why) => why.clone(),
            Failure::InvalidNumber(why) => why.clone(),
            Failure::Internal(why) => format!("Faxbox failed: {why}"),
            Failure::Line(why) => why.clone(),
        }
    }
}

/// The settings the policy reads (resolved for the job's account).
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    pub default_retry_period: i64,
    pub default_retry_count: i64,
    pub default_compare_field: String,
    /// Kazoo's `reschedule` object of named rules.
    pub reschedule: Value,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            default_retry_period: 300,
            default_retry_count: 3,
            default_compare_field: "result_cause".into(),
            reschedule: Value::Object(Map::new()),
        }
    }
}

/// Per-cause delays, seconds (HylaFAX retries busy numbers after a few
/// minutes and protocol failures at once).
pub const BUSY_DELAY_S: i64 = 180;
pub const NO_ANSWER_DELAY_S: i64 = 300;
pub const FAX_PROTOCOL_DELAY_S: i64 = 60;

/// The decision for one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub next: NextStep,
    /// The job's attempt budget from now on (a rule may change it).
    pub retries: u8,
    /// The reschedule rule that fired, if any.
    pub rule: Option<String>,
}

/// Decides what follows an attempt.
///
/// `attempts` counts this attempt; `result` holds the attempt's result
/// fields by Kazoo's names (`result_cause`, `result_code`, ...) for the
/// rules to compare.
pub fn decide(
    failure: Option<&Failure>,
    attempts: u8,
    retries: u8,
    pages_sent: u32,
    result: &Map<String, Value>,
    settings: &RetrySettings,
) -> Decision {
    let Some(failure) = failure else {
        return Decision {
            next: NextStep::Complete,
            retries,
            rule: None,
        };
    };
    let hopeless = match failure {
        Failure::Document(_) | Failure::InvalidNumber(_) => true,
        Failure::Fax { retry_may_help, .. } => !retry_may_help,
        _ => false,
    };
    if hopeless {
        return Decision {
            next: NextStep::Fail {
                reason: failure.describe(),
            },
            retries,
            rule: None,
        };
    }
    if let Some((name, after_s, budget)) = matching_rule(attempts, result, settings) {
        return Decision {
            next: retry_or_fail(attempts, budget, after_s, failure, pages_sent),
            retries: budget,
            rule: Some(name),
        };
    }
    let after_s = match failure {
        Failure::Busy => BUSY_DELAY_S,
        Failure::NoAnswer => NO_ANSWER_DELAY_S,
        Failure::Fax { .. } => FAX_PROTOCOL_DELAY_S,
        _ => settings.default_retry_period,
    };
    Decision {
        next: retry_or_fail(attempts, retries, after_s, failure, pages_sent),
        retries,
        rule: None,
    }
}

fn retry_or_fail(
    attempts: u8,
    budget: u8,
    after_s: i64,
    failure: &Failure,
    pages: u32,
) -> NextStep {
    if attempts < budget.max(1) {
        NextStep::Retry { after_s }
    } else {
        let partial = if pages > 0 {
            format!(
                "; {pages} page{} reached the far end before the call failed",
                if pages == 1 { "" } else { "s" }
            )
        } else {
            String::new()
        };
        NextStep::Fail {
            reason: format!(
                "{} (after {attempts} attempt{}){partial}",
                failure.describe(),
                if attempts == 1 { "" } else { "s" }
            ),
        }
    }
}

/// The first `reschedule` rule (in key order) that matches: its name, delay
/// and new attempt budget.
fn matching_rule(
    attempts: u8,
    result: &Map<String, Value>,
    settings: &RetrySettings,
) -> Option<(String, i64, u8)> {
    let rules = settings.reschedule.as_object()?;
    for (name, rule) in rules {
        let Some(rule) = rule.as_object() else {
            continue;
        };
        let attempt_matches = match rule.get("attempt") {
            None => true,
            Some(Value::String(s)) if s == "any" => true,
            Some(v) => v.as_i64() == Some(-1) || v.as_i64() == Some(i64::from(attempts)),
        };
        if !attempt_matches {
            continue;
        }
        let field = rule
            .get("compare-field")
            .and_then(Value::as_str)
            .unwrap_or(&settings.default_compare_field);
        let values = rule.get("compare-values").and_then(Value::as_array);
        // Exact JSON equality, as Kazoo: "486" and 486 differ.
        let fires = match (result.get(field), values) {
            (Some(actual), Some(values)) => values.contains(actual),
            _ => false,
        };
        if !fires {
            continue;
        }
        let after_s = rule
            .get("retry-after")
            .and_then(Value::as_i64)
            .unwrap_or(settings.default_retry_period)
            .max(0);
        let budget = rule
            .get("new-retry-count")
            .or_else(|| rule.get("retries"))
            .and_then(Value::as_i64)
            .unwrap_or(settings.default_retry_count)
            .clamp(0, 10) as u8;
        return Some((name.clone(), after_s, budget));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(cause: &str, code: i64) -> Map<String, Value> {
        let Value::Object(m) = json!({"result_cause": cause, "result_code": code}) else {
            unreachable!()
        };
        m
    }

    fn fax_failure(code: i64, retry: bool) -> Failure {
        Failure::Fax {
            code,
            text: "Disconnected after permitted retries".into(),
            retry_may_help: retry,
        }
    }

    /// (failure, attempts made, budget, pages sent) -> expected next step.
    #[test]
    fn default_policy_table() {
        let s = RetrySettings::default();
        let r = result("NORMAL_CLEARING", 200);
        let cases: Vec<(Option<Failure>, u8, u8, u32, NextStep)> = vec![
            (None, 1, 3, 2, NextStep::Complete),
            (
                Some(Failure::Busy),
                1,
                3,
                0,
                NextStep::Retry { after_s: 180 },
            ),
            (
                Some(Failure::NoAnswer),
                2,
                3,
                0,
                NextStep::Retry { after_s: 300 },
            ),
            (
                Some(fax_failure(48, true)),
                1,
                3,
                1,
                NextStep::Retry { after_s: 60 },
            ),
            (
                Some(Failure::Rejected("403".into())),
                1,
                3,
                0,
                NextStep::Retry { after_s: 300 },
            ),
            (
                Some(Failure::Timeout { stage: "negotiate" }),
                1,
                2,
                0,
                NextStep::Retry { after_s: 300 },
            ),
            // retries 0 behaves as 1: no second attempt.
            (
                Some(Failure::Busy),
                1,
                0,
                0,
                NextStep::Fail {
                    reason: "the number was busy (after 1 attempt)".into(),
                },
            ),
            (
                Some(Failure::Busy),
                3,
                3,
                0,
                NextStep::Fail {
                    reason: "the number was busy (after 3 attempts)".into(),
                },
            ),
        ];
        for (failure, attempts, retries, pages, want) in cases {
            let d = decide(failure.as_ref(), attempts, retries, pages, &r, &s);
            assert_eq!(d.next, want, "{failure:?} after {attempts}/{retries}");
            assert_eq!(d.rule, None);
        }
    }

    #[test]
    fn failures_no_retry_can_fix_end_the_job_at_once() {
        let s = RetrySettings::default();
        let r = Map::new();
        for f in [
            Failure::Document("this PDF is password-protected".into()),
            Failure::InvalidNumber("invalid fax number: (empty)".into()),
            fax_failure(2, false),
        ] {
            let d = decide(Some(&f), 1, 4, 0, &r, &s);
            assert!(matches!(d.next, NextStep::Fail { .. }), "{f:?}");
        }
    }

    #[test]
    fn a_failure_after_pages_says_the_far_end_may_have_some() {
        let d = decide(
            Some(&fax_failure(49, true)),
            3,
            3,
            2,
            &Map::new(),
            &RetrySettings::default(),
        );
        let NextStep::Fail { reason } = d.next else {
            panic!("{d:?}")
        };
        assert!(reason.contains("2 pages reached the far end"), "{reason}");
    }

    #[test]
    fn reschedule_rules_match_as_kazoo() {
        let s = RetrySettings {
            reschedule: json!({
                "busy": {"attempt": 1, "compare-field": "result_cause",
                         "compare-values": ["USER_BUSY"], "retry-after": 120, "new-retry-count": 5},
                "sip486": {"compare-field": "result_code", "compare-values": [486], "retry-after": 30},
            }),
            ..RetrySettings::default()
        };
        // First attempt busy: the "busy" rule fires and raises the budget.
        let d = decide(Some(&Failure::Busy), 1, 2, 0, &result("USER_BUSY", 486), &s);
        assert_eq!(
            (d.next, d.retries, d.rule.as_deref()),
            (NextStep::Retry { after_s: 120 }, 5, Some("busy"))
        );
        // Second attempt: "busy" wants attempt 1, so "sip486" fires (budget
        // from default_retry_count).
        let d = decide(Some(&Failure::Busy), 2, 5, 0, &result("USER_BUSY", 486), &s);
        assert_eq!(
            (d.next, d.retries, d.rule.as_deref()),
            (NextStep::Retry { after_s: 30 }, 3, Some("sip486"))
        );
        // Exact JSON equality: "486" as text is not 486.
        let mut r = Map::new();
        r.insert("result_code".into(), json!("486"));
        let d = decide(Some(&Failure::Busy), 2, 5, 0, &r, &s);
        assert_eq!((d.next, d.rule), (NextStep::Retry { after_s: 180 }, None));
        // A rule's budget can end the job too.
        let d = decide(Some(&Failure::Busy), 3, 5, 0, &result("USER_BUSY", 486), &s);
        assert!(matches!(d.next, NextStep::Fail { .. }), "{d:?}");
    }
}
