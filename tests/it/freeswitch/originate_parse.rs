//! How FreeSWITCH reads `bgapi originate <args>`, ported byte for byte from
//! its C source (signalwire/freeswitch master, 2025): mod_event_socket's
//! `bgapi` split, `switch_api_execute`'s whitespace strip,
//! mod_commands' `originate_function` (`switch_separate_string` on `' '`),
//! `switch_ivr_originate`'s `:_:` test, `origination_nested_vars` test and
//! `<...>` / `{...}` blocks (`switch_event_create_brackets`,
//! `switch_find_end_paren`, `switch_strchr_strict`), and the `${` refusal of
//! `switch_channel_set_variable_var_check`. Pointers become indices into
//! byte vectors; a C string ends at the first NUL, as here.
//!
//! The stand-in parses every originate with this, so a test sees exactly
//! the channel variables a real FreeSWITCH would set.

const ESCAPE_META: u8 = b'\\';

/// `unescape_char` (switch_utils.c).
fn unescape_char(c: u8) -> u8 {
    match c {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b's' => b' ',
        other => other,
    }
}

/// A C string: bytes up to the first NUL.
fn c_str(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|b| *b == 0) {
        Some(i) => &bytes[..i],
        None => bytes,
    }
}

/// `cleanup_separated_string`: strips quotes, leading and trailing spaces,
/// and converts escaped characters.
fn cleanup_separated_string(s: &[u8], delim: u8) -> Vec<u8> {
    let s = c_str(s);
    let mut ptr = 0;
    while ptr < s.len() && s[ptr] == b' ' {
        ptr += 1;
    }
    let mut dest: Vec<u8> = Vec::new();
    let mut end: Option<usize> = None;
    let mut inside_quotes = false;
    while ptr < s.len() {
        let mut esc = false;
        if s[ptr] == ESCAPE_META {
            let next = s.get(ptr + 1).copied().unwrap_or(0);
            let mut e = next;
            let recognised =
                e == b'\'' || e == b'"' || (delim != 0 && e == delim) || e == ESCAPE_META || {
                    e = unescape_char(next);
                    e != next
                };
            if recognised {
                ptr += 1;
                dest.push(e);
                end = Some(dest.len());
                esc = true;
            }
        }
        if !esc {
            if s[ptr] == b'\'' && (inside_quotes || s[ptr + 1..].contains(&b'\'')) {
                inside_quotes = !inside_quotes;
                if inside_quotes {
                    end = Some(dest.len());
                }
            } else {
                dest.push(s[ptr]);
                if s[ptr] != b' ' || inside_quotes {
                    end = Some(dest.len());
                }
            }
        }
        ptr += 1;
    }
    if let Some(end) = end {
        dest.truncate(end);
    }
    dest
}

/// `separate_string_char_delim`.
fn separate_char_delim(buf: &[u8], delim: u8, arraylen: usize) -> Vec<Vec<u8>> {
    let mut buf = c_str(buf).to_vec();
    let mut starts = Vec::new();
    let mut ptr = 0;
    let mut find_delim = false;
    let mut inside_quotes = false;
    while ptr < buf.len() && buf[ptr] != 0 && starts.len() < arraylen {
        if !find_delim {
            starts.push(ptr);
            find_delim = true;
            continue;
        }
        if buf[ptr] == ESCAPE_META {
            ptr += 1;
        } else if buf[ptr] == b'\'' && (inside_quotes || c_str(&buf[ptr + 1..]).contains(&b'\'')) {
            inside_quotes = !inside_quotes;
        } else if buf[ptr] == delim && !inside_quotes {
            buf[ptr] = 0;
            find_delim = false;
        }
        ptr += 1;
    }
    starts
        .into_iter()
        .map(|s| cleanup_separated_string(&buf[s.min(buf.len())..], delim))
        .collect()
}

/// `separate_string_blank_delim`.
fn separate_blank_delim(buf: &[u8], arraylen: usize) -> Vec<Vec<u8>> {
    #[derive(PartialEq)]
    enum State {
        Start,
        SkipInitialSpace,
        FindDelim,
        SkipEndingSpace,
    }
    let mut buf = c_str(buf).to_vec();
    let mut starts = Vec::new();
    let mut ptr = 0;
    let mut state = State::Start;
    let mut inside_quotes = false;
    while ptr < buf.len() && buf[ptr] != 0 && starts.len() < arraylen {
        match state {
            State::Start => {
                starts.push(ptr);
                state = State::SkipInitialSpace;
            }
            State::SkipInitialSpace => {
                if buf[ptr] == b' ' {
                    ptr += 1;
                } else {
                    state = State::FindDelim;
                }
            }
            State::FindDelim => {
                if buf[ptr] == ESCAPE_META {
                    ptr += 1;
                } else if buf[ptr] == b'\'' {
                    inside_quotes = !inside_quotes;
                } else if buf[ptr] == b' ' && !inside_quotes {
                    buf[ptr] = 0;
                    state = State::SkipEndingSpace;
                }
                ptr += 1;
            }
            State::SkipEndingSpace => {
                if buf[ptr] == b' ' {
                    ptr += 1;
                } else {
                    state = State::Start;
                }
            }
        }
    }
    starts
        .into_iter()
        .map(|s| cleanup_separated_string(&buf[s.min(buf.len())..], 0))
        .collect()
}

