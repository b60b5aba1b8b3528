//! The FreeSWITCH line: outbound calls placed with `bgapi originate` on the
//! node with the most room, and (see [`super::inbound`]) incoming calls
//! taken over the outbound socket.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::call::{CallTrack, Direction, DocumentSource};
use super::esl::{EslError, call_uuid, new_uuid};
use super::file_proxy::{FileProxy, Publication};
use super::inbound::InboundServer;
use super::node::{Backoff, ChannelClaim, Node, Signal};
use super::variables::OriginateVariables;
use crate::config::{DocumentDelivery, FreeSwitchConfig};
use crate::fax::{ErrorCorrection, FaxDocument};
use crate::lines::{
    AttemptResult, Call, CallProgress, HangUp, Inbound, Line, LineError, OutgoingFax, ProgressSink,
};

/// How long FreeSWITCH gets to end a call we asked it to hang up before the
/// line gives up on it (the channel may be stuck, as without
/// `rtp-timer-name=soft`, docs/freeswitch.md, transcript 21).
const HANG_UP_GRACE: Duration = Duration::from_secs(30);

/// How long a call whose connection was lost waits for FreeSWITCH to be
/// back before it counts as interrupted: long enough for a restart.
const RECONNECT_WAIT: Duration = Duration::from_secs(90);

/// How often a call looks at its hang-up flag while waiting for events.
const POLL: Duration = Duration::from_millis(100);

pub struct FreeSwitchLine {
    name: String,
    config: FreeSwitchConfig,
    nodes: Vec<Arc<Node>>,
    file_proxy: Option<Arc<FileProxy>>,
    inbound: Arc<RwLock<Option<Arc<dyn Inbound>>>>,
    inbound_server: Option<InboundServer>,
}

impl FreeSwitchLine {
    /// Starts the connections to every node and, when configured, the
    /// outbound-socket server. `file_proxy` is required when the line sends
    /// documents over HTTP.
    pub fn start(
        name: &str,
        config: FreeSwitchConfig,
        file_proxy: Option<Arc<FileProxy>>,
        data_dir: &Path,
        backoff: Backoff,
    ) -> anyhow::Result<FreeSwitchLine> {
        use anyhow::Context;
        if config.document == DocumentDelivery::Http && file_proxy.is_none() {
            anyhow::bail!("line {name}: document = \"http\" needs the file proxy");
        }
        let inbound: Arc<RwLock<Option<Arc<dyn Inbound>>>> = Arc::default();
        let inbound_server = match config.inbound_socket {
            None => None,
            Some(address) => {
                let listener = std::net::TcpListener::bind(address).with_context(|| {
                    format!("cannot listen for FreeSWITCH's inbound fax calls on {address} (inbound_socket of line {name})")
                })?;
                let spool = config
                    .spool_dir
                    .clone()
                    .unwrap_or_else(|| data_dir.join("freeswitch").join(name));
                Some(InboundServer::start(
                    name,
                    listener,
                    spool,
                    config.spool_dir.is_some(),
                    vec![
                        ("fax_enable_t38".into(), config.t38.to_string()),
                        (
                            "fax_enable_t38_request".into(),
                            config.t38_request.to_string(),
                        ),
                    ],
                    inbound.clone(),
                )?)
            }
        };
        let mut nodes = Vec::new();
        for node in &config.nodes {
            nodes.push(
                Node::start(node.clone(), backoff)
                    .with_context(|| format!("cannot start the connection to {}", node.esl))?,
            );
        }
        Ok(FreeSwitchLine {
            name: name.to_owned(),
            config,
            nodes,
            file_proxy,
            inbound,
            inbound_server,
        })
    }

    /// Where the outbound-socket server listens, when it does.
    pub fn inbound_address(&self) -> Option<std::net::SocketAddr> {
        self.inbound_server.as_ref().map(|s| s.local_addr())
    }

    /// Whether any node is connected.
    pub fn is_up(&self) -> bool {
        self.nodes.iter().any(|n| n.is_up())
    }

    /// Why each node that is down last failed (empty for nodes that are up
    /// or never failed): for the status page and logs.
    pub fn node_errors(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter_map(|n| n.last_error().map(|e| format!("{}: {e}", n.address())))
            .collect()
    }

