//! DNS-SD over mDNS: each faxbox's printer announces itself on the LAN as
//! `_ipp._tcp` with the `_print` subtype and the TXT keys of PWG 5100.15
//! (`rfo=ipp/faxout`, `Fax=T`, ...), which is how macOS, CUPS and Windows
//! find fax printers without being told an address. The `mdns-sd` crate
//! speaks mDNS (its own responder thread; it coexists with Avahi).
//!
//! Where it is heard follows where the printers listen: a loopback listener
//! is announced on loopback only, a specific address on that address's
//! interface, a wildcard one on every interface.

use std::net::{IpAddr, SocketAddr};

use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo};
use tracing::{info, warn};

use super::printer::txt_record;
use crate::model::Faxbox;

/// The DNS-SD type with the subtype IPP printers are browsed by.
pub const SERVICE_TYPE: &str = "_ipp._tcp.local.";
pub const PRINT_SUBTYPE: &str = "_print._sub._ipp._tcp.local.";

/// The running announcement; dropping it says goodbye on the network.
pub struct Announcer {
    daemon: ServiceDaemon,
    names: Vec<String>,
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
        let ip = listen.ip();
        let only_here = |kind: IfKind| -> Result<(), String> {
            daemon
                .disable_interface(IfKind::All)
                .and_then(|_| daemon.enable_interface(kind))
                .map_err(|e| format!("cannot choose the mDNS interface: {e}"))
        };
        match ip {
            IpAddr::V4(v4) if v4.is_loopback() => only_here(IfKind::LoopbackV4)?,
            IpAddr::V6(v6) if v6.is_loopback() => only_here(IfKind::LoopbackV6)?,
            ip if ip.is_unspecified() => {}
            ip => only_here(IfKind::Addr(ip))?,
        }
        let host = format!("{}.local.", host_label());
        let mut names = Vec::new();
        for faxbox in faxboxes {
            let txt = txt_record(faxbox, basic_auth);
            let info = ServiceInfo::new(
                PRINT_SUBTYPE,
                &instance_name(faxbox),
                &host,
                (),
                listen.port(),
                &txt[..],
            )
            .map_err(|e| format!("cannot describe the printer of faxbox {}: {e}", faxbox.id))?
            .enable_addr_auto();
            names.push(info.get_fullname().to_owned());
            daemon
                .register(info)
                .map_err(|e| format!("cannot announce the printer of faxbox {}: {e}", faxbox.id))?;
        }
        info!(printers = names.len(), "fax printers announced over DNS-SD");
        Ok(Announcer { daemon, names })
    }

    /// The DNS-SD instance names announced.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        for name in &self.names {
            // Goodbye packets: browsers drop the printer at once.
            if let Ok(done) = self.daemon.unregister(name) {
                let _ = done.recv_timeout(std::time::Duration::from_secs(1));
            }
        }
        if let Err(e) = self.daemon.shutdown() {
            warn!(error = %e, "cannot stop the mDNS responder");
        }
    }
}

/// "Front desk (Faxbox 9d9d0927)": the faxbox's name, made unique by its
/// id, within DNS's 63-byte label.
fn instance_name(faxbox: &Faxbox) -> String {
    let suffix = format!(
        " (Faxbox {})",
        &faxbox.id.as_str()[..faxbox.id.as_str().len().min(8)]
    );
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
