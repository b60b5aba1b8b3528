//! The cover page (issue 22): a template filled with a fax's facts (to,
//! from, subject, total pages, date, note) and drawn as one fax page with
//! the text pages' own pen (`text::Pen`), then put before the document's
//! pages. Pure: the caller gives the facts (`crate::cover` reads them from
//! the fax and its faxbox) and the fax image; nothing here is stored.
//!
//! The template language (the built-in template is
//! `assets/templates/cover_page.txt`), one page line per template line:
//! `# text` is the title (28 pt bold, centred), `## text` a heading
//! (16 pt bold), `---` a rule across the page, any other line body text
//! (13 pt) in which `**...**` is bold. `{field}` is replaced by a fact
//! (`FIELDS`), `{{` and `}}` stand for braces. A fact never becomes markup:
//! a subject written `**x**` is printed as written. Sizes are chosen for
//! standard resolution (98 lines per inch): 13 pt is about 22 lines of the
//! page per text line, as legible as a typed letter faxed.

use super::DocumentError;
use super::faxtiff::{self, BitPage, EncodedPage};
use super::raster::Geometry;
use super::text::{BOLD_FONT, FONT, Pen};

/// The built-in template.
pub const BUILT_IN: &str = include_str!("../../assets/templates/cover_page.txt");

/// The facts a template may name, as `{to_name}` and so on.
pub const FIELDS: [&str; 8] = [
    "to_name",
    "to_number",
    "from_name",
    "from_number",
    "subject",
    "pages",
    "date",
    "note",
];

/// The longest template a faxbox may keep, in bytes: a page of text.
pub const MAX_TEMPLATE_BYTES: usize = 8 * 1024;
/// The most characters of a name, a number or the subject put on the page.
const MAX_FIELD_CHARS: usize = 200;
/// The most characters and lines of the note put on the page; the page
/// itself is the final bound (what does not fit ends in an ellipsis line).
pub const MAX_NOTE_CHARS: usize = 4000;
const MAX_NOTE_LINES: usize = 60;

/// What a cover page says about its fax. Any text is accepted: control
/// characters are dropped and over-long values cut when it is filled in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoverFacts {
    pub to_name: String,
    pub to_number: String,
    pub from_name: String,
    pub from_number: String,
    pub subject: String,
    pub note: String,
    /// Every page of the fax, the cover included.
    pub pages: u32,
    /// The date as it is to be printed (in the faxbox's time zone).
    pub date: String,
}

impl CoverFacts {
    fn value(&self, field: &str) -> Option<String> {
        let short = |s: &str| clean(s, MAX_FIELD_CHARS, false);
        Some(match field {
            "to_name" => short(&self.to_name),
            "to_number" => short(&self.to_number),
            "from_name" => short(&self.from_name),
            "from_number" => short(&self.from_number),
            "subject" => short(&self.subject),
            "pages" => self.pages.to_string(),
            "date" => short(&self.date),
            "note" => clean(&self.note, MAX_NOTE_CHARS, true),
            _ => return None,
        })
    }
}

/// How a line of the page is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Title,
    Heading,
    Body,
    Rule,
}

/// A stretch of a line in one weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub bold: bool,
    pub text: String,
}

/// One line of the filled template (long lines wrap when drawn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverLine {
    pub style: Style,
    pub runs: Vec<Run>,
}

/// A filled template: what the cover page says, before it is drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverSheet {
    pub lines: Vec<CoverLine>,
}

/// A note as an intake keeps it: its first `MAX_NOTE_CHARS` characters,
/// an ellipsis marking a cut (an email's text may be megabytes; the page
/// holds about this much).
pub fn bounded_note(text: &str) -> String {
    match text.char_indices().nth(MAX_NOTE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Checks a faxbox's own template: not too long, and every `{...}` names a
/// fact. The error is for the person who wrote it.
pub fn check_template(template: &str) -> Result<(), String> {
    if template.len() > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "the cover page template is {} bytes; it may have at most {MAX_TEMPLATE_BYTES} (one page)",
            template.len()
        ));
    }
    for (number, line) in template.lines().enumerate() {
        let (_, body) = style_of(line);
        substitute(body, None)
            .map_err(|e| format!("line {} of the cover page template: {e}", number + 1))?;
    }
    Ok(())
}