    /// Calls in progress on each node, in configuration order.
    pub fn calls_per_node(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.in_flight()).collect()
    }

    /// Closes every node's connection (they reconnect): for tests of a
    /// FreeSWITCH restart.
    pub fn drop_connections(&self) {
        for node in &self.nodes {
            node.drop_connection();
        }
    }

    /// The up node with the most free room (by share of its limit).
    fn claim_channel(&self) -> Result<ChannelClaim, LineError> {
        let mut candidates: Vec<&Arc<Node>> = self.nodes.iter().filter(|n| n.is_up()).collect();
        candidates.sort_by(|a, b| {
            let load = |n: &Arc<Node>| f64::from(n.in_flight()) / f64::from(n.channels().max(1));
            load(a).total_cmp(&load(b))
        });
        candidates
            .into_iter()
            .find_map(|n| n.claim())
            .ok_or_else(|| LineError::NoFreeChannel {
                line: self.name.clone(),
                channels: self.channels(),
            })
    }

    /// The call's channel variables: the fax settings as mod_spandsp reads
    /// them, and the caller ID. Every value, free text or not, goes through
    /// [`OriginateVariables`], so none can change the command.
    fn originate_variables(&self, fax: &OutgoingFax, channel: &str) -> OriginateVariables {
        let s = &fax.settings;
        let mut vars = OriginateVariables::new();
        vars.set("origination_uuid", channel);
        vars.set("ignore_early_media", "true");
        vars.set(
            "originate_timeout",
            &self.config.originate_timeout.as_secs().to_string(),
        );
        vars.set("fax_ident", &s.ident);
        vars.set("fax_header", &s.header);
        vars.set(
            "fax_use_ecm",
            &(s.error_correction == ErrorCorrection::Enabled).to_string(),
        );
        vars.set("fax_enable_t38", &self.config.t38.to_string());
        vars.set(
            "fax_enable_t38_request",
            &self.config.t38_request.to_string(),
        );
        vars.set("fax_verbose", "false");
        // A POSIX TZ string, which mod_spandsp hands to SpanDSP when it is
        // no zone name of its own (switch_lookup_timezone).
        if let Some(tz) = &s.timezone {
            vars.set("fax_timezone", tz);
        }
        if !fax.from_number.is_empty() {
            vars.set("origination_caller_id_number", &fax.from_number);
        }
        if !s.caller_name.is_empty() {
            vars.set("origination_caller_id_name", &s.caller_name);
        }
        vars
    }
}

/// Numbers go into the dial string as they are, so the line takes only
/// what the intakes' number check lets through: digits with an optional
/// leading `+` (defence in depth; a bad number never gets this far).
fn check_number(number: &str) -> Result<(), LineError> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    if !digits.is_empty() && digits.len() <= 32 && digits.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(LineError::Settings(format!(
            "{number:?} is not a number FreeSWITCH can dial: only digits and a leading + are dialled"
        )))
    }
}

impl Line for FreeSwitchLine {
    fn name(&self) -> &str {
        &self.name
    }

    /// The channels of the nodes that are up: a line with no node connected
    /// has none, so no call is started on it.
    fn channels(&self) -> u32 {
        self.nodes
            .iter()
            .filter(|n| n.is_up())
            .map(|n| n.channels())
            .sum()
    }

    fn configured_channels(&self) -> u32 {
        self.nodes.iter().map(|n| n.channels()).sum()
    }

    fn calls_in_progress(&self) -> u32 {
        self.nodes.iter().map(|n| n.in_flight()).sum()
    }

    /// Down when no node is connected, with each node's last error (or
    /// that it was never reached yet).
    fn fault(&self) -> Option<String> {
        if self.is_up() {
            return None;
        }
        let why: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match n.last_error() {
                Some(e) => format!("{}: {e}", n.address()),
                None => format!("{}: not connected yet", n.address()),
            })
            .collect();
        Some(if why.is_empty() {
            "no FreeSWITCH node is configured".to_owned()
        } else {
            format!("FreeSWITCH unreachable ({})", why.join("; "))
        })
    }

    fn send(&self, fax: OutgoingFax, progress: ProgressSink) -> Result<Call, LineError> {
        check_number(&fax.to_number)?;
        let document = FaxDocument::open(&fax.document)?;
        let claim = self.claim_channel()?;
        let (source, publication) = match (&self.config.document, &self.file_proxy) {
            (DocumentDelivery::Http, Some(proxy)) => {
                let publication = proxy.publish(fax.document.clone());
                (
                    DocumentSource::Url(publication.url().to_owned()),
                    Some(publication),
                )
            }
            _ => (DocumentSource::Path(fax.document.clone()), None),
        };
        // Derived from the call id, so that after a restart Faxbox can ask
        // FreeSWITCH about the call an interrupted attempt placed.
        let channel = call_uuid(&fax.call_id);
        let job = new_uuid();
        let command = format!(
            "bgapi originate {}{} &txfax({})\nJob-UUID: {job}",
            self.originate_variables(&fax, &channel).command_prefix(),
            self.config.dial_string.replace("{number}", &fax.to_number),
            source.txfax_argument(),
        );
        let planned = PlannedCall {
            line: self.name.clone(),
            fax,
            pages: document.pages(),
            command: Some(command),
            track: CallTrack::new(&channel, &job, Direction::Send),
            source,
            _publication: publication,
        };
        self.start_call(planned, claim, progress)
    }

    /// Follows the call an interrupted attempt placed, when FreeSWITCH still
    /// has it (Faxbox was stopped or killed mid-call): the fax is not dialled
    /// a second time while the first call is still sending (issue 25 item 2).
    /// When no node has it, the fax is sent anew.
    fn resume(
        &self,
        interrupted_call_id: &str,
        fax: OutgoingFax,
        progress: ProgressSink,
    ) -> Result<Call, LineError> {
        let channel = call_uuid(interrupted_call_id);
        let holder = self
            .nodes
            .iter()
            .find(|n| n.is_up() && n.channel_exists(&channel).unwrap_or(false));
        let Some(node) = holder else {
            return self.send(fax, progress);
        };
        info!(line = %self.name, call = %fax.call_id, channel = %channel, "FreeSWITCH still has the call of the interrupted attempt; following it");
        let document = FaxDocument::open(&fax.document)?;
        let planned = PlannedCall {
            line: self.name.clone(),
            fax,
            pages: document.pages(),
            command: None,
            track: CallTrack::new(&channel, "", Direction::Send),
            source: DocumentSource::Path(PathBuf::new()),
            _publication: None,
        };
        self.start_call(planned, node.claim_existing(), progress)
    }

    fn set_inbound(&self, inbound: Arc<dyn Inbound>) {
        if let Ok(mut slot) = self.inbound.write() {
            *slot = Some(inbound);
        }
    }
}

