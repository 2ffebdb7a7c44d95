//! Porcupine's KV logs (`kv/cNN-{ok,bad}.txt`), for [`AppendKvModel`].
//!
//! One EDN map per line, in real-time order; the line number is the time:
//!
//! ```text
//! {:process 3, :type :invoke, :f :append, :key "4", :value "x 3 1 y"}
//! {:process 3, :type :ok, :f :append, :key "4", :value "x 3 1 y"}
//! {:process 1, :type :invoke, :f :get, :key "4", :value nil}
//! {:process 1, :type :ok, :f :get, :key "4", :value "x 3 1 y"}
//! ```
//!
//! - `:type` is `:invoke` or `:ok`; also accepted: `:info` (indeterminate: the operation never
//!   returns) and `:fail` (did not happen: left out).
//! - `:f` is `:get`, `:put` or `:append`. A call of get has `:value nil`; put and append carry
//!   their argument. A get's `:ok` carries the value read (`""` or `nil` for an unset key);
//!   the value echoed by a put's or append's `:ok` is not checked, nor is the `:key` of a
//!   return (as in Porcupine).
//! - Fields may come in any order and other fields are ignored; commas are whitespace.
//!   Strings may use the escapes `\"` and `\\`.
//!
//! Unlike Porcupine's test parser, which closes an operation still open at the end of the
//! file with an empty output, such an operation here has an unknown output: it may or may not
//! have happened (the given logs have none).

use super::{HistoryBuilder, ParseError, ParseErrorKind, line_time, numbered_lines};
use crate::linearizability::Operation;
use crate::linearizability::models::{AppendKvInput, AppendKvOutput};

#[cfg(doc)]
use crate::linearizability::models::AppendKvModel;

/// An EDN value of the subset these logs use.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Edn {
    Keyword(String),
    Str(String),
    Int(u64),
    Nil,
}

/// Parses a Porcupine KV log into get/put/append operations.
pub fn parse(text: &str) -> Result<Vec<Operation<AppendKvInput, AppendKvOutput>>, ParseError> {
    let mut history = HistoryBuilder::new();
    for (line, content) in numbered_lines(text) {
        let map = parse_map(line, content)?;
        let repeated =
            map.iter().enumerate().find(|(i, (k, _))| map[..*i].iter().any(|(j, _)| j == k));
        if let Some((_, (key, _))) = repeated {
            return Err(ParseError::syntax(line, format!("field :{key} appears twice")));
        }
        let field = |name: &str| {
            map.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
                .ok_or_else(|| ParseError::syntax(line, format!("missing field :{name}")))
        };
        let process = match field("process")? {
            Edn::Int(p) => *p,
            _ => return Err(ParseError::syntax(line, ":process is not a non-negative integer")),
        };
        let kind = keyword(line, field("type")?, "type")?;
        let f = keyword(line, field("f")?, "f")?;
        if !matches!(f, "get" | "put" | "append") {
            return Err(ParseError::syntax(line, format!(":f :{f} is not :get, :put or :append")));
        }
        let time = line_time(line);
        match kind {
            "invoke" => {
                let key = match field("key")? {
                    Edn::Str(key) => key.clone(),
                    _ => return Err(ParseError::syntax(line, ":key is not a string")),
                };
                let input = match (f, field("value")?) {
                    ("get", Edn::Nil) => AppendKvInput::Get { key },
                    ("put", Edn::Str(value)) => AppendKvInput::Put { key, value: value.clone() },
                    ("append", Edn::Str(value)) => {
                        AppendKvInput::Append { key, value: value.clone() }
                    }
                    _ => return Err(ParseError::syntax(line, format!("bad :value for :{f}"))),
                };
                history.invoke(line, process, input, time)?;
            }
            "ok" | "fail" | "info" => {
                let (input, open) = history.open_call(line, process)?;
                let called = match input {
                    AppendKvInput::Get { .. } => "get",
                    AppendKvInput::Put { .. } => "put",
                    AppendKvInput::Append { .. } => "append",
                };
                if called != f {
                    return Err(ParseError {
                        line,
                        kind: ParseErrorKind::Mismatch {
                            invoke_line: open.line,
                            detail: format!("function :{f}, but :{called} was called"),
                        },
                    });
                }
                match kind {
                    "fail" => history.drop_open(process),
                    "info" => history.abandon(process),
                    _ => {
                        let output = match (f, field("value")) {
                            ("get", Ok(Edn::Str(value))) => AppendKvOutput::Value(value.clone()),
                            ("get", Ok(Edn::Nil)) => AppendKvOutput::Value(String::new()),
                            ("get", _) => {
                                return Err(ParseError::syntax(line, "a get's :ok needs a :value"));
                            }
                            _ => AppendKvOutput::Done,
                        };
                        history.complete(line, process, Some(output), time);
                    }
                }
            }
            other => {
                return Err(ParseError::syntax(
                    line,
                    format!(":type :{other} is not :invoke, :ok, :fail or :info"),
                ));
            }
        }
    }
    Ok(history.finish())
}

