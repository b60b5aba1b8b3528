//! Channel variables in an `originate` command, written so that FreeSWITCH
//! reads back exactly the text we meant and nothing else (issue 25).
//!
//! Free text (the fax header, the station ident, the caller-ID name) comes
//! from API keys, mail subjects and faxbox settings. FreeSWITCH reads an
//! `originate` through several parsers, each with its own quoting, and
//! none of them is a safe place for raw text (src/switch_utils.c,
//! src/switch_event.c and src/switch_ivr_originate.c of FreeSWITCH, as on
//! its master branch in 2025):
//!
//! 1. mod_event_socket takes the command up to the first CR or LF;
//! 2. `originate` splits its arguments on unquoted, unescaped spaces, then
//!    strips quotes and backslash escapes from each (`switch_separate_string`
//!    with `' '`);
//! 3. the first argument starts with `<...>` and `{...}` blocks whose end
//!    is found by counting brackets, ignoring quotes and escapes
//!    (`switch_find_end_paren`); a block's text is split on unquoted,
//!    unescaped commas, stripping quotes and escapes again;
//! 4. each `name=value` is split at its first `=`, stripping quotes and
//!    escapes a third time (`\n`, `\r`, `\t`, `\s` become LF, CR, tab and
//!    space) and dropping leading and trailing spaces;
//! 5. a value holding `${` is refused (`switch_string_var_check_const`), a
//!    command holding `:_:` anywhere is split there into separate calls
//!    (the enterprise originate), and `origination_nested_vars=true`
//!    anywhere turns that refusal off.
//!
//! mod_spandsp URL-decodes `fax_ident`, `fax_header` and `fax_timezone`
//! when it reads them (mod_spandsp_fax.c), so those are sent
//! percent-encoded: letters, digits and `%XX` only, which no parser above
//! splits and which carries any text exactly (the decoding also means a
//! header with a literal `%41` must be encoded to print as typed).
//!
//! For the other variables, [`OriginateVariables`] escapes each value for step 4, then 3, then 2,
//! using backslashes only; it writes spaces, line ends and tabs as escapes
//! so that no raw space, CR or LF reaches steps 1 and 2; it breaks `:_:`
//! and `...vars=` with an empty quote pair that step 4 removes; and it puts
//! a value in whichever bracket block its own brackets balance in. What no
//! encoding can carry is changed by [`carried_text`], the one place that
//! decides it.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// The variables mod_spandsp reads through `switch_url_decode`.
const URL_DECODED: [&str; 3] = ["fax_ident", "fax_header", "fax_timezone"];

/// The value a channel variable will hold for `text`: percent-encoded for
/// the variables mod_spandsp decodes (NUL dropped, an empty text sent as
/// one space so that mod_spandsp does not print its own "SpanDSP Fax
/// Ident"), else [`carried_text`].
pub fn channel_value(name: &str, text: &str) -> String {
    if URL_DECODED.contains(&name) {
        let mut text: String = text.chars().filter(|c| *c != '\0').collect();
        if text.is_empty() {
            text.push(' ');
        }
        utf8_percent_encode(&text, NON_ALPHANUMERIC).to_string()
    } else {
        carried_text(text)
    }
}

/// The bracket pairs a variable block can use, in the order FreeSWITCH
/// reads them (`<...>` before `{...}`).
const ANGLE: (char, char) = ('<', '>');
const BRACE: (char, char) = ('{', '}');

/// The text FreeSWITCH will hold for `value`: the same text, except for
/// what no encoding can carry through `originate`:
/// - NUL ends a C string, so it is dropped;
/// - a value whose `{}` and `<>` both do not balance cannot sit in either
///   block, so its braces become parentheses;
/// - FreeSWITCH refuses a value with `$` before `{` (a variable
///   reference), so a space goes between them;
/// - an empty value unsets the variable (and mod_spandsp then prints its
///   own "SpanDSP Fax Ident"), so it becomes one space.
pub fn carried_text(value: &str) -> String {
    let mut text: String = value.chars().filter(|c| *c != '\0').collect();
    if !balanced(&text, BRACE) && !balanced(&text, ANGLE) {
        text = text.replace('{', "(").replace('}', ")");
    }
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        out.push(*c);
        if *c == '$' {
            let after = chars[i + 1..].iter().find(|c| **c != '\\');
            if after == Some(&'{') {
                out.push(' ');
            }
        }
    }
    if out.is_empty() {
        out.push(' ');
    }
    out
}

/// Whether `text`'s brackets of one kind close in order, so that a block of
/// that kind holding it still ends at its own closing bracket.
fn balanced(text: &str, (open, close): (char, char)) -> bool {
    let mut depth = 0usize;
    for c in text.chars() {
        if c == open {
            depth += 1;
        } else if c == close {
            match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            }
        }
    }
    depth == 0
}

/// Step 4's escaping: what the `name=value` split turns back into `value`.
fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    let mut lower = String::new();
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            ' ' => out.push_str("\\s"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // `:_:` would split the whole command into two calls, and
            // `origination_nested_vars=true` would let `${` through: an
            // empty quote pair breaks both in the command text and is gone
            // from the value.
            '_' if out.ends_with(':') => out.push_str("''_"),
            '=' if lower.ends_with("origination_nested_vars") => out.push_str("''="),
            c => out.push(c),
        }
        lower.extend(c.to_lowercase());
    }
    out
}

