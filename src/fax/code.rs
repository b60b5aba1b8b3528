//! T.30 completion codes, decoded once.
//!
//! SpanDSP reports how a call ended in phase E as an integer (`t30_err_e`).
//! FreeSWITCH passes the same number on as `fax_result_code` and Kazoo keeps
//! it (docs/kazoo.md 9.5), so Faxbox keeps the numbers and the texts
//! exactly (docs/freeswitch.md, section 11 "T.30 result codes"). Everything outside
//! `fax` and `lines` sees this enum, never the integer.

use std::fmt;

macro_rules! t30_codes {
    ($( $number:literal $name:ident $text:literal ),* $(,)?) => {
        /// How a T.30 call ended (SpanDSP `t30_err_e`, FreeSWITCH `fax_result_code`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum T30Code {
            $( #[doc = $text] $name = $number, )*
        }

        impl T30Code {
            /// Every code, in numeric order.
            pub const ALL: &'static [T30Code] = &[ $( T30Code::$name, )* ];

            /// The code with this number, if SpanDSP defines one.
            pub fn from_number(number: i64) -> Option<T30Code> {
                match number {
                    $( $number => Some(T30Code::$name), )*
                    _ => None,
                }
            }

            /// FreeSWITCH's `fax_result_text` for this code.
            pub fn text(self) -> &'static str {
                match self {
                    $( T30Code::$name => $text, )*
                }
            }
        }
    };
}

t30_codes! {
    0 Ok "OK",
    1 CedTone "The CED tone exceeded 5s",
    2 T0Expired "Timed out waiting for initial communication",
    3 T1Expired "Timed out waiting for the first message",
    4 T3Expired "Timed out waiting for procedural interrupt",
    5 HdlcCarrier "The HDLC carrier did not stop in a timely manner",
    6 CannotTrain "Failed to train with any of the compatible modems",
    7 OperatorInterventionFailed "Operator intervention failed",
    8 Incompatible "Far end is not compatible",
    9 RxIncapable "Far end is not able to receive",
    10 TxIncapable "Far end is not able to transmit",
    11 NoResolutionSupport "Far end cannot receive at the resolution of the image",
    12 NoSizeSupport "Far end cannot receive at the size of image",
    13 Unexpected "Unexpected message received",
    14 TxBadDcs "Received bad response to DCS or training",
    15 TxBadPage "Received a DCN from remote after sending a page",
    16 TxEcmPhaseD "Invalid ECM response received from receiver",
    17 TxGotDcn "Received a DCN while waiting for a DIS",
    18 TxInvalidResponse "Invalid response after sending a page",
    19 TxNoDis "Received other than DIS while waiting for DIS",
    20 TxPhaseBDead "Received no response to DCS, training or TCF",
    21 TxPhaseDDead "No response after sending a page",
    22 TxT5Expired "Timed out waiting for receiver ready (ECM mode)",
    23 RxEcmPhaseD "Invalid ECM response received from transmitter",
    24 RxGotDcs "DCS received while waiting for DTC",
    25 RxInvalidCommand "Unexpected command after page received",
    26 RxNoCarrier "Carrier lost during fax receive",
    27 RxNoEol "Timed out while waiting for EOL (end of line)",
    28 RxNoFax "Timed out while waiting for first line",
    29 RxT2ExpiredDcn "Timer T2 expired while waiting for DCN",
    30 RxT2ExpiredPhaseD "Timer T2 expired while waiting for phase D",
    31 RxT2ExpiredFax "Timer T2 expired while waiting for fax page",
    32 RxT2ExpiredMps "Timer T2 expired while waiting for next fax page",
    33 RxT2ExpiredRr "Timer T2 expired while waiting for RR command",
    34 RxT2Expired "Timer T2 expired while waiting for NSS, DCS or MCF",
    35 RxDcnWhy "Unexpected DCN while waiting for DCS or DIS",
    36 RxDcnData "Unexpected DCN while waiting for image data",
    37 RxDcnFax "Unexpected DCN while waiting for EOM, EOP or MPS",
    38 RxDcnPhaseD "Unexpected DCN after EOM or MPS sequence",
    39 RxDcnRrd "Unexpected DCN after RR/RNR sequence",
    40 RxDcnNoRtn "Unexpected DCN after requested retransmission",
    41 FileError "TIFF/F file cannot be opened",
    42 NoPage "TIFF/F page not found",
    43 BadTiff "TIFF/F format is not compatible",
    44 BadPage "TIFF/F page number tag missing",
    45 BadTag "Incorrect values for TIFF/F tags",
    46 BadTiffHeader "Bad TIFF/F header - incorrect values in fields",
    47 NoMemory "Cannot allocate memory for more pages",
    48 RetryDcn "Disconnected after permitted retries",
    49 CallDropped "The call dropped prematurely",
    50 NoPoll "Poll not accepted",
    51 IdentUnacceptable "Far end's ident is not acceptable",
    52 SubAddressUnacceptable "Far end's sub-address is not acceptable",
    53 SepUnacceptable "Far end's selective polling address is not acceptable",
    54 PsaUnacceptable "Far end's polled sub-address is not acceptable",
    55 SidUnacceptable "Far end's sender identification is not acceptable",
    56 PasswordUnacceptable "Far end's password is not acceptable",
    57 TsaUnacceptable "Far end's transmitting subscriber internet address is not acceptable",
    58 IraUnacceptable "Far end's internet routing address is not acceptable",
    59 CiaUnacceptable "Far end's calling subscriber internet address is not acceptable",
    60 IspUnacceptable "Far end's internet selective polling address is not acceptable",
    61 CsaUnacceptable "Far end's called subscriber internet address is not acceptable",
}