/// `switch_separate_string`, with its `^^<delim>` prefix.
pub fn separate_string(buf: &[u8], delim: u8, arraylen: usize) -> Vec<Vec<u8>> {
    let buf = c_str(buf);
    let (buf, delim) = if buf.starts_with(b"^^") && buf.len() >= 4 {
        (&buf[3..], buf[2])
    } else {
        (buf, delim)
    };
    if delim == b' ' {
        separate_blank_delim(buf, arraylen)
    } else {
        separate_char_delim(buf, delim, arraylen)
    }
}

/// `switch_find_end_paren`: the index of the bracket closing the one at
/// (or after leading spaces from) `from`.
fn find_end_paren(s: &[u8], from: usize, open: u8, close: u8) -> Option<usize> {
    let mut i = from;
    while i < s.len() && s[i] == b' ' {
        i += 1;
    }
    if i >= s.len() || s[i] != open {
        return None;
    }
    let mut depth = 1;
    let mut e = i + 1;
    while e < s.len() && s[e] != 0 {
        if s[e] == open && open != close {
            depth += 1;
        } else if s[e] == close {
            depth -= 1;
            if depth == 0 {
                return Some(e);
            }
        }
        e += 1;
    }
    None
}

/// `switch_strchr_strict(in, find, " ")`.
fn strchr_strict(s: &[u8], from: usize, find: u8) -> Option<usize> {
    let mut p = from;
    if p >= s.len() || s[p] == 0 {
        return None;
    }
    while p < s.len() && s[p] != 0 {
        if s[p] == find {
            return Some(p);
        }
        if s[p] != b' ' {
            return None;
        }
        p += 1;
    }
    Some(p)
}

/// `switch_event_create_brackets(data, a, b, c, ...)` with `dup` false:
/// adds the block's variables to `event` (a later one of the same name
/// replaces an earlier: `EF_UNIQ_HEADERS`) and returns where the rest of
/// `data` starts, or `None` on "Parse Error!".
fn create_brackets(
    data: &mut [u8],
    a: u8,
    b: u8,
    c: u8,
    event: &mut Vec<(Vec<u8>, Vec<u8>)>,
    adds: &mut Vec<Vec<u8>>,
) -> Option<usize> {
    let mut end = find_end_paren(data, 0, a, b);
    let mut check_a = end;
    while let Some(ca) = check_a {
        let Some(cb) = strchr_strict(data, ca, a) else {
            break;
        };
        match find_end_paren(data, cb, a, b) {
            Some(e) => check_a = Some(e),
            None => break,
        }
    }
    if check_a.is_some() {
        end = check_a;
    }
    let end_at = end?;
    let mut next = Some(end_at);
    let mut vdata = Some(1usize);
    data[end_at] = 0;
    let rest = end_at + 1;
    let mut c = c;
    loop {
        let mut vnext = None;
        if let Some(n) = next {
            data[n] = 0;
            let mut n = n + 1;
            if let Some(p) = strchr_strict(data, n, a) {
                n = p + 1;
            }
            vnext = find_end_paren(data, n, a, b);
            next = None;
        }
        if let Some(v) = vdata {
            let mut v = v;
            if data[v..].starts_with(b"^^") {
                v += 2;
                c = data[v];
                v += 1;
            }
            for var in separate_string(&data[v..], c, 1024) {
                let inner = separate_string(&var, b'=', 2);
                if inner.len() == 2 {
                    adds.push(inner[0].clone());
                    event.retain(|(n, _)| *n != inner[0]);
                    event.push((inner[0].clone(), inner[1].clone()));
                }
            }
        }
        match vnext {
            Some(vn) => {
                vdata = Some(vn);
            }
            None => break,
        }
    }
    Some(rest)
}

