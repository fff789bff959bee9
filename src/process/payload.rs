//! What crosses into and out of a child: arguments, results and task records,
//! encoded into bytes by [`Payload`].
//!
//! The encoding is fixed-width little-endian for numbers and a `u64` length
//! before every sequence, so that two binaries built from the same definitions
//! agree. Decoding reads untrusted bytes (a child may die half way through a
//! record, or be a different build): every length is checked against what is
//! left, and a malformed record is an [`Error::Corrupted`], never a panic.

use crate::error::{Error, Result};

/// A value that can be an argument or a result of a child process or a pool
/// task: it encodes itself into bytes and decodes itself back.
///
/// Implemented for numbers, `bool`, `char`, `()`, `String`, `Vec<T>`,
/// `Option<T>`, `Result<T, E>`, arrays, tuples of up to six, and `Box<T>`. A
/// plain-old-data struct gets it with [`pod_payload!`](crate::pod_payload)
/// (its bytes go as they are); any `serde` type through `process::Serde` with
/// the `serde` feature.
pub trait Payload: Sized {
    /// Appends this value's encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads one value from the front of `input`, advancing it.
    fn decode(input: &mut &[u8]) -> Result<Self>;
}

/// Encodes one value into a fresh buffer.
pub fn to_bytes<T: Payload>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value.encode(&mut out);
    out
}

/// Decodes one value that must fill `bytes` exactly.
pub fn from_bytes<T: Payload>(mut bytes: &[u8]) -> Result<T> {
    let value = T::decode(&mut bytes)?;
    if !bytes.is_empty() {
        return Err(malformed(format!(
            "{} bytes left over after the value",
            bytes.len()
        )));
    }
    Ok(value)
}

/// The error for a record that does not decode.
pub(crate) fn malformed(detail: impl Into<String>) -> Error {
    Error::corrupted("<payload>", detail)
}

/// Takes `n` bytes from the front of `input`.
pub fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if input.len() < n {
        return Err(malformed(format!(
            "needs {n} bytes, {} are left",
            input.len()
        )));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

/// Reads a sequence length and checks that at least `len * min_item` bytes
/// follow, so that a corrupt length cannot make the decoder reserve memory the
/// record cannot fill.
fn take_len(input: &mut &[u8], min_item: usize) -> Result<usize> {
    let len = u64::decode(input)?;
    let len = usize::try_from(len).map_err(|_| malformed("length beyond usize"))?;
    if len.saturating_mul(min_item) > input.len() {
        return Err(malformed(format!(
            "a length of {len} items, with {} bytes left",
            input.len()
        )));
    }
    Ok(len)
}

macro_rules! number_payload {
    ($($t:ty),*) => {$(
        impl Payload for $t {
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            #[inline]
            fn decode(input: &mut &[u8]) -> Result<Self> {
                let bytes = take(input, std::mem::size_of::<$t>())?;
                Ok(<$t>::from_le_bytes(bytes.try_into().expect("length taken above")))
            }
        }
    )*};
}
number_payload!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64);

impl Payload for usize {
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as u64).encode(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        usize::try_from(u64::decode(input)?).map_err(|_| malformed("usize out of range"))
    }
}

impl Payload for isize {
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as i64).encode(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        isize::try_from(i64::decode(input)?).map_err(|_| malformed("isize out of range"))
    }
}

impl Payload for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        match u8::decode(input)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(malformed(format!("bool byte {b}"))),
        }
    }
}

impl Payload for char {
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as u32).encode(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        let v = u32::decode(input)?;
        char::from_u32(v).ok_or_else(|| malformed(format!("char {v:#x}")))
    }
}

impl Payload for () {
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn decode(_input: &mut &[u8]) -> Result<Self> {
        Ok(())
    }
}

impl Payload for String {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u64).encode(out);
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        let len = take_len(input, 1)?;
        let bytes = take(input, len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| malformed("string is not UTF-8"))
    }
}

impl<T: Payload> Payload for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u64).encode(out);
        for item in self {
            item.encode(out);
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        // Zero-sized encodings (`()`) may repeat without consuming input;
        // bound them anyway by what is left plus one.
        let len = take_len(input, 0)?;
        if len > input.len().saturating_add(1).saturating_mul(64) {
            return Err(malformed(format!("a length of {len} items")));
        }
        let mut items = Vec::with_capacity(len.min(input.len() + 1));
        for _ in 0..len {
            items.push(T::decode(input)?);
        }
        Ok(items)
    }
}

impl<T: Payload> Payload for Box<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        T::decode(input).map(Box::new)
    }
}

impl<T: Payload> Payload for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        match u8::decode(input)? {
            0 => Ok(None),
            1 => T::decode(input).map(Some),
            b => Err(malformed(format!("option tag {b}"))),
        }
    }
}

impl<T: Payload, E: Payload> Payload for std::result::Result<T, E> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Ok(v) => {
                out.push(0);
                v.encode(out);
            }
            Err(e) => {
                out.push(1);
                e.encode(out);
            }
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        match u8::decode(input)? {
            0 => T::decode(input).map(Ok),
            1 => E::decode(input).map(Err),
            b => Err(malformed(format!("result tag {b}"))),
        }
    }
}

