//! The three models the checker ships with.
//!
//! - [`KvModel`]: a key-value map with get, put, delete and compare-and-swap, partitioned by
//!   key. It is the model of Keel's own histories (the `keel` format).
//! - [`RegisterModel`]: the single register of the Jepsen etcd logs (read, write, cas).
//! - [`AppendKvModel`]: the get/put/append key-value model of Porcupine's KV logs,
//!   partitioned by key.
//!
//! An output of the wrong kind for its input (say a cas result on a get) never matches: the
//! parsers never build one, so it can only come from a caller's bug, and the step is illegal.

use std::fmt;

use super::model::{Model, Step};

/// An operation on [`KvModel`]'s key-value map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvInput {
    /// Read the value of `key`.
    Get {
        /// The key read.
        key: String,
    },
    /// Set `key` to `value`.
    Put {
        /// The key written.
        key: String,
        /// The new value.
        value: String,
    },
    /// Remove `key`.
    Delete {
        /// The key removed.
        key: String,
    },
    /// Set `key` to `new` if its value is `expected` (`None`: if the key is absent).
    Cas {
        /// The key compared and written.
        key: String,
        /// The value the key must hold for the swap; `None` means "absent".
        expected: Option<String>,
        /// The value written when the comparison holds.
        new: String,
    },
}

impl KvInput {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            KvInput::Get { key }
            | KvInput::Put { key, .. }
            | KvInput::Delete { key }
            | KvInput::Cas { key, .. } => key,
        }
    }
}

/// What a client of [`KvModel`] was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOutput {
    /// The result of a get: the value, or `None` if the key was absent.
    Get(Option<String>),
    /// A put or delete completed.
    Written,
    /// The result of a cas: whether it swapped.
    Cas(bool),
}

/// Key-value map with get, put, delete and compare-and-swap; each key is its own partition,
/// whose state is the key's value (`None`: absent, the initial state).
#[derive(Debug, Clone, Copy, Default)]
pub struct KvModel;

impl Model for KvModel {
    type Input = KvInput;
    type Output = KvOutput;
    type State = Option<String>;
    type Key = QuotedKey;

    fn key(&self, input: &KvInput) -> QuotedKey {
        QuotedKey(input.key().to_owned())
    }

    fn init(&self) -> Option<String> {
        None
    }

    fn step(
        &self,
        state: &Option<String>,
        input: &KvInput,
        output: Option<&KvOutput>,
    ) -> Step<Option<String>> {
        match (input, output) {
            (KvInput::Get { .. }, None) => Step::Unchanged,
            (KvInput::Get { .. }, Some(KvOutput::Get(read))) => legal_if(read == state),
            (KvInput::Put { value, .. }, None | Some(KvOutput::Written)) => {
                if state.as_deref() == Some(value.as_str()) {
                    Step::Unchanged
                } else {
                    Step::To(Some(value.clone()))
                }
            }
            (KvInput::Delete { .. }, None | Some(KvOutput::Written)) => {
                if state.is_none() {
                    Step::Unchanged
                } else {
                    Step::To(None)
                }
            }
            (KvInput::Cas { expected, new, .. }, output) => {
                let matches = state == expected;
                match output {
                    None | Some(KvOutput::Cas(true)) if matches => Step::To(Some(new.clone())),
                    None | Some(KvOutput::Cas(false)) if !matches => Step::Unchanged,
                    _ => Step::Illegal,
                }
            }
            _ => Step::Illegal,
        }
    }

    fn describe_operation(&self, input: &KvInput, output: Option<&KvOutput>) -> String {
        let call = match input {
            KvInput::Get { key } => format!("get({key:?})"),
            KvInput::Put { key, value } => format!("put({key:?}, {value:?})"),
            KvInput::Delete { key } => format!("delete({key:?})"),
            KvInput::Cas { key, expected, new } => {
                format!("cas({key:?}, {} -> {new:?})", describe_optional(expected.as_deref()))
            }
        };
        let result = match output {
            None => "?".to_owned(),
            Some(KvOutput::Get(read)) => describe_optional(read.as_deref()),
            Some(KvOutput::Written) => "ok".to_owned(),
            Some(KvOutput::Cas(true)) => "swapped".to_owned(),
            Some(KvOutput::Cas(false)) => "not swapped".to_owned(),
        };
        format!("{call} -> {result}")
    }