impl FreeSwitchLine {
    /// Runs a call on its own thread.
    fn start_call(
        &self,
        planned: PlannedCall,
        claim: ChannelClaim,
        progress: ProgressSink,
    ) -> Result<Call, LineError> {
        Call::spawn(
            format!("fs-{}", planned.fax.call_id),
            planned.fax.call_id.clone(),
            self.name.clone(),
            planned.fax.to_number.clone(),
            move |hang_up| planned.run(claim, progress, hang_up),
        )
    }
}

impl Drop for FreeSwitchLine {
    fn drop(&mut self) {
        for node in &self.nodes {
            node.stop();
        }
        if let Some(server) = self.inbound_server.take() {
            server.stop();
        }
    }
}

/// One outbound call, on its own thread.
struct PlannedCall {
    line: String,
    fax: OutgoingFax,
    pages: u32,
    /// The originate to send; `None` for a call FreeSWITCH already has.
    command: Option<String>,
    track: CallTrack,
    source: DocumentSource,
    /// Keeps the fax on the file proxy for exactly as long as the call runs.
    _publication: Option<Publication>,
}

impl PlannedCall {
    fn run(
        mut self,
        claim: ChannelClaim,
        mut progress: ProgressSink,
        hang_up: HangUp,
    ) -> AttemptResult {
        let started = Instant::now();
        let node = claim.node().clone();
        let span = tracing::info_span!("call", line = %self.line, call = %self.fax.call_id, node = node.address());
        let _enter = span.enter();
        progress(CallProgress::Dialling);
        let keys = [self.track.channel.clone(), self.track.job.clone()];
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let signals = node.follow(&key_refs);
        let mut answered_at = None;
        // In http mode, FreeSWITCH first fetches the fax on its own (no
        // call yet): a file proxy it cannot reach is found before a real
        // call is answered for nothing (issue 25 item 6).
        let sent = match &self.command {
            Some(command) => self
                .fetch_check(&node)
                .map(|()| node.command(command).map(drop)),
            None => Ok(Ok(())),
        };
        let followed = match sent {
            Err(cannot_fetch) => Err(cannot_fetch),
            // FreeSWITCH read the originate and refused it.
            Ok(Err(EslError::CommandFailed { reply, .. })) => Err(LineError::Rejected(format!(
                "FreeSWITCH refused the call: {reply}"
            ))),
            // The connection went with the originate: FreeSWITCH may have
            // read it and placed the call all the same.
            Ok(Err(e)) => self.find_again(&node, &key_refs, &e.to_string()),
            Ok(Ok(())) => Ok(signals),
        };
        let outcome = followed.and_then(|signals| {
            self.follow_call(
                &node,
                &key_refs,
                signals,
                &mut progress,
                &hang_up,
                &mut answered_at,
            )
        });
        node.forget(&key_refs);
        drop(claim);
        let fax = self.track.report().map(|r| r.outcome());
        info!(result = ?outcome, pages = fax.as_ref().map(|f| f.pages), "call ended");
        AttemptResult {
            call_id: self.fax.call_id.clone(),
            line: self.line.clone(),
            to_number: self.fax.to_number.clone(),
            answered: self.track.answered(),
            outcome,
            fax,
            document_pages: self.pages,
            duration: answered_at.map(|t| t.elapsed()).unwrap_or_default(),
            wall_time: started.elapsed(),
            hangup_cause: self.track.hangup_cause().map(str::to_owned),
        }
    }
}