/// Fills `template` (the built-in one when `None`) with `facts`. A
/// template that fails `check_template` still fills: what it names wrongly
/// is printed as written.
pub fn fill(template: Option<&str>, facts: &CoverFacts) -> CoverSheet {
    let template = template.unwrap_or(BUILT_IN);
    let mut lines = Vec::new();
    for line in template.lines() {
        let (style, body) = style_of(line);
        if style == Style::Rule {
            lines.push(CoverLine {
                style,
                runs: Vec::new(),
            });
            continue;
        }
        // Title and heading lines are bold throughout; `**` only in body text.
        let runs = match style {
            Style::Body => bold_runs(body),
            _ => vec![Run {
                bold: true,
                text: body.to_owned(),
            }],
        };
        // A value may hold line breaks (the note): each starts a page line
        // of the same style, and bold goes on across it.
        let mut current = CoverLine {
            style,
            runs: Vec::new(),
        };
        for run in runs {
            let text = substitute(&run.text, Some(facts)).unwrap_or(run.text);
            let mut pieces = text.split('\n').peekable();
            while let Some(piece) = pieces.next() {
                if !piece.is_empty() {
                    current.runs.push(Run {
                        bold: run.bold,
                        text: piece.to_owned(),
                    });
                }
                if pieces.peek().is_some() {
                    let next = CoverLine {
                        style,
                        runs: Vec::new(),
                    };
                    lines.push(std::mem::replace(&mut current, next));
                }
            }
        }
        lines.push(current);
    }
    CoverSheet { lines }
}

impl CoverSheet {
    /// The page's words without markup, a line each (for tests and logs).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line.style {
                Style::Rule => out.push_str("---"),
                _ => line.runs.iter().for_each(|r| out.push_str(&r.text)),
            }
            out.push('\n');
        }
        out
    }

    /// Draws the page at a fax page's size and resolution.
    pub fn draw(
        &self,
        width: u32,
        height: u32,
        x_dpi: f32,
        y_dpi: f32,
    ) -> Result<BitPage, DocumentError> {
        let geom = Geometry {
            width,
            height,
            x_dpi,
            y_dpi,
        };
        Drawing::new(geom)?.page(self)
    }
}

/// Puts the cover page before the pages of `fax_tiff`, drawn at the size
/// and resolution of its first page. The document's pages are copied as
/// coded where they are Faxbox's own G4 strips, so the cover costs one
/// page's drawing, never a second rendering of the document.
pub fn put_first(sheet: &CoverSheet, fax_tiff: &[u8]) -> Result<Vec<u8>, DocumentError> {
    let stored = faxtiff::stored_pages(fax_tiff)?;
    let Some(first) = stored.first() else {
        return Err(DocumentError::NoPages {
            name: "the fax".into(),
        });
    };
    let cover = sheet.draw(first.width, first.height, first.x_dpi, first.y_dpi)?;
    let mut pages = vec![EncodedPage::encode(&cover)];
    let mut decoded: Option<Vec<BitPage>> = None;
    for (index, page) in stored.iter().enumerate() {
        match page.single_strip {
            Some(strip) if page.compression == 4 && !page.reversed_fill && !page.min_is_black => {
                pages.push(EncodedPage {
                    width: page.width,
                    height: page.height,
                    x_dpi: page.x_dpi,
                    y_dpi: page.y_dpi,
                    g4: strip.to_vec(),
                })
            }
            _ => {
                if decoded.is_none() {
                    decoded = Some(faxtiff::decode_fax_tiff(fax_tiff)?);
                }
                let page = decoded
                    .as_ref()
                    .and_then(|all| all.get(index))
                    .ok_or_else(|| DocumentError::bad_tiff("its pages could not be read"))?;
                pages.push(EncodedPage::encode(page));
            }
        }
    }
    faxtiff::write_tiff(&pages)
}