impl<T: Payload, const N: usize> Payload for [T; N] {
    fn encode(&self, out: &mut Vec<u8>) {
        for item in self {
            item.encode(out);
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        let mut items = Vec::with_capacity(N);
        for _ in 0..N {
            items.push(T::decode(input)?);
        }
        Ok(items
            .try_into()
            .unwrap_or_else(|_| unreachable!("exactly N items")))
    }
}

macro_rules! tuple_payload {
    ($($name:ident)+) => {
        impl<$($name: Payload),+> Payload for ($($name,)+) {
            #[allow(non_snake_case)]
            fn encode(&self, out: &mut Vec<u8>) {
                let ($($name,)+) = self;
                $($name.encode(out);)+
            }
            fn decode(input: &mut &[u8]) -> Result<Self> {
                Ok(($($name::decode(input)?,)+))
            }
        }
    };
}
tuple_payload!(A);
tuple_payload!(A B);
tuple_payload!(A B C);
tuple_payload!(A B C D);
tuple_payload!(A B C D E);
tuple_payload!(A B C D E F);

/// Makes a plain-old-data type (`bytemuck::Pod`) a [`Payload`](crate::process::Payload):
/// its bytes go as they are, with no codec. Both ends must be built from the
/// same definition.
///
/// ```
/// use shmprim::bytemuck::{Pod, Zeroable};
/// #[derive(Clone, Copy, Pod, Zeroable)]
/// #[repr(C)]
/// struct Point { x: f64, y: f64 }
/// shmprim::pod_payload!(Point);
/// let bytes = shmprim::process::to_bytes(&Point { x: 1.0, y: 2.0 });
/// assert_eq!(bytes.len(), 16);
/// ```
#[macro_export]
macro_rules! pod_payload {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::process::Payload for $t {
            fn encode(&self, out: &mut ::std::vec::Vec<u8>) {
                out.extend_from_slice($crate::bytemuck::bytes_of(self));
            }
            fn decode(input: &mut &[u8]) -> $crate::Result<Self> {
                let bytes = $crate::process::take(input, ::std::mem::size_of::<$t>())?;
                Ok($crate::bytemuck::pod_read_unaligned(bytes))
            }
        }
    )+};
}

/// Any serde type as a [`Payload`] (feature `serde`), encoded with postcard
/// behind a length.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use shmprim::process::{Serde, from_bytes, to_bytes};
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Job { id: u32, tags: Vec<String> }
/// let job = Serde(Job { id: 7, tags: vec!["a".into()] });
/// let back: Serde<Job> = from_bytes(&to_bytes(&job)).unwrap();
/// assert_eq!(back.0, job.0);
/// # }
/// ```
#[cfg(feature = "serde")]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Serde<T>(pub T);

#[cfg(feature = "serde")]
impl<T: serde::Serialize + serde::de::DeserializeOwned> Payload for Serde<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        let at = out.len();
        0u64.encode(out);
        // Serialising into a Vec fails only for a type whose Serialize
        // impl reports an error; such a value is sent as a record that fails
        // to decode on the other side, with the reason.
        match postcard::to_extend(&self.0, std::mem::take(out)) {
            Ok(v) => *out = v,
            Err(e) => panic!("serde payload could not be serialised: {e}"),
        }
        let len = (out.len() - at - 8) as u64;
        out[at..at + 8].copy_from_slice(&len.to_le_bytes());
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        let len = take_len(input, 1)?;
        let bytes = take(input, len)?;
        postcard::from_bytes(bytes)
            .map(Serde)
            .map_err(|e| malformed(format!("serde payload: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Payload + PartialEq + std::fmt::Debug>(v: T) {
        let bytes = to_bytes(&v);
        assert_eq!(from_bytes::<T>(&bytes).unwrap(), v);
        // Every strict prefix is refused, never a panic.
        for cut in 0..bytes.len() {
            assert!(
                from_bytes::<T>(&bytes[..cut]).is_err(),
                "prefix {cut} of {v:?}"
            );
        }
    }

    #[test]
    fn values_round_trip_and_prefixes_are_refused() {
        round_trip(42u64);
        round_trip(-7i32);
        round_trip(1.5f64);
        round_trip(true);
        round_trip('ü');
        round_trip(String::from("héllo"));
        round_trip(vec![1u32, 2, 3]);
        round_trip(Some((1u8, String::from("x"))));
        round_trip::<std::result::Result<u16, String>>(Err("bad".into()));
        round_trip([7u16; 4]);
        round_trip((1u8, 2u16, 3u32, 4u64, 5i8, vec![String::new()]));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_values_round_trip_and_garbage_is_refused() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        enum Shape {
            Circle { r: f64 },
            Poly(Vec<(i32, i32)>),
        }
        round_trip(Serde(Shape::Poly(vec![(1, 2), (-3, 4)])));
        round_trip(Serde(vec![Shape::Circle { r: 1.5 }]));
        assert!(from_bytes::<Serde<Shape>>(&[1, 0, 0, 0, 0, 0, 0, 0, 9]).is_err());
    }

    #[test]
    fn corrupt_lengths_and_tags_are_errors() {
        let mut huge = Vec::new();
        u64::MAX.encode(&mut huge);
        assert!(from_bytes::<String>(&huge).is_err());
        assert!(from_bytes::<Vec<u64>>(&huge).is_err());
        assert!(from_bytes::<Vec<()>>(&huge).is_err());
        assert!(from_bytes::<bool>(&[2]).is_err());
        assert!(from_bytes::<Option<u8>>(&[9, 0]).is_err());
        assert!(from_bytes::<char>(&0xD800u32.to_le_bytes()).is_err());
        assert!(from_bytes::<String>(&[1, 0, 0, 0, 0, 0, 0, 0, 0xff]).is_err());
        assert!(from_bytes::<u8>(&[1, 2]).is_err(), "trailing bytes");
    }
}