impl PlannedCall {
    /// Has FreeSWITCH fetch the fax from the file proxy before dialling
    /// (mod_http_cache's `http_get`), when it is to fetch it at all. Only a
    /// refusal stops the call; a lost connection is left to the originate,
    /// which knows how to find a call again.
    fn fetch_check(&self, node: &Node) -> Result<(), LineError> {
        let DocumentSource::Url(url) = &self.source else {
            return Ok(());
        };
        match node.api(&format!("http_get {{refresh=true}}{url}")) {
            Ok(answer) if answer.trim().is_empty() || answer.trim_start().starts_with("-ERR") => {
                Err(self.source.cannot_open(answer.trim()))
            }
            Ok(_) | Err(_) => Ok(()),
        }
    }

    /// Folds the call's events until it ends, FreeSWITCH is known to have
    /// lost it, or a requested hang-up is not carried out in time.
    fn follow_call(
        &mut self,
        node: &Node,
        keys: &[&str],
        mut signals: Receiver<Signal>,
        progress: &mut ProgressSink,
        hang_up: &HangUp,
        answered_at: &mut Option<Instant>,
    ) -> Result<(), LineError> {
        let mut hang_up_sent: Option<Instant> = None;
        loop {
            if hang_up.requested() && hang_up_sent.is_none() {
                info!("hanging up on request");
                hang_up_sent = Some(Instant::now());
                let kill = format!("bgapi uuid_kill {} NORMAL_CLEARING", self.track.channel);
                if let Err(e) = node.command(&kill) {
                    warn!("FreeSWITCH did not take the hang-up: {e}");
                }
            }
            if hang_up_sent.is_some_and(|sent| sent.elapsed() > HANG_UP_GRACE) {
                return Err(LineError::Switch(format!(
                    "FreeSWITCH at {} did not end the call within {HANG_UP_GRACE:?} of the hang-up",
                    node.address()
                )));
            }
            let why = match signals.recv_timeout(POLL) {
                Ok(Signal::Event(event)) => {
                    if let Some(p) = self.track.apply(&event) {
                        if p == CallProgress::Answered {
                            *answered_at = Some(Instant::now());
                        }
                        progress(p);
                    }
                    if self.track.is_finished() {
                        return self.track.verdict(&self.source).outcome;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(Signal::Lost(why)) => why,
                Err(RecvTimeoutError::Disconnected) => "the connection closed".to_owned(),
            };
            signals = self.find_again(node, keys, &why)?;
        }
    }

    /// After the connection to FreeSWITCH was lost: waits for it to come
    /// back and asks whether the call is still there. A call FreeSWITCH
    /// still has is followed again (its events reach every connection);
    /// only a call known to be gone, or a FreeSWITCH that stays away, ends
    /// the attempt as interrupted, to be sent again (issue 25 item 2).
    fn find_again(
        &self,
        node: &Node,
        keys: &[&str],
        why: &str,
    ) -> Result<Receiver<Signal>, LineError> {
        let lost = |what: String| {
            LineError::Interrupted(format!(
                "the connection to FreeSWITCH at {} was lost during the call ({why}) and {what}",
                node.address()
            ))
        };
        let until = Instant::now() + RECONNECT_WAIT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if !node.wait_up(left) {
                return Err(lost(format!("it was not back within {RECONNECT_WAIT:?}")));
            }
            // Follow first, then ask: no event of the call falls between.
            let signals = node.follow(keys);
            match node.channel_exists(&self.track.channel) {
                Ok(true) => {
                    info!(channel = %self.track.channel, "FreeSWITCH still has the call after reconnecting; following it again");
                    return Ok(signals);
                }
                Ok(false) => {
                    node.forget(keys);
                    return Err(lost("FreeSWITCH no longer has the call".into()));
                }
                // Lost again while asking: wait for the next connection.
                Err(e) => {
                    node.forget(keys);
                    warn!("cannot ask FreeSWITCH about the call: {e}");
                    if Instant::now() >= until {
                        return Err(lost(format!(
                            "FreeSWITCH could not say whether it has the call: {e}"
                        )));
                    }
                    std::thread::sleep(POLL);
                }
            }
        }
    }
}

/// The spool file name FreeSWITCH writes a received fax to.
pub fn spool_file(spool: &Path, call_id: &str) -> PathBuf {
    spool.join(format!("{call_id}.tif"))
}