/// The groups of docs/kazoo.md 9.5, for retry decisions and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeGroup {
    Success,
    /// 1-13: the line or the far machine's capabilities.
    Link,
    /// 14-22: the far end stopped answering or answered wrongly while we sent.
    Transmitter,
    /// 23-40: the far end misbehaved while we received.
    Receiver,
    /// 41-47: our own document could not be read.
    Document,
    /// 48-49: retries exhausted or the call dropped.
    General,
    /// 50-61: optional T.30 features the far end refused.
    Feature,
}

impl T30Code {
    pub fn number(self) -> u8 {
        self as u8
    }

    pub fn is_ok(self) -> bool {
        self == T30Code::Ok
    }

    pub fn group(self) -> CodeGroup {
        match self.number() {
            0 => CodeGroup::Success,
            1..=13 => CodeGroup::Link,
            14..=22 => CodeGroup::Transmitter,
            23..=40 => CodeGroup::Receiver,
            41..=47 => CodeGroup::Document,
            48..=49 => CodeGroup::General,
            _ => CodeGroup::Feature,
        }
    }

    /// Whether dialling again could plausibly succeed. A document the engine
    /// cannot read (41-47) or a far end that refuses our features (8-12,
    /// 50-61) fails the same way every time.
    pub fn retry_may_help(self) -> bool {
        !matches!(self.number(), 0 | 8..=12 | 41..=47 | 50..=61)
    }
}

impl fmt::Display for T30Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text(), self.number())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_are_dense() {
        assert_eq!(T30Code::ALL.len(), 62);
        for (i, code) in T30Code::ALL.iter().enumerate() {
            assert_eq!(code.number() as usize, i);
            assert_eq!(T30Code::from_number(i as i64), Some(*code));
        }
        assert_eq!(T30Code::from_number(62), None);
        assert_eq!(T30Code::from_number(-1), None);
    }

    /// Our texts are FreeSWITCH's, which come from SpanDSP: check them
    /// against the library we link, so an upgrade that renumbers is caught.
    /// The vendored SpanDSP words some codes differently from the FreeSWITCH
    /// table Kazoo users see (same numbers, same meaning); Faxbox reports
    /// FreeSWITCH's words, and the differences are listed here on purpose.
    #[test]
    fn texts_match_the_linked_spandsp() {
        let reworded: &[(u8, &str)] = &[
            (20, "Received no response to DCS or TCF"),
            (27, "Timed out while waiting for EOL (end Of line)"),
            (51, "Ident not accepted"),
            (52, "Sub-address not accepted"),
            (53, "Selective polling address not accepted"),
            (54, "Polled sub-address not accepted"),
            (55, "Sender identification not accepted"),
            (56, "Password not accepted"),
            (57, "Transmitting subscriber internet address not accepted"),
            (58, "Internet routing address not accepted"),
            (59, "Calling subscriber internet address not accepted"),
            (60, "Internet selective polling address not accepted"),
            (61, "Called subscriber internet address not accepted"),
        ];
        let mut differ = Vec::new();
        for code in T30Code::ALL {
            let linked = super::super::ffi::completion_code_text(code.number() as i32);
            if linked != code.text() {
                differ.push((code.number(), linked));
            }
        }
        assert_eq!(differ, reworded);
    }

    #[test]
    fn groups_follow_kazoo_md_9_5() {
        let cases = [
            (0, CodeGroup::Success),
            (2, CodeGroup::Link),
            (13, CodeGroup::Link),
            (14, CodeGroup::Transmitter),
            (22, CodeGroup::Transmitter),
            (23, CodeGroup::Receiver),
            (40, CodeGroup::Receiver),
            (41, CodeGroup::Document),
            (47, CodeGroup::Document),
            (49, CodeGroup::General),
            (50, CodeGroup::Feature),
            (61, CodeGroup::Feature),
        ];
        for (n, group) in cases {
            assert_eq!(T30Code::from_number(n).unwrap().group(), group, "{n}");
        }
        assert!(T30Code::T0Expired.retry_may_help());
        assert!(T30Code::CallDropped.retry_may_help());
        assert!(!T30Code::BadTiff.retry_may_help());
        assert!(!T30Code::Ok.retry_may_help());
    }
}
