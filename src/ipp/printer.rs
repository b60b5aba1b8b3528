//! What a FaxOut printer says about itself (Get-Printer-Attributes): the
//! attributes PWG 5100.15 (FaxOut) and PWG 5100.14 (IPP Everywhere) ask
//! for, and the TXT record of its DNS-SD announcement, from one faxbox.

use std::collections::BTreeMap;

use ipp::attribute::IppAttribute;
use ipp::value::IppValue;

use super::wire::{
    attr, charset, keyword, keywords, language, mime, mimes, name, one_or_set, text, uri,
    uri_scheme,
};
use crate::model::Faxbox;

/// The document formats a faxbox takes from a print dialog. PWG Raster and
/// Apple URF are what IPP Everywhere and AirPrint clients send; PDF and
/// JPEG are what CUPS and Windows send; octet-stream lets the box sniff.
pub const FORMATS: &[&str] = &[
    "application/pdf",
    "image/jpeg",
    "image/pwg-raster",
    "image/urf",
    "application/octet-stream",
];

/// The IPP operations of a FaxOut printer, by their RFC 8011 codes.
pub const OPERATIONS: &[(u16, &str)] = &[
    (0x0002, "Print-Job"),
    (0x0004, "Validate-Job"),
    (0x0005, "Create-Job"),
    (0x0006, "Send-Document"),
    (0x0008, "Cancel-Job"),
    (0x0009, "Get-Job-Attributes"),
    (0x000A, "Get-Jobs"),
    (0x000B, "Get-Printer-Attributes"),
];

/// Most destinations one print job may name, whatever its account allows
/// (the highest `max_recipients_per_fax`); the account's setting is the
/// limit within it.
pub const MAX_DESTINATIONS: usize = 1000;

/// The Apple raster capabilities: version 1.4, 8-bit gray, one copy,
/// 200 and 300 dpi, one-sided.
pub const URF: &str = "V1.4,W8,CP1,RS200-300,IS1,DM1";

/// Where a printer is reached and how its state reads right now.
pub struct PrinterView<'a> {
    pub faxbox: &'a Faxbox,
    /// `ipp://host:port/ipp/faxout/<id>` as the client addressed it.
    pub uri: String,
    /// `http://host:port/ipp/faxout/<id>`: a page about the printer.
    pub more_info: String,
    /// Whether jobs need a login (`ipp.require_auth`).
    pub basic_auth: bool,
    /// A fax of this faxbox is on a line.
    pub sending: bool,
    /// Print jobs not yet finished.
    pub queued: i32,
    /// Seconds since the epoch (IPP's printer-up-time clock here).
    pub up_time: i32,
    /// Seconds a Create-Job waits for its Send-Document.
    pub document_timeout: i32,
}

/// A stable UUID for a faxbox (its id is 32 hex digits, the size of one).
pub fn printer_uuid(faxbox: &Faxbox) -> String {
    use sha2::Digest;
    let id = faxbox.id.as_str();
    let hex: String = if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        id.to_ascii_lowercase()
    } else {
        hex::encode(&sha2::Sha256::digest(id.as_bytes())[..16])
    };
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn collection(members: &[(&str, IppValue)]) -> IppValue {
    let map: BTreeMap<ipp::value::IppName, IppValue> = members
        .iter()
        .map(|(k, v)| (ipp::value::IppName::new_truncated(*k), v.clone()))
        .collect();
    IppValue::Collection(map)
}

fn media_col(width: i32, length: i32) -> IppValue {
    collection(&[
        (
            "media-size",
            collection(&[
                ("x-dimension", IppValue::Integer(width)),
                ("y-dimension", IppValue::Integer(length)),
            ]),
        ),
        ("media-bottom-margin", IppValue::Integer(0)),
        ("media-left-margin", IppValue::Integer(0)),
        ("media-right-margin", IppValue::Integer(0)),
        ("media-top-margin", IppValue::Integer(0)),
        ("media-source", keyword("main")),
        ("media-type", keyword("stationery")),
    ])
}

/// Every printer attribute, in a stable order.
pub fn attributes(view: &PrinterView<'_>) -> Vec<IppAttribute> {
    let mut all = documents_and_jobs();
    all.extend(media());
    all.extend(printer(view));
    all
}

/// Letter and A4, in hundredths of a millimetre.
const LETTER: (i32, i32) = (21590, 27940);
const A4: (i32, i32) = (21000, 29700);

/// A resolution in dots per inch (RFC 8011 section 5.1.16: units 3).
fn dpi(x: i32) -> IppValue {
    IppValue::Resolution {
        cross_feed: x,
        feed: x,
        units: 3,
    }
}