fn keyword<'a>(line: usize, value: &'a Edn, name: &str) -> Result<&'a str, ParseError> {
    match value {
        Edn::Keyword(k) => Ok(k),
        _ => Err(ParseError::syntax(line, format!(":{name} is not a keyword"))),
    }
}

/// Parses `{:k v, ...}` into its entries, keys without the colon.
fn parse_map(line: usize, text: &str) -> Result<Vec<(String, Edn)>, ParseError> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| ParseError::syntax(line, "expected an EDN map `{...}`"))?;
    let mut chars = inner.char_indices().peekable();
    let mut tokens = Vec::new();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() || c == ',' {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c @ ('"' | '\\'))) => s.push(c),
                        Some((_, 'n')) => s.push('\n'),
                        Some((_, 't')) => s.push('\t'),
                        _ => return Err(ParseError::syntax(line, "bad escape in a string")),
                    },
                    Some((_, c)) => s.push(c),
                    None => return Err(ParseError::syntax(line, "unterminated string")),
                }
            }
            tokens.push(Edn::Str(s));
        } else {
            let mut end = inner.len();
            while let Some(&(i, c)) = chars.peek() {
                if c.is_whitespace() || c == ',' || c == '"' {
                    end = i;
                    break;
                }
                chars.next();
            }
            let atom = &inner[start..end];
            tokens.push(if atom == "nil" {
                Edn::Nil
            } else if let Some(k) = atom.strip_prefix(':') {
                Edn::Keyword(k.to_owned())
            } else if let Ok(n) = atom.parse() {
                Edn::Int(n)
            } else {
                return Err(ParseError::syntax(line, format!("unexpected `{atom}`")));
            });
        }
    }
    if tokens.len() % 2 != 0 {
        return Err(ParseError::syntax(line, "a map needs an even number of forms"));
    }
    let mut entries = Vec::with_capacity(tokens.len() / 2);
    let mut tokens = tokens.into_iter();
    while let (Some(key), Some(value)) = (tokens.next(), tokens.next()) {
        match key {
            Edn::Keyword(key) => entries.push((key, value)),
            _ => return Err(ParseError::syntax(line, "map keys must be keywords")),
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_porcupine_lines() {
        let text = r#"{:process 9, :type :invoke, :f :append, :key "0", :value "x 9 0 y"}
{:process 1, :type :invoke, :f :get, :key "0", :value nil}
{:process 9, :type :ok, :f :append, :key "0", :value "x 9 0 y"}
{:process 1, :type :ok, :f :get, :key "0", :value "x 9 0 y"}
{:process 2, :type :invoke, :f :put, :key "1", :value "a\"b"}
"#;
        let ops = parse(text).unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(
            ops[0].input,
            AppendKvInput::Append { key: "0".into(), value: "x 9 0 y".into() }
        );
        assert_eq!(ops[0].output, Some(AppendKvOutput::Done));
        assert_eq!(ops[1].output, Some(AppendKvOutput::Value("x 9 0 y".into())));
        assert_eq!((ops[1].call_time, ops[1].return_time), (2, Some(4)));
        assert_eq!(ops[2].input, AppendKvInput::Put { key: "1".into(), value: "a\"b".into() });
        assert_eq!(ops[2].return_time, None);
    }

    #[test]
    fn malformed_lines_name_their_number() {
        let ok = r#"{:process 1, :type :invoke, :f :get, :key "0", :value nil}"#;
        let cases = [
            format!("{ok}\n{{:process 1, :type :ok, :f :get}}"),
            format!("{ok}\n{{:process 1, :type :ok, :f :put, :key \"0\", :value \"\"}}"),
            format!("{ok}\n{ok}"),
            "\n\n{:process 1, :type :invoke, :f :get, :key \"0\", :value nil".to_owned(),
            "{:process -1, :type :invoke, :f :get, :key \"0\", :value nil}".to_owned(),
            "{:process 1, :type :invoke, :f :cas, :key \"0\", :value nil}".to_owned(),
            "{:process 1, :type :invoke, :f :get, :key \"0, :value nil}".to_owned(),
            format!("{ok}\n{{:process 1, :type :ok, :f :get, :value \"a\", :value \"b\"}}"),
        ];
        let lines = [2, 2, 2, 3, 1, 1, 1, 2];
        for (text, line) in cases.iter().zip(lines) {
            let err = parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
        }
    }
}
