//! The view types every primitive fills to describe its state: a leaf of the
//! crate's import graph. Each primitive's `summarize` reads its own layout
//! through a [`StateView`] and answers a [`StateSummary`]; the dispatcher in
//! [`inspect`](super) calls them by kind.

use crate::segment::{TypeCode, TypeDesc};
use crate::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

/// One value in a state summary.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// An unsigned integer.
    U64(u64),
    /// A signed integer.
    I64(i64),
    /// A float.
    F64(f64),
    /// A flag.
    Bool(bool),
    /// Text.
    Str(String),
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Field::U64(v) => write!(f, "{v}"),
            Field::I64(v) => write!(f, "{v}"),
            Field::F64(v) => write!(f, "{v}"),
            Field::Bool(v) => write!(f, "{v}"),
            Field::Str(v) => f.write_str(v),
        }
    }
}

/// A primitive's state, as a one-line description plus named fields.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateSummary {
    /// One line for `ls` ("depth 3/1024, open").
    pub line: String,
    /// Every field, for `stat` and JSON.
    pub fields: Vec<(&'static str, Field)>,
}

/// Bounds-checked, load-only access to a primitive's data area, for summarisers.
/// Every accessor returns `None` when the range falls outside the area.
pub struct StateView<'a> {
    data: &'a [u8],
}

impl<'a> StateView<'a> {
    /// A view of `data`, a mapped data area.
    pub(crate) fn new(data: &'a [u8]) -> StateView<'a> {
        StateView { data }
    }

    fn range(&self, offset: usize, len: usize, align: usize) -> Option<*const u8> {
        let end = offset.checked_add(len)?;
        (end <= self.data.len() && offset % align == 0)
            .then(|| self.data.as_ptr().wrapping_add(offset))
    }

    /// Size of the data area.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the data area is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// An atomic `u8` load at `offset`.
    pub fn u8(&self, offset: usize) -> Option<u8> {
        let p = self.range(offset, 1, 1)?;
        // SAFETY: in bounds (checked); atomic loads are allowed on read-only memory.
        Some(unsafe { &*p.cast::<AtomicU8>() }.load(Ordering::Relaxed))
    }

    /// An atomic `u32` load at `offset` (must be 4-aligned).
    pub fn u32(&self, offset: usize) -> Option<u32> {
        let p = self.range(offset, 4, 4)?;
        // SAFETY: in bounds and aligned (checked; the area is page aligned);
        // atomic loads are allowed on read-only memory.
        Some(unsafe { &*p.cast::<AtomicU32>() }.load(Ordering::Relaxed))
    }

    /// An atomic `u64` load at `offset` (must be 8-aligned).
    pub fn u64(&self, offset: usize) -> Option<u64> {
        let p = self.range(offset, 8, 8)?;
        // SAFETY: in bounds and aligned (checked); atomic loads are allowed on
        // read-only memory.
        Some(unsafe { &*p.cast::<AtomicU64>() }.load(Ordering::Relaxed))
    }

    /// A byte-wise copy of `len` bytes at `offset` (each byte loaded atomically,
    /// so a concurrent writer can tear the copy but not cause a data race).
    pub fn bytes(&self, offset: usize, len: usize) -> Option<Vec<u8>> {
        self.range(offset, len, 1)?;
        (offset..offset + len).map(|o| self.u8(o)).collect()
    }
}

/// Formats a payload value by its type code (integers and floats in native byte
/// order, anything else as hex, truncated).
pub fn format_value(desc: &TypeDesc, bytes: &[u8]) -> String {
    use TypeCode as T;
    let int = |n: usize| -> Option<[u8; 8]> {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(bytes.get(..n)?);
        Some(b)
    };
    let mut code = TypeCode::from_code(desc.code);
    if code == Some(T::Struct) {
        // A struct code naming a primitive type (as `Mutex<u64>` records it).
        code = match desc.name_str().as_str() {
            "bool" => Some(T::Bool),
            "u8" => Some(T::U8),
            "i8" => Some(T::I8),
            "u16" => Some(T::U16),
            "i16" => Some(T::I16),
            "u32" => Some(T::U32),
            "i32" => Some(T::I32),
            "f32" => Some(T::F32),
            "u64" => Some(T::U64),
            "i64" => Some(T::I64),
            "f64" => Some(T::F64),
            _ => code,
        };
    }
    let text = match (code, bytes.len()) {
        (Some(T::Bool), 1) => Some((bytes[0] != 0).to_string()),
        (Some(T::U8), 1) => Some(bytes[0].to_string()),
        (Some(T::I8), 1) => Some((bytes[0] as i8).to_string()),
        (Some(T::U16), 2) => int(2).map(|b| u16::from_ne_bytes([b[0], b[1]]).to_string()),
        (Some(T::I16), 2) => int(2).map(|b| i16::from_ne_bytes([b[0], b[1]]).to_string()),
        (Some(T::U32), 4) => {
            int(4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]).to_string())
        }
        (Some(T::I32), 4) => {
            int(4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]).to_string())
        }
        (Some(T::F32), 4) => {
            int(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]).to_string())
        }
        (Some(T::U64), 8) => int(8).map(|b| u64::from_ne_bytes(b).to_string()),
        (Some(T::I64), 8) => int(8).map(|b| i64::from_ne_bytes(b).to_string()),
        (Some(T::F64), 8) => int(8).map(|b| f64::from_ne_bytes(b).to_string()),
        _ => None,
    };
    text.unwrap_or_else(|| {
        let shown: Vec<String> = bytes.iter().take(32).map(|b| format!("{b:02x}")).collect();
        let more = if bytes.len() > 32 { "…" } else { "" };
        format!("0x{}{more}", shown.join(""))
    })
}
