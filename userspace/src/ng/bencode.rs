//! Bencode: byte strings, integers, lists and dictionaries.
//!
//! The decoder accepts dictionary keys in any order (rtpengine's peers do not
//! sort them) but rejects duplicate keys, and it is strict about everything
//! else: no leading zeros in lengths or integers, no `-0`, no negative
//! lengths, lengths that fit the remaining input, nesting at most
//! [`Limits::max_depth`] deep and input at most [`Limits::max_input`] bytes.
//! It never allocates more than the input size justifies and never recurses
//! deeper than the depth limit. The encoder writes dictionaries with sorted
//! keys, as the specification asks.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

/// A decoded bencode value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A byte string (not necessarily UTF-8).
    Bytes(Vec<u8>),
    Int(i64),
    List(Vec<Value>),
    /// Keys are byte strings; the map keeps them sorted for encoding.
    Dict(BTreeMap<Vec<u8>, Value>),
}

/// Decoder limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest input accepted, in bytes.
    pub max_input: usize,
    /// Deepest nesting of lists and dictionaries (the top-level container is
    /// depth 1).
    pub max_depth: usize,
}

impl Default for Limits {
    /// 64 KiB of input (one UDP datagram) and 32 levels, far more than any
    /// ng message uses (rtpengine's deepest request, `sdp-attr`, has 4).
    fn default() -> Self {
        Limits {
            max_input: 65_536,
            max_depth: 32,
        }
    }
}

/// Why a byte string is not one bencode value. Offsets are 0-based byte
/// positions in the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BencodeError {
    #[error("input of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("input ends inside a value (byte {at})")]
    Truncated { at: usize },
    #[error("unexpected byte 0x{byte:02x} at byte {at}")]
    Unexpected { at: usize, byte: u8 },
    #[error("invalid integer at byte {at}")]
    BadInteger { at: usize },
    #[error("invalid string length at byte {at}")]
    BadLength { at: usize },
    #[error("string length {len} at byte {at} runs past the end of the input")]
    LengthPastEnd { at: usize, len: u64 },
    #[error("nesting deeper than {max} levels at byte {at}")]
    TooDeep { at: usize, max: usize },
    #[error("dictionary key at byte {at} is not a byte string")]
    KeyNotString { at: usize },
    #[error("duplicate dictionary key at byte {at}")]
    DuplicateKey { at: usize },
    #[error("trailing data after the value at byte {at}")]
    Trailing { at: usize },
}

/// Decodes exactly one value from `input` with the default [`Limits`].
pub fn decode(input: &[u8]) -> Result<Value, BencodeError> {
    decode_with(input, Limits::default())
}

/// Decodes exactly one value from `input`; trailing bytes are an error.
pub fn decode_with(input: &[u8], limits: Limits) -> Result<Value, BencodeError> {
    if input.len() > limits.max_input {
        return Err(BencodeError::TooLarge {
            len: input.len(),
            max: limits.max_input,
        });
    }
    let mut d = Decoder {
        input,
        pos: 0,
        max_depth: limits.max_depth,
    };
    let v = d.value(0)?;
    if d.pos != input.len() {
        return Err(BencodeError::Trailing { at: d.pos });
    }
    Ok(v)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl Decoder<'_> {
    fn peek(&self) -> Result<u8, BencodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(BencodeError::Truncated { at: self.pos })
    }

    fn value(&mut self, depth: usize) -> Result<Value, BencodeError> {
        let at = self.pos;
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                self.integer().map(Value::Int)
            }
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' | b'd' if depth >= self.max_depth => Err(BencodeError::TooDeep {
                at,
                max: self.max_depth,
            }),
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.pos += 1;
                let mut map = BTreeMap::new();
                loop {
                    let key_at = self.pos;
                    match self.peek()? {
                        b'e' => break,
                        b'0'..=b'9' => {}
                        _ => return Err(BencodeError::KeyNotString { at: key_at }),
                    }
                    let key = self.bytes()?;
                    let value = self.value(depth + 1)?;
                    if map.insert(key, value).is_some() {
                        return Err(BencodeError::DuplicateKey { at: key_at });
                    }
                }
                self.pos += 1;
                Ok(Value::Dict(map))
            }
            byte => Err(BencodeError::Unexpected { at, byte }),
        }
    }

    /// The digits of an integer or a length up to `end`, without sign.
    /// Leading zeros are refused (a lone `0` is fine).
    fn digits(&mut self, end: u8) -> Result<Option<u64>, BencodeError> {
        let start = self.pos;
        let mut n: u64 = 0;
        loop {
            let b = self.peek()?;
            if b == end {
                break;
            }
            if !b.is_ascii_digit() {
                return Err(BencodeError::Unexpected {
                    at: self.pos,
                    byte: b,
                });
            }
            if self.pos > start && self.input.get(start) == Some(&b'0') {
                return Ok(None);
            }
            n = match n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
            {
                Some(n) => n,
                None => return Ok(None),
            };
            self.pos += 1;
        }
        if self.pos == start {
            return Ok(None);
        }
        self.pos += 1;
        Ok(Some(n))
    }

    /// After the `i`: `-`? digits `e`, canonical (no `-0`, no leading zero).
    fn integer(&mut self) -> Result<i64, BencodeError> {
        let at = self.pos;
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let bad = BencodeError::BadInteger { at };
        let n = self.digits(b'e')?.ok_or(bad.clone())?;
        if negative {
            if n == 0 {
                return Err(bad);
            }
            // i64::MIN has no positive counterpart.
            0i64.checked_sub_unsigned(n).ok_or(bad)
        } else {
            i64::try_from(n).map_err(|_| bad)
        }
    }

    /// `length:bytes`.
    fn bytes(&mut self) -> Result<Vec<u8>, BencodeError> {
        let at = self.pos;
        let len = self
            .digits(b':')
            .map_err(|e| match e {
                BencodeError::Unexpected { .. } => BencodeError::BadLength { at },
                e => e,
            })?
            .ok_or(BencodeError::BadLength { at })?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|n| self.pos.checked_add(n));
        let Some(bytes) = end.and_then(|end| self.input.get(self.pos..end)) else {
            return Err(BencodeError::LengthPastEnd { at, len });
        };
        let out = bytes.to_vec();
        self.pos += out.len();
        Ok(out)
    }
}

