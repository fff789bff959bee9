//! [`Bool`]: a one-byte truth value that can live in a cell.

use bytemuck::{Pod, Zeroable};

/// A truth value stored as one byte, recorded with type code `Bool` (C's
/// `bool`): any nonzero byte reads as `true`, so every bit pattern is valid
/// (unlike Rust's `bool`, which cannot be `Pod`).
///
/// ```
/// use shmprim::{Value, cell::Bool};
/// # let name = format!("doc-bool-{}", std::process::id());
/// let flag = Value::<Bool>::create(&name, Bool::FALSE)?;
/// flag.set(true.into())?;
/// assert!(flag.get()?.get());
/// # Value::<Bool>::unlink(&name)?;
/// # Ok::<(), shmprim::Error>(())
/// ```
#[repr(transparent)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct Bool(pub u8);

impl Bool {
    /// `false` (byte 0).
    pub const FALSE: Bool = Bool(0);
    /// `true` (byte 1).
    pub const TRUE: Bool = Bool(1);

    /// Whether the byte is nonzero.
    pub fn get(self) -> bool {
        self.0 != 0
    }
}

impl From<bool> for Bool {
    fn from(b: bool) -> Bool {
        Bool(b as u8)
    }
}

impl From<Bool> for bool {
    fn from(b: Bool) -> bool {
        b.get()
    }
}

impl std::fmt::Debug for Bool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.get(), f)
    }
}