    fn describe_state(&self, state: &Option<String>) -> String {
        describe_optional(state.as_deref())
    }

    fn state_heap_bytes(&self, state: &Option<String>) -> usize {
        state.as_ref().map_or(0, String::capacity)
    }
}

/// A string partition key, displayed quoted (`key "k"`) in counterexamples.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotedKey(pub String);

impl fmt::Display for QuotedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {:?}", self.0)
    }
}

/// An operation on the Jepsen etcd register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterInput {
    /// Read the register.
    Read,
    /// Set the register.
    Write(i64),
    /// Set the register to `to` if it holds `from`.
    Cas {
        /// The value the register must hold.
        from: i64,
        /// The value written when it does.
        to: i64,
    },
}

/// What a client of the register was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOutput {
    /// The value read; `None` is Jepsen's `nil` (never written).
    Read(Option<i64>),
    /// The write completed.
    Written,
    /// The cas returned: `true` for `:ok` (swapped), `false` for `:fail` (did not match).
    Cas(bool),
}

/// The single register of the Jepsen etcd tests: read, write and cas, initially `nil`, no
/// partitioning. A cas that returned `:fail` is a definite "the value did not match".
#[derive(Debug, Clone, Copy, Default)]
pub struct RegisterModel;

/// The partition key of [`RegisterModel`]: there is one register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TheRegister;

impl fmt::Display for TheRegister {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the register")
    }
}

impl Model for RegisterModel {
    type Input = RegisterInput;
    type Output = RegisterOutput;
    type State = Option<i64>;
    type Key = TheRegister;

    fn key(&self, _input: &RegisterInput) -> TheRegister {
        TheRegister
    }

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(
        &self,
        state: &Option<i64>,
        input: &RegisterInput,
        output: Option<&RegisterOutput>,
    ) -> Step<Option<i64>> {
        match (*input, output) {
            (RegisterInput::Read, None) => Step::Unchanged,
            (RegisterInput::Read, Some(RegisterOutput::Read(read))) => legal_if(read == state),
            (RegisterInput::Write(value), None | Some(RegisterOutput::Written)) => {
                Step::To(Some(value))
            }
            (RegisterInput::Cas { from, to }, output) => {
                let matches = *state == Some(from);
                match output {
                    None | Some(RegisterOutput::Cas(true)) if matches => Step::To(Some(to)),
                    None | Some(RegisterOutput::Cas(false)) if !matches => Step::Unchanged,
                    _ => Step::Illegal,
                }
            }
            _ => Step::Illegal,
        }
    }

    fn describe_operation(&self, input: &RegisterInput, output: Option<&RegisterOutput>) -> String {
        let call = match input {
            RegisterInput::Read => "read()".to_owned(),
            RegisterInput::Write(value) => format!("write({value})"),
            RegisterInput::Cas { from, to } => format!("cas({from}, {to})"),
        };
        let result = match output {
            None => "?".to_owned(),
            Some(RegisterOutput::Read(read)) => describe_register(*read),
            Some(RegisterOutput::Written) => "ok".to_owned(),
            Some(RegisterOutput::Cas(true)) => "ok".to_owned(),
            Some(RegisterOutput::Cas(false)) => "fail".to_owned(),
        };
        format!("{call} -> {result}")
    }

    fn describe_state(&self, state: &Option<i64>) -> String {
        describe_register(*state)
    }
}

