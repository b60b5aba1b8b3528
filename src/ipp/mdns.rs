//! DNS-SD over mDNS: each faxbox's printer announces itself on the LAN as
//! `_ipp._tcp` with the `_print` subtype and the TXT keys of PWG 5100.15
//! (`rfo=ipp/faxout`, `Fax=T`, ...), which is how macOS, CUPS and Windows
//! find fax printers without being told an address. The `mdns-sd` crate
//! speaks mDNS (its own responder thread; it coexists with Avahi).
//!
//! Where it is heard follows where the printers listen: a loopback listener
//! is announced on loopback only, a specific address on that address's
//! interface, a wildcard one on every interface.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo};
use tracing::{info, warn};

use super::printer::txt_record;
use crate::model::Faxbox;
use crate::store::Store;

/// The DNS-SD type with the subtype IPP printers are browsed by.
pub const SERVICE_TYPE: &str = "_ipp._tcp.local.";
pub const PRINT_SUBTYPE: &str = "_print._sub._ipp._tcp.local.";

/// The running announcement; dropping it says goodbye on the network.
pub struct Announcer {
    inner: Arc<Inner>,
    /// Dropped to stop the follower thread.
    stop: Option<mpsc::Sender<()>>,
    follower: Option<JoinHandle<()>>,
}

struct Inner {
    daemon: ServiceDaemon,
    host: String,
    port: u16,
    basic_auth: bool,
    /// Faxbox id -> the DNS-SD instance name announced for it.
    announced: Mutex<BTreeMap<String, String>>,
}

impl Announcer {
    /// Announces one printer per faxbox for a listener at `listen`.
    pub fn start(
        faxboxes: &[Faxbox],
        listen: SocketAddr,
        basic_auth: bool,
    ) -> Result<Announcer, String> {
        let daemon =
            ServiceDaemon::new().map_err(|e| format!("cannot start the mDNS responder: {e}"))?;
        let only_here = |kind: IfKind| -> Result<(), String> {
            daemon
                .disable_interface(IfKind::All)
                .and_then(|_| daemon.enable_interface(kind))
                .map_err(|e| format!("cannot choose the mDNS interface: {e}"))
        };
        match listen.ip() {
            IpAddr::V4(v4) if v4.is_loopback() => only_here(IfKind::LoopbackV4)?,
            IpAddr::V6(v6) if v6.is_loopback() => only_here(IfKind::LoopbackV6)?,
            ip if ip.is_unspecified() => {}
            ip => only_here(IfKind::Addr(ip))?,
        }
        let inner = Arc::new(Inner {
            daemon,
            host: format!("{}.local.", host_label()),
            port: listen.port(),
            basic_auth,
            announced: Mutex::new(BTreeMap::new()),
        });
        inner.sync(faxboxes)?;
        info!(
            printers = faxboxes.len(),
            "fax printers announced over DNS-SD"
        );
        Ok(Announcer {
            inner,
            stop: None,
            follower: None,
        })
    }

