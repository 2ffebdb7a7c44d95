//! The handler of etcd-raft's `quorum/testdata` files (a port of
//! `quorum/datadriven_test.go`).
//!
//! Commands `committed` and `vote`, with arguments `cfg=(ids)` (the
//! majority configuration), optionally `cfgj=(ids)` or `cfgj=zero` (a second
//! half: the case becomes a joint one), and `idx=(...)` or `votes=(...)`:
//! one entry per distinct voter, in the order the voters appear in
//! `cfg` then `cfgj`; `_` means nothing is known. Beside the result, the
//! handler checks results that must not change (an alternative computation,
//! joining with the empty or the same configuration, swapping the halves,
//! lowering an index below the commit) and prints any disagreement.

use std::collections::BTreeMap;

use keel::quorum::{INDEX_INFINITY, Index, JointConfig, MajorityConfig};

use crate::datadriven::{Handler, TestData, parse_go_u64};

/// A fresh handler for one file (the handler has no state).
pub(crate) fn new_handler() -> Handler {
    Box::new(handle)
}

/// The parsed arguments of a case.
#[derive(Default)]
struct Args {
    joint: bool,
    ids: Vec<u64>,
    ids_joint: Vec<u64>,
    /// Acknowledged indexes; 0 stands for `_`.
    idxs: Vec<u64>,
    /// Votes: 0 for `_`, 1 for no, 2 for yes.
    votes: Vec<u64>,
}

fn parse_args(d: &TestData) -> Result<Args, String> {
    let mut args = Args::default();
    for arg in &d.cmd_args {
        // Keys without values are not looked at, as in etcd's harness.
        for val in &arg.vals {
            match arg.key.as_str() {
                "cfg" => args.ids.push(parse_go_u64(val)?),
                "cfgj" => {
                    args.joint = true;
                    if val == "zero" {
                        if arg.vals.len() != 1 {
                            return Err("cannot mix 'zero' into configuration".to_string());
                        }
                    } else {
                        args.ids_joint.push(parse_go_u64(val)?);
                    }
                }
                "idx" => {
                    let n = if val == "_" { 0 } else { parse_go_u64(val)? };
                    if val != "_" && n == 0 {
                        return Err("cannot use 0 as idx".to_string());
                    }
                    args.idxs.push(n);
                }
                "votes" => args.votes.push(match val.as_str() {
                    "y" => 2,
                    "n" => 1,
                    "_" => 0,
                    other => return Err(format!("unknown vote: {other}")),
                }),
                other => return Err(format!("unknown arg {other}")),
            }
        }
    }
    Ok(args)
}

/// Maps the voters (in order of appearance, each once) to the given values,
/// leaving out the zeroes (`_`).
fn lookuper(values: &[u64], ids: &[u64], ids_joint: &[u64]) -> BTreeMap<u64, u64> {
    let mut l = BTreeMap::new();
    let mut next = 0;
    for &id in ids.iter().chain(ids_joint) {
        if l.contains_key(&id) {
            continue;
        }
        if next < values.len() {
            l.insert(id, values[next]);
            next += 1;
        }
    }
    l.retain(|_, v| *v != 0);
    l
}

fn handle(d: &TestData) -> Result<String, String> {
    let args = parse_args(d)?;
    let c: MajorityConfig = args.ids.iter().copied().collect();
    let cj: MajorityConfig = args.ids_joint.iter().copied().collect();
    let input = if d.cmd == "vote" { &args.votes } else { &args.idxs };
    let voters = JointConfig::new(c.clone(), cj.clone());
    if voters.len() != input.len() {
        return Ok(format!(
            "error: mismatched input (explicit or _) for voters {}: {}",
            go_set(voters.ids()),
            go_index_slice(input)
        ));
    }
    match d.cmd.as_str() {
        "committed" => {
            let l = lookuper(&args.idxs, &args.ids, &args.ids_joint);
            Ok(if args.joint { joint_committed(c, cj, &l) } else { majority_committed(&c, &l) })
        }
        "vote" => {
            let l: BTreeMap<u64, bool> = lookuper(&args.votes, &args.ids, &args.ids_joint)
                .into_iter()
                .map(|(id, v)| (id, v != 1))
                .collect();
            if !args.joint {
                return Ok(format!("{}\n", c.vote_result(&l)));
            }
            let r = JointConfig::new(c.clone(), cj.clone()).vote_result(&l);
            let mut out = String::new();
            let swapped = JointConfig::new(cj, c).vote_result(&l);
            if swapped != r {
                out.push_str(&format!("{swapped} <-- via symmetry\n"));
            }
            out.push_str(&format!("{r}\n"));
            Ok(out)
        }
        other => Err(format!("unknown command: {other}")),
    }
}