/// An operation of Porcupine's KV logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendKvInput {
    /// Read `key` ("" if never written).
    Get {
        /// The key read.
        key: String,
    },
    /// Set `key` to `value`.
    Put {
        /// The key written.
        key: String,
        /// The new value.
        value: String,
    },
    /// Append `value` to the value of `key`.
    Append {
        /// The key appended to.
        key: String,
        /// The suffix.
        value: String,
    },
}

impl AppendKvInput {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            AppendKvInput::Get { key }
            | AppendKvInput::Put { key, .. }
            | AppendKvInput::Append { key, .. } => key,
        }
    }
}

/// What a client of [`AppendKvModel`] was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendKvOutput {
    /// The value a get read.
    Value(String),
    /// A put or append completed (its echoed value is not checked, as in Porcupine).
    Done,
}

/// Porcupine's `kvModel`: get/put/append on string values, partitioned by key; a key's state
/// is its value, initially "".
#[derive(Debug, Clone, Copy, Default)]
pub struct AppendKvModel;

impl Model for AppendKvModel {
    type Input = AppendKvInput;
    type Output = AppendKvOutput;
    type State = String;
    type Key = QuotedKey;

    fn key(&self, input: &AppendKvInput) -> QuotedKey {
        QuotedKey(input.key().to_owned())
    }

    fn init(&self) -> String {
        String::new()
    }

    fn step(
        &self,
        state: &String,
        input: &AppendKvInput,
        output: Option<&AppendKvOutput>,
    ) -> Step<String> {
        match (input, output) {
            (AppendKvInput::Get { .. }, None) => Step::Unchanged,
            (AppendKvInput::Get { .. }, Some(AppendKvOutput::Value(read))) => {
                legal_if(read == state)
            }
            (AppendKvInput::Get { .. }, Some(AppendKvOutput::Done)) => Step::Illegal,
            (AppendKvInput::Put { value, .. }, _) => {
                if value == state {
                    Step::Unchanged
                } else {
                    Step::To(value.clone())
                }
            }
            (AppendKvInput::Append { value, .. }, _) => {
                if value.is_empty() {
                    Step::Unchanged
                } else {
                    let mut appended = String::with_capacity(state.len() + value.len());
                    appended.push_str(state);
                    appended.push_str(value);
                    Step::To(appended)
                }
            }
        }
    }

    fn describe_operation(&self, input: &AppendKvInput, output: Option<&AppendKvOutput>) -> String {
        let call = match input {
            AppendKvInput::Get { key } => format!("get({key:?})"),
            AppendKvInput::Put { key, value } => format!("put({key:?}, {value:?})"),
            AppendKvInput::Append { key, value } => format!("append({key:?}, {value:?})"),
        };
        match output {
            None => format!("{call} -> ?"),
            Some(AppendKvOutput::Value(read)) => format!("{call} -> {read:?}"),
            Some(AppendKvOutput::Done) => format!("{call} -> ok"),
        }
    }

    fn describe_state(&self, state: &String) -> String {
        format!("{state:?}")
    }

    fn state_heap_bytes(&self, state: &String) -> usize {
        state.capacity()
    }
}

fn legal_if<S>(legal: bool) -> Step<S> {
    if legal { Step::Unchanged } else { Step::Illegal }
}

fn describe_optional(value: Option<&str>) -> String {
    match value {
        Some(value) => format!("{value:?}"),
        None => "absent".to_owned(),
    }
}

