//! What a fax's cover page says (issue 22): whether it has one, and its
//! facts read from the fax and its faxbox. Drawing the page is
//! `documents::cover`'s; the attempt puts it before the document when it
//! makes the fax image, so the page count on it is the real one and the
//! document is never stored twice.

use crate::documents::cover::{self, CoverFacts};
use crate::model::{Fax, Faxbox, UnixTime};
use crate::timezone::Zone;

/// Whether `fax` goes with a cover page: its own `cover_page`, else its
/// faxbox's `cover_page.enabled`.
pub fn wanted(fax: &Fax, faxbox: Option<&Faxbox>) -> bool {
    fax.cover_page
        .unwrap_or_else(|| faxbox.is_some_and(|f| f.cover_page.enabled))
}

/// The facts on `fax`'s cover page, for a fax of `pages` pages in all (the
/// cover included). The date is the day the fax was handed in, in its own
/// time zone, else its faxbox's, else the box's.
pub fn facts(fax: &Fax, faxbox: Option<&Faxbox>, pages: u32) -> CoverFacts {
    let zone = Zone::of(
        fax.fax_timezone
            .as_deref()
            .or(faxbox.and_then(|f| f.fax_timezone.as_deref())),
    );
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    CoverFacts {
        // Kazoo's to_name defaults to the number (docs/kazoo.md 1.3).
        to_name: fax
            .to_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| fax.to_number.clone()),
        to_number: fax.to_number.clone(),
        from_name: text(&fax.from_name),
        from_number: text(&fax.from_number),
        subject: text(&fax.subject),
        note: text(&fax.cover_note),
        pages,
        date: date_of(fax.created, zone),
    }
}

/// `t` as the cover prints it: `2026-12-05 09:14 (UTC+01:00)`.
pub fn date_of(t: UnixTime, zone: Zone) -> String {
    let stamp = zone.rfc3339(t);
    let offset = match stamp.get(19..) {
        Some("Z") | None => "+00:00",
        Some(o) => o,
    };
    format!(
        "{} {} (UTC{offset})",
        stamp.get(..10).unwrap_or_default(),
        stamp.get(11..16).unwrap_or_default()
    )
}

/// `fax_tiff` (the document's pages) with `fax`'s cover page first, and
/// the new page count.
pub fn put_first(
    fax: &Fax,
    faxbox: Option<&Faxbox>,
    fax_tiff: &[u8],
    document_pages: u32,
) -> Result<(Vec<u8>, u32), crate::documents::DocumentError> {
    let pages = document_pages.saturating_add(1);
    let template = faxbox.and_then(|f| f.cover_page.template.as_deref());
    let sheet = cover::fill(template, &facts(fax, faxbox, pages));
    Ok((cover::put_first(&sheet, fax_tiff)?, pages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_carry_their_zone() {
        let t = 1_796_461_200; // 2026-12-05 09:00 UTC
        let berlin = Zone::of(Some("Europe/Berlin"));
        assert_eq!(date_of(t, berlin), "2026-12-05 10:00 (UTC+01:00)");
        let utc = Zone::of(Some("UTC"));
        assert_eq!(date_of(t, utc), "2026-12-05 09:00 (UTC+00:00)");
    }
}