fn majority_committed(c: &MajorityConfig, l: &BTreeMap<u64, u64>) -> String {
    let idx = c.committed_index(l);
    let mut out = c.describe(l);
    let alt = alternative_committed_index(c, l);
    if alt != idx {
        out.push_str(&format!("{} <-- via alternative computation\n", Index(alt)));
    }
    let zero_joint = JointConfig::new(c.clone(), MajorityConfig::new()).committed_index(l);
    if zero_joint != idx {
        out.push_str(&format!("{} <-- via zero-joint quorum\n", Index(zero_joint)));
    }
    let self_joint = JointConfig::new(c.clone(), c.clone()).committed_index(l);
    if self_joint != idx {
        out.push_str(&format!("{} <-- via self-joint quorum\n", Index(self_joint)));
    }
    for id in c.iter() {
        let acked = l.get(&id).copied().unwrap_or(0);
        if idx > acked && acked > 0 {
            // The commit index is above this voter's: lowering the voter's
            // index further must not change it. (etcd prints these without
            // a newline.)
            let lowered = c.committed_index(&overlay(c, l, id, acked - 1));
            if lowered != idx {
                out.push_str(&format!("{} <-- overlaying {id}->{acked}", Index(lowered)));
            }
            let zeroed = c.committed_index(&overlay(c, l, id, 0));
            if zeroed != idx {
                out.push_str(&format!("{} <-- overlaying {id}->0", Index(zeroed)));
            }
        }
    }
    out.push_str(&format!("{}\n", Index(idx)));
    out
}

fn joint_committed(c: MajorityConfig, cj: MajorityConfig, l: &BTreeMap<u64, u64>) -> String {
    let cc = JointConfig::new(c.clone(), cj.clone());
    let mut out = cc.describe(l);
    let idx = cc.committed_index(l);
    let swapped = JointConfig::new(cj, c).committed_index(l);
    if swapped != idx {
        out.push_str(&format!("{} <-- via symmetry\n", Index(swapped)));
    }
    out.push_str(&format!("{}\n", Index(idx)));
    out
}

/// The voters' known indexes, with `id`'s replaced by `idx`.
fn overlay(c: &MajorityConfig, l: &BTreeMap<u64, u64>, id: u64, idx: u64) -> BTreeMap<u64, u64> {
    c.iter()
        .filter_map(|voter| {
            if voter == id { Some((voter, idx)) } else { l.get(&voter).map(|&i| (voter, i)) }
        })
        .collect()
}

/// etcd's alternative committed index: the largest known index that a
/// majority of voters has reached.
fn alternative_committed_index(c: &MajorityConfig, l: &BTreeMap<u64, u64>) -> u64 {
    if c.is_empty() {
        return INDEX_INFINITY;
    }
    let known: Vec<u64> = c.iter().filter_map(|id| l.get(&id).copied()).collect();
    let quorum = c.len() / 2 + 1;
    known
        .iter()
        .copied()
        .filter(|&candidate| known.iter().filter(|&&i| i >= candidate).count() >= quorum)
        .max()
        .unwrap_or(0)
}

/// Go's `%v` of a `map[uint64]struct{}`: `map[1:{} 2:{}]`.
fn go_set(ids: impl Iterator<Item = u64>) -> String {
    let items: Vec<String> = ids.map(|id| format!("{id}:{{}}")).collect();
    format!("map[{}]", items.join(" "))
}

/// Go's `%v` of a `[]quorum.Index`: `[1 2 ∞]`.
fn go_index_slice(values: &[u64]) -> String {
    let items: Vec<String> = values.iter().map(|&v| Index(v).to_string()).collect();
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datadriven::test_case;

    fn case(directive: &str) -> TestData {
        test_case(directive, "")
    }

    #[test]
    fn mismatched_input_is_reported_like_go() {
        let out = handle(&case("committed cfg=(1,2) cfgj=(3) idx=(5,_)")).unwrap();
        assert_eq!(
            out,
            "error: mismatched input (explicit or _) for voters map[1:{} 2:{} 3:{}]: [5 0]"
        );
        let out = handle(&case("vote cfg=(1) votes=(y,n)")).unwrap();
        assert_eq!(out, "error: mismatched input (explicit or _) for voters map[1:{}]: [2 1]");
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert_eq!(handle(&case("committed cfg=(1) idx=(0)")).unwrap_err(), "cannot use 0 as idx");
        assert_eq!(handle(&case("vote cfg=(1) votes=(x)")).unwrap_err(), "unknown vote: x");
        assert_eq!(handle(&case("vote cfg=(1) foo=(1)")).unwrap_err(), "unknown arg foo");
        assert_eq!(
            handle(&case("vote cfg=(1) cfgj=(zero,2)")).unwrap_err(),
            "cannot mix 'zero' into configuration"
        );
        assert_eq!(handle(&case("commit")).unwrap_err(), "unknown command: commit");
        // Keys without values are ignored.
        assert_eq!(handle(&case("vote bare")).unwrap(), "VoteWon\n");
    }

    #[test]
    fn lookuper_skips_repeats_and_placeholders() {
        let l = lookuper(&[5, 0, 7], &[1, 2], &[2, 3]);
        assert_eq!(l, BTreeMap::from([(1, 5), (3, 7)]));
    }
}
