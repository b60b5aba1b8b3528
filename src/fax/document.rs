//! Checking a fax TIFF before a call is placed.
//!
//! SpanDSP only discovers a bad file once the far end has answered (phase C,
//! codes 41-47), which costs a call and reaches the far machine. Faxbox reads
//! the file first, page by page, and refuses anything T.30 over a 215 mm line
//! cannot carry: not a TIFF, no pages, a page that is not bi-level or not
//! 1728 pixels wide (T.4 clause 2.2: 1728 pels on a 215 mm scan line).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use tiff::decoder::Decoder;
use tiff::tags::Tag;

use super::ffi;

/// The only page width a 215 mm fax line carries (T.4 clause 2.2).
pub const FAX_WIDTH: u32 = 1728;
/// More pages than any office fax; also bounds a TIFF whose IFD chain loops.
pub const MAX_PAGES: u32 = 1000;
/// A fax TIFF is a few kilobytes a page; anything this big is a mistake,
/// and reading it whole would only waste memory.
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Why a document cannot be faxed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentProblem {
    #[error("{path}: cannot open the fax document: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: not a TIFF file ({reason})")]
    NotTiff { path: PathBuf, reason: String },
    #[error("{path}: the TIFF file has no pages")]
    NoPages { path: PathBuf },
    #[error("{path}: page {page} is {width} pixels wide; a fax page must be exactly 1728")]
    WrongWidth {
        path: PathBuf,
        page: u32,
        width: u32,
    },
    #[error("{path}: page {page} is not black and white (bi-level) image data")]
    NotBilevel { path: PathBuf, page: u32 },
    #[error("{path}: more than {MAX_PAGES} pages")]
    TooManyPages { path: PathBuf },
    #[error("{path}: {bytes} bytes is far too large for a fax document")]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error("{path}: the file name is too long or not valid for the fax engine")]
    BadPath { path: PathBuf },
}

/// A fax TIFF that has been read and found sendable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaxDocument {
    path: PathBuf,
    pages: u32,
}

impl FaxDocument {
    /// Reads every page's header and checks it can be faxed.
    pub fn open(path: &Path) -> Result<FaxDocument, DocumentProblem> {
        let p = || path.to_owned();
        check_engine_path(path)?;
        let unreadable = |e: std::io::Error| DocumentProblem::Unreadable {
            path: p(),
            reason: e.to_string(),
        };
        let meta = std::fs::metadata(path).map_err(unreadable)?;
        // A folder, a pipe or a device is no document (and reading a pipe
        // could block the caller for ever).
        if !meta.is_file() {
            return Err(DocumentProblem::Unreadable {
                path: p(),
                reason: "not a regular file".into(),
            });
        }
        let size = meta.len();
        if size > MAX_BYTES {
            return Err(DocumentProblem::TooLarge {
                path: p(),
                bytes: size,
            });
        }
        let bytes = std::fs::read(path).map_err(unreadable)?;
        // A well-formed header whose first directory offset is 0 (TIFF 6.0
        // section 2: "an offset of 0 ends the list") is a file with no pages.
        let first_ifd = match bytes.get(..8) {
            Some([b'I', b'I', 42, 0, a, b, c, d]) => Some(u32::from_le_bytes([*a, *b, *c, *d])),
            Some([b'M', b'M', 0, 42, a, b, c, d]) => Some(u32::from_be_bytes([*a, *b, *c, *d])),
            _ => None,
        };
        if first_ifd == Some(0) {
            return Err(DocumentProblem::NoPages { path: p() });
        }
        let mut decoder =
            Decoder::new(Cursor::new(bytes)).map_err(|e| DocumentProblem::NotTiff {
                path: p(),
                reason: e.to_string(),
            })?;
        let mut page = 0u32;
        loop {
            page += 1;
            if page > MAX_PAGES {
                return Err(DocumentProblem::TooManyPages { path: p() });
            }
            let (width, _) = decoder.dimensions().map_err(|e| DocumentProblem::NotTiff {
                path: p(),
                reason: e.to_string(),
            })?;
            if width != FAX_WIDTH {
                return Err(DocumentProblem::WrongWidth {
                    path: p(),
                    page,
                    width,
                });
            }
            let bits = decoder
                .find_tag_unsigned_vec::<u16>(Tag::BitsPerSample)
                .ok()
                .flatten()
                .unwrap_or_else(|| vec![1]);
            let samples = decoder
                .find_tag_unsigned::<u16>(Tag::SamplesPerPixel)
                .ok()
                .flatten()
                .unwrap_or(1);
            if bits != [1] || samples != 1 {
                return Err(DocumentProblem::NotBilevel { path: p(), page });
            }
            if !decoder.more_images() {
                break;
            }
            if let Err(e) = decoder.next_image() {
                return Err(DocumentProblem::NotTiff {
                    path: p(),
                    reason: format!("page {}: {e}", page + 1),
                });
            }
        }
        Ok(FaxDocument {
            path: path.to_owned(),
            pages: page,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn pages(&self) -> u32 {
        self.pages
    }
}

/// SpanDSP copies file names into 256-byte buffers with `strncpy`: a longer
/// name would be cut and a different file opened, so refuse it here.
pub(crate) fn check_engine_path(path: &Path) -> Result<(), DocumentProblem> {
    let ok = path
        .to_str()
        .is_some_and(|s| s.len() <= ffi::MAX_PATH_LEN && !s.contains('\0'));
    if ok {
        Ok(())
    } else {
        Err(DocumentProblem::BadPath {
            path: path.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::faxtiff::{BitPage, encode_fax_tiff};

    /// No input may panic: every truncation and a sprinkling of corrupted
    /// bytes of a valid two-page fax give an answer, never a crash.
    #[test]
    fn damaged_files_give_errors_not_panics() {
        let mut page = BitPage::new(1728, 300, 204.0, 196.0);
        for x in 0..1728 {
            page.set(x, 150, x % 3 == 0);
        }
        let good = encode_fax_tiff(&[page.clone(), page]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.tiff");
        std::fs::write(&path, &good).unwrap();
        assert_eq!(FaxDocument::open(&path).unwrap().pages(), 2);
        let mut refused = 0;
        for cut in (0..good.len()).step_by(13) {
            std::fs::write(&path, &good[..cut]).unwrap();
            refused += usize::from(FaxDocument::open(&path).is_err());
        }
        assert!(refused > 0);
        for i in (0..good.len()).step_by(11) {
            let mut bad = good.clone();
            bad[i] ^= 0xa5;
            std::fs::write(&path, &bad).unwrap();
            let _ = FaxDocument::open(&path);
        }
    }

    #[test]
    fn a_folder_is_not_a_document() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            FaxDocument::open(dir.path()),
            Err(DocumentProblem::Unreadable { .. })
        ));
    }
}
