//! Hand-built histories with known verdicts, for [`check`] and its counterexamples.

use std::collections::BTreeMap;
use std::time::Duration;

use super::models::{KvInput, KvModel, KvOutput, RegisterInput, RegisterModel, RegisterOutput};
use super::*;

type KvOp = Operation<KvInput, KvOutput>;

fn get(client: u64, key: &str, call: u64, ret: u64, read: Option<&str>) -> KvOp {
    Operation {
        client_id: client,
        input: KvInput::Get { key: key.into() },
        call_time: call,
        output: Some(KvOutput::Get(read.map(str::to_owned))),
        return_time: Some(ret),
    }
}

fn put(client: u64, key: &str, value: &str, call: u64, ret: u64) -> KvOp {
    Operation {
        client_id: client,
        input: KvInput::Put { key: key.into(), value: value.into() },
        call_time: call,
        output: Some(KvOutput::Written),
        return_time: Some(ret),
    }
}

fn delete(client: u64, key: &str, call: u64, ret: u64) -> KvOp {
    Operation {
        client_id: client,
        input: KvInput::Delete { key: key.into() },
        call_time: call,
        output: Some(KvOutput::Written),
        return_time: Some(ret),
    }
}

fn cas(
    client: u64,
    key: &str,
    expected: Option<&str>,
    new: &str,
    span: (u64, u64),
    ok: bool,
) -> KvOp {
    Operation {
        client_id: client,
        input: KvInput::Cas {
            key: key.into(),
            expected: expected.map(str::to_owned),
            new: new.into(),
        },
        call_time: span.0,
        output: Some(KvOutput::Cas(ok)),
        return_time: Some(span.1),
    }
}

/// An operation that was called and never returned.
fn crashed(mut op: KvOp) -> KvOp {
    op.output = None;
    op.return_time = None;
    op
}

fn verdict(history: &[KvOp]) -> Verdict {
    check(&KvModel, history, &CheckOptions::default())
}

fn is_linearizable(history: &[KvOp]) -> bool {
    match verdict(history) {
        Verdict::Linearizable => true,
        Verdict::NotLinearizable { .. } => false,
        Verdict::Unknown { reason } => panic!("unexpected unknown: {reason}"),
    }
}

fn counterexample_of(history: &[KvOp]) -> Counterexample {
    match verdict(history) {
        Verdict::NotLinearizable { counterexample } => *counterexample,
        other => panic!("expected not linearizable, got {other}"),
    }
}

#[test]
fn empty_history_is_linearizable() {
    assert_eq!(verdict(&[]), Verdict::Linearizable);
}

#[test]
fn sequential_reads_see_the_last_write() {
    assert!(is_linearizable(&[put(1, "k", "v", 0, 1), get(2, "k", 2, 3, Some("v"))]));
    assert!(!is_linearizable(&[put(1, "k", "v", 0, 1), get(2, "k", 2, 3, None)]));
    assert!(!is_linearizable(&[get(2, "k", 0, 1, Some("v")), put(1, "k", "v", 2, 3)]));
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    assert!(is_linearizable(&[put(1, "k", "v", 0, 10), get(2, "k", 5, 8, None)]));
    assert!(is_linearizable(&[put(1, "k", "v", 0, 10), get(2, "k", 5, 8, Some("v"))]));
    assert!(!is_linearizable(&[put(1, "k", "v", 0, 10), get(2, "k", 5, 8, Some("w"))]));
}

#[test]
fn reads_may_not_go_back_in_time() {
    // Both reads overlap the write, but once the new value was seen, the old one is gone.
    let history =
        [put(1, "k", "v", 0, 100), get(2, "k", 10, 20, Some("v")), get(3, "k", 30, 40, None)];
    assert!(!is_linearizable(&history));
    // The other way round is fine.
    let history =
        [put(1, "k", "v", 0, 100), get(2, "k", 10, 20, None), get(3, "k", 30, 40, Some("v"))];
    assert!(is_linearizable(&history));
}

#[test]
fn equal_times_count_as_concurrent() {
    // The get is called at the instant the put returns: they overlap, either order works.
    assert!(is_linearizable(&[put(1, "k", "v", 0, 5), get(2, "k", 5, 6, None)]));
    assert!(!is_linearizable(&[put(1, "k", "v", 0, 5), get(2, "k", 6, 7, None)]));
}