/// What a job and its documents may be: character sets, formats, copies,
/// the attributes a Create-Job takes.
fn documents_and_jobs() -> Vec<IppAttribute> {
    vec![
        attr("charset-configured", charset("utf-8")),
        attr(
            "charset-supported",
            one_or_set(vec![charset("utf-8"), charset("us-ascii")]),
        ),
        attr("color-supported", IppValue::Boolean(false)),
        attr("compression-supported", keyword("none")),
        attr("copies-default", IppValue::Integer(1)),
        attr(
            "copies-supported",
            IppValue::RangeOfInteger { min: 1, max: 1 },
        ),
        attr("destination-uri-schemes-supported", uri_scheme("tel")),
        attr("destination-uris-supported", keyword("destination-uri")),
        attr("document-format-default", mime("application/pdf")),
        attr("document-format-supported", mimes(FORMATS)),
        attr("finishings-default", IppValue::Enum(3)),
        attr("finishings-supported", IppValue::Enum(3)),
        attr("generated-natural-language-supported", language("en")),
        attr("ipp-features-supported", keyword("faxout")),
        attr("ipp-versions-supported", keywords(&["1.0", "1.1", "2.0"])),
        attr(
            "job-creation-attributes-supported",
            keywords(&["cover-sheet-info", "destination-uris", "media"]),
        ),
        // PWG 5100.15: the members of cover-sheet-info a cover page prints.
        attr(
            "cover-sheet-info-supported",
            keywords(&["from-name", "message", "subject", "to-name"]),
        ),
        attr("job-ids-supported", IppValue::Boolean(true)),
        attr("kind", keyword("document")),
    ]
}

/// The paper: Letter and A4, no margins, one tray.
fn media() -> Vec<IppAttribute> {
    vec![
        attr("media-col-default", media_col(LETTER.0, LETTER.1)),
        attr(
            "media-col-ready",
            one_or_set(vec![media_col(LETTER.0, LETTER.1), media_col(A4.0, A4.1)]),
        ),
        attr(
            "media-col-supported",
            keywords(&[
                "media-bottom-margin",
                "media-left-margin",
                "media-right-margin",
                "media-size",
                "media-source",
                "media-top-margin",
                "media-type",
            ]),
        ),
        attr("media-default", keyword("na_letter_8.5x11in")),
        attr(
            "media-ready",
            keywords(&["na_letter_8.5x11in", "iso_a4_210x297mm"]),
        ),
        attr("media-bottom-margin-supported", IppValue::Integer(0)),
        attr("media-left-margin-supported", IppValue::Integer(0)),
        attr("media-right-margin-supported", IppValue::Integer(0)),
        attr("media-top-margin-supported", IppValue::Integer(0)),
        attr(
            "media-size-supported",
            one_or_set(vec![
                collection(&[
                    ("x-dimension", IppValue::Integer(LETTER.0)),
                    ("y-dimension", IppValue::Integer(LETTER.1)),
                ]),
                collection(&[
                    ("x-dimension", IppValue::Integer(A4.0)),
                    ("y-dimension", IppValue::Integer(A4.1)),
                ]),
            ]),
        ),
        attr("media-source-supported", keyword("main")),
        attr(
            "media-supported",
            keywords(&["na_letter_8.5x11in", "iso_a4_210x297mm"]),
        ),
        attr("media-type-supported", keyword("stationery")),
    ]
}

/// The printer itself and its state: who it is, where, what it can do now.
fn printer(view: &PrinterView<'_>) -> Vec<IppAttribute> {
    let f = view.faxbox;
    vec![
        attr(
            "multiple-destination-uris-supported",
            IppValue::Boolean(true),
        ),
        attr("multiple-document-jobs-supported", IppValue::Boolean(false)),
        attr(
            "multiple-operation-time-out",
            IppValue::Integer(view.document_timeout),
        ),
        attr("natural-language-configured", language("en")),
        attr(
            "operations-supported",
            one_or_set(
                OPERATIONS
                    .iter()
                    .map(|(code, _)| IppValue::Enum(i32::from(*code)))
                    .collect(),
            ),
        ),
        attr("orientation-requested-default", IppValue::Enum(3)),
        attr("orientation-requested-supported", IppValue::Enum(3)),
        attr("output-bin-default", keyword("face-up")),
        attr("output-bin-supported", keyword("face-up")),
        attr("pages-per-minute", IppValue::Integer(1)),
        attr("pdl-override-supported", keyword("attempted")),
        attr("print-color-mode-default", keyword("monochrome")),
        attr("print-color-mode-supported", keyword("monochrome")),
        attr("print-quality-default", IppValue::Enum(4)),
        attr(
            "print-quality-supported",
            one_or_set(vec![
                IppValue::Enum(3),
                IppValue::Enum(4),
                IppValue::Enum(5),
            ]),
        ),
        attr(
            "printer-info",
            text(&format!("Fax from the faxbox {}", f.name)),
        ),
        attr("printer-is-accepting-jobs", IppValue::Boolean(true)),
        attr("printer-location", text("")),
        attr("printer-make-and-model", text("Faxbox FaxOut")),
        attr("printer-more-info", uri(&view.more_info)),
        attr("printer-name", name(&f.name)),
        attr("printer-resolution-default", dpi(200)),
        attr(
            "printer-resolution-supported",
            one_or_set(vec![dpi(200), dpi(300)]),
        ),
        attr(
            "printer-state",
            IppValue::Enum(if view.sending { 4 } else { 3 }),
        ),
        attr("printer-state-reasons", keyword("none")),
        attr("printer-up-time", IppValue::Integer(view.up_time.max(1))),
        attr("printer-uri-supported", uri(&view.uri)),
        attr(
            "printer-uuid",
            uri(&format!("urn:uuid:{}", printer_uuid(f))),
        ),
        attr(
            "pwg-raster-document-resolution-supported",
            one_or_set(vec![dpi(200), dpi(300)]),
        ),
        attr("pwg-raster-document-sheet-back", keyword("normal")),
        attr(
            "pwg-raster-document-type-supported",
            keywords(&["black_1", "sgray_8"]),
        ),
        attr("queued-job-count", IppValue::Integer(view.queued)),
        attr("sides-default", keyword("one-sided")),
        attr("sides-supported", keyword("one-sided")),
        attr(
            "uri-authentication-supported",
            keyword(if view.basic_auth { "basic" } else { "none" }),
        ),
        attr("uri-security-supported", keyword("none")),
        attr(
            "urf-supported",
            keywords(&URF.split(',').collect::<Vec<_>>()),
        ),
        attr(
            "which-jobs-supported",
            keywords(&["completed", "not-completed", "all"]),
        ),
    ]
}

