//! The `[storage]` section: where the key that seals documents at rest
//! is kept (issue 23; the sealing itself is the store's).

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, ConfigFile};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageConfig {
    /// `key_file`: the document key's file. When absent, the service's
    /// systemd credential `faxbox-document-key` if it has one, else
    /// `document.key` in the data dir (made on the first start).
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    key_file: Option<PathBuf>,
}

/// `[storage]`.
pub(super) fn resolve_storage(
    raw: RawStorage,
    file: &ConfigFile,
) -> Result<StorageConfig, ConfigError> {
    if let Some(path) = &raw.key_file
        && (path.as_os_str().is_empty() || path.is_dir())
    {
        return Err(file.bad(
            "storage.key_file",
            &format!("{:?}", path.display().to_string()),
            "expected the path of a file (the key that seals the faxes), not a folder",
        ));
    }
    Ok(StorageConfig {
        key_file: raw.key_file,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    #[test]
    fn key_file_is_optional_and_must_name_a_file() {
        let path = Path::new("test.toml");
        assert_eq!(Config::parse("", path).unwrap().storage.key_file, None);
        let c = Config::parse("[storage]\nkey_file = \"/media/key/faxbox.key\"\n", path).unwrap();
        assert_eq!(
            c.storage.key_file.as_deref(),
            Some(Path::new("/media/key/faxbox.key"))
        );
        for bad in ["key_file = \"\"", "key_file = \"/\""] {
            let err = Config::parse(&format!("[storage]\n{bad}\n"), path)
                .unwrap_err()
                .to_string();
            assert!(err.contains("storage.key_file"), "{err}");
        }
        let err = Config::parse("[storage]\nkey = \"x\"\n", path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("key"), "{err}");
    }
}
