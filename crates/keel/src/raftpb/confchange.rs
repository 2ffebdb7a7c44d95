//! Helpers over the two configuration change formats: V1 to V2 conversion,
//! joint-consensus detection, and the compact `v2 l3 r4 u5` text form used by
//! tests and logs.

use bytes::Bytes;
use prost::Message as _;

use super::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, Entry,
    EntryType,
};

/// Either kind of configuration change, so callers can treat them alike.
#[derive(Clone, Debug, PartialEq)]
pub enum AnyConfChange {
    /// A legacy single-node change.
    V1(ConfChange),
    /// A change of any number of nodes.
    V2(ConfChangeV2),
}

impl From<ConfChange> for AnyConfChange {
    fn from(cc: ConfChange) -> Self {
        AnyConfChange::V1(cc)
    }
}

impl From<ConfChangeV2> for AnyConfChange {
    fn from(cc: ConfChangeV2) -> Self {
        AnyConfChange::V2(cc)
    }
}

impl AnyConfChange {
    /// The same operation as a V2 change.
    pub fn as_v2(&self) -> ConfChangeV2 {
        match self {
            AnyConfChange::V1(cc) => cc.as_v2(),
            AnyConfChange::V2(cc) => cc.clone(),
        }
    }

    /// The opaque payload handed back with the committed change.
    pub fn context(&self) -> &Bytes {
        match self {
            AnyConfChange::V1(cc) => &cc.context,
            AnyConfChange::V2(cc) => &cc.context,
        }
    }

    /// The V1 change, if this is one.
    pub fn as_v1(&self) -> Option<&ConfChange> {
        match self {
            AnyConfChange::V1(cc) => Some(cc),
            AnyConfChange::V2(_) => None,
        }
    }

    /// The configuration change `e` carries: `None` for an entry of any
    /// other type, an error if its payload does not decode.
    pub fn from_entry(e: &Entry) -> Result<Option<AnyConfChange>, prost::DecodeError> {
        Ok(match e.entry_type() {
            EntryType::EntryConfChange => Some(ConfChange::decode(e.data.clone())?.into()),
            EntryType::EntryConfChangeV2 => Some(ConfChangeV2::decode(e.data.clone())?.into()),
            EntryType::EntryNormal => None,
        })
    }

    /// The entry type and payload that carry this change in the log.
    pub fn to_entry_data(&self) -> (EntryType, Bytes) {
        match self {
            AnyConfChange::V1(cc) => (EntryType::EntryConfChange, Bytes::from(cc.encode_to_vec())),
            AnyConfChange::V2(cc) => {
                (EntryType::EntryConfChangeV2, Bytes::from(cc.encode_to_vec()))
            }
        }
    }
}

impl ConfChange {
    /// The same operation as a V2 change (one single change, auto transition).
    pub fn as_v2(&self) -> ConfChangeV2 {
        ConfChangeV2 {
            transition: ConfChangeTransition::ConfChangeTransitionAuto as i32,
            changes: vec![ConfChangeSingle {
                change_type: self.change_type,
                node_id: self.node_id,
            }],
            context: self.context.clone(),
        }
    }
}

impl ConfChangeSingle {
    /// Adds `node_id` as a voter (or promotes the learner).
    pub fn add_voter(node_id: u64) -> ConfChangeSingle {
        ConfChangeSingle { change_type: ConfChangeType::ConfChangeAddNode as i32, node_id }
    }

    /// Adds `node_id` as a learner (or demotes the voter).
    pub fn add_learner(node_id: u64) -> ConfChangeSingle {
        ConfChangeSingle { change_type: ConfChangeType::ConfChangeAddLearnerNode as i32, node_id }
    }

    /// Removes `node_id`, voter or learner.
    pub fn remove(node_id: u64) -> ConfChangeSingle {
        ConfChangeSingle { change_type: ConfChangeType::ConfChangeRemoveNode as i32, node_id }
    }
}