/// The style a template line asks for, and its text without the marker.
fn style_of(line: &str) -> (Style, &str) {
    let line = line.trim_end();
    if line.len() >= 3 && line.chars().all(|c| c == '-') {
        (Style::Rule, "")
    } else if let Some(rest) = line.strip_prefix("## ") {
        (Style::Heading, rest)
    } else if let Some(rest) = line.strip_prefix("# ") {
        (Style::Title, rest)
    } else {
        (Style::Body, line)
    }
}

/// Splits body text at each `**` into runs of alternating weight.
fn bold_runs(text: &str) -> Vec<Run> {
    text.split("**")
        .enumerate()
        .filter(|(_, t)| !t.is_empty())
        .map(|(i, t)| Run {
            bold: i % 2 == 1,
            text: t.to_owned(),
        })
        .collect()
}

/// Replaces each `{field}` with its fact (`facts` `None`: only checks),
/// `{{` and `}}` with braces.
fn substitute(text: &str, facts: Option<&CoverFacts>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['{', '}']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err("a '}' closes no field (write '}}' for a brace)".into());
        }
        let Some(end) = tail.find('}') else {
            return Err("a '{' is not closed (write '{{' for a brace)".into());
        };
        let name = &tail[1..end];
        match facts {
            _ if !FIELDS.contains(&name) => {
                return Err(format!(
                    "{{{name}}} is not a field; the fields are {}",
                    FIELDS.map(|f| format!("{{{f}}}")).join(", ")
                ));
            }
            Some(facts) => out.push_str(&facts.value(name).unwrap_or_default()),
            None => {}
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A value as it may be printed: line ends made one, tabs as spaces,
/// control and direction-changing characters dropped, at most `max`
/// characters (and for the note, lines) kept, an ellipsis marking a cut.
fn clean(value: &str, max: usize, keep_lines: bool) -> String {
    let mut out = String::new();
    let (mut chars, mut lines) = (0, 1);
    let mut source = value.chars().peekable();
    while let Some(c) = source.next() {
        let c = match c {
            '\r' if source.peek() == Some(&'\n') => continue,
            '\r' | '\n' | '\u{2028}' | '\u{2029}' if keep_lines => '\n',
            '\r' | '\n' | '\t' | '\u{2028}' | '\u{2029}' => ' ',
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => continue,
            '\u{FEFF}' => continue,
            c if c.is_control() => continue,
            c => c,
        };
        if chars == max || (c == '\n' && lines == MAX_NOTE_LINES) {
            out.push('…');
            break;
        }
        if c == '\n' {
            lines += 1;
        }
        out.push(c);
        chars += 1;
    }
    out
}

const TITLE_PT: f32 = 28.0;
const HEADING_PT: f32 = 16.0;
const BODY_PT: f32 = 13.0;
const LINE_SPACING: f32 = 1.3;
const SIDE_MARGIN_IN: f32 = 0.75;
const TOP_MARGIN_IN: f32 = 0.6;
/// What ends a page whose text runs past its bottom.
const CUT_MARK: &str = "[... more than fits on this page]";

/// The pens and measures of one cover page.
struct Drawing {
    geom: Geometry,
    title: Pen,
    heading: Pen,
    body: Pen,
    body_bold: Pen,
}

impl Drawing {
    fn new(geom: Geometry) -> Result<Drawing, DocumentError> {
        let pen = |face, size| {
            Pen::new(face, size, &geom).ok_or_else(|| DocumentError::RendererFailed {
                name: "the cover page".into(),
                page: 1,
            })
        };
        Ok(Drawing {
            title: pen(BOLD_FONT, TITLE_PT)?,
            heading: pen(BOLD_FONT, HEADING_PT)?,
            body: pen(FONT, BODY_PT)?,
            body_bold: pen(BOLD_FONT, BODY_PT)?,
            geom,
        })
    }

    fn line_px(&self, points: f32) -> f32 {
        points * LINE_SPACING / 72.0 * self.geom.y_dpi
    }

    fn page(mut self, sheet: &CoverSheet) -> Result<BitPage, DocumentError> {
        let g = self.geom;
        let mut page = BitPage::new(g.width, g.height, g.x_dpi, g.y_dpi);
        let left = SIDE_MARGIN_IN * g.x_dpi;
        let width = g.width as f32 - 2.0 * left;
        let top = TOP_MARGIN_IN * g.y_dpi;
        // The last body line of the page is kept for the cut mark.
        let bottom = g.height as f32 - top - self.line_px(BODY_PT);
        let mut y = top;
        for line in &sheet.lines {
            if line.style == Style::Rule {
                let gap = 0.08 * g.y_dpi;
                let thick = (0.02 * g.y_dpi).max(2.0);
                if y + 2.0 * gap + thick > bottom {
                    break;
                }
                fill_rows(&mut page, left, width, y + gap, thick);
                y += 2.0 * gap + thick;
                continue;
            }
            let points = match line.style {
                Style::Title => TITLE_PT,
                Style::Heading => HEADING_PT,
                _ => BODY_PT,
            };
            if line.style == Style::Heading {
                y += 0.4 * self.line_px(BODY_PT);
            }
            let cells: Vec<(char, bool)> = line
                .runs
                .iter()
                .flat_map(|r| r.text.chars().map(move |c| (c, r.bold)))
                .collect();
            let advance = self.pen(line.style, false).advance();
            let cols = ((width / advance).floor() as usize).max(1);
            let rows = wrap(&cells, cols);
            let mut fits = true;
            for row in rows {
                let height = self.line_px(points);
                if y + height > bottom {
                    fits = false;
                    break;
                }
                let x0 = match line.style {
                    Style::Title => left + (width - row.len() as f32 * advance) / 2.0,
                    _ => left,
                };
                let baseline = y + self.pen(line.style, false).ascent();
                for (i, &(c, bold)) in row.iter().enumerate() {
                    let x = x0 + i as f32 * advance;
                    self.pen(line.style, bold).draw(&mut page, c, x, baseline);
                }
                y += height;
            }
            if !fits {
                let baseline = y + self.body.ascent();
                let advance = self.body.advance();
                for (i, c) in CUT_MARK.chars().enumerate() {
                    self.body
                        .draw(&mut page, c, left + i as f32 * advance, baseline);
                }
                break;
            }
        }
        Ok(page)
    }

    fn pen(&mut self, style: Style, bold: bool) -> &mut Pen {
        match (style, bold) {
            (Style::Title, _) => &mut self.title,
            (Style::Heading, _) => &mut self.heading,
            (_, true) => &mut self.body_bold,
            (_, false) => &mut self.body,
        }
    }
}

/// Blackens `thick` rows from `y` between `left` and `left + width`.
fn fill_rows(page: &mut BitPage, left: f32, width: f32, y: f32, thick: f32) {
    let (x0, x1) = (left.round() as u32, (left + width).round() as u32);
    let (y0, y1) = (y.round() as u32, (y + thick).round() as u32);
    for row in y0..y1.min(page.height) {
        for x in x0..x1.min(page.width) {
            page.set(x, row, true);
        }
    }
}

/// Breaks a line into rows of at most `cols` cells, at the last space in
/// a row's second half when there is one (as text pages wrap).
fn wrap(cells: &[(char, bool)], cols: usize) -> Vec<&[(char, bool)]> {
    let mut rows = Vec::new();
    let mut start = 0;
    while start < cells.len() {
        let rest = &cells[start..];
        if rest.len() <= cols {
            rows.push(rest);
            break;
        }
        let cut = rest[..=cols]
            .iter()
            .rposition(|&(c, _)| c == ' ')
            .filter(|&i| i > cols / 2)
            .unwrap_or(cols);
        rows.push(&rest[..cut]);
        start += cut;
        while cells.get(start).is_some_and(|&(c, _)| c == ' ') {
            start += 1;
        }
    }
    if rows.is_empty() {
        rows.push(&[]);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> CoverFacts {
        CoverFacts {
            to_name: "Dr. Ada Smith".into(),
            to_number: "+1 555 0100".into(),
            from_name: "Acme Dental".into(),
            from_number: "+1 555 0199".into(),
            subject: "Referral".into(),
            note: "Please call back.\nThanks!".into(),
            pages: 4,
            date: "2026-12-05 09:14 (UTC+01:00)".into(),
        }
    }

    #[test]
    fn the_built_in_template_names_every_fact() {
        check_template(BUILT_IN).unwrap();
        let text = fill(None, &facts()).text();
        for want in [
            "To:       Dr. Ada Smith",
            "Fax:      +1 555 0100",
            "From:     Acme Dental",
            "Fax:      +1 555 0199",
            "Date:     2026-12-05 09:14 (UTC+01:00)",
            "Pages:    4 (this page included)",
            "Subject:  Referral",
            "Please call back.\nThanks!\n",
        ] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
        assert!(text.starts_with("FAX\n---\n"), "{text}");
    }

    #[test]
    fn a_template_of_ones_own_fills_with_styles_and_braces() {
        let sheet = fill(
            Some("# Memo {subject}\n**Pages** {pages} {{not a field}}\n---\n## For {to_name}"),
            &facts(),
        );
        assert_eq!(sheet.lines.len(), 4);
        assert_eq!(sheet.lines[0].style, Style::Title);
        assert_eq!(sheet.lines[0].runs[0].text, "Memo Referral");
        assert_eq!(
            sheet.lines[1].runs,
            vec![
                Run {
                    bold: true,
                    text: "Pages".into()
                },
                Run {
                    bold: false,
                    text: " 4 {not a field}".into()
                }
            ]
        );
        assert_eq!(sheet.lines[2].style, Style::Rule);
        assert_eq!(sheet.lines[3].style, Style::Heading);
        assert_eq!(sheet.lines[3].runs[0].text, "For Dr. Ada Smith");
    }

    #[test]
    fn facts_never_become_markup_or_fields() {
        let mut f = facts();
        f.subject = "**loud** {note} # no".into();
        let sheet = fill(Some("{subject}"), &f);
        assert_eq!(
            sheet.lines[0].runs,
            vec![Run {
                bold: false,
                text: "**loud** {note} # no".into()
            }]
        );
    }

    #[test]
    fn templates_naming_unknown_fields_or_open_braces_are_refused() {
        let e = check_template("Hello {recipient}").unwrap_err();
        assert!(
            e.contains("line 1") && e.contains("{recipient} is not a field"),
            "{e}"
        );
        assert!(e.contains("{to_name}"), "{e}");
        assert!(
            check_template("a\nb {to_name")
                .unwrap_err()
                .contains("line 2")
        );
        assert!(check_template("x }").is_err());
        assert!(check_template(&"x".repeat(MAX_TEMPLATE_BYTES + 1)).is_err());
        check_template("{{literal}} {to_name}").unwrap();
    }

    #[test]
    fn control_characters_are_dropped_and_long_values_cut() {
        let mut f = facts();
        f.to_name = "Bob\u{0}\u{1b}[2J\u{202E}\tSmith\r\nJr".into();
        f.subject = "s".repeat(5000);
        f.note = format!("{}\r\nend\u{7}", "n".repeat(10)) + &"\n".repeat(500);
        assert_eq!(f.value("to_name").unwrap(), "Bob[2J Smith Jr");
        let subject = f.value("subject").unwrap();
        assert_eq!(subject.chars().count(), MAX_FIELD_CHARS + 1);
        assert!(subject.ends_with('…'));
        let note = f.value("note").unwrap();
        assert!(note.starts_with("nnnnnnnnnn\nend\n"), "{note:?}");
        assert_eq!(note.matches('\n').count(), MAX_NOTE_LINES - 1);
        assert!(note.ends_with('…'));
        f.note = "x".repeat(1_000_000);
        assert_eq!(f.value("note").unwrap().chars().count(), MAX_NOTE_CHARS + 1);
    }

    #[test]
    fn an_intake_keeps_a_bounded_note() {
        assert_eq!(bounded_note("short"), "short");
        let long = "é".repeat(MAX_NOTE_CHARS * 3);
        let kept = bounded_note(&long);
        assert_eq!(kept.chars().count(), MAX_NOTE_CHARS + 1);
        assert!(kept.ends_with('…'));
    }

    #[test]
    fn a_note_longer_than_the_page_ends_in_the_cut_mark_on_one_page() {
        let mut f = facts();
        f.note = "word ".repeat(MAX_NOTE_CHARS);
        let sheet = fill(None, &f);
        let page = sheet.draw(1728, 1078, 204.0, 98.0).unwrap();
        assert_eq!((page.width, page.height), (1728, 1078));
        // The bottom margin stays white: nothing was drawn past the page.
        let margin = (TOP_MARGIN_IN * 98.0) as u32;
        for y in page.height - margin + 2..page.height {
            assert!(page.row(y).iter().all(|&b| b == 0), "row {y} has ink");
        }
        let mut long = facts();
        long.note = "short".into();
        let short = fill(None, &long).draw(1728, 1078, 204.0, 98.0).unwrap();
        assert!(page.black_pixels() > short.black_pixels());
    }

    #[test]
    fn any_text_in_any_field_or_template_fills_and_draws_one_page() {
        // A small generator, so the run is the same every time: control
        // characters, markup, braces, wide and combining characters, and
        // lengths from nothing to far past every bound.
        let mut seed: u64 = 0x2026_1205;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        const PIECES: [&str; 16] = [
            "\u{0}",
            "\r\n",
            "\n",
            "\t",
            "**",
            "{",
            "}",
            "{note}",
            "# ",
            "---",
            "漢字",
            "e\u{301}",
            "\u{202E}",
            "😀",
            "word ",
            "\u{1b}[31m",
        ];
        let mut text = |max: usize| -> String {
            let n = next() % max;
            (0..n).map(|_| PIECES[next() % PIECES.len()]).collect()
        };
        for round in 0..40 {
            let facts = CoverFacts {
                to_name: text(80),
                to_number: text(20),
                from_name: text(80),
                from_number: text(20),
                subject: text(400),
                note: text(if round % 4 == 0 { 20_000 } else { 300 }),
                pages: (round * 997) as u32,
                date: text(10),
            };
            let template = (round % 2 == 1).then(|| text(300));
            let sheet = fill(template.as_deref(), &facts);
            let page = sheet.draw(1728, 1078, 204.0, 98.0).unwrap();
            assert_eq!((page.width, page.height), (1728, 1078), "round {round}");
        }
    }

    #[test]
    fn a_cover_is_legible_at_standard_resolution() {
        // Body text 13 pt: each line at least 20 of the page's 98 lines
        // per inch, and the bold title far larger.
        let standard = Geometry::new(204.0, 98.0, 11.0);
        let d = Drawing::new(standard).unwrap();
        assert!(d.line_px(BODY_PT) >= 20.0, "{}", d.line_px(BODY_PT));
        assert!(d.line_px(TITLE_PT) >= 2.0 * d.line_px(BODY_PT));
        let page = fill(None, &facts())
            .draw(standard.width, standard.height, 204.0, 98.0)
            .unwrap();
        assert!(page.black_pixels() > 5_000, "{}", page.black_pixels());
    }

    #[test]
    fn the_cover_goes_first_and_the_pages_follow_unchanged() {
        let geom = Geometry::new(204.0, 196.0, 297.0 / 25.4);
        let mut doc = BitPage::new(geom.width, geom.height, 204.0, 196.0);
        doc.set(100, 100, true);
        let tiff = faxtiff::encode_fax_tiff(&[doc.clone(), doc.clone()]).unwrap();
        let sheet = fill(None, &facts());
        let both = put_first(&sheet, &tiff).unwrap();
        let pages = faxtiff::decode_fax_tiff(&both).unwrap();
        assert_eq!(pages.len(), 3);
        assert_eq!(pages[1], doc);
        assert_eq!(pages[2], doc);
        // The cover takes the document's size and resolution (A4, fine).
        let cover = sheet.draw(geom.width, geom.height, 204.0, 196.0).unwrap();
        assert_eq!(pages[0], cover);
        assert_ne!(pages[0], doc);
    }
}