impl Value {
    /// A byte string from text.
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    /// An integer from an unsigned count, saturating at `i64::MAX` (bencode
    /// integers are signed 64-bit in every implementation we talk to).
    pub fn uint(n: u64) -> Value {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// A dictionary from `(key, value)` pairs.
    pub fn dict<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Dict(
            entries
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8 text.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&BTreeMap<Vec<u8>, Value>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The dictionary entry `key`, if this is a dictionary that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_dict().and_then(|d| d.get(key.as_bytes()))
    }

    /// Appends the encoding of this value to `out` (dictionary keys sorted).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Bytes(b) => encode_bytes(b, out),
            Value::Int(n) => {
                out.push(b'i');
                out.extend_from_slice(n.to_string().as_bytes());
                out.push(b'e');
            }
            Value::List(items) => {
                out.push(b'l');
                for v in items {
                    v.encode_into(out);
                }
                out.push(b'e');
            }
            Value::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    encode_bytes(k, out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The encoding of this value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests decode known-good fixtures")]
mod tests {
    use super::*;

    fn b(s: &str) -> Value {
        Value::str(s)
    }

    #[test]
    fn decodes_valid_input() {
        let cases: Vec<(&[u8], Value)> = vec![
            (b"0:", b("")),
            (b"4:spam", b("spam")),
            (b"i0e", Value::Int(0)),
            (b"i42e", Value::Int(42)),
            (b"i-42e", Value::Int(-42)),
            (b"i9223372036854775807e", Value::Int(i64::MAX)),
            (b"i-9223372036854775808e", Value::Int(i64::MIN)),
            (b"le", Value::List(vec![])),
            (b"l4:spami3ee", Value::List(vec![b("spam"), Value::Int(3)])),
            (b"de", Value::Dict(BTreeMap::new())),
            // Keys out of order, as rtpengine's peers send them.
            (
                b"d7:command4:ping3:abci1ee",
                Value::dict([("command", b("ping")), ("abc", Value::Int(1))]),
            ),
            (
                b"d1:ald1:bleeee",
                Value::dict([(
                    "a",
                    Value::List(vec![Value::dict([("b", Value::List(vec![]))])]),
                )]),
            ),
            // Binary strings.
            (b"3:\x00\xff\n", Value::Bytes(vec![0, 0xff, b'\n'])),
        ];
        for (input, want) in cases {
            assert_eq!(
                decode(input).as_ref(),
                Ok(&want),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn rejects_hostile_input() {
        use BencodeError::*;
        let deep_list = format!("{}{}", "l".repeat(33), "e".repeat(33));
        let deep_dict = format!("{}i1e{}", "d1:a".repeat(40), "e".repeat(40));
        let cases: Vec<(Vec<u8>, BencodeError)> = vec![
            (b"".to_vec(), Truncated { at: 0 }),
            (b"i".to_vec(), Truncated { at: 1 }),
            (b"i12".to_vec(), Truncated { at: 3 }),
            (b"ie".to_vec(), BadInteger { at: 1 }),
            (b"i-e".to_vec(), BadInteger { at: 1 }),
            (b"i-0e".to_vec(), BadInteger { at: 1 }),
            (b"i03e".to_vec(), BadInteger { at: 1 }),
            (b"i-03e".to_vec(), BadInteger { at: 1 }),
            (b"i1.5e".to_vec(), Unexpected { at: 2, byte: b'.' }),
            (b"i+1e".to_vec(), Unexpected { at: 1, byte: b'+' }),
            (b"i9223372036854775808e".to_vec(), BadInteger { at: 1 }),
            (b"i-9223372036854775809e".to_vec(), BadInteger { at: 1 }),
            (b"i99999999999999999999999e".to_vec(), BadInteger { at: 1 }),
            // Lengths: negative, leading zeros, huge, past the end, missing colon.
            (b"-3:abc".to_vec(), Unexpected { at: 0, byte: b'-' }),
            (b"03:abc".to_vec(), BadLength { at: 0 }),
            (b"00:".to_vec(), BadLength { at: 0 }),
            (b"99999999999999999999999:abc".to_vec(), BadLength { at: 0 }),
            (
                b"18446744073709551615:abc".to_vec(),
                LengthPastEnd {
                    at: 0,
                    len: u64::MAX,
                },
            ),
            (b"5:abc".to_vec(), LengthPastEnd { at: 0, len: 5 }),
            (b"3".to_vec(), Truncated { at: 1 }),
            (b"3abc".to_vec(), BadLength { at: 0 }),
            // Containers.
            (b"l".to_vec(), Truncated { at: 1 }),
            (b"l4:spam".to_vec(), Truncated { at: 7 }),
            (b"d".to_vec(), Truncated { at: 1 }),
            (b"d3:key".to_vec(), Truncated { at: 6 }),
            (b"di1ei2ee".to_vec(), KeyNotString { at: 1 }),
            (b"dle1:ae".to_vec(), KeyNotString { at: 1 }),
            (b"d1:ai1e1:ai2ee".to_vec(), DuplicateKey { at: 7 }),
            (deep_list.into_bytes(), TooDeep { at: 32, max: 32 }),
            (deep_dict.into_bytes(), TooDeep { at: 128, max: 32 }),
            // Junk.
            (b"x".to_vec(), Unexpected { at: 0, byte: b'x' }),
            (b"e".to_vec(), Unexpected { at: 0, byte: b'e' }),
            (b"i1ei2e".to_vec(), Trailing { at: 3 }),
            (b"de ".to_vec(), Trailing { at: 2 }),
        ];
        for (input, want) in cases {
            assert_eq!(
                decode(&input),
                Err(want),
                "{}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn input_and_depth_limits_are_configurable() {
        let limits = Limits {
            max_input: 8,
            max_depth: 2,
        };
        assert_eq!(
            decode_with(b"10:0123456789", limits),
            Err(BencodeError::TooLarge { len: 13, max: 8 })
        );
        assert!(decode_with(b"llee", limits).is_ok());
        assert_eq!(
            decode_with(b"llleee", limits),
            Err(BencodeError::TooDeep { at: 2, max: 2 })
        );
        // A long run of tiny items stays within the input size.
        let many = format!("l{}e", "0:".repeat(30_000));
        let v = decode(many.as_bytes()).unwrap();
        assert_eq!(v.as_list().map(<[Value]>::len), Some(30_000));
    }

    #[test]
    fn encodes_with_sorted_keys_and_round_trips() {
        let v = Value::dict([
            ("sdp", b("v=0\r\n")),
            ("result", b("ok")),
            ("n", Value::Int(-7)),
            ("list", Value::List(vec![b("a"), Value::uint(u64::MAX)])),
        ]);
        let bytes = v.encode();
        assert_eq!(
            bytes,
            b"d4:listl1:ai9223372036854775807ee1:ni-7e6:result2:ok3:sdp5:v=0\r\ne".to_vec()
        );
        assert_eq!(decode(&bytes), Ok(v));
        // Unsorted input re-encodes sorted.
        let v = decode(b"d1:bi1e1:ai2ee").unwrap();
        assert_eq!(v.encode(), b"d1:ai2e1:bi1ee".to_vec());
        // Accessors.
        assert_eq!(v.get("a").and_then(Value::as_int), Some(2));
        assert_eq!(v.get("c"), None);
        assert_eq!(b("x").get("a"), None);
        assert_eq!(Value::Bytes(vec![0xff]).as_str(), None);
        assert_eq!(b("é").as_str(), Some("é"));
    }
}