impl ConfChangeV2 {
    /// The changes, applied atomically with the automatic transition: the
    /// simple protocol for one change, joint consensus left automatically
    /// for more.
    pub fn new(changes: Vec<ConfChangeSingle>) -> ConfChangeV2 {
        ConfChangeV2 {
            transition: ConfChangeTransition::ConfChangeTransitionAuto as i32,
            changes,
            context: Bytes::new(),
        }
    }

    /// Adds `node_id` as a voter (or promotes the learner).
    pub fn add_voter(node_id: u64) -> ConfChangeV2 {
        ConfChangeV2::new(vec![ConfChangeSingle::add_voter(node_id)])
    }

    /// Adds `node_id` as a learner (or demotes the voter).
    pub fn add_learner(node_id: u64) -> ConfChangeV2 {
        ConfChangeV2::new(vec![ConfChangeSingle::add_learner(node_id)])
    }

    /// Removes `node_id`, voter or learner.
    pub fn remove(node_id: u64) -> ConfChangeV2 {
        ConfChangeV2::new(vec![ConfChangeSingle::remove(node_id)])
    }

    /// The same change with `context`, the payload handed back with the
    /// committed entry (a server puts the new member's address there).
    pub fn with_context(self, context: Bytes) -> ConfChangeV2 {
        ConfChangeV2 { context, ..self }
    }

    /// Whether this change uses joint consensus, and if so whether the joint
    /// configuration is left automatically: `Some(auto_leave)` or `None` for the
    /// simple protocol. Joint consensus is used for more than one change or when
    /// the transition asks for it.
    ///
    /// # Panics
    /// On a transition value outside the enum, as etcd does.
    pub fn enter_joint(&self) -> Option<bool> {
        let transition = ConfChangeTransition::try_from(self.transition);
        if transition == Ok(ConfChangeTransition::ConfChangeTransitionAuto)
            && self.changes.len() <= 1
        {
            return None;
        }
        match transition {
            Ok(ConfChangeTransition::ConfChangeTransitionAuto)
            | Ok(ConfChangeTransition::ConfChangeTransitionJointImplicit) => Some(true),
            Ok(ConfChangeTransition::ConfChangeTransitionJointExplicit) => Some(false),
            Err(_) => panic!("unknown transition: {self:?}"),
        }
    }

    /// Whether this change leaves a joint configuration: it is empty except,
    /// possibly, for its context.
    pub fn leave_joint(&self) -> bool {
        self.transition == ConfChangeTransition::ConfChangeTransitionAuto as i32
            && self.changes.is_empty()
    }
}

/// Why a `v1 l2 r3 u4` string could not be parsed. The messages are etcd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfChangeParseError {
    /// A token shorter than two characters.
    #[error("unknown token {0}")]
    UnknownToken(String),
    /// A token that does not start with `v`, `l`, `r` or `u`.
    #[error("unknown input: {0}")]
    UnknownInput(String),
    /// A node id that is not a decimal `u64`.
    #[error("strconv.ParseUint: parsing {}: {}", crate::go_fmt::go_quote(.0.as_bytes()), .1)]
    BadNodeId(String, &'static str),
}

/// Parses a space-separated list of operations: `vN` makes N a voter, `lN` a
/// learner, `rN` removes N and `uN` updates N. An empty string is no changes.
pub fn conf_changes_from_string(s: &str) -> Result<Vec<ConfChangeSingle>, ConfChangeParseError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Vec::new());
    }
    // Split on single spaces as etcd does, so doubled spaces give an empty
    // (unknown) token rather than being silently skipped.
    s.split(' ').map(parse_token).collect()
}

fn parse_token(tok: &str) -> Result<ConfChangeSingle, ConfChangeParseError> {
    if tok.len() < 2 {
        return Err(ConfChangeParseError::UnknownToken(tok.to_string()));
    }
    let change_type = match tok.as_bytes()[0] {
        b'v' => ConfChangeType::ConfChangeAddNode,
        b'l' => ConfChangeType::ConfChangeAddLearnerNode,
        b'r' => ConfChangeType::ConfChangeRemoveNode,
        b'u' => ConfChangeType::ConfChangeUpdateNode,
        _ => return Err(ConfChangeParseError::UnknownInput(tok.to_string())),
    };
    let digits = &tok[1..];
    let node_id = parse_u64_like_go(digits)
        .map_err(|why| ConfChangeParseError::BadNodeId(digits.to_string(), why))?;
    Ok(ConfChangeSingle { change_type: change_type as i32, node_id })
}