    /// From now on, looks at the store's faxboxes every `every`: a new
    /// faxbox is announced, a deleted one withdrawn, a renamed one
    /// announced under its new name.
    pub fn follow(&mut self, store: Arc<Store>, every: Duration) -> std::io::Result<()> {
        let (tx, rx) = mpsc::channel::<()>();
        let inner = self.inner.clone();
        let follower = std::thread::Builder::new()
            .name("mdns-follow".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    match all_faxboxes(&store) {
                        Ok(faxboxes) => {
                            if let Err(e) = inner.sync(&faxboxes) {
                                warn!(error = %e, "cannot update the fax printers' announcement");
                            }
                        }
                        Err(e) => warn!(error = %e, "cannot list the faxboxes to announce"),
                    }
                }
            })?;
        self.stop = Some(tx);
        self.follower = Some(follower);
        Ok(())
    }

    /// The DNS-SD instance names announced now.
    pub fn names(&self) -> Vec<String> {
        self.inner
            .announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// Every faxbox of every account.
pub fn all_faxboxes(store: &Store) -> Result<Vec<Faxbox>, crate::store::StoreError> {
    let mut all = Vec::new();
    for account in store.accounts()? {
        all.extend(store.faxboxes(&account.id)?);
    }
    Ok(all)
}

impl Inner {
    /// Makes the announcement match `faxboxes`.
    fn sync(&self, faxboxes: &[Faxbox]) -> Result<(), String> {
        let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        let mut wanted: BTreeMap<String, ServiceInfo> = BTreeMap::new();
        for faxbox in faxboxes {
            let txt = txt_record(faxbox, self.basic_auth);
            let info = ServiceInfo::new(
                PRINT_SUBTYPE,
                &instance_name(faxbox),
                &self.host,
                (),
                self.port,
                &txt[..],
            )
            .map_err(|e| format!("cannot describe the printer of faxbox {}: {e}", faxbox.id))?
            .enable_addr_auto();
            wanted.insert(faxbox.id.to_string(), info);
        }
        let stale: Vec<String> = announced
            .iter()
            .filter(|(id, name)| wanted.get(*id).is_none_or(|i| i.get_fullname() != *name))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some(name) = announced.remove(&id) {
                self.goodbye(&name);
            }
        }
        for (id, info) in wanted {
            if announced.contains_key(&id) {
                continue;
            }
            let name = info.get_fullname().to_owned();
            self.daemon
                .register(info)
                .map_err(|e| format!("cannot announce the printer of faxbox {id}: {e}"))?;
            announced.insert(id, name);
        }
        Ok(())
    }

    /// Goodbye packets: browsers drop the printer at once.
    fn goodbye(&self, name: &str) {
        if let Ok(done) = self.daemon.unregister(name) {
            let _ = done.recv_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(follower) = self.follower.take() {
            let _ = follower.join();
        }
        for name in self.names() {
            self.inner.goodbye(&name);
        }
        if let Err(e) = self.inner.daemon.shutdown() {
            warn!(error = %e, "cannot stop the mDNS responder");
        }
    }
}

/// "Front desk (Faxbox 9d9d0927)": the faxbox's name, made unique by its
/// id, within DNS's 63-byte label.
fn instance_name(faxbox: &Faxbox) -> String {
    let short_id: String = faxbox.id.as_str().chars().take(8).collect();
    let suffix = format!(" (Faxbox {short_id})");
    let mut name: String = faxbox
        .name
        .chars()
        .filter(|c| !c.is_control() && *c != '.')
        .collect();
    while name.len() + suffix.len() > 63 {
        name.pop();
    }
    format!("{}{suffix}", name.trim())
}

/// This machine's name as a DNS label.
fn host_label() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let label: String = raw
        .trim()
        .split('.')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(63)
        .collect();
    if label.is_empty() {
        "faxbox".into()
    } else {
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, FaxboxId};

    #[test]
    fn instance_names_are_unique_and_fit_a_dns_label() {
        let mut f = Faxbox {
            id: FaxboxId("9d9d092787263746cd0bde35d32a6274".into()),
            account_id: AccountId("a".into()),
            name: "Front desk".into(),
            caller_id: None,
            caller_name: String::new(),
            fax_header: String::new(),
            fax_identity: None,
            fax_timezone: None,
            retries: 1,
            owner_id: None,
            smtp_email_address: String::new(),
            custom_smtp_email_address: None,
            smtp_permission_list: Vec::new(),
            notifications: Default::default(),
            fax_option: None,
            flags: Vec::new(),
            log_errors: None,
            numbers: Vec::new(),
            sending_windows: Vec::new(),
            created: 0,
            modified: 0,
            extra: Default::default(),
        };
        assert_eq!(instance_name(&f), "Front desk (Faxbox 9d9d0927)");
        f.name = "Ü".repeat(60) + ".x";
        let long = instance_name(&f);
        assert!(
            long.len() <= 63 && long.ends_with("(Faxbox 9d9d0927)"),
            "{long}"
        );
        assert!(!long.contains('.'));
        f.id = FaxboxId("é".into());
        assert!(instance_name(&f).ends_with("(Faxbox é)"));
    }
}