/// Step 3's escaping: the block's comma split and its unescaping.
fn escape_in_block(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if matches!(c, '\\' | ',' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Step 2's escaping: `originate`'s split of its arguments.
fn escape_argument(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if matches!(c, '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The channel variables of one call, in the order they are set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginateVariables {
    variables: Vec<(&'static str, String)>,
}

impl OriginateVariables {
    pub fn new() -> OriginateVariables {
        OriginateVariables::default()
    }

    /// Sets a variable. Names are ours (letters, digits and `_`); values
    /// may be any text.
    pub fn set(&mut self, name: &'static str, value: &str) {
        debug_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        self.variables.retain(|(n, _)| *n != name);
        self.variables.push((name, channel_value(name, value)));
    }

    /// What FreeSWITCH will hold for each variable.
    pub fn values(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.variables.iter().map(|(n, v)| (*n, v.as_str()))
    }

    /// The `<...>{...}` that starts `originate`'s first argument: no raw
    /// space, CR or LF, and each block ends at its own bracket.
    pub fn command_prefix(&self) -> String {
        let mut angle = Vec::new();
        let mut brace = Vec::new();
        for (name, value) in &self.variables {
            let item = escape_in_block(&format!("{name}={}", escape_value(value)));
            if balanced(value, BRACE) {
                brace.push(item);
            } else {
                angle.push(item);
            }
        }
        let mut prefix = String::new();
        if !angle.is_empty() {
            prefix.push_str(&format!("<{}>", angle.join(",")));
        }
        prefix.push_str(&format!("{{{}}}", brace.join(",")));
        escape_argument(&prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_are_written_as_they_are() {
        let mut v = OriginateVariables::new();
        v.set("origination_uuid", "0f1e2d3c-0000-4000-8000-00000000abcd");
        v.set("fax_use_ecm", "true");
        assert_eq!(
            v.command_prefix(),
            "{origination_uuid=0f1e2d3c-0000-4000-8000-00000000abcd,fax_use_ecm=true}"
        );
    }

    #[test]
    fn what_mod_spandsp_decodes_is_sent_percent_encoded() {
        let mut v = OriginateVariables::new();
        v.set("fax_header", "ACME, Dental {50%}");
        v.set("fax_ident", "");
        assert_eq!(
            v.command_prefix(),
            "{fax_header=ACME%2C%20Dental%20%7B50%25%7D,fax_ident=%20}"
        );
    }

    #[test]
    fn separators_are_escaped_for_every_parser_in_turn() {
        let mut v = OriginateVariables::new();
        v.set("origination_caller_id_name", "ACME, Dental");
        // comma: escaped once for the block (`\,`), its backslash once more
        // for the argument split; space: `\s` for the value, twice more.
        assert_eq!(
            v.command_prefix(),
            "{origination_caller_id_name=ACME\\\\,\\\\\\\\sDental}"
        );
        let mut v = OriginateVariables::new();
        v.set("origination_caller_id_name", "it's");
        assert_eq!(
            v.command_prefix(),
            "{origination_caller_id_name=it\\\\\\\\\\\\\\'s}"
        );
    }

    #[test]
    fn the_command_never_holds_a_raw_space_line_end_or_enterprise_split() {
        let mut v = OriginateVariables::new();
        v.set(
            "origination_caller_id_name",
            "a b\r\nc:_:d\torigination_nested_vars=true",
        );
        let prefix = v.command_prefix();
        assert!(!prefix.contains([' ', '\r', '\n', '\t']), "{prefix}");
        assert!(!prefix.contains(":_:"), "{prefix}");
        assert!(
            !prefix
                .to_lowercase()
                .contains("origination_nested_vars=true"),
            "{prefix}"
        );
    }

    #[test]
    fn unbalanced_braces_move_to_the_angle_block() {
        let mut v = OriginateVariables::new();
        v.set("fax_use_ecm", "true");
        v.set("origination_caller_id_name", "}x{");
        assert_eq!(
            v.command_prefix(),
            "<origination_caller_id_name=}x{>{fax_use_ecm=true}"
        );
        let mut v = OriginateVariables::new();
        v.set("origination_caller_id_name", "{ok}");
        assert_eq!(v.command_prefix(), "{origination_caller_id_name={ok}}");
    }

    #[test]
    fn what_cannot_be_carried_is_changed_in_one_place() {
        assert_eq!(carried_text("Cost ${5}"), "Cost $ {5}");
        assert_eq!(carried_text("a$\\{b}"), "a$ \\{b}");
        assert_eq!(carried_text("$5 {x}"), "$5 {x}");
        assert_eq!(carried_text("}<{"), ")<(");
        assert_eq!(carried_text("a\0b"), "ab");
        assert_eq!(carried_text(""), " ");
        assert_eq!(carried_text("ACME, Dental"), "ACME, Dental");
    }
}