fn parse_u64_like_go(s: &str) -> Result<u64, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid syntax");
    }
    s.parse::<u64>().map_err(|_| "value out of range")
}

/// The inverse of [`conf_changes_from_string`].
pub fn conf_changes_to_string(ccs: &[ConfChangeSingle]) -> String {
    let mut out = String::new();
    for (i, cc) in ccs.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(match ConfChangeType::try_from(cc.change_type) {
            Ok(ConfChangeType::ConfChangeAddNode) => "v",
            Ok(ConfChangeType::ConfChangeAddLearnerNode) => "l",
            Ok(ConfChangeType::ConfChangeRemoveNode) => "r",
            Ok(ConfChangeType::ConfChangeUpdateNode) => "u",
            Err(_) => "unknown",
        });
        out.push_str(&cc.node_id.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The builders say what the test text says, without the text.
    #[test]
    fn builders_match_the_text_form() {
        let text = |s: &str| ConfChangeV2::new(conf_changes_from_string(s).unwrap());
        assert_eq!(ConfChangeV2::add_voter(2), text("v2"));
        assert_eq!(ConfChangeV2::add_learner(3), text("l3"));
        assert_eq!(ConfChangeV2::remove(4), text("r4"));
        let joint = ConfChangeV2::new(vec![
            ConfChangeSingle::add_voter(1),
            ConfChangeSingle::add_learner(2),
            ConfChangeSingle::remove(3),
        ]);
        assert_eq!(joint, text("v1 l2 r3"));
        assert_eq!(joint.enter_joint(), Some(true));
        assert_eq!(ConfChangeV2::add_voter(2).enter_joint(), None);
        let cc = ConfChangeV2::add_voter(2).with_context(Bytes::from_static(b"addr"));
        assert_eq!(AnyConfChange::from(cc).context(), &Bytes::from_static(b"addr"));
    }

    /// An entry decodes to the change it carries, in either format; other
    /// entries carry none; a corrupt payload is an error, not a panic.
    #[test]
    fn from_entry_decodes_either_format() {
        let entry = |cc: &AnyConfChange| {
            let (t, data) = cc.to_entry_data();
            Entry { entry_type: Some(t as i32), data, ..Entry::default() }
        };
        let v1 = AnyConfChange::V1(ConfChange {
            change_type: ConfChangeType::ConfChangeRemoveNode as i32,
            node_id: 7,
            context: Bytes::from_static(b"ctx"),
            id: 9,
        });
        let v2 = AnyConfChange::from(ConfChangeV2::add_learner(5));
        assert_eq!(AnyConfChange::from_entry(&entry(&v1)).unwrap(), Some(v1.clone()));
        assert_eq!(AnyConfChange::from_entry(&entry(&v2)).unwrap(), Some(v2));
        let normal = Entry { data: Bytes::from_static(b"x"), ..Entry::default() };
        assert_eq!(AnyConfChange::from_entry(&normal).unwrap(), None);
        let corrupt = Entry { data: Bytes::from_static(&[0x12, 0xff]), ..entry(&v1) };
        assert!(AnyConfChange::from_entry(&corrupt).is_err());
    }

    #[test]
    fn text_form_round_trips() {
        let ccs = conf_changes_from_string(" v1 l2 r3 u4 ").unwrap();
        assert_eq!(ccs.len(), 4);
        assert_eq!(conf_changes_to_string(&ccs), "v1 l2 r3 u4");
        assert!(conf_changes_from_string("").unwrap().is_empty());
    }

    #[test]
    fn text_form_errors_match_etcd() {
        let err = |s| conf_changes_from_string(s).unwrap_err().to_string();
        assert_eq!(err("v"), "unknown token v");
        assert_eq!(err("x1"), "unknown input: x1");
        assert_eq!(err("v1  v2"), "unknown token ");
        assert_eq!(err("vx"), "strconv.ParseUint: parsing \"x\": invalid syntax");
        assert_eq!(
            err("v99999999999999999999"),
            "strconv.ParseUint: parsing \"99999999999999999999\": value out of range"
        );
    }

    #[test]
    fn joint_detection() {
        let mut cc = ConfChangeV2::default();
        assert!(cc.leave_joint());
        assert_eq!(cc.enter_joint(), None);
        cc.changes = conf_changes_from_string("v1").unwrap();
        assert!(!cc.leave_joint());
        assert_eq!(cc.enter_joint(), None);
        cc.changes = conf_changes_from_string("v1 v2").unwrap();
        assert_eq!(cc.enter_joint(), Some(true));
        cc.transition = ConfChangeTransition::ConfChangeTransitionJointExplicit as i32;
        assert_eq!(cc.enter_joint(), Some(false));
        cc.changes.clear();
        assert!(!cc.leave_joint());
        assert_eq!(cc.enter_joint(), Some(false));
    }

    fn v2(transition: ConfChangeTransition, changes: &str, context: &'static [u8]) -> ConfChangeV2 {
        ConfChangeV2 {
            transition: transition as i32,
            changes: conf_changes_from_string(changes).unwrap(),
            context: Bytes::from_static(context),
        }
    }

    #[test]
    fn leave_joint_cases_from_etcd() {
        use ConfChangeTransition::*;
        let cases = [
            (v2(ConfChangeTransitionAuto, "", b""), true),
            // The context is ignored.
            (v2(ConfChangeTransitionAuto, "", b"some context"), true),
            (v2(ConfChangeTransitionAuto, "v0", b""), false),
            (v2(ConfChangeTransitionJointImplicit, "", b""), false),
            (v2(ConfChangeTransitionJointExplicit, "", b""), false),
            (v2(ConfChangeTransitionAuto, "v0 r0", b""), false),
        ];
        for (cc, want) in cases {
            assert_eq!(cc.leave_joint(), want, "{cc:?}");
        }
        // An unknown transition is not the zero value, so it does not leave.
        let unknown = ConfChangeV2 { transition: 7, ..ConfChangeV2::default() };
        assert!(!unknown.leave_joint());
    }

    #[test]
    fn enter_joint_by_transition_and_change_count() {
        use ConfChangeTransition::*;
        let cases = [
            (ConfChangeTransitionAuto, "", None),
            (ConfChangeTransitionAuto, "v1", None),
            (ConfChangeTransitionAuto, "v1 l2", Some(true)),
            (ConfChangeTransitionJointImplicit, "", Some(true)),
            (ConfChangeTransitionJointImplicit, "v1", Some(true)),
            (ConfChangeTransitionJointImplicit, "v1 l2 r3", Some(true)),
            (ConfChangeTransitionJointExplicit, "", Some(false)),
            (ConfChangeTransitionJointExplicit, "v1", Some(false)),
            (ConfChangeTransitionJointExplicit, "v1 l2", Some(false)),
        ];
        for (transition, changes, want) in cases {
            let cc = v2(transition, changes, b"");
            assert_eq!(cc.enter_joint(), want, "{transition:?} {changes:?}");
        }
    }

    #[test]
    fn enter_joint_panics_on_unknown_transition() {
        // A programmer error in etcd too: the transition was never validated.
        let cc = ConfChangeV2 { transition: 3, ..ConfChangeV2::default() };
        let res = std::panic::catch_unwind(|| cc.enter_joint());
        let payload = res.unwrap_err();
        let msg = payload.downcast_ref::<String>().unwrap();
        assert!(msg.starts_with("unknown transition: "), "{msg}");
        // With a single change and the unknown transition the panic is the
        // same: only the Auto transition may skip joint consensus.
        let one = ConfChangeV2 { changes: conf_changes_from_string("v1").unwrap(), ..cc };
        assert!(std::panic::catch_unwind(|| one.enter_joint()).is_err());
    }

    #[test]
    fn v1_as_v2_keeps_type_node_and_context() {
        let v1 = ConfChange {
            id: 9,
            change_type: ConfChangeType::ConfChangeAddLearnerNode as i32,
            node_id: 4,
            context: Bytes::from_static(b"ctx"),
        };
        let cc = v1.as_v2();
        assert_eq!(cc.transition, ConfChangeTransition::ConfChangeTransitionAuto as i32);
        assert_eq!(conf_changes_to_string(&cc.changes), "l4");
        // The context is shared, not copied.
        assert_eq!(cc.context.as_ptr(), v1.context.as_ptr());
        assert_eq!(cc.enter_joint(), None);
        assert!(!cc.leave_joint());
        // Unknown change types are carried through unchanged.
        let odd = ConfChange { change_type: 42, ..ConfChange::default() };
        assert_eq!(odd.as_v2().changes[0].change_type, 42);
    }

    #[test]
    fn any_conf_change_accessors() {
        let v1 = ConfChange { node_id: 2, ..ConfChange::default() };
        let any1 = AnyConfChange::from(v1.clone());
        assert_eq!(any1.as_v1(), Some(&v1));
        assert_eq!(any1.as_v2(), v1.as_v2());

        let cc = v2(ConfChangeTransition::ConfChangeTransitionJointExplicit, "v1 r2", b"c");
        let any2 = AnyConfChange::from(cc.clone());
        assert_eq!(any2.as_v1(), None);
        assert_eq!(any2.as_v2(), cc);
    }

    #[test]
    fn entry_data_decodes_back() {
        let v1 = ConfChange { id: 1, node_id: 2, ..ConfChange::default() };
        let (ty, data) = AnyConfChange::from(v1.clone()).to_entry_data();
        assert_eq!(ty, EntryType::EntryConfChange);
        assert_eq!(ConfChange::decode(data).unwrap(), v1);

        let cc = v2(ConfChangeTransition::ConfChangeTransitionAuto, "v1 l2", b"x");
        let (ty, data) = AnyConfChange::from(cc.clone()).to_entry_data();
        assert_eq!(ty, EntryType::EntryConfChangeV2);
        assert_eq!(ConfChangeV2::decode(data).unwrap(), cc);

        // The leave-joint change is two bytes (the transition), not empty:
        // etcd marshals it the same way.
        let (_, data) = AnyConfChange::from(ConfChangeV2::default()).to_entry_data();
        assert_eq!(&data[..], &[0x08, 0x00]);
    }

    #[test]
    fn text_form_edge_cases() {
        // Whitespace only is no changes; inner whitespace other than a single
        // space is part of a token, as with Go's strings.Split.
        assert!(conf_changes_from_string(" \t\n ").unwrap().is_empty());
        let err = conf_changes_from_string("v1\tv2").unwrap_err();
        assert_eq!(err.to_string(), "strconv.ParseUint: parsing \"1\\tv2\": invalid syntax");
        // Quoted as Go's %q, not Rust's Debug.
        let err = conf_changes_from_string("v1\u{1}\u{7f}\u{a0}\"\\").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"strconv.ParseUint: parsing "1\x01\x7f\u00a0\"\\": invalid syntax"#
        );
        // ParseUint takes no sign and no underscores in base 10.
        assert!(conf_changes_from_string("v+1").is_err());
        assert!(conf_changes_from_string("v1_0").is_err());
        // A non-ASCII first byte is unknown input, not a panic on slicing.
        assert_eq!(conf_changes_from_string("é1").unwrap_err().to_string(), "unknown input: é1");
        assert_eq!(conf_changes_from_string("é").unwrap_err().to_string(), "unknown input: é");
        let max = conf_changes_from_string("u18446744073709551615").unwrap();
        assert_eq!(max[0].node_id, u64::MAX);
        assert_eq!(conf_changes_to_string(&max), "u18446744073709551615");
        // Unknown change types print as "unknown" followed by the id.
        let odd = [ConfChangeSingle { change_type: 9, node_id: 5 }];
        assert_eq!(conf_changes_to_string(&odd), "unknown5");
        assert_eq!(conf_changes_to_string(&[]), "");
    }
}