fn describe_register(value: Option<i64>) -> String {
    match value {
        Some(value) => value.to_string(),
        None => "nil".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv_get(key: &str) -> KvInput {
        KvInput::Get { key: key.to_owned() }
    }

    #[test]
    fn kv_get_reads_the_state() {
        let some = Some("v".to_owned());
        assert_eq!(
            KvModel.step(&some, &kv_get("k"), Some(&KvOutput::Get(some.clone()))),
            Step::Unchanged
        );
        assert_eq!(KvModel.step(&some, &kv_get("k"), Some(&KvOutput::Get(None))), Step::Illegal);
        assert_eq!(KvModel.step(&None, &kv_get("k"), Some(&KvOutput::Get(None))), Step::Unchanged);
        assert_eq!(KvModel.step(&some, &kv_get("k"), None), Step::Unchanged);
        assert_eq!(KvModel.step(&some, &kv_get("k"), Some(&KvOutput::Cas(true))), Step::Illegal);
    }

    #[test]
    fn kv_cas_semantics() {
        let cas = KvInput::Cas { key: "k".into(), expected: None, new: "a".into() };
        let a = Some("a".to_owned());
        assert_eq!(KvModel.step(&None, &cas, Some(&KvOutput::Cas(true))), Step::To(a.clone()));
        assert_eq!(KvModel.step(&None, &cas, Some(&KvOutput::Cas(false))), Step::Illegal);
        assert_eq!(KvModel.step(&a, &cas, Some(&KvOutput::Cas(false))), Step::Unchanged);
        assert_eq!(KvModel.step(&a, &cas, Some(&KvOutput::Cas(true))), Step::Illegal);
        assert_eq!(KvModel.step(&None, &cas, None), Step::To(a.clone()));
        assert_eq!(KvModel.step(&a, &cas, None), Step::Unchanged);
    }

    #[test]
    fn kv_put_and_delete() {
        let put = KvInput::Put { key: "k".into(), value: "v".into() };
        let v = Some("v".to_owned());
        assert_eq!(KvModel.step(&None, &put, Some(&KvOutput::Written)), Step::To(v.clone()));
        assert_eq!(KvModel.step(&v, &put, None), Step::Unchanged);
        let delete = KvInput::Delete { key: "k".into() };
        assert_eq!(KvModel.step(&v, &delete, None), Step::To(None));
        assert_eq!(KvModel.step(&None, &delete, Some(&KvOutput::Written)), Step::Unchanged);
        assert_eq!(
            KvModel.describe_operation(&put, Some(&KvOutput::Written)),
            r#"put("k", "v") -> ok"#
        );
    }

    #[test]
    fn register_semantics() {
        let m = RegisterModel;
        let read = RegisterInput::Read;
        assert_eq!(m.step(&None, &read, Some(&RegisterOutput::Read(None))), Step::Unchanged);
        assert_eq!(m.step(&Some(1), &read, Some(&RegisterOutput::Read(None))), Step::Illegal);
        assert_eq!(m.step(&Some(1), &read, None), Step::Unchanged);
        assert_eq!(m.step(&None, &RegisterInput::Write(3), None), Step::To(Some(3)));
        let cas = RegisterInput::Cas { from: 1, to: 2 };
        assert_eq!(m.step(&Some(1), &cas, Some(&RegisterOutput::Cas(true))), Step::To(Some(2)));
        assert_eq!(m.step(&Some(1), &cas, Some(&RegisterOutput::Cas(false))), Step::Illegal);
        assert_eq!(m.step(&None, &cas, Some(&RegisterOutput::Cas(false))), Step::Unchanged);
        assert_eq!(m.step(&None, &cas, None), Step::Unchanged);
        assert_eq!(m.step(&Some(1), &cas, None), Step::To(Some(2)));
        assert_eq!(
            m.describe_operation(&cas, Some(&RegisterOutput::Cas(false))),
            "cas(1, 2) -> fail"
        );
    }

    #[test]
    fn append_kv_semantics() {
        let m = AppendKvModel;
        let append = AppendKvInput::Append { key: "0".into(), value: "x".into() };
        assert_eq!(m.step(&"a".to_owned(), &append, None), Step::To("ax".to_owned()));
        let get = AppendKvInput::Get { key: "0".into() };
        let read = AppendKvOutput::Value(String::new());
        assert_eq!(m.step(&String::new(), &get, Some(&read)), Step::Unchanged);
        assert_eq!(m.step(&"a".to_owned(), &get, Some(&read)), Step::Illegal);
    }
}