#[test]
fn a_clients_next_operation_follows_its_previous_one_at_the_same_instant() {
    // One client: the get was called once the put had returned, so it must see it.
    assert!(!is_linearizable(&[put(1, "k", "v", 0, 5), get(1, "k", 5, 6, None)]));
    assert!(is_linearizable(&[put(1, "k", "v", 0, 5), get(1, "k", 5, 6, Some("v"))]));
    // A chain of instantaneous operations keeps its order too.
    let chain = [put(1, "k", "a", 5, 5), put(1, "k", "b", 5, 5), get(1, "k", 5, 5, Some("a"))];
    assert!(!is_linearizable(&chain));
    let chain = [put(1, "k", "a", 5, 5), put(1, "k", "b", 5, 5), get(1, "k", 5, 5, Some("b"))];
    assert!(is_linearizable(&chain));
    // Through another key: the put on k returned before the get on k was called.
    let via = [put(1, "k", "v", 0, 5), get(1, "j", 5, 5, None), get(1, "k", 5, 9, None)];
    assert!(!is_linearizable(&via));
}

#[test]
fn a_crashed_write_may_have_taken_effect() {
    let write = crashed(put(1, "k", "x", 0, 0));
    // Seen: it must have taken effect.
    assert!(is_linearizable(&[write.clone(), get(2, "k", 10, 20, Some("x"))]));
    // Not seen: it may not have (yet).
    assert!(is_linearizable(&[write.clone(), get(2, "k", 10, 20, None)]));
    // But once seen, it cannot be undone.
    let history = [write.clone(), get(2, "k", 10, 20, Some("x")), get(3, "k", 30, 40, None)];
    assert!(!is_linearizable(&history));
    // It can take effect after a later write, overwriting it.
    let history = [write, put(2, "k", "y", 10, 20), get(3, "k", 30, 40, Some("x"))];
    assert!(is_linearizable(&history));
}

#[test]
fn a_crashed_write_cannot_take_effect_before_its_call() {
    let history = [get(2, "k", 0, 5, Some("x")), crashed(put(1, "k", "x", 10, 10))];
    assert!(!is_linearizable(&history));
}

#[test]
fn a_crashed_cas_applies_only_if_it_matched() {
    let swap = crashed(cas(3, "k", Some("a"), "b", (10, 10), true));
    let history = [put(1, "k", "a", 0, 5), swap.clone(), get(2, "k", 20, 30, Some("b"))];
    assert!(is_linearizable(&history));
    let history = [put(1, "k", "c", 0, 5), swap, get(2, "k", 20, 30, Some("b"))];
    assert!(!is_linearizable(&history));
}

#[test]
fn cas_results_must_match_the_state() {
    let base = put(1, "k", "a", 0, 1);
    assert!(is_linearizable(&[
        base.clone(),
        cas(2, "k", Some("a"), "b", (2, 3), true),
        get(3, "k", 4, 5, Some("b")),
    ]));
    // A failed cas of the value that is there is impossible without concurrency.
    assert!(!is_linearizable(&[base.clone(), cas(2, "k", Some("a"), "b", (2, 3), false)]));
    assert!(is_linearizable(&[base.clone(), cas(2, "k", Some("z"), "b", (2, 3), false)]));
    assert!(!is_linearizable(&[base.clone(), cas(2, "k", Some("z"), "b", (2, 3), true)]));
    // A concurrent write explains a failed cas.
    assert!(is_linearizable(&[
        base,
        cas(2, "k", Some("a"), "b", (2, 10), false),
        put(3, "k", "c", 3, 4),
    ]));
    // `expected: absent` creates a key only once.
    assert!(is_linearizable(&[cas(1, "k", None, "a", (0, 1), true)]));
    assert!(!is_linearizable(&[
        cas(1, "k", None, "a", (0, 1), true),
        cas(2, "k", None, "b", (2, 3), true),
    ]));
    // Two concurrent creates: exactly one may win.
    assert!(is_linearizable(&[
        cas(1, "k", None, "a", (0, 10), true),
        cas(2, "k", None, "b", (0, 10), false),
    ]));
    assert!(!is_linearizable(&[
        cas(1, "k", None, "a", (0, 10), true),
        cas(2, "k", None, "b", (0, 10), true),
    ]));
}