/// The attributes a request asked for: all of them for `all`, the
/// `printer-description` or `job-template` groups or no list at all.
pub fn select(all: Vec<IppAttribute>, requested: &[String]) -> Vec<IppAttribute> {
    if requested.is_empty()
        || requested
            .iter()
            .any(|r| matches!(r.as_str(), "all" | "printer-description" | "job-template"))
    {
        return all;
    }
    all.into_iter()
        .filter(|a| requested.iter().any(|r| r == a.name().as_str()))
        .collect()
}

/// The DNS-SD TXT record of PWG 5100.15 / Bonjour Printing for one printer.
pub fn txt_record(faxbox: &Faxbox, basic_auth: bool) -> Vec<(String, String)> {
    let mut txt = vec![
        ("txtvers", "1".to_owned()),
        ("qtotal", "1".to_owned()),
        ("rp", format!("ipp/faxout/{}", faxbox.id)),
        // The FaxOut service's own path: CUPS resolves a discovered fax
        // printer to ipp://host:port/<rfo> (cups/http-support.c), and each
        // faxbox's printer answers only at its own path.
        ("rfo", format!("ipp/faxout/{}", faxbox.id)),
        ("ty", format!("Faxbox {}", faxbox.name)),
        ("product", "(Faxbox FaxOut)".to_owned()),
        ("note", String::new()),
        ("pdl", FORMATS[..4].join(",")),
        ("URF", URF.to_owned()),
        ("UUID", printer_uuid(faxbox)),
        ("Fax", "T".to_owned()),
        ("Color", "F".to_owned()),
        ("Duplex", "F".to_owned()),
        ("kind", "document".to_owned()),
        ("priority", "50".to_owned()),
    ];
    if basic_auth {
        txt.push(("air", "username,password".to_owned()));
    }
    txt.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_follows_the_requested_names_and_groups() {
        let all = vec![
            attr("printer-name", name("x")),
            attr("printer-state", IppValue::Enum(3)),
        ];
        let names = |v: Vec<IppAttribute>| -> Vec<String> {
            v.iter().map(|a| a.name().to_string()).collect()
        };
        assert_eq!(names(select(all.clone(), &[])).len(), 2);
        assert_eq!(names(select(all.clone(), &["all".into()])).len(), 2);
        assert_eq!(
            names(select(
                all.clone(),
                &["printer-state".into(), "nope".into()]
            )),
            ["printer-state"]
        );
        assert!(select(all, &["nope".into()]).is_empty());
    }

    #[test]
    fn each_attribute_is_named_once_and_the_paper_is_letter_and_a4() {
        let parts = [documents_and_jobs(), media()];
        let names: Vec<String> = parts
            .iter()
            .flatten()
            .map(|a| a.name().to_string())
            .collect();
        let mut once = names.clone();
        once.sort();
        once.dedup();
        assert_eq!(once.len(), names.len(), "{names:?}");
        assert!(
            media().iter().all(|a| a.name().starts_with("media-")),
            "{names:?}"
        );
        let sizes = media()
            .into_iter()
            .find(|a| a.name().as_str() == "media-size-supported")
            .unwrap();
        let IppValue::Array(sizes) = sizes.value() else {
            panic!("{sizes:?}");
        };
        let widths: Vec<&IppValue> = sizes
            .iter()
            .filter_map(|size| match size {
                IppValue::Collection(c) => c.get("x-dimension"),
                _ => None,
            })
            .collect();
        assert_eq!(
            widths,
            [&IppValue::Integer(21590), &IppValue::Integer(21000)]
        );
    }
}