/// What FreeSWITCH made of one `bgapi originate`.
#[derive(Debug, Clone, PartialEq)]
pub enum Originate {
    /// The call it places: its channel variables (name, value) as set on
    /// the channel, every variable name the blocks set (repeats included),
    /// the dial string and the application (`&txfax(...)`).
    Call {
        variables: Vec<(String, String)>,
        names_set: Vec<String>,
        dial: String,
        application: String,
    },
    /// `-USAGE`, `Parse Error!` and the like: no call.
    Refused(String),
    /// The command held `:_:`: FreeSWITCH would place one call per part
    /// (an injection, as far as a test is concerned).
    Enterprise(String),
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Reads the arguments of `bgapi originate ARGS` (the command line after
/// `bgapi originate `, up to its CR or LF) as FreeSWITCH does.
pub fn parse_originate(args: &str) -> Originate {
    // switch_api_execute: switch_strip_whitespace(arg).
    let arg = args.trim_matches(|c: char| c.is_ascii_whitespace());
    let argv = separate_string(arg.as_bytes(), b' ', 10);
    if argv.len() < 2 || argv.len() > 7 {
        return Originate::Refused(format!("-USAGE: {} arguments", argv.len()));
    }
    let bridgeto = argv[0].clone();
    if bridgeto.windows(3).any(|w| w == b":_:") {
        return Originate::Enterprise(text(&bridgeto));
    }
    let check_vars = !text(&bridgeto)
        .to_lowercase()
        .contains("origination_nested_vars=true");
    let mut data = bridgeto;
    while data.first() == Some(&b' ') {
        data.remove(0);
    }
    let mut event: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut adds = Vec::new();
    for (a, b) in [(b'<', b'>'), (b'{', b'}')] {
        while data.first() == Some(&a) {
            match create_brackets(&mut data, a, b, b',', &mut event, &mut adds) {
                Some(rest) => data = c_str(&data[rest..]).to_vec(),
                None => return Originate::Refused("Parse Error!".into()),
            }
        }
    }
    while data.first() == Some(&b' ') {
        data.remove(0);
    }
    let variables = event
        .into_iter()
        .filter(|(_, v)| !(check_vars && var_check(v)))
        .map(|(n, v)| (text(&n), text(&v)))
        .collect();
    Originate::Call {
        variables,
        names_set: adds.iter().map(|n| text(n)).collect(),
        dial: text(&data),
        application: text(&argv[1]),
    }
}

/// `switch_string_var_check_const`: `$`, any backslashes, then `{`.
fn var_check(value: &[u8]) -> bool {
    let mut dol = false;
    for b in value {
        if *b == b'$' {
            dol = true;
        } else if dol {
            if *b == b'{' {
                return true;
            } else if *b != b'\\' {
                dol = false;
            }
        }
    }
    false
}

#[test]
fn the_port_reads_what_freeswitch_was_seen_to_read() {
    // Transcript 00: an unquoted space splits the first argument, whose
    // block then has no end (FreeSWITCH answered DESTINATION_OUT_OF_ORDER).
    let parsed = parse_originate(
        "{fax_ident=TX-STATION-ID,fax_header=TX Header Test}loopback/rxfax/default &txfax(/srv/fs/test.tif)",
    );
    assert_eq!(parsed, Originate::Refused("Parse Error!".into()));
    // Quoted, it is one value.
    let Originate::Call {
        variables,
        dial,
        application,
        ..
    } = parse_originate(
        "{fax_ident=TX-STATION-ID,fax_header='TX Header Test'}loopback/rxfax/default &txfax(/srv/fs/test.tif)",
    )
    else {
        panic!("not a call");
    };
    assert_eq!(
        variables,
        vec![
            ("fax_ident".into(), "TX-STATION-ID".into()),
            ("fax_header".into(), "TX Header Test".into())
        ]
    );
    assert_eq!(dial, "loopback/rxfax/default");
    assert_eq!(application, "&txfax(/srv/fs/test.tif)");
    // The report of issue 25: a comma in a quoted value starts a new
    // variable.
    let Originate::Call { variables, .. } = parse_originate(
        "{origination_caller_id_number='5559001,api_on_answer=system touch /tmp/x'}sofia/gw/1 &txfax(/x)",
    ) else {
        panic!("not a call");
    };
    assert!(
        variables.iter().any(|(n, _)| n == "api_on_answer"),
        "{variables:?}"
    );
    // `^^;` changes a block's separator; `${` is refused; `:_:` splits.
    let Originate::Call { variables, .. } = parse_originate("{^^;a=1,2;b=${x}}user/1 &txfax(/x)")
    else {
        panic!("not a call");
    };
    assert_eq!(variables, vec![("a".into(), "1,2".into())]);
    assert!(matches!(
        parse_originate("{a=1:_:b}user/1 &txfax(/x)"),
        Originate::Enterprise(_)
    ));
}

/// `switch_url_decode` (switch_utils.c), which mod_spandsp applies to
/// `fax_ident`, `fax_header` and `fax_timezone` (mod_spandsp_fax.c).
pub fn switch_url_decode(value: &str) -> Vec<u8> {
    let s = value.as_bytes();
    if !s.contains(&b'%') {
        return s.to_vec();
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        // sscanf("%2x") reads one or two hex digits.
        let hex: Vec<u8> = s[i + 1..]
            .iter()
            .take(2)
            .take_while(|b| b.is_ascii_hexdigit())
            .copied()
            .collect();
        if s[i] == b'%' && s.len() - i > 2 && !hex.is_empty() {
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Faxbox's variables, through the port: every value arrives as exactly
/// one variable holding `channel_value` of it, and no other variable; what
/// mod_spandsp decodes from it is the exact text.
fn round_trip(values: &[&str]) {
    use faxbox::lines::freeswitch::variables::{OriginateVariables, channel_value};
    const NAMES: [&str; 4] = [
        "fax_header",
        "fax_ident",
        "origination_caller_id_name",
        "fax_timezone",
    ];
    let mut vars = OriginateVariables::new();
    vars.set("origination_uuid", "0f1e2d3c-0000-4000-8000-00000000abcd");
    for (name, value) in NAMES.iter().zip(values) {
        vars.set(name, value);
    }
    let args = format!(
        "{}sofia/gateway/standin/5551234 &txfax(/srv/fax/1.tif)",
        vars.command_prefix()
    );
    assert!(!args.contains(['\r', '\n']), "{args:?}");
    let parsed = parse_originate(&args);
    let Originate::Call {
        variables,
        names_set,
        dial,
        application,
    } = parsed
    else {
        panic!("{values:?} made FreeSWITCH read {parsed:?} from {args:?}");
    };
    let mut want = vec![(
        "origination_uuid".to_owned(),
        "0f1e2d3c-0000-4000-8000-00000000abcd".to_owned(),
    )];
    for (name, value) in NAMES.iter().zip(values) {
        let held = channel_value(name, value);
        if name.starts_with("fax_") {
            let text: String = value.chars().filter(|c| *c != '\0').collect();
            let text = if text.is_empty() { " ".into() } else { text };
            assert_eq!(
                String::from_utf8(switch_url_decode(&held)).unwrap(),
                text,
                "mod_spandsp reads {name} as typed"
            );
        }
        want.push(((*name).to_owned(), held));
    }
    let mut got = variables.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{values:?} as {args:?}");
    let mut names: Vec<String> = want.iter().map(|(n, _)| n.clone()).collect();
    let mut set = names_set.clone();
    names.sort();
    set.sort();
    assert_eq!(set, names, "no variable other than ours: {args:?}");
    assert_eq!(dial, "sofia/gateway/standin/5551234");
    assert_eq!(application, "&txfax(/srv/fax/1.tif)");
}

#[test]
fn every_free_text_value_arrives_as_one_variable_with_its_exact_text() {
    let nasty = [
        "ACME, Dental",
        "5559001,api_on_answer=system touch /tmp/x",
        "it's O'Brien's",
        "'quoted'",
        "{curly}",
        "}x{",
        "<angle>",
        "}<{>",
        "^^;a=b;c=d",
        "^^,x",
        "a=b=c",
        "line one\nline two\r\n",
        "tab\there",
        "  leading and trailing  ",
        "back\\slash \\n \\s \\' \\\\",
        "\"double\" quotes",
        "x:_:user/5551234",
        "origination_nested_vars=true ${system(touch /tmp/x)}",
        "ORIGINATION_NESTED_VARS=TRUE",
        "Cost ${5} and $\\{6}",
        "[per-leg]",
        "%41 url %0A",
        "naïve Zürich 東京",
        "",
        " ",
        "\\",
        "'",
        "a'b",
        "trailing backslash\\",
        "undef",
        "&txfax(/etc/passwd)",
    ];
    for (i, value) in nasty.iter().enumerate() {
        let other = nasty[(i + 7) % nasty.len()];
        round_trip(&[value, other, value, "Europe/Paris"]);
    }
    // And random text over the characters that matter to the parsers.
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(25);
    let alphabet: Vec<char> = " ,'\"\\{}<>[]^=:_$&|\n\r\tanstx0é".chars().collect();
    for _ in 0..3000 {
        let mut values = Vec::new();
        for _ in 0..4 {
            let len = rng.random_range(0..24);
            values.push(
                (0..len)
                    .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                    .collect::<String>(),
            );
        }
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        round_trip(&refs);
    }
}