#[test]
fn delete_makes_a_key_absent() {
    let history = [put(1, "k", "v", 0, 1), delete(2, "k", 2, 3), get(3, "k", 4, 5, None)];
    assert!(is_linearizable(&history));
    let history = [put(1, "k", "v", 0, 1), delete(2, "k", 2, 3), get(3, "k", 4, 5, Some("v"))];
    assert!(!is_linearizable(&history));
    // Concurrent with the delete, either is fine.
    let history = [put(1, "k", "v", 0, 1), delete(2, "k", 2, 10), get(3, "k", 4, 5, Some("v"))];
    assert!(is_linearizable(&history));
}

#[test]
fn keys_are_independent() {
    // Interleaved across keys, each key is fine on its own.
    let history = [
        put(1, "a", "1", 0, 10),
        put(2, "b", "2", 0, 10),
        get(3, "a", 11, 12, Some("1")),
        get(4, "b", 11, 12, Some("2")),
        get(5, "c", 11, 12, None),
    ];
    assert!(is_linearizable(&history));
}

#[test]
fn the_counterexample_names_the_partition_and_the_stuck_operations() {
    let history = [
        put(1, "a", "1", 0, 10),
        get(2, "a", 11, 12, Some("1")),
        put(1, "b", "v", 20, 100),
        get(2, "b", 30, 40, Some("v")),
        get(3, "b", 50, 60, None),
    ];
    let cx = counterexample_of(&history);
    assert_eq!(cx.partition, "key \"b\"");
    assert_eq!(cx.partition_operations, 3);
    let prefix: Vec<usize> = cx.prefix.iter().map(|op| op.index).collect();
    assert_eq!(prefix, [2, 3]);
    assert_eq!(cx.state_after_prefix, "\"v\"");
    assert_eq!(cx.stuck.len(), 1);
    assert_eq!(cx.stuck[0].index, 4);
    let text = Verdict::NotLinearizable { counterexample: Box::new(cx) }.to_string();
    let expected = "not linearizable
partition: key \"b\" (3 operations)
longest linearizable prefix: 2 operations
  op 2 (client 1, t=20..100): put(\"b\", \"v\") -> ok
  op 3 (client 2, t=30..40): get(\"b\") -> \"v\"
state after the prefix: \"v\"
one of these must come next, and none is possible in that state:
  op 4 (client 3, t=50..60): get(\"b\") -> absent";
    assert_eq!(text, expected);
}

#[test]
fn the_stuck_operations_are_all_that_could_go_next() {
    // Whichever of the two cas goes first, the other one cannot; the search reports the
    // longest prefix (put, one cas) and the loser.
    let history = [
        put(1, "k", "a", 0, 1),
        cas(2, "k", Some("a"), "b", (2, 10), true),
        cas(3, "k", Some("a"), "c", (2, 10), true),
        get(4, "k", 3, 4, Some("a")),
    ];
    let cx = counterexample_of(&history);
    assert_eq!(cx.prefix.len(), 3, "{cx}");
    assert_eq!(cx.prefix[0].index, 0);
    assert_eq!(cx.stuck.len(), 1, "{cx}");
    assert!(matches!(history[cx.stuck[0].index].input, KvInput::Cas { .. }));
}

#[test]
fn the_first_illegal_partition_in_key_order_is_reported() {
    let history = [
        get(1, "z", 0, 1, Some("no")),
        put(1, "m", "1", 2, 3),
        get(2, "m", 4, 5, Some("2")),
        put(3, "a", "1", 0, 1),
    ];
    assert_eq!(counterexample_of(&history).partition, "key \"m\"");
}

#[test]
fn a_zero_time_budget_gives_unknown() {
    let history = [put(1, "k", "v", 0, 1), get(2, "k", 2, 3, Some("v"))];
    let options = CheckOptions { timeout: Some(Duration::ZERO), ..CheckOptions::default() };
    let verdict = check(&KvModel, &history, &options);
    assert!(
        matches!(&verdict, Verdict::Unknown { reason: UnknownReason::TimeBudget { .. } }),
        "{verdict}"
    );
    assert!(verdict.to_string().starts_with("unknown: time budget of 0.000s ran out"));
}

#[test]
fn a_full_cache_gives_unknown_unless_another_partition_is_illegal() {
    let fine = [put(1, "a", "v", 0, 1), get(2, "a", 2, 3, Some("v"))];
    let options = CheckOptions { max_cache_bytes: 0, ..CheckOptions::default() };
    let verdict = check(&KvModel, &fine, &options);
    assert!(
        matches!(&verdict, Verdict::Unknown { reason: UnknownReason::CacheLimit { .. } }),
        "{verdict}"
    );
    assert_eq!(
        verdict.to_string(),
        "unknown: search cache limit of 0 MiB reached while checking key \"a\" (2 operations)"
    );
    // "b" is illegal at once, without caching anything: that is a definite answer.
    let mut history = fine.to_vec();
    history.push(get(3, "b", 0, 1, Some("ghost")));
    let verdict = check(&KvModel, &history, &options);
    assert!(matches!(verdict, Verdict::NotLinearizable { .. }), "{verdict}");
}

/// A deterministic xorshift generator, for building large histories.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A history of `clients` clients on `keys` keys, made linearizable by construction: each
/// operation takes effect at a random instant inside its interval, in that order.
fn generated_history(seed: u64, clients: u64, keys: u64, ops_per_client: u64) -> Vec<KvOp> {
    let mut rng = Rng(seed);
    // (effect time, client, call, return, input)
    let mut planned = Vec::new();
    for client in 0..clients {
        let mut t = rng.below(10);
        for i in 0..ops_per_client {
            let call = t;
            let ret = call + 1 + rng.below(30);
            let effect = call + rng.below(ret - call + 1);
            let key = format!("k{}", rng.below(keys));
            let input = match rng.below(4) {
                0 => KvInput::Put { key, value: format!("{client}.{i}") },
                1 => KvInput::Delete { key },
                2 => KvInput::Cas {
                    key,
                    expected: Some(format!("{}.{}", rng.below(clients), rng.below(ops_per_client))),
                    new: format!("{client}.{i}"),
                },
                _ => KvInput::Get { key },
            };
            planned.push((effect, client, call, ret, input));
            t = ret + 1 + rng.below(5);
        }
    }
    planned.sort_by_key(|p| (p.0, p.1));
    let mut state = std::collections::BTreeMap::<String, String>::new();
    let mut history = Vec::new();
    for (_, client, call, ret, input) in planned {
        let output = match &input {
            KvInput::Get { key } => KvOutput::Get(state.get(key).cloned()),
            KvInput::Put { key, value } => {
                state.insert(key.clone(), value.clone());
                KvOutput::Written
            }
            KvInput::Delete { key } => {
                state.remove(key);
                KvOutput::Written
            }
            KvInput::Cas { key, expected, new } => {
                let swapped = state.get(key) == expected.as_ref();
                if swapped {
                    state.insert(key.clone(), new.clone());
                }
                KvOutput::Cas(swapped)
            }
        };
        history.push(Operation {
            client_id: client,
            input,
            call_time: call,
            output: Some(output),
            return_time: Some(ret),
        });
    }
    history.sort_by_key(|op| op.call_time);
    history
}

#[test]
fn large_generated_histories_are_checked_quickly() {
    for seed in 1..=5 {
        let mut history = generated_history(seed * 7919, 8, 4, 150);
        assert_eq!(verdict(&history), Verdict::Linearizable, "seed {seed}");
        // Plant a read of a value nobody wrote.
        let last_get = history
            .iter()
            .rposition(|op| matches!(op.input, KvInput::Get { .. }))
            .expect("the generator makes gets");
        history[last_get].output = Some(KvOutput::Get(Some("planted".into())));
        let cx = counterexample_of(&history);
        assert!(cx.stuck.iter().any(|s| s.index == last_get), "seed {seed}: {cx}");
    }
}

#[test]
fn crashed_operations_in_generated_histories_keep_them_linearizable() {
    let mut history = generated_history(42, 6, 2, 100);
    // Forget the outcome of every tenth write: they may or may not have happened, and they
    // did happen, so the history stays linearizable.
    for op in history.iter_mut().step_by(10) {
        if !matches!(op.input, KvInput::Get { .. }) {
            op.output = None;
            op.return_time = None;
        }
    }
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn register_histories() {
    let op = |client, input, call, output, ret| Operation {
        client_id: client,
        input,
        call_time: call,
        output,
        return_time: ret,
    };
    let options = CheckOptions::default();
    // nil initial state; a read of nil after a write is illegal (no delete).
    let history = [
        op(0, RegisterInput::Read, 0, Some(RegisterOutput::Read(None)), Some(1)),
        op(1, RegisterInput::Write(3), 2, Some(RegisterOutput::Written), Some(3)),
        op(2, RegisterInput::Read, 4, Some(RegisterOutput::Read(None)), Some(5)),
    ];
    let verdict = check(&RegisterModel, &history, &options);
    let Verdict::NotLinearizable { counterexample } = verdict else {
        panic!("expected not linearizable, got {verdict}");
    };
    assert_eq!(counterexample.partition, "the register");
    assert_eq!(counterexample.state_after_prefix, "3");
    // An indeterminate cas explains a later read.
    let history = [
        op(1, RegisterInput::Write(3), 0, Some(RegisterOutput::Written), Some(1)),
        op(2, RegisterInput::Cas { from: 3, to: 4 }, 2, None, None),
        op(3, RegisterInput::Read, 4, Some(RegisterOutput::Read(Some(4))), Some(5)),
    ];
    assert_eq!(check(&RegisterModel, &history, &options), Verdict::Linearizable);
}

/// Whether some order of `remaining`, consistent with real time, is legal from `states`:
/// the definition of linearizability, tried exhaustively.
fn brute_force(
    history: &[KvOp],
    remaining: &mut Vec<usize>,
    states: &mut BTreeMap<String, Option<String>>,
) -> bool {
    if remaining.is_empty() {
        return true;
    }
    for i in 0..remaining.len() {
        let op = &history[remaining[i]];
        // `op` can go next unless another remaining operation returned before it was called.
        let blocked = remaining
            .iter()
            .any(|&other| history[other].return_time.is_some_and(|ret| ret < op.call_time));
        if blocked {
            continue;
        }
        let key = op.input.key().to_owned();
        let before = states.get(&key).cloned().unwrap_or(None);
        let after = match KvModel.step(&before, &op.input, op.output.as_ref()) {
            Step::Illegal => continue,
            Step::Unchanged => before.clone(),
            Step::To(state) => state,
        };
        let chosen = remaining.remove(i);
        states.insert(key.clone(), after);
        let found = brute_force(history, remaining, states);
        states.insert(key, before);
        remaining.insert(i, chosen);
        if found {
            return true;
        }
    }
    false
}

#[test]
fn agrees_with_brute_force_on_small_random_histories() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let value = |rng: &mut Rng| ["1", "2"][rng.below(2) as usize].to_owned();
    let (mut linearizable, mut total) = (0, 0);
    for _ in 0..3000 {
        let n = 1 + rng.below(7);
        let mut history = Vec::new();
        for client in 0..n {
            let key = ["a", "b"][usize::from(rng.below(4) == 0)].to_owned();
            let (input, output) = match rng.below(4) {
                0 => {
                    let read = [None, Some("1"), Some("2")][rng.below(3) as usize];
                    (KvInput::Get { key }, KvOutput::Get(read.map(str::to_owned)))
                }
                1 => (KvInput::Put { key, value: value(&mut rng) }, KvOutput::Written),
                2 => (KvInput::Delete { key }, KvOutput::Written),
                _ => {
                    let expected = (rng.below(3) > 0).then(|| value(&mut rng));
                    let new = value(&mut rng);
                    (KvInput::Cas { key, expected, new }, KvOutput::Cas(rng.below(2) == 0))
                }
            };
            let call_time = rng.below(10);
            let crashed = rng.below(6) == 0;
            history.push(Operation {
                client_id: client,
                input,
                call_time,
                output: (!crashed).then_some(output),
                return_time: (!crashed).then(|| call_time + rng.below(6)),
            });
        }
        let expected =
            brute_force(&history, &mut (0..history.len()).collect(), &mut BTreeMap::new());
        let got = verdict(&history);
        assert_eq!(got == Verdict::Linearizable, expected, "{history:#?}\n{got}");
        if let Verdict::NotLinearizable { counterexample } = &got {
            assert!(!counterexample.stuck.is_empty(), "{counterexample}");
        }
        linearizable += usize::from(expected);
        total += 1;
    }
    // Both verdicts are well represented.
    assert!(linearizable > total / 5 && linearizable < total * 4 / 5, "{linearizable}/{total}");
}
